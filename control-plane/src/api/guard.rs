//! What runs before any `/api/v1` handler: authentication, before a byte of the body is read,
//! and a deadline on reading the body.
//!
//! Handlers take `web::Json`, which reads the body before the handler runs. So authentication
//! cannot wait for the handler: `admit` (a middleware on the API's scope) authenticates every
//! request except the few open ones (`OPEN`) from its headers alone and answers 401 (or 429
//! during a back-off) without reading the body; actix then closes the connection instead of
//! draining it. The principal found is kept in the request's extensions, where
//! `Principal::from_request` finds it again. The body, when a handler reads it, must arrive
//! within `TO11_API_BODY_TIMEOUT_MS` (`Deadline`), or the answer is 408.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};
use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use to11_shared::ErrorCode;

use super::auth::Principal;
use super::throttle::{retry_after_secs, Key};
use super::Api;
use crate::error::ApiError;

/// Requests that need no credentials: the OpenAPI document, the provider catalog and the
/// session endpoints (signing in sends the token in the body; those bodies are capped at
/// `session::SIGN_IN_LIMIT`).
fn open(method: &Method, path: &str) -> bool {
    match path.strip_prefix("/api/v1") {
        Some("/openapi.json") | Some("/catalog") => *method == Method::GET,
        Some("/session") => true,
        _ => false,
    }
}

/// The source a failure is counted against: the peer's address (not a forwarded header, which
/// a client chooses).
pub fn source(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

/// The middleware on `/api/v1`.
pub async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(api) = req.app_data::<web::Data<Api>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // The session a cookie names, looked up once (in the store, over Redis) for the checks below
    // and the session handlers.
    if let Err(e) = api.sessions.load(req.request()).await {
        let res = e.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    if !open(req.method(), req.path()) {
        if let Err(e) = authenticate(req.request(), &api) {
            if e.code == ErrorCode::Unauthorized && presents_credentials(req.request()) {
                record_failure(req.request(), &api, &e).await;
            }
            let res = e.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    let payload = req.take_payload();
    req.set_payload(Payload::from(
        Box::pin(Deadline::new(payload, api.body_timeout))
            as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>,
    ));
    Ok(next.call(req).await?.map_into_left_body())
}

/// The request's principal, kept in its extensions; a failure is counted against its source
/// (and the token presented), and a blocked source is refused before any check.
fn authenticate(req: &HttpRequest, api: &Api) -> Result<Principal, ApiError> {
    let now = Instant::now();
    // The bearer token's keyed hash serves both the throttle and the authentication: one HMAC.
    let bearer = bearer(req);
    let hash = bearer.and_then(|t| token_hash(t, api));
    let keys = keys_of(req, hash);
    if let Some(wait) = api.throttle.blocked(&keys, now) {
        api.metrics.auth_throttled.inc();
        return Err(ApiError::too_many_failures(retry_after_secs(wait)));
    }
    let principal = match (bearer, hash) {
        (Some(_), Some(hash)) => Principal::from_hash(hash, api),
        // A token too short or too long to be one: refused as it is, without hashing.
        (Some(token), None) => Principal::from_token(token, api),
        (None, _) => Principal::authenticate(req, api),
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            Ok(p)
        }
        Err(e) => {
            if e.code == ErrorCode::Unauthorized && presents_credentials(req) {
                api.metrics.auth_failures.inc();
                api.throttle.fail(&keys, now);
            }
            Err(e)
        }
    }
}

/// Records a failed authentication (what was asked, from where; never the token).
async fn record_failure(req: &HttpRequest, api: &Api, e: &ApiError) {
    let mut entry = crate::audit::Entry::new(None, source(req), "auth_failed");
    let path: String = req.path().chars().take(200).collect();
    entry.target = Some(format!("{} {path}", req.method()));
    entry.outcome = e.code.name().to_string();
    api.audit.record(entry).await;
}

/// Whether a request carries a token or a session cookie (one with neither guesses nothing, and
/// is not counted).
fn presents_credentials(req: &HttpRequest) -> bool {
    req.headers().contains_key("authorization") || super::session::has_cookie(req)
}

/// The keys a request's failures count against: its source, and the bearer token it presents.
pub fn throttle_keys(req: &HttpRequest, api: &Api) -> Vec<Key> {
    keys_of(req, bearer(req).and_then(|t| token_hash(t, api)))
}

/// The token in `Authorization` (without its `Bearer`), when the header is text.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(to11_shared::keys::strip_bearer)
}

/// The keyed hash of a token of a length a token can have.
fn token_hash(token: &str, api: &Api) -> Option<to11_shared::crypto::KeyHash> {
    (!token.is_empty() && token.len() <= 512).then(|| api.keyring.key_hash(token))
}

/// The source, and the token by its keyed hash when one was presented.
fn keys_of(req: &HttpRequest, token: Option<to11_shared::crypto::KeyHash>) -> Vec<Key> {
    let mut keys = vec![Key::source(source(req))];
    keys.extend(token.map(|h| Key::token(&h.0)));
    keys
}

/// A request body that must arrive whole before a deadline.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    expired: bool,
}

impl Deadline {
    fn new(inner: Payload, limit: Duration) -> Self {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
            expired: false,
        }
    }
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.poll_unpin(cx).is_ready() {
            self.expired = true;
            let e = io::Error::new(io::ErrorKind::TimedOut, BodyTimedOut(self.limit));
            return Poll::Ready(Some(Err(PayloadError::Io(e))));
        }
        Poll::Pending
    }
}

/// The error `Deadline` ends a body with; the body extractors' error handlers answer 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub Duration);

/// The API error for a failure reading a body: 408 when `Deadline` ended it.
pub fn payload_error(e: &PayloadError) -> Option<ApiError> {
    let PayloadError::Io(io) = e else {
        return None;
    };
    let t = io.get_ref()?.downcast_ref::<BodyTimedOut>()?;
    Some(ApiError::body_timeout(t.0.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_requests_are_open() {
        let open_ones = [
            (Method::GET, "/api/v1/openapi.json"),
            (Method::GET, "/api/v1/catalog"),
            (Method::POST, "/api/v1/session"),
            (Method::GET, "/api/v1/session"),
            (Method::DELETE, "/api/v1/session"),
        ];
        for (m, p) in &open_ones {
            assert!(open(m, p), "{m} {p}");
        }
        let closed = [
            (Method::POST, "/api/v1/catalog"),
            (Method::PUT, "/api/v1/openapi.json"),
            (Method::POST, "/api/v1/projects"),
            (Method::POST, "/api/v1/session/x"),
            (Method::POST, "/api/v1/sessions"),
            (Method::GET, "/api/v1/audit"),
            (Method::POST, "/api/v1/nowhere"),
        ];
        for (m, p) in &closed {
            assert!(!open(m, p), "{m} {p}");
        }
    }

    #[actix_rt::test]
    async fn a_stalled_body_ends_with_the_timeout_error() {
        let stalled = futures_util::stream::once(async { Ok(Bytes::from_static(b"{\"na")) })
            .chain(futures_util::stream::pending());
        let payload = Payload::from(
            Box::pin(stalled) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
        );
        let mut d = Deadline::new(payload, Duration::from_millis(50));
        assert_eq!(
            d.next().await.unwrap().unwrap(),
            Bytes::from_static(b"{\"na")
        );
        let err = d.next().await.unwrap().unwrap_err();
        let api = payload_error(&err).expect("a timeout");
        assert_eq!(api.code, to11_shared::ErrorCode::RequestTimeout);
        assert_eq!(api.code.status(), 408);
        assert!(d.next().await.is_none());
    }
}
