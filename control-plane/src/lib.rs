//! to11 control plane: the REST API (`api`), what a configuration change means (`domain`), the
//! actors that own configuration and talk to providers (`actors`, `providers`), persistence
//! (`store`: Redis, or the local directory embedded mode uses — the `to11` binary itself is the
//! `to11-embedded` crate).
//!
//! Architecture invariant: every configuration write goes through `ProjectRegistry` as a typed
//! command, which compiles the resulting snapshot with `to11_shared::resolve::compile` (the
//! function replicas use) before it is stored and published; reads load the model the registry
//! publishes (`ReadModel`).

pub mod actors;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod domain;
pub mod error;
pub mod providers;
pub mod recovery;
pub mod store;
pub mod usage;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, App, HttpServer};
use to11_shared::config::{log_filter, Problems, Reader, RedisSettings, Secret, Source};
use to11_shared::crypto::{KeyHash, Keyring};

use actors::prober::ProviderProber;
use actors::registry::{ProjectRegistry, ReadModel};
use domain::limits::Limits;
use providers::ProbeTimeouts;
use store::Store;

/// The API's settings, read by `to11-control-plane` and `to11` alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: String,
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
    /// How long a client may take to send a request's headers (actix `client_request_timeout`).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body, counted from its headers.
    pub body_timeout: Duration,
    /// Failed authentications a source (or a token) makes before back-off starts.
    pub auth_free_failures: u32,
    /// The first back-off; each further failure doubles it (at most 15 minutes).
    pub auth_backoff: Duration,
    /// Dashboard sessions one principal (the operator, or one project) holds at most.
    pub sessions_per_principal: usize,
    /// Dashboard sessions held at most by all projects together.
    pub max_sessions: usize,
    /// When set, `/metrics` needs `Authorization: Bearer <it>`.
    pub metrics_token: Option<Secret>,
    /// Quotas on each project's configuration.
    pub limits: Limits,
}

impl ApiSettings {
    pub fn read(r: &mut Reader<'_>) -> Self {
        ApiSettings {
            listen: r.string("TO11_API_LISTEN", "127.0.0.1:8081"),
            allow_private_upstreams: r.flag("TO11_ALLOW_PRIVATE_UPSTREAMS", false),
            google_token_url: r.string(
                "TO11_GOOGLE_TOKEN_URL",
                to11_shared::google::DEFAULT_TOKEN_URL,
            ),
            probe_connect_timeout: r.millis("TO11_PROBE_CONNECT_TIMEOUT_MS", 5_000),
            probe_timeout: r.millis("TO11_PROBE_TIMEOUT_MS", 15_000),
            workers: r.number("TO11_API_WORKERS", 1).max(1) as usize,
            epoch_check_interval: r.millis("TO11_EPOCH_CHECK_INTERVAL_MS", 2_000),
            public_gateway_url: r.optional("TO11_PUBLIC_GATEWAY_URL"),
            header_timeout: r.millis("TO11_API_HEADER_TIMEOUT_MS", 5_000),
            body_timeout: r.millis("TO11_API_BODY_TIMEOUT_MS", 10_000),
            auth_free_failures: r.number("TO11_AUTH_FREE_FAILURES", 10).min(1_000_000) as u32,
            auth_backoff: r.millis("TO11_AUTH_BACKOFF_MS", 1_000),
            sessions_per_principal: r.number("TO11_SESSIONS_PER_PRINCIPAL", 20).max(1) as usize,
            max_sessions: r.number("TO11_MAX_SESSIONS", 10_000).max(1) as usize,
            metrics_token: r.optional("TO11_METRICS_TOKEN").map(Secret::new),
            limits: read_limits(r),
        }
    }

    /// Defaults with a given listen address (tests).
    pub fn with_listen(listen: &str) -> Self {
        let source = Source::default();
        let mut s = Self::read(&mut source.reader());
        s.listen = listen.to_string();
        s
    }
}

/// The `TO11_MAX_*` quotas (each at least 1).
fn read_limits(r: &mut Reader<'_>) -> Limits {
    let d = Limits::default();
    let mut n = |name: &str, default: usize| r.number(name, default as u64).max(1) as usize;
    Limits {
        routes: n("TO11_MAX_ROUTES", d.routes),
        targets_per_route: n("TO11_MAX_TARGETS_PER_ROUTE", d.targets_per_route),
        gateway_keys: n("TO11_MAX_GATEWAY_KEYS", d.gateway_keys),
        management_keys: n("TO11_MAX_MANAGEMENT_KEYS", d.management_keys),
        credentials: n("TO11_MAX_CREDENTIALS", d.credentials),
        providers: n("TO11_MAX_PROVIDERS", d.providers),
        models_per_provider: n("TO11_MAX_MODELS_PER_PROVIDER", d.models_per_provider),
        functions: n("TO11_MAX_FUNCTIONS", d.functions),
        name_length: n("TO11_MAX_NAME_LENGTH", d.name_length),
    }
}

/// What `start` needs: the API's settings and the keys.
#[derive(Clone)]
pub struct Settings {
    pub api: ApiSettings,
    pub keyring: Keyring,
    /// Keyed hash of the operator token (the token itself is not kept).
    pub admin_token_hash: KeyHash,
    /// Backups, restore and the start-up check of the store (`to11-control-plane` only).
    pub recovery: recovery::Recovery,
}

impl Settings {
    pub fn new(api: ApiSettings, keyring: Keyring, admin_token: &str) -> Self {
        let admin_token_hash = keyring.key_hash(admin_token);
        Settings {
            api,
            keyring,
            admin_token_hash,
            recovery: recovery::Recovery::default(),
        }
    }
}

/// How long usage is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Request records (the request log), in days.
    pub raw_days: u32,
    /// Hourly rollups (the usage queries), in days.
    pub rollup_days: u32,
}

impl Retention {
    pub fn read(r: &mut Reader<'_>) -> Self {
        Retention {
            raw_days: r.number("TO11_USAGE_RETENTION_DAYS", 30).max(1) as u32,
            rollup_days: r.number("TO11_USAGE_ROLLUP_RETENTION_DAYS", 400).max(1) as u32,
        }
    }
}

/// Everything `to11-control-plane` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    pub api: ApiSettings,
    pub redis: RedisSettings,
    /// A store call slower than this fails the write with 503.
    pub store_timeout: Duration,
    /// Where request records are stored (`postgres://…`, or `sqlite://PATH`); none: records
    /// wait in the Redis stream and the usage API answers 503.
    pub database_url: Option<Secret>,
    pub retention: Retention,
    pub recovery: recovery::Recovery,
    pub admin_token: Secret,
    pub master_key: Secret,
    pub log: String,
}

impl ControlPlaneConfig {
    pub fn from_source(source: &Source) -> Result<Self, Problems> {
        let mut r = source.reader();
        let api = ApiSettings::read(&mut r);
        let redis = RedisSettings::read(&mut r);
        let store_timeout = r.millis("TO11_STORE_TIMEOUT_MS", 3_000);
        let database_url = r.optional("TO11_DATABASE_URL").map(Secret::new);
        let retention = Retention::read(&mut r);
        let recovery = recovery::Recovery::read(&mut r);
        let admin_token = r.required("TO11_ADMIN_TOKEN", "the operator token");
        if let Some(p) = admin_token.as_deref().and_then(weak_admin_token) {
            r.problem(p);
        }
        let master_key = r.required(
            "TO11_MASTER_KEY",
            "base64 of 32 random bytes, e.g. `openssl rand -base64 32`",
        );
        if let Some(Err(e)) = master_key.as_deref().map(Keyring::from_base64) {
            r.problem(format!("TO11_MASTER_KEY: {e}"));
        }
        let log = log_filter(&mut r);
        r.finish(ControlPlaneConfig {
            api,
            redis,
            store_timeout,
            database_url,
            retention,
            recovery,
            admin_token: Secret::new(admin_token.unwrap_or_default()),
            master_key: Secret::new(master_key.unwrap_or_default()),
            log,
        })
    }
}

/// Why an operator-supplied `TO11_ADMIN_TOKEN` is too weak to accept, if it is: shorter than 16
/// characters, fewer than 6 distinct characters, or a run or repetition of a short pattern.
pub fn weak_admin_token(token: &str) -> Option<String> {
    const MIN: usize = 16;
    let chars: Vec<char> = token.chars().collect();
    let why = if chars.len() < MIN {
        format!(
            "is {} characters long; it needs at least {MIN}",
            chars.len()
        )
    } else if chars.iter().collect::<std::collections::HashSet<_>>().len() < 6 {
        "uses fewer than 6 distinct characters".to_string()
    } else if (1..=chars.len() / 2).any(|p| chars.iter().skip(p).zip(&chars).all(|(a, b)| a == b)) {
        "repeats a short pattern".to_string()
    } else if chars
        .windows(2)
        .all(|w| (w[1] as i64) - (w[0] as i64) == (chars[1] as i64) - (chars[0] as i64))
    {
        "is a run of consecutive characters".to_string()
    } else {
        return None;
    };
    Some(format!(
        "TO11_ADMIN_TOKEN {why} (generate one with `openssl rand -base64 32`)"
    ))
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
    /// Where `GET /api/v1/replicas` reads the replicas' reports, settable once after start (Redis
    /// in `to11-control-plane`, the in-process gateway's in embedded mode).
    pub replicas: api::Replicas,
}

/// Loads all state from the store, starts the actors and the HTTP server. Must run inside an
/// actix system; the caller awaits `server`.
pub async fn start(
    settings: Settings,
    store: Arc<Store>,
    metering: usage::Metering,
) -> anyhow::Result<ControlPlane> {
    if let Some(s) = &metering.store {
        if let Err(e) = metering.pricer.reload(&**s).await {
            tracing::warn!(error = %e, "prices not loaded from the usage store yet");
        }
    }
    recovery::prepare_store(&settings.recovery, &store, &settings.keyring).await?;
    let publish = Arc::new(AtomicBool::new(true));
    let model = ReadModel::default();
    let registry = ProjectRegistry::load(
        store.clone(),
        settings.keyring.clone(),
        publish.clone(),
        settings.api.epoch_check_interval,
        model.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", error::ApiError::from(e).message))?
    .with_limits(settings.api.limits)
    .start();
    if let Some(dir) = &settings.recovery.backup_dir {
        actix_rt::spawn(recovery::backup::periodically(
            dir.clone(),
            settings.recovery.backup_interval,
            settings.recovery.backup_keep,
            model.clone(),
            store.clone(),
        ));
    }
    let metrics = Arc::new(api::ApiMetrics::new());
    let prober = ProviderProber::new(
        ProbeTimeouts {
            connect: settings.api.probe_connect_timeout,
            total: settings.api.probe_timeout,
        },
        settings.api.allow_private_upstreams,
        &settings.api.google_token_url,
    )
    .with_outcomes(metrics.probes.clone())
    .start();
    let gateway_url = Arc::new(std::sync::OnceLock::new());
    if let Some(u) = &settings.api.public_gateway_url {
        let _ = gateway_url.set(u.trim_end_matches('/').to_string());
    }
    let replicas = api::Replicas::default();
    let auditor = audit::Auditor::new(store.clone());
    metrics.pull(&model, auditor.failure_counter(), metering.ingest.as_ref());
    if let Some(counters) = &metering.counters {
        actix_rt::spawn(
            alerts::Deliverer {
                counters: counters.clone(),
                model: model.clone(),
                keyring: settings.keyring.clone(),
                allow_private: settings.api.allow_private_upstreams,
                stats: Default::default(),
            }
            .run(),
        );
    }
    let api = web::Data::new(api::Api {
        registry: registry.clone(),
        model,
        prober,
        keyring: settings.keyring.clone(),
        admin_token_hash: settings.admin_token_hash,
        allow_private_upstreams: settings.api.allow_private_upstreams,
        metrics,
        audit: auditor,
        sessions: api::Sessions::in_store(
            store.clone(),
            settings.api.sessions_per_principal,
            settings.api.max_sessions,
        ),
        throttle: api::throttle::Throttle::new(api::throttle::Policy {
            free: settings.api.auth_free_failures,
            base: settings.api.auth_backoff,
        }),
        body_timeout: settings.api.body_timeout,
        metrics_token: settings
            .api
            .metrics_token
            .as_ref()
            .map(|t| settings.keyring.key_hash(t.expose())),
        gateway_url: gateway_url.clone(),
        replicas: replicas.clone(),
        usage: metering.store.clone(),
        pricer: metering.pricer.clone(),
        ingest: metering.ingest.clone(),
        counters: metering.counters.clone(),
        store: store.clone(),
        backups: settings
            .recovery
            .backup_dir
            .clone()
            .map(|dir| (dir, settings.recovery.backup_keep)),
    });
    let server =
        HttpServer::new(move || App::new().app_data(api.clone()).configure(api::configure))
            .workers(settings.api.workers)
            .client_request_timeout(settings.api.header_timeout)
            .tcp_nodelay(true)
            .bind(&settings.api.listen)?;
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
        replicas,
    })
}

/// Logs to stderr with the `TO11_LOG` filter (`tracing`'s syntax).
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

#[cfg(test)]
mod tests {
    use super::weak_admin_token;

    #[test]
    fn weak_operator_tokens_are_refused_with_the_reason() {
        for (token, why) in [
            ("x", "1 characters long"),
            ("short-token-15c", "15 characters long"),
            ("aaaaaaaaaaaaaaaaaaaa", "fewer than 6 distinct"),
            ("abababababababababab", "fewer than 6 distinct"),
            ("abcdefabcdefabcdefab", "repeats a short pattern"),
            ("abcdefghijklmnopqrst", "run of consecutive"),
        ] {
            let p = weak_admin_token(token).unwrap_or_else(|| panic!("{token} accepted"));
            assert!(
                p.contains(why) && p.starts_with("TO11_ADMIN_TOKEN"),
                "{token}: {p}"
            );
        }
        for token in [
            "test-operator-token",
            "to11_op_3q2+7w5eXmPZ0k1aQ",
            "correct horse battery",
        ] {
            assert_eq!(weak_admin_token(token), None, "{token}");
        }
    }
}
