//! to11 control plane: the REST API (`api`), the actors that own configuration and talk to
//! providers (`actors`, `providers`), persistence (`store`) and embedded mode (`embedded`).
//!
//! Architecture invariant: every configuration write goes through `ProjectRegistry`, which
//! compiles the resulting snapshot with `to11_shared::resolve::compile` (the function replicas
//! use) before it is stored and published.

pub mod actors;
pub mod api;
pub mod embedded;
pub mod error;
pub mod providers;
pub mod store;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, App, HttpServer};
use to11_data_plane::config::Env;
use to11_shared::crypto::{KeyHash, Keyring};

use actors::prober::ProviderProber;
use actors::registry::ProjectRegistry;
use providers::ProbeTimeouts;
use store::Store;

#[derive(Clone)]
pub struct Settings {
    pub listen: String,
    pub keyring: Keyring,
    /// Keyed hash of the operator token (the token itself is not kept).
    pub admin_token_hash: KeyHash,
    pub allow_private_upstreams: bool,
    /// Where Google service-account assertions are exchanged for access tokens.
    pub google_token_url: String,
    pub probe_connect_timeout: Duration,
    pub probe_timeout: Duration,
    pub workers: usize,
    /// How often the control plane checks that the store still carries its epoch.
    pub epoch_check_interval: Duration,
    /// Where browsers reach the gateway (the dashboard's playground calls it).
    pub public_gateway_url: Option<String>,
}

impl Settings {
    pub fn new(listen: &str, keyring: Keyring, admin_token: &str) -> Self {
        let admin_token_hash = keyring.key_hash(admin_token);
        Settings {
            listen: listen.to_string(),
            keyring,
            admin_token_hash,
            allow_private_upstreams: false,
            google_token_url: to11_shared::google::DEFAULT_TOKEN_URL.to_string(),
            probe_connect_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(15),
            workers: 1,
            epoch_check_interval: Duration::from_secs(2),
            public_gateway_url: None,
        }
    }

    /// Reads the optional settings shared by both binaries.
    pub fn apply_env(mut self, env: &mut Env) -> Self {
        self.allow_private_upstreams = env.flag("TO11_ALLOW_PRIVATE_UPSTREAMS");
        self.google_token_url = env.string(
            "TO11_GOOGLE_TOKEN_URL",
            to11_shared::google::DEFAULT_TOKEN_URL,
        );
        self.probe_connect_timeout = env.millis("TO11_PROBE_CONNECT_TIMEOUT_MS", 5_000);
        self.probe_timeout = env.millis("TO11_PROBE_TIMEOUT_MS", 15_000);
        self.workers = env.number("TO11_API_WORKERS", 1).max(1) as usize;
        self.epoch_check_interval = env.millis("TO11_EPOCH_CHECK_INTERVAL_MS", 2_000);
        self.public_gateway_url = env.optional("TO11_PUBLIC_GATEWAY_URL");
        self
    }
}

/// A running control plane.
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
    pub registry: Addr<ProjectRegistry>,
    /// Fault injection for tests: set false to store changes without announcing them.
    pub publish: Arc<AtomicBool>,
    /// The gateway URL the dashboard shows, settable once after start (embedded mode learns it
    /// when the gateway has bound its port).
    pub gateway_url: Arc<std::sync::OnceLock<String>>,
}

/// Loads all state from the store, starts the actors and the HTTP server. Must run inside an
/// actix system; the caller awaits `server`.
pub async fn start(settings: Settings, store: Arc<Store>) -> anyhow::Result<ControlPlane> {
    let publish = Arc::new(AtomicBool::new(true));
    let registry = ProjectRegistry::load(
        store,
        settings.keyring.clone(),
        publish.clone(),
        settings.epoch_check_interval,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))?
    .start();
    let prober = ProviderProber::new(
        ProbeTimeouts {
            connect: settings.probe_connect_timeout,
            total: settings.probe_timeout,
        },
        settings.allow_private_upstreams,
        &settings.google_token_url,
    )
    .start();
    let gateway_url = Arc::new(std::sync::OnceLock::new());
    if let Some(u) = &settings.public_gateway_url {
        let _ = gateway_url.set(u.trim_end_matches('/').to_string());
    }
    let api = web::Data::new(api::Api {
        registry: registry.clone(),
        prober,
        keyring: settings.keyring.clone(),
        admin_token_hash: settings.admin_token_hash,
        allow_private_upstreams: settings.allow_private_upstreams,
        metrics: Default::default(),
        sessions: Default::default(),
        gateway_url: gateway_url.clone(),
    });
    let server =
        HttpServer::new(move || App::new().app_data(api.clone()).configure(api::configure))
            .workers(settings.workers)
            .tcp_nodelay(true)
            .bind(&settings.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no address bound"))?;
    tracing::info!(%addr, "control plane listening");
    Ok(ControlPlane {
        addr,
        server: server.run(),
        registry,
        publish,
        gateway_url,
    })
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TO11_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
