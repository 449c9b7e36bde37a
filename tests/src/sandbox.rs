//! Starting the planes in-process, each in its own thread and actix system (as separate processes
//! would be), with the same `start` functions the binaries use, on port 0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use to11_control_plane::store::redis::RedisStore;
use to11_control_plane::store::Store;
use to11_control_plane::usage::ingest::{IngestStats, Ingester};
use to11_control_plane::usage::{self, Metering};
use to11_data_plane::sync::redis::RedisSource;
use to11_shared::crypto::Keyring;

pub const ADMIN_TOKEN: &str = "test-operator-token";

/// A fixed master key for tests (base64 of 32 bytes).
pub fn master_key() -> String {
    "dG8xMS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=".to_string()
}

/// Something running in its own thread and actix system; stopped on drop.
pub struct Spawned<T> {
    pub info: T,
    handles: Vec<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Started<T> = anyhow::Result<(T, Vec<Server>)>;

pub fn spawn<T, F, Fut>(f: F) -> anyhow::Result<Spawned<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Started<T>> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<Result<(T, Vec<ServerHandle>), String>>();
    let thread = std::thread::spawn(move || {
        let sys = actix_rt::System::new();
        sys.block_on(async move {
            match f().await {
                Ok((info, servers)) => {
                    let handles = servers.iter().map(|s| s.handle()).collect();
                    let _ = tx.send(Ok((info, handles)));
                    futures_util::future::join_all(servers).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                }
            }
        });
    });
    match rx.recv() {
        Ok(Ok((info, handles))) => Ok(Spawned {
            info,
            handles,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(anyhow::anyhow!(e))
        }
        Err(_) => Err(anyhow::anyhow!("start-up thread died")),
    }
}

impl<T> Spawned<T> {
    /// Stops the servers and the system (actors, sync task) and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let handles = std::mem::take(&mut self.handles);
        if !handles.is_empty() {
            std::thread::spawn(move || {
                let rt = actix_rt::System::new();
                rt.block_on(async move {
                    for h in handles {
                        h.stop(false).await;
                    }
                });
            })
            .join()
            .ok();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub struct ControlPlaneInfo {
    pub addr: SocketAddr,
    pub publish: Arc<AtomicBool>,
}

impl ControlPlaneInfo {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A control plane over Redis, private upstreams allowed (the mocks are on loopback).
pub fn control_plane(redis_url: &str, prefix: &str) -> anyhow::Result<Spawned<ControlPlaneInfo>> {
    control_plane_with(redis_url, prefix, |_| {})
}

/// `control_plane` with settings adjusted by `tweak`.
pub fn control_plane_with(
    redis_url: &str,
    prefix: &str,
    tweak: impl FnOnce(&mut to11_control_plane::Settings) + Send + 'static,
) -> anyhow::Result<Spawned<ControlPlaneInfo>> {
    control_plane_full(redis_url, prefix, None, tweak)
}

/// A control plane over Redis that ingests request records into the usage store at
/// `database_url` (PostgreSQL or SQLite), as `to11-control-plane` does with `TO11_DATABASE_URL`.
pub fn control_plane_metered(
    redis_url: &str,
    prefix: &str,
    database_url: &str,
) -> anyhow::Result<Spawned<ControlPlaneInfo>> {
    control_plane_full(redis_url, prefix, Some(database_url.to_string()), |_| {})
}

/// The usage store and its ingester, as the control-plane binary makes them.
fn metering(redis_url: &str, prefix: &str, database_url: &str) -> anyhow::Result<Metering> {
    let store = usage::open(database_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pricer = Arc::new(usage::Pricer::default());
    let stats = Arc::new(IngestStats::default());
    let ingester = Ingester {
        redis_url: redis_url.to_string(),
        prefix: prefix.to_string(),
        consumer: format!("test-{}", uuid::Uuid::new_v4()),
        store: store.clone(),
        pricer: pricer.clone(),
        stats: stats.clone(),
        raw_days: 30,
        rollup_days: 400,
    };
    actix_rt::spawn(ingester.run());
    Ok(Metering {
        store: Some(store),
        pricer,
        ingest: Some(stats),
        counters: None,
    })
}

fn control_plane_full(
    redis_url: &str,
    prefix: &str,
    database_url: Option<String>,
    tweak: impl FnOnce(&mut to11_control_plane::Settings) + Send + 'static,
) -> anyhow::Result<Spawned<ControlPlaneInfo>> {
    let redis_url = redis_url.to_string();
    let prefix = prefix.to_string();
    spawn(move || async move {
        let keyring = Keyring::from_base64(&master_key())?;
        let mut settings = to11_control_plane::Settings::new(api_settings(), keyring, ADMIN_TOKEN);
        settings.api.epoch_check_interval = Duration::from_millis(200);
        tweak(&mut settings);
        let store = RedisStore::new(&redis_url, &prefix, Duration::from_secs(2))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut metering = match &database_url {
            Some(db) => metering(&redis_url, &prefix, db)?,
            None => Metering::default(),
        };
        metering.counters = Some(Arc::new(
            to11_io::counters::RedisCounters::new(&redis_url, &prefix, Duration::from_secs(2))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ));
        let cp =
            to11_control_plane::start(settings, Arc::new(Store::Redis(store)), metering).await?;
        let replicas = to11_control_plane::store::replicas::RedisReplicas::new(&redis_url, &prefix)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = cp.replicas.set(Arc::new(replicas));
        Ok((
            ControlPlaneInfo {
                addr: cp.addr,
                publish: cp.publish,
            },
            vec![cp.server],
        ))
    })
}

/// API settings for tests: port 0, private upstreams allowed (the mocks are on loopback), short
/// probe timeouts.
pub fn api_settings() -> to11_control_plane::ApiSettings {
    let mut s = to11_control_plane::ApiSettings::with_listen("127.0.0.1:0");
    s.allow_private_upstreams = true;
    s.probe_timeout = Duration::from_secs(3);
    s.probe_connect_timeout = Duration::from_secs(2);
    s
}

/// Gateway settings for tests: short reconcile interval, small body limit, one worker.
pub fn gateway_settings() -> to11_data_plane::Settings {
    let mut s = to11_data_plane::Settings::with_listen("127.0.0.1:0");
    s.workers = 1;
    s.reconcile_interval = Duration::from_millis(300);
    s.max_body_bytes = 64 * 1024;
    s.upstream_timeout = Duration::from_secs(30);
    // Mocks listen on loopback.
    s.allow_private_upstreams = true;
    // The suites that count exact attempts per request (the fallback matrix and the like) send
    // a few requests each: a floor this high keeps the retry budget out of their way. The
    // budget's own tests (`e2e_replica_ops`) set realistic values.
    s.retry_budget_min_per_second = 100_000;
    // Reports often, so tests see them soon.
    s.report_interval = Duration::from_millis(200);
    s
}

/// A data-plane replica following Redis.
pub fn replica(redis_url: &str, prefix: &str) -> anyhow::Result<Spawned<SocketAddr>> {
    let redis_url = redis_url.to_string();
    let prefix = prefix.to_string();
    spawn(move || async move {
        let keyring = Keyring::from_base64(&master_key())?;
        let source = RedisSource::new(&redis_url, &prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sink = to11_data_plane::metering::redis::RedisSink::new(&redis_url, &prefix, 50_000)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let reports = to11_data_plane::sync::report::RedisReports::new(&redis_url, &prefix)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let settings = gateway_settings();
        let counters = to11_io::counters::RedisCounters::new(
            &redis_url,
            &prefix,
            settings.limits_store_timeout,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let gw = to11_data_plane::start(
            settings.clone(),
            keyring,
            Arc::new(source),
            Some(Arc::new(sink)),
            Arc::new(counters),
        )?;
        gw.report_to(Arc::new(reports), &settings);
        Ok((gw.addr, vec![gw.server]))
    })
}

pub struct EmbeddedInfo {
    pub api: SocketAddr,
    pub gateway: SocketAddr,
    pub generated_admin_token: Option<String>,
}

/// Embedded mode on a data directory, as `to11` runs it (token and key generated there).
pub fn embedded(data_dir: &Path) -> anyhow::Result<Spawned<EmbeddedInfo>> {
    embedded_with(data_dir, |_| {})
}

/// Embedded mode with settings adjusted by `adjust` (e.g. the Google token endpoint of a mock).
pub fn embedded_with(
    data_dir: &Path,
    adjust: impl FnOnce(&mut to11_embedded::EmbeddedConfig) + Send + 'static,
) -> anyhow::Result<Spawned<EmbeddedInfo>> {
    let data_dir = data_dir.to_path_buf();
    spawn(move || async move {
        let mut s = to11_embedded::EmbeddedConfig {
            data_dir,
            api: api_settings(),
            gateway: gateway_settings(),
            admin_token: None,
            master_key: None,
            database_url: None,
            retention: to11_control_plane::Retention {
                raw_days: 30,
                rollup_days: 400,
            },
            log: "info".into(),
        };
        adjust(&mut s);
        let e = to11_embedded::start(s).await?;
        Ok((
            EmbeddedInfo {
                api: e.control_plane.addr,
                gateway: e.gateway.addr,
                generated_admin_token: e.generated_admin_token,
            },
            vec![e.control_plane.server, e.gateway.server],
        ))
    })
}
