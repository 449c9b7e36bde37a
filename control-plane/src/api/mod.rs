//! The REST API under `/api/v1`: thin handlers that authenticate, parse, and send a verb to an
//! actor (`Api::apply` for a change, which also records it in the audit log); reads and
//! authentication load the registry's published model. `guard::admit` authenticates every
//! request before its body is read, and bounds the time the body may take. Views (what responses show) live beside the handlers and never include a secret.

mod audit;
mod auth;
mod backups;
mod credentials;
mod dashboard;
pub mod guard;
mod health;
mod keys;
pub mod limits;
mod projects;
mod providers;
mod replicas;
mod routing;
mod session;
pub mod throttle;
mod usage;
mod views;

use std::sync::Arc;

use actix::{Addr, Message};
use actix_web::{web, HttpMessage, HttpRequest};
use to11_shared::crypto::{KeyHash, Keyring};

use crate::actors::prober::ProviderProber;
use crate::actors::registry::{
    Committed, ProjectCommand, ProjectRegistry, ReadModel, RegistryError,
};
use crate::error::ApiError;

pub use auth::Principal;
pub use health::ApiMetrics;
pub use replicas::Replicas;
pub use session::Sessions;

/// Shared by every handler.
pub struct Api {
    /// Where writes go, one at a time.
    pub registry: Addr<ProjectRegistry>,
    /// What reads and authentication look at: the registry's model as last published.
    pub model: ReadModel,
    pub prober: Addr<ProviderProber>,
    pub keyring: Keyring,
    pub admin_token_hash: KeyHash,
    pub allow_private_upstreams: bool,
    pub metrics: Arc<health::ApiMetrics>,
    pub sessions: session::Sessions,
    /// Back-off on failed authentication, by source and by token.
    pub throttle: throttle::Throttle,
    /// Where audit entries go.
    pub audit: crate::audit::Auditor,
    /// Keyed hash of `TO11_METRICS_TOKEN`, when `/metrics` needs one.
    pub metrics_token: Option<KeyHash>,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Where browsers reach the gateway (the dashboard's playground), when known.
    pub gateway_url: Arc<std::sync::OnceLock<String>>,
    /// Where the replicas' reports are read (`GET /replicas`), once set.
    pub replicas: Replicas,
    /// Where request records are kept; `None` without a database.
    pub usage: Option<Arc<dyn crate::usage::UsageStore>>,
    pub pricer: Arc<crate::usage::Pricer>,
    /// Ingestion's counters (Redis mode with a database).
    pub ingest: Option<Arc<crate::usage::ingest::IngestStats>>,
    /// Where usage limits are counted (what `GET …/limits` shows as used).
    pub counters: Option<Arc<dyn to11_io::counters::CounterStore>>,
    /// The configuration store (backups read its epoch; sessions live in it).
    pub store: Arc<crate::store::Store>,
    /// `TO11_BACKUP_DIR` and how many backups it keeps, when backups are on.
    pub backups: Option<(std::path::PathBuf, usize)>,
}

impl Api {
    /// Sends a change to the registry, the one way handlers change configuration, waits until
    /// it is committed (or refused), and records it in the audit log.
    pub async fn apply<C>(
        &self,
        req: &HttpRequest,
        command: C,
    ) -> Result<Committed<C::Value>, ApiError>
    where
        C: ProjectCommand + Message<Result = Result<Committed<C::Value>, RegistryError>>,
    {
        let (action, target) = command.audit();
        let project = command.project();
        let result = match self.registry.send(command).await {
            Ok(r) => r.map_err(|e| {
                if matches!(e, RegistryError::Store(_)) {
                    self.metrics.store_errors.inc();
                }
                ApiError::from(e)
            }),
            Err(e) => Err(ApiError::from(e)),
        };
        let outcome = result.as_ref().map(|c| c.version);
        self.audit_change(req, action, Some(project), target, outcome)
            .await;
        result
    }

    /// Records a configuration change made by `req`'s principal (its version, or why it was
    /// refused). Never fails: a failing audit store is counted.
    pub async fn audit_change(
        &self,
        req: &HttpRequest,
        action: &str,
        project: Option<uuid::Uuid>,
        target: Option<String>,
        outcome: Result<u64, &ApiError>,
    ) {
        let who = req.extensions().get::<Principal>().copied();
        let mut entry = crate::audit::Entry::new(who, guard::source(req), action);
        entry.project = project.or(entry.project);
        entry.target = target;
        match outcome {
            Ok(version) => entry.version = Some(version).filter(|v| *v > 0),
            Err(e) => entry.outcome = e.code.name().to_string(),
        }
        self.audit.record(entry).await;
    }
}

/// Routes of the control plane, shared by `main`, embedded mode and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/", web::get().to(dashboard::index))
        .route("/ui/{file:.*}", web::get().to(dashboard::asset))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(guard::admit))
                .wrap(actix_web::middleware::from_fn(health::observe))
                .route("/openapi.json", web::get().to(health::openapi))
                .service(
                    web::resource("/session")
                        .app_data(json_config(session::SIGN_IN_LIMIT))
                        .route(web::post().to(session::sign_in))
                        .route(web::get().to(session::current))
                        .route(web::delete().to(session::sign_out)),
                )
                .route("/catalog", web::get().to(providers::catalog))
                .route("/projects", web::post().to(projects::create))
                .route("/projects", web::get().to(projects::list))
                .route("/projects/{p}", web::get().to(projects::get))
                .route("/projects/{p}", web::patch().to(projects::update))
                .route("/projects/{p}", web::delete().to(projects::delete))
                .route(
                    "/projects/{p}/management-keys",
                    web::post().to(projects::create_management_key),
                )
                .route(
                    "/projects/{p}/management-keys",
                    web::get().to(projects::list_management_keys),
                )
                .route(
                    "/projects/{p}/management-keys/{id}",
                    web::delete().to(projects::delete_management_key),
                )
                .route(
                    "/projects/{p}/providers/discover",
                    web::post().to(providers::discover),
                )
                .route(
                    "/projects/{p}/providers",
                    web::post().to(providers::connect),
                )
                .route("/projects/{p}/providers", web::get().to(providers::list))
                .route(
                    "/projects/{p}/providers/{slug}",
                    web::get().to(providers::get),
                )
                .route(
                    "/projects/{p}/providers/{slug}",
                    web::delete().to(providers::disconnect),
                )
                .route(
                    "/projects/{p}/providers/{slug}/models",
                    web::put().to(providers::set_models),
                )
                .route(
                    "/projects/{p}/providers/{slug}/refresh",
                    web::post().to(providers::refresh),
                )
                .route("/projects/{p}/keys", web::post().to(keys::create))
                .route("/projects/{p}/keys", web::get().to(keys::list))
                .route("/projects/{p}/keys/{id}", web::delete().to(keys::revoke))
                .route(
                    "/projects/{p}/keys/{id}/limits",
                    web::get().to(limits::get_key),
                )
                .route(
                    "/projects/{p}/keys/{id}/limits",
                    web::put().to(limits::set_key),
                )
                .route("/projects/{p}/limits", web::get().to(limits::get_project))
                .route("/projects/{p}/limits", web::put().to(limits::set_project))
                .route("/projects/{p}/plan", web::get().to(limits::get_project))
                .route("/projects/{p}/plan", web::put().to(limits::set_project))
                .route("/projects/{p}/limits/events", web::get().to(limits::events))
                .service(
                    web::resource("/projects/{p}/limits/webhook")
                        .route(web::get().to(limits::get_webhook))
                        .route(web::put().to(limits::set_webhook))
                        .route(web::delete().to(limits::delete_webhook)),
                )
                .route(
                    "/projects/{p}/credentials",
                    web::post().to(credentials::add),
                )
                .route(
                    "/projects/{p}/credentials",
                    web::get().to(credentials::list),
                )
                .route(
                    "/projects/{p}/credentials/{provider}/{id}",
                    web::put().to(credentials::update),
                )
                .route(
                    "/projects/{p}/credentials/{provider}/{id}",
                    web::delete().to(credentials::delete),
                )
                .route(
                    "/projects/{p}/routes",
                    web::post().to(routing::create_route),
                )
                .route("/projects/{p}/routes", web::get().to(routing::list_routes))
                .route(
                    "/projects/{p}/routes/{name}",
                    web::get().to(routing::get_route),
                )
                .route(
                    "/projects/{p}/routes/{name}",
                    web::put().to(routing::replace_route),
                )
                .route(
                    "/projects/{p}/routes/{name}",
                    web::delete().to(routing::delete_route),
                )
                .route(
                    "/projects/{p}/functions",
                    web::post().to(routing::create_function),
                )
                .route(
                    "/projects/{p}/functions",
                    web::get().to(routing::list_functions),
                )
                .route(
                    "/projects/{p}/functions/{name}",
                    web::get().to(routing::get_function),
                )
                .route(
                    "/projects/{p}/functions/{name}",
                    web::put().to(routing::replace_function),
                )
                .route(
                    "/projects/{p}/functions/{name}",
                    web::delete().to(routing::delete_function),
                )
                .route("/projects/{p}/resolve", web::get().to(projects::resolve))
                .route("/projects/{p}/usage", web::get().to(usage::project_usage))
                .route("/projects/{p}/requests", web::get().to(usage::requests))
                .route("/projects/{p}/requests/{id}", web::get().to(usage::request))
                .route("/projects/{p}/prices", web::get().to(usage::project_prices))
                .route(
                    "/projects/{p}/prices",
                    web::put().to(usage::set_project_prices),
                )
                .route("/projects/{p}/audit", web::get().to(audit::project_audit))
                .route("/audit", web::get().to(audit::all_audit))
                .route("/backups", web::post().to(backups::create))
                .route("/replicas", web::get().to(replicas::list))
                .route("/usage", web::get().to(usage::all_usage))
                .route("/prices", web::get().to(usage::operator_prices))
                .route("/prices", web::put().to(usage::set_operator_prices))
                .default_service(web::to(health::not_found)),
        )
        .app_data(json_config(1024 * 1024))
        .app_data(web::PathConfig::default().error_handler(|e, _| {
            crate::error::ApiError::bad_request(format!("invalid path: {e}")).into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            crate::error::ApiError::bad_request(format!("invalid query: {e}")).into()
        }));
}

/// JSON bodies up to `limit` bytes; a body that did not arrive in time is a 408, any other
/// failure an `invalid_json` 400.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|e, _| {
            let timed_out = match &e {
                actix_web::error::JsonPayloadError::Payload(p) => guard::payload_error(p),
                _ => None,
            };
            timed_out
                .unwrap_or_else(|| {
                    ApiError::new(
                        to11_shared::ErrorCode::InvalidJson,
                        format!("invalid JSON body: {e}"),
                    )
                })
                .into()
        })
}
