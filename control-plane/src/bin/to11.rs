//! `to11`: embedded mode — control plane and gateway in one process, no external service.

use to11_control_plane::embedded::{self, EmbeddedSettings};
use to11_data_plane::config::Env;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    to11_control_plane::init_tracing();
    let mut env = Env::default();
    let settings = EmbeddedSettings::from_env(&mut env);
    env.finish()
        .map_err(|e| anyhow::anyhow!("invalid settings:\n{e}"))?;
    let data_dir = settings.data_dir.clone();
    let e = embedded::start(settings).await?;
    println!("to11 (embedded) data directory: {}", data_dir.display());
    println!(
        "gateway  http://{}  (send your to11 key as x-to11-authorization)",
        e.gateway.addr
    );
    println!("dashboard http://{}/", e.control_plane.addr);
    println!("API      http://{}/api/v1", e.control_plane.addr);
    if let Some(t) = &e.generated_admin_token {
        println!("operator token (shown once, keep it safe): {t}");
    }
    let (a, b) = futures_util::future::join(e.control_plane.server, e.gateway.server).await;
    a?;
    b?;
    Ok(())
}
