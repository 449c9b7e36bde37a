//! `to11`: embedded mode — control plane and gateway in one process, no external service.

use to11_embedded::EmbeddedConfig;
use to11_shared::config::Source;

/// The gateway's allocator, as in `to11-data-plane`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let source = Source::new(std::env::vars(), std::env::args().skip(1))?;
    let config = EmbeddedConfig::from_source(&source)?;
    to11_control_plane::init_tracing(&config.log);
    let data_dir = config.data_dir.clone();
    let (grace, timeout) = (config.gateway.drain_grace, config.gateway.drain_timeout);
    let e = to11_embedded::start(config).await?;
    // SIGTERM drains the gateway (`/readyz` 503, then open answers finish or end with a terminal
    // event); the API keeps actix-web's own handling and stops with it.
    actix_rt::spawn(to11_data_plane::drain::on_signal(
        e.gateway.server.handle(),
        e.gateway.drain.clone(),
        grace,
        timeout,
    ));
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
