//! CORS, so that browsers may call the gateway (the dashboard's playground, web applications).
//! Gateway keys travel in headers, never in cookies, so no cross-origin request carries ambient
//! authority: any origin may call, and `Access-Control-Allow-Credentials` is never sent.
//! `TO11_CORS=false` turns it off.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpRequest;
use actix_web::HttpResponse;

/// The response headers a browser script may read: the resolution headers and rate-limit hints.
const EXPOSED: &str = "x-to11-request-id, x-to11-layer, x-to11-provider, x-to11-upstream-model, \
                       x-to11-route, x-to11-function, x-to11-attempts, x-to11-config-version, \
                       retry-after";

/// The answer to a preflight request (`OPTIONS` with an `Origin`).
pub fn preflight(req: &HttpRequest) -> HttpResponse {
    let mut r = HttpResponse::NoContent();
    r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
    if let Some(h) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        r.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
    }
    r.finish()
}

/// Whether a request comes from a page of another origin the replica answers as CORS asks
/// (`enabled`: `TO11_CORS`): it names its `Origin`.
pub fn cross_origin(enabled: bool, headers: &HeaderMap) -> bool {
    enabled && headers.contains_key(header::ORIGIN)
}

/// Marks an answer to a cross-origin request as readable by the calling page.
pub fn allow(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
}
