//! `to11-control-plane`: the REST API, provider actors and snapshot publishing, over Redis.

use std::sync::Arc;
use std::time::Duration;

use to11_control_plane::store::redis::RedisStore;
use to11_control_plane::store::Store;
use to11_control_plane::Settings;
use to11_data_plane::config::Env;
use to11_shared::crypto::Keyring;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    to11_control_plane::init_tracing();
    let mut env = Env::default();
    let listen = env.string("TO11_API_LISTEN", "127.0.0.1:8081");
    let redis_url = env.string("TO11_REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = env.string("TO11_REDIS_PREFIX", "to11:");
    let store_timeout = env.millis("TO11_STORE_TIMEOUT_MS", 3_000);
    let admin = env.optional("TO11_ADMIN_TOKEN");
    let master = env.optional("TO11_MASTER_KEY");
    if admin.is_none() {
        env.problems
            .push("TO11_ADMIN_TOKEN is required (the operator token)".into());
    }
    if master.is_none() {
        env.problems.push("TO11_MASTER_KEY is required (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)".into());
    }
    let keyring = master.as_deref().map(Keyring::from_base64);
    if let Some(Err(e)) = &keyring {
        env.problems.push(format!("TO11_MASTER_KEY: {e}"));
    }
    let partial = Settings::new(&listen, Keyring::from_master(&[0; 32]), "").apply_env(&mut env);
    env.finish()
        .map_err(|e| anyhow::anyhow!("invalid settings:\n{e}"))?;
    let (Some(Ok(keyring)), Some(admin)) = (keyring, admin) else {
        anyhow::bail!("unreachable: settings were checked");
    };
    let mut settings = Settings::new(&listen, keyring, &admin);
    settings.allow_private_upstreams = partial.allow_private_upstreams;
    settings.probe_connect_timeout = partial.probe_connect_timeout;
    settings.probe_timeout = partial.probe_timeout;
    settings.workers = partial.workers;
    settings.epoch_check_interval = partial.epoch_check_interval;

    let store = Arc::new(Store::Redis(
        RedisStore::new(&redis_url, &prefix, store_timeout)
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
