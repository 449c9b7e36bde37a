//! Dashboard sessions: signing in with the operator token or a management key once, then a cookie.
//!
//! - The token is sent once, in a JSON body (`POST /api/v1/session`), never in a URL; it is kept
//!   only as its keyed hash inside the session, and every request re-checks that hash exactly as
//!   a bearer token is checked, so a revoked management key ends its sessions at once.
//! - The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/` (and `Secure` behind https); the id is
//!   stored hashed, so a memory dump holds no usable cookie.
//! - CSRF: a request authenticated by the cookie that changes anything must carry the session's
//!   CSRF token in `x-to11-csrf` (a header a cross-site form cannot set, and a cross-site script
//!   cannot read), and an `Origin`, when sent, must be this host.
//! - Sessions last 12 h at most, 2 h idle. Over Redis they live in the store
//!   (`store::redis::sessions`), so any control plane answers a session another one opened, and
//!   a restart or a rolling update signs nobody out; in embedded mode they live in the process.
//!   The guard looks a request's session up once (`Sessions::load`), before the synchronous
//!   authentication reads it.
//! - The table is bounded without letting one principal sign out another: a principal (the
//!   operator, or one project) holds at most `per_principal` sessions, and its own oldest one
//!   makes room for its next; when the whole table (`max`) is full, a project's sign-in is
//!   refused (429), never served by evicting someone else's session. The operator's sessions
//!   are bounded by their per-principal limit only, so the operator can always sign in.
//! - Failed sign-ins count towards the source's and the token's back-off (`throttle`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use to11_shared::crypto::{secret_eq, KeyHash};
use to11_shared::ErrorCode;

use super::auth::Principal;
use super::guard;
use super::throttle::{retry_after_secs, Key};
use super::Api;
use crate::error::ApiError;
use crate::store::redis::NewSession;
use crate::store::{Store, StoreError};

pub const COOKIE: &str = "to11_session";
pub const CSRF_HEADER: &str = "x-to11-csrf";
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// The largest body `POST /api/v1/session` reads (a token is at most 512 bytes).
pub const SIGN_IN_LIMIT: usize = 4096;

struct Session {
    /// Keyed hash of the token signed in with.
    token: KeyHash,
    /// Whom the token signed in when the session began (what the per-principal bound counts).
    principal: Principal,
    csrf: String,
    created: Instant,
    used: Instant,
}

/// Where sessions live.
enum Table {
    /// In the process, by SHA-256 of their id (embedded mode).
    Memory(Mutex<HashMap<[u8; 32], Session>>),
    /// In the store, shared by every control plane.
    Store(Arc<Store>),
}

/// Live sessions.
pub struct Sessions {
    table: Table,
    per_principal: usize,
    max: usize,
}

/// The session a request's cookie names, looked up once by `Sessions::load`.
#[derive(Clone)]
struct Loaded(Option<FromCookie>);

fn id_hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session cookie's value, if the request carries one.
fn cookie(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Whether the request carries a session cookie at all.
pub fn has_cookie(req: &HttpRequest) -> bool {
    cookie(req).is_some()
}

/// What a cookie-authenticated request resolved to.
#[derive(Clone)]
pub struct FromCookie {
    pub token: KeyHash,
    pub csrf: String,
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::new(
        ErrorCode::StoreUnavailable,
        format!(
            "dashboard sessions are unavailable ({e}); call the API with 'Authorization: Bearer'"
        ),
    )
}

fn table_full() -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::RateLimited,
        "the dashboard has as many sessions as it keeps; sign in later, or call the API with 'Authorization: Bearer'",
    );
    e.retry_after = Some(60);
    e
}

impl Sessions {
    /// A table in the process of at most `max` sessions (the operator's aside),
    /// `per_principal` each.
    pub fn new(per_principal: usize, max: usize) -> Self {
        Sessions {
            table: Table::Memory(Mutex::new(HashMap::new())),
            per_principal: per_principal.max(1),
            max: max.max(1),
        }
    }

    /// The same bounds, with the sessions kept in `store` when it can hold them (Redis).
    pub fn in_store(store: Arc<Store>, per_principal: usize, max: usize) -> Self {
        let mut s = Self::new(per_principal, max);
        if store.keeps_sessions() {
            s.table = Table::Store(store);
        }
        s
    }

    /// Opens a session for `principal` (signed in with `token`): its id and CSRF token. Makes
    /// room among the principal's own sessions only; a full table refuses a project.
    pub async fn create(
        &self,
        token: KeyHash,
        principal: Principal,
    ) -> Result<(String, String), ApiError> {
        let id = to11_shared::keys::new_secret();
        let csrf = to11_shared::keys::new_secret();
        match &self.table {
            Table::Memory(m) => self.create_in_memory(m, id_hash(&id), token, principal, &csrf)?,
            Table::Store(store) => {
                let principal_name = match principal {
                    Principal::Operator => "operator".to_string(),
                    Principal::Project(p) => p.to_string(),
                };
                let opened = store
                    .session_create(&NewSession {
                        id_hash: &hex(&id_hash(&id)),
                        token: &token.to_hex(),
                        principal: &principal_name,
                        counted: principal != Principal::Operator,
                        csrf: &csrf,
                        now_ms: now_ms(),
                        lifetime_ms: millis(LIFETIME),
                        idle_ms: millis(IDLE),
                        per_principal: self.per_principal,
                        max: self.max,
                    })
                    .await
                    .map_err(store_error)?;
                if !opened {
                    return Err(table_full());
                }
            }
        }
        Ok((id, csrf))
    }

    fn create_in_memory(
        &self,
        table: &Mutex<HashMap<[u8; 32], Session>>,
        key: [u8; 32],
        token: KeyHash,
        principal: Principal,
        csrf: &str,
    ) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut live = guard(table);
        live.retain(|_, s| alive(s, now));
        let mut own: Vec<([u8; 32], Instant)> = live
            .iter()
            .filter(|(_, s)| s.principal == principal)
            .map(|(k, s)| (*k, s.created))
            .collect();
        if own.len() >= self.per_principal {
            own.sort_by_key(|(_, created)| *created);
            for (k, _) in &own[..=own.len() - self.per_principal] {
                live.remove(k);
            }
        }
        if principal != Principal::Operator && live.len() >= self.max {
            return Err(table_full());
        }
        live.insert(
            key,
            Session {
                token,
                principal,
                csrf: csrf.to_string(),
                created: now,
                used: now,
            },
        );
        Ok(())
    }

    /// Live sessions in the process (tests; 0 when they are kept in the store).
    pub fn len(&self) -> usize {
        match &self.table {
            Table::Memory(m) => guard(m).len(),
            Table::Store(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn remove(&self, id: &str) -> Result<(), ApiError> {
        match &self.table {
            Table::Memory(m) => {
                guard(m).remove(&id_hash(id));
                Ok(())
            }
            Table::Store(store) => store
                .session_remove(&hex(&id_hash(id)))
                .await
                .map_err(store_error),
        }
    }

    /// The session a request's cookie names, refreshed; `None` without a live one.
    async fn find(&self, id: &str) -> Result<Option<FromCookie>, ApiError> {
        match &self.table {
            Table::Memory(m) => Ok(find_in_memory(m, id)),
            Table::Store(store) => {
                let found = store
                    .session_find(&hex(&id_hash(id)), now_ms(), millis(LIFETIME), millis(IDLE))
                    .await
                    .map_err(store_error)?;
                Ok(found.and_then(|s| {
                    Some(FromCookie {
                        token: KeyHash::from_hex(&s.token)?,
                        csrf: s.csrf,
                    })
                }))
            }
        }
    }

    /// Looks up the session the request's cookie names, when it presents no bearer token (which
    /// comes first), for `authenticate` to read. Called by the guard on every API request.
    pub async fn load(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if req
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION)
        {
            return Ok(());
        }
        let Some(id) = cookie(req) else {
            return Ok(());
        };
        let found = self.find(id).await?;
        req.extensions_mut().insert(Loaded(found));
        Ok(())
    }

    /// Authenticates a request by its session cookie: the signed-in token's hash, after the CSRF
    /// checks for requests that change something. `Ok(None)`: no session cookie at all.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Option<KeyHash>, ApiError> {
        if cookie(req).is_none() {
            return Ok(None);
        }
        let loaded = req.extensions().get::<Loaded>().cloned();
        let s = loaded.and_then(|l| l.0).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "the dashboard session has ended; sign in again",
            )
        })?;
        let safe = matches!(*req.method(), Method::GET | Method::HEAD);
        if !safe {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !secret_eq(sent.as_bytes(), s.csrf.as_bytes()) || !same_origin(req) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "a change made with a dashboard session needs its CSRF token (x-to11-csrf) from the same origin",
                ));
            }
        }
        Ok(Some(s.token))
    }
}

/// The table (a panic elsewhere while holding it leaves nothing half-written: every change is
/// one map operation).
fn guard(
    table: &Mutex<HashMap<[u8; 32], Session>>,
) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

fn find_in_memory(table: &Mutex<HashMap<[u8; 32], Session>>, id: &str) -> Option<FromCookie> {
    let now = Instant::now();
    let mut live = guard(table);
    let key = id_hash(id);
    match live.get_mut(&key) {
        Some(s) if alive(s, now) => {
            s.used = now;
            Some(FromCookie {
                token: s.token,
                csrf: s.csrf.clone(),
            })
        }
        Some(_) => {
            live.remove(&key);
            None
        }
        None => None,
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.created) < LIFETIME && now.duration_since(s.used) < IDLE
}

/// An `Origin` header, when present, names this host.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = req.connection_info().host().to_string();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host))
}

fn set_cookie(req: &HttpRequest, value: &str, max_age: u64) -> String {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// What the dashboard learns about its session.
fn view(api: &Api, who: Principal, csrf: &str) -> serde_json::Value {
    let (kind, project) = match who {
        Principal::Operator => ("operator", None),
        Principal::Project(p) => ("project", Some(p)),
    };
    serde_json::json!({
        "principal": kind,
        "project": project,
        "csrf": csrf,
        "gateway_url": api.gateway_url.get(),
    })
}

/// `POST /api/v1/session`: signs in with `{"token"}` (the operator token or a management key).
pub async fn sign_in(
    req: HttpRequest,
    api: web::Data<Api>,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let token = body.token.trim();
    let now = std::time::Instant::now();
    let mut keys = vec![Key::source(guard::source(&req))];
    if !token.is_empty() && token.len() <= 512 {
        keys.push(Key::token(&api.keyring.key_hash(token).0));
    }
    if let Some(wait) = api.throttle.blocked(&keys, now) {
        api.metrics.auth_throttled.inc();
        return Err(ApiError::too_many_failures(retry_after_secs(wait)));
    }
    let who = match Principal::from_token(token, &api) {
        Ok(who) => who,
        Err(e) => {
            api.metrics.auth_failures.inc();
            api.throttle.fail(&keys, now);
            record(&req, &api, None, "sign_in_failed", Err(&e)).await;
            return Err(e);
        }
    };
    let opened = api.sessions.create(api.keyring.key_hash(token), who).await;
    record(
        &req,
        &api,
        Some(who),
        "sign_in",
        opened.as_ref().map(|_| ()),
    )
    .await;
    let (id, csrf) = opened?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::SET_COOKIE,
            set_cookie(&req, &id, LIFETIME.as_secs()),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view(&api, who, &csrf)))
}

/// Records a sign-in (or its failure) in the audit log.
async fn record(
    req: &HttpRequest,
    api: &Api,
    who: Option<Principal>,
    action: &str,
    outcome: Result<(), &ApiError>,
) {
    let mut entry = crate::audit::Entry::new(who, guard::source(req), action);
    if let Err(e) = outcome {
        entry.outcome = e.code.name().to_string();
    }
    api.audit.record(entry).await;
}

/// `GET /api/v1/session`: who the cookie signs in, and the CSRF token for changes.
pub async fn current(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    let no_session = || ApiError::new(ErrorCode::Unauthorized, "not signed in");
    let id = cookie(&req).ok_or_else(no_session)?;
    let s = api.sessions.find(id).await?.ok_or_else(no_session)?;
    let who = Principal::from_hash(s.token, &api)?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view(&api, who, &s.csrf)))
}

/// `DELETE /api/v1/session`: signs out (the CSRF rules apply).
pub async fn sign_out(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    if api.sessions.authenticate(&req)?.is_some() {
        if let Some(id) = cookie(&req) {
            api.sessions.remove(id).await?;
        }
    }
    Ok(HttpResponse::NoContent()
        .insert_header((actix_web::http::header::SET_COOKIE, set_cookie(&req, "", 0)))
        .finish())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn hash(b: u8) -> KeyHash {
        KeyHash([b; 32])
    }

    #[actix_rt::test]
    async fn a_principal_signing_in_again_and_again_evicts_only_its_own_sessions() {
        let s = Sessions::new(20, 100);
        let (a, b) = (
            Principal::Project(Uuid::new_v4()),
            Principal::Project(Uuid::new_v4()),
        );
        let (b_id, _) = s.create(hash(2), b).await.unwrap();
        let (op_id, _) = s.create(hash(0), Principal::Operator).await.unwrap();
        let (first_a, _) = s.create(hash(1), a).await.unwrap();
        for _ in 0..10_001 {
            s.create(hash(1), a).await.unwrap();
        }
        assert!(
            s.find(&b_id).await.unwrap().is_some(),
            "another project's session survives"
        );
        assert!(
            s.find(&op_id).await.unwrap().is_some(),
            "the operator's session survives"
        );
        assert!(
            s.find(&first_a).await.unwrap().is_none(),
            "a's oldest made room"
        );
        assert_eq!(s.len(), 22);
    }

    #[actix_rt::test]
    async fn a_full_table_refuses_projects_but_not_the_operator() {
        let s = Sessions::new(2, 4);
        let mut ids = vec![];
        for i in 0..4 {
            let (id, _) = s
                .create(hash(i), Principal::Project(Uuid::new_v4()))
                .await
                .unwrap();
            ids.push(id);
        }
        let e = s
            .create(hash(9), Principal::Project(Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after, Some(60));
        s.create(hash(0), Principal::Operator).await.unwrap();
        for id in &ids {
            assert!(s.find(id).await.unwrap().is_some(), "nobody was signed out");
        }
    }
}
