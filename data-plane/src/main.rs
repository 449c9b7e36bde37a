//! `to11-data-plane`: one gateway replica following configuration in Redis.

use std::sync::Arc;

use to11_data_plane::sync::redis::RedisSource;
use to11_data_plane::ReplicaConfig;
use to11_shared::config::Source;
use to11_shared::crypto::Keyring;

/// mimalloc: allocation is a large share of a request's CPU, and glibc's malloc cost about 10 %
/// more instructions per proxied request (callgrind, `tests/bench.sh`'s traffic).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let source = Source::new(std::env::vars(), std::env::args().skip(1))?;
    let config = ReplicaConfig::from_source(&source)?;
    to11_data_plane::init_tracing(&config.log);
    let keyring = Keyring::from_base64(config.master_key.expose())
        .map_err(|e| anyhow::anyhow!("TO11_MASTER_KEY: {e}"))?;
    let source = RedisSource::new(&config.redis.url, &config.redis.prefix)
        .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?;
    let sink = to11_data_plane::metering::redis::RedisSink::new(
        &config.redis.url,
        &config.redis.prefix,
        config.usage_stream_max,
    )
    .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?;
    let counters = to11_io::counters::RedisCounters::new(
        &config.redis.url,
        &config.redis.prefix,
        config.gateway.limits_store_timeout,
    )
    .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?;
    let reports =
        to11_data_plane::sync::report::RedisReports::new(&config.redis.url, &config.redis.prefix)
            .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?;
    let (grace, timeout) = (config.gateway.drain_grace, config.gateway.drain_timeout);
    let settings = config.gateway.clone();
    let gw = to11_data_plane::start(
        config.gateway,
        keyring,
        Arc::new(source),
        Some(Arc::new(sink)),
        Arc::new(counters),
    )?;
    let id = gw.report_to(Arc::new(reports), &settings);
    tracing::info!(replica = %id, "reporting to the control plane");
    actix_rt::spawn(to11_data_plane::drain::on_signal(
        gw.server.handle(),
        gw.drain.clone(),
        grace,
        timeout,
    ));
    println!("to11-data-plane listening on {}", gw.addr);
    gw.server.await?;
    Ok(())
}
