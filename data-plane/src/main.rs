//! `to11-data-plane`: one gateway replica following configuration in Redis.

use std::sync::Arc;

use to11_data_plane::config::Env;
use to11_data_plane::sync::redis::RedisSource;
use to11_shared::crypto::Keyring;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TO11_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let mut env = Env::default();
    let settings = to11_data_plane::Settings::from_env(&mut env);
    let redis_url = env.string("TO11_REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = env.string("TO11_REDIS_PREFIX", "to11:");
    let master = env.optional("TO11_MASTER_KEY");
    env.finish()
        .map_err(|e| anyhow::anyhow!("invalid settings:\n{e}"))?;
    let master = master.ok_or_else(|| {
        anyhow::anyhow!(
            "TO11_MASTER_KEY is required (the control plane's master key, base64 of 32 bytes)"
        )
    })?;
    let keyring =
        Keyring::from_base64(&master).map_err(|e| anyhow::anyhow!("TO11_MASTER_KEY: {e}"))?;
    let source = RedisSource::new(&redis_url, &prefix)
        .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?;
    let gw = to11_data_plane::start(settings, keyring, Arc::new(source))?;
    println!("to11-data-plane listening on {}", gw.addr);
    gw.server.await?;
    Ok(())
}
