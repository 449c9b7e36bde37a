//! `to11-control-plane`: the REST API, provider actors and snapshot publishing, over Redis.

use std::sync::Arc;
use std::time::Duration;

use to11_control_plane::store::redis::RedisStore;
use to11_control_plane::store::Store;
use to11_control_plane::usage::ingest::{IngestStats, Ingester};
use to11_control_plane::usage::{self, Metering};
use to11_control_plane::{ControlPlaneConfig, Settings};
use to11_shared::config::Source;
use to11_shared::crypto::Keyring;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let source = Source::new(std::env::vars(), std::env::args().skip(1))?;
    let config = ControlPlaneConfig::from_source(&source)?;
    to11_control_plane::init_tracing(&config.log);
    let keyring = Keyring::from_base64(config.master_key.expose())
        .map_err(|e| anyhow::anyhow!("TO11_MASTER_KEY: {e}"))?;
    let mut settings = Settings::new(config.api.clone(), keyring, config.admin_token.expose());
    settings.recovery = config.recovery.clone();
    let store = Arc::new(Store::Redis(
        RedisStore::new(
            &config.redis.url,
            &config.redis.prefix,
            config.store_timeout,
        )
        .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?,
    ));
    let mut metering = metering(&config)?;
    metering.counters = Some(Arc::new(
        to11_io::counters::RedisCounters::new(
            &config.redis.url,
            &config.redis.prefix,
            config.store_timeout,
        )
        .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?,
    ));
    // Wait for the store: the control plane serves nothing it has not loaded.
    let mut wait = Duration::from_millis(200);
    let cp = loop {
        match to11_control_plane::start(settings.clone(), store.clone(), metering.clone()).await {
            Ok(cp) => break cp,
            // The operator must act (restore, or accept an empty store): retrying cannot help.
            Err(e) if e.is::<to11_control_plane::recovery::Refused>() => {
                tracing::error!("{e}");
                eprintln!("to11-control-plane: {e}");
                std::process::exit(2);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot load configuration from Redis; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    };
    let replicas = to11_control_plane::store::replicas::RedisReplicas::new(
        &config.redis.url,
        &config.redis.prefix,
    )
    .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?;
    let _ = cp.replicas.set(Arc::new(replicas));
    println!("to11-control-plane listening on {}", cp.addr);
    cp.server.await?;
    Ok(())
}

/// The usage store of `TO11_DATABASE_URL`, and the ingestion of the replicas' records into it.
fn metering(config: &ControlPlaneConfig) -> anyhow::Result<Metering> {
    let Some(url) = &config.database_url else {
        tracing::warn!(
            "TO11_DATABASE_URL is not set: request records wait in Redis and the usage API answers 503"
        );
        return Ok(Metering::default());
    };
    let store = usage::open(url.expose()).map_err(|e| anyhow::anyhow!("TO11_DATABASE_URL: {e}"))?;
    let pricer = Arc::new(usage::Pricer::default());
    let stats = Arc::new(IngestStats::default());
    let ingester = Ingester {
        redis_url: config.redis.url.clone(),
        prefix: config.redis.prefix.clone(),
        consumer: format!("cp-{}-{:08x}", std::process::id(), rand::random::<u32>()),
        store: store.clone(),
        pricer: pricer.clone(),
        stats: stats.clone(),
        raw_days: config.retention.raw_days,
        rollup_days: config.retention.rollup_days,
    };
    actix_rt::spawn(ingester.run());
    Ok(Metering {
        store: Some(store),
        pricer,
        ingest: Some(stats),
        counters: None,
    })
}
