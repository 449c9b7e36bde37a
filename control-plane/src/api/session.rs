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
//! - Sessions live in the control plane's memory (12 h at most, 2 h idle); a restart signs
//!   everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use to11_shared::crypto::{secret_eq, KeyHash};
use to11_shared::ErrorCode;

use super::auth::Principal;
use super::Api;
use crate::error::ApiError;

pub const COOKIE: &str = "to11_session";
pub const CSRF_HEADER: &str = "x-to11-csrf";
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// More live sessions than this: the oldest are dropped.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    /// Keyed hash of the token signed in with.
    token: KeyHash,
    csrf: String,
    created: Instant,
    used: Instant,
}

/// Live sessions, by SHA-256 of their id.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
}

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

/// What a cookie-authenticated request resolved to.
pub struct FromCookie {
    pub token: KeyHash,
    pub csrf: String,
}

impl Sessions {
    /// The table (a panic elsewhere while holding it leaves nothing half-written: every change
    /// is one map operation).
    fn guard(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create(&self, token: KeyHash) -> (String, String) {
        let id = to11_shared::keys::new_secret();
        let csrf = to11_shared::keys::new_secret();
        let now = Instant::now();
        let mut live = self.guard();
        live.retain(|_, s| alive(s, now));
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                live.remove(&oldest);
            }
        }
        live.insert(
            id_hash(&id),
            Session {
                token,
                csrf: csrf.clone(),
                created: now,
                used: now,
            },
        );
        (id, csrf)
    }

    fn remove(&self, id: &str) {
        self.guard().remove(&id_hash(id));
    }

    /// The session a request's cookie names, refreshed; `None` without a live one.
    fn find(&self, id: &str) -> Option<FromCookie> {
        let now = Instant::now();
        let mut live = self.guard();
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

    /// Authenticates a request by its session cookie: the signed-in token's hash, after the CSRF
    /// checks for requests that change something. `Ok(None)`: no session cookie at all.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Option<KeyHash>, ApiError> {
        let Some(id) = cookie(req) else {
            return Ok(None);
        };
        let s = self.find(id).ok_or_else(|| {
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
    let who = Principal::from_token(token, &api)?;
    let (id, csrf) = api.sessions.create(api.keyring.key_hash(token));
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::SET_COOKIE,
            set_cookie(&req, &id, LIFETIME.as_secs()),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view(&api, who, &csrf)))
}

/// `GET /api/v1/session`: who the cookie signs in, and the CSRF token for changes.
pub async fn current(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    let no_session = || ApiError::new(ErrorCode::Unauthorized, "not signed in");
    let id = cookie(&req).ok_or_else(no_session)?;
    let s = api.sessions.find(id).ok_or_else(no_session)?;
    let who = Principal::from_hash(s.token, &api)?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view(&api, who, &s.csrf)))
}

/// `DELETE /api/v1/session`: signs out (the CSRF rules apply).
pub async fn sign_out(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    if api.sessions.authenticate(&req)?.is_some() {
        if let Some(id) = cookie(&req) {
            api.sessions.remove(id);
        }
    }
    Ok(HttpResponse::NoContent()
        .insert_header((actix_web::http::header::SET_COOKIE, set_cookie(&req, "", 0)))
        .finish())
}
