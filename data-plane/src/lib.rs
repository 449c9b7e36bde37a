//! to11 data plane: a stateless gateway replica. It follows configuration snapshots (see `sync`),
//! keeps everything derived from them in one `ArcSwap` (see `state`), authenticates callers by a
//! keyed-hash lookup (see `auth`) and streams requests to upstreams with awc (see `proxy`).

pub mod auth;
pub mod budget;
pub mod config;
pub mod cors;
pub mod drain;
pub mod error;
mod front;
pub mod handover;
pub mod health;
pub mod health_book;
pub mod limits;
pub mod metering;
pub mod metrics;
pub mod otel;
pub mod proxy;
pub mod retry_budget;
pub mod state;
pub mod strikes;
pub mod sync;
pub mod tokens;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use to11_shared::crypto::Keyring;

pub use config::{ReplicaConfig, Settings};
pub use metrics::Metrics;
use state::Live;
use sync::{Follower, SnapshotSource, SyncStatus};

/// Everything a request handler needs, shared by all workers.
pub struct Ctx {
    pub live: Live,
    pub keyring: Keyring,
    pub settings: Settings,
    pub metrics: Metrics,
    pub sync: Arc<SyncStatus>,
    /// The queue finished request records go to (through each worker's `Batcher`).
    pub recorder: Arc<metering::Recorder>,
    /// Bytes of request bodies and fetched images the replica may hold at once.
    pub budget: budget::MemoryBudget,
    /// Usage limits and budgets, counted across replicas.
    pub limiter: Arc<limits::Limiter>,
    /// Whether the replica is draining, and the signal that ends open answers.
    pub drain: Arc<drain::Drain>,
    /// OpenTelemetry traces; `None` when off.
    pub tracer: Option<Arc<otel::Tracer>>,
}

/// What each worker thread owns: its upstream client (awc clients are not `Send`; its pool stays
/// warm for the worker) and the batch of request records it is gathering.
pub struct Worker {
    pub client: awc::Client,
    /// Upstream URLs, parsed once.
    pub(crate) uris: proxy::send::Uris,
    pub records: metering::Batcher,
    /// The spans of the traced requests this worker served, gathered into a batch; `None` when
    /// tracing is off.
    pub traces: Option<otel::Batcher>,
    /// Sources refused for bad keys, backed off.
    pub strikes: strikes::Strikes,
    /// Keyed hashes of the keys that authenticated on this worker.
    pub key_hashes: auth::KeyHashes,
    /// The metric series of the requests this worker served, by label set.
    pub series: RefCell<metrics::SeriesCache>,
    /// This worker's slices of the usage limits it met.
    pub limits: limits::WorkerLimits,
    /// This worker's requests and extra attempts: its share of the replica's retry budget.
    pub retries: to11_shared::policy::budget::Window,
}

/// A worker's upstream client, as `s` sets it (also the benchmark's floor proxy's).
pub fn upstream_client(s: &Settings) -> awc::Client {
    to11_io::outbound::client(&to11_io::outbound::ClientOptions {
        connect_timeout: s.upstream_connect_timeout,
        timeout: s.upstream_timeout,
        max_connections: s.max_upstream_connections,
        allow_private: s.allow_private_upstreams,
    })
}

/// The routes actix-web's `App` serves: everything but the APIs' POSTs, which `front` sends to
/// `proxy::forward` before the `App` sees them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/v1/models", web::get().to(proxy::models::list_models))
        // One resource per path: a resource matched by path answers 405 for a method it lacks
        // (a POST to these paths is an API call, `front`'s).
        .service(
            web::resource("/v1beta/models/{id:.+}")
                .route(web::get().to(proxy::models::get_gemini_model)),
        )
        .service(web::resource("/v1/models/{id:.+}").route(web::get().to(proxy::models::get_model)))
        .default_service(web::to(health::not_found));
}

/// A running replica.
pub struct Gateway {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
    pub live: Live,
    pub status: Arc<SyncStatus>,
    /// The replica's drain (`drain::on_signal` runs it in the binaries).
    pub drain: Arc<drain::Drain>,
}

/// Starts the sync task and the HTTP server. Must run inside an actix system; the caller awaits
/// `server`.
pub fn start(
    settings: Settings,
    keyring: Keyring,
    source: Arc<dyn SnapshotSource>,
    sink: Option<Arc<dyn to11_io::sink::RecordSink>>,
    counters: Arc<dyn to11_io::counters::CounterStore>,
) -> std::io::Result<Gateway> {
    let live = Live::default();
    let status = Arc::new(SyncStatus::default());
    let follower = Follower {
        source,
        live: live.clone(),
        keyring: keyring.clone(),
        status: status.clone(),
        reconcile_interval: settings.reconcile_interval,
        check_interval: settings.subscription_check_interval,
        op_timeout: settings.source_timeout,
        epoch: Default::default(),
    };
    actix_rt::spawn(follower.run());

    let recorder = match sink.filter(|_| settings.usage) {
        Some(sink) => {
            let (recorder, queue) =
                metering::Recorder::new(settings.usage_buffer, settings.usage_flush);
            let recorder = Arc::new(recorder);
            actix_rt::spawn(metering::ship::run(queue, sink, recorder.clone()));
            recorder
        }
        None => Arc::new(metering::Recorder::off()),
    };
    let workers = settings.workers;
    let listen = settings.listen.clone();
    let header_read_timeout = settings.header_read_timeout;
    let shutdown_timeout = drain::shutdown_timeout(settings.drain_timeout);
    let drain = Arc::new(drain::Drain::default());
    let metrics = Metrics::new(settings.metrics, settings.metrics_project_label);
    metrics.pull(&live, &status, &recorder);
    let limiter = limits::Limiter::new(
        counters,
        settings.limits_when_store_down,
        settings.limits_default_output_tokens,
    );
    metrics.pull_limits(&limiter.stats);
    let tracer = match &settings.tracing {
        Some(t) => {
            let tracer = otel::start(t)?;
            metrics.pull_traces(&tracer.stats);
            tracing::info!(endpoint = %t.endpoint, "exporting traces over OTLP");
            Some(tracer)
        }
        None => None,
    };
    let ctx = web::Data::new(Ctx {
        live: live.clone(),
        keyring,
        budget: budget::MemoryBudget::new(settings.body_memory_bytes, settings.body_memory_wait),
        settings,
        metrics,
        sync: status.clone(),
        recorder,
        limiter,
        drain: drain.clone(),
        tracer,
    });
    let cors = ctx.settings.cors;
    let server = HttpServer::new(move || {
        let worker = web::Data::new(Worker {
            client: upstream_client(&ctx.settings),
            uris: Default::default(),
            records: metering::Batcher::new(ctx.recorder.clone()),
            traces: ctx.tracer.clone().map(otel::Batcher::new),
            strikes: strikes::Strikes::new(ctx.settings.failed_auth_per_minute),
            key_hashes: auth::KeyHashes::default(),
            series: RefCell::default(),
            limits: ctx.limiter.worker(),
            retries: Default::default(),
        });
        let app = App::new()
            .app_data(ctx.clone())
            .app_data(worker.clone())
            .configure(configure)
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service;
                use futures_util::future::{ready, Either, FutureExt};
                let cross = cors::cross_origin(cors, req.headers());
                if cross && req.method() == actix_web::http::Method::OPTIONS {
                    let answer = cors::preflight(req.request());
                    return Either::Left(ready(Ok(req
                        .into_response(answer)
                        .map_into_right_body())));
                }
                Either::Right(srv.call(req).map(move |res| {
                    res.map(|mut r| {
                        if cross {
                            cors::allow(r.headers_mut());
                        }
                        r.map_into_left_body()
                    })
                }))
            });
        front::Front::new(app, ctx.clone(), worker)
    })
    .workers(workers)
    .backlog(4096)
    // An answer's head and body are written separately; without this, the body waits for the
    // client's delayed ACK (a 40 ms stall on every answer whose upstream wrote them apart).
    .tcp_nodelay(true)
    // A client that goes away cancels its request: the handler is dropped, and with it the
    // upstream request (LLM answers are expensive; nobody should pay for an unread one).
    .h1_allow_half_closed(false)
    // A client must send its request head within this (a slow-loris holds nothing longer).
    .client_request_timeout(header_read_timeout)
    // SIGTERM is the gateway's own (`drain::on_signal`): actix-web's handler would stop
    // accepting at once, and its shutdown timeout is set beyond the drain timeout so that it
    // never cuts a stream the drain has not ended with a terminal event.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout)
    .bind(&listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    tracing::info!(%addr, "gateway listening");
    Ok(Gateway {
        addr,
        server: server.run(),
        live,
        status,
        drain,
    })
}

impl Gateway {
    /// Starts reporting the replica's state to `sink` every `settings.report_interval`, as
    /// `settings.replica_id` (or a generated id, returned). Must run inside an actix system.
    pub fn report_to(
        &self,
        sink: Arc<dyn to11_io::replicas::ReportSink>,
        settings: &Settings,
    ) -> String {
        let id = sync::report::replica_id(&settings.replica_id);
        let reporter = sync::report::Reporter {
            id: id.clone(),
            started_at_ms: health_book::now_ms(),
            live: self.live.clone(),
            status: self.status.clone(),
            drain: self.drain.clone(),
            interval: settings.report_interval,
            timeout: settings.source_timeout,
        };
        actix_rt::spawn(reporter.run(sink));
        id
    }
}

/// Logs to stderr with the `TO11_LOG` filter (`tracing`'s syntax, e.g. `info,to11_data_plane=debug`).
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
