//! `to11-control-plane`: the REST API, provider actors and snapshot publishing, over Redis.

use std::sync::Arc;
use std::time::Duration;

use to11_control_plane::store::redis::RedisStore;
use to11_control_plane::store::Store;
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
    let settings = Settings::new(config.api, keyring, config.admin_token.expose());
    let store = Arc::new(Store::Redis(
        RedisStore::new(
            &config.redis.url,
            &config.redis.prefix,
            config.store_timeout,
        )
        .map_err(|e| anyhow::anyhow!("TO11_REDIS_URL: {e}"))?,
    ));
    // Wait for the store: the control plane serves nothing it has not loaded.
    let mut wait = Duration::from_millis(200);
    let cp = loop {
        match to11_control_plane::start(settings.clone(), store.clone()).await {
            Ok(cp) => break cp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load configuration from Redis; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    };
    println!("to11-control-plane listening on {}", cp.addr);
    cp.server.await?;
    Ok(())
}
