//! The web dashboard: static files compiled into the binary (`control-plane/ui/`), no build step
//! and nothing fetched from elsewhere at run time; third-party code (uPlot, the Usage page's
//! charts) is vendored in `ui/vendor/` with its version and licence. The page talks to `/api/v1` with its session
//! cookie (`session`), and to the gateway for the playground.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use super::Api;
use crate::error::ApiError;

const INDEX: &str = include_str!("../../ui/index.html");
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/charts.js"),
    ),
    (
        "usage.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/usage.js"),
    ),
    (
        "requests.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/requests.js"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/vendor/uPlot.min.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../ui/icon.svg"),
    ),
];

/// Headers every dashboard file carries: no framing, no sniffing, no referrer, scripts and styles
/// from this origin only; connections to this origin and the gateway.
fn secured(api: &Api, mut r: HttpResponse) -> HttpResponse {
    let gateway = api
        .gateway_url
        .get()
        .map(|u| origin_of(u))
        .unwrap_or_else(|| "http: https:".to_string());
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {gateway}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let h = r.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        ("referrer-policy", "no-referrer".to_string()),
        ("cache-control", "no-cache".to_string()),
        ("content-security-policy", csp),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::HeaderName::from_static(name), v);
        }
    }
    r
}

/// `scheme://host[:port]` of a URL; a wildcard listen address stands for any host.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let hostport = rest.split('/').next().unwrap_or("");
    match hostport.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]", port)) => format!("{scheme}://*:{port}"),
        _ => format!("{scheme}://{hostport}"),
    }
}

/// `GET /`: the dashboard.
pub async fn index(api: web::Data<Api>) -> HttpResponse {
    secured(
        &api,
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(INDEX),
    )
}

/// `GET /ui/{file}` (`file` may name a folder: `vendor/…`); only the files above.
pub async fn asset(api: web::Data<Api>, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, mime, body) = FILES
        .iter()
        .find(|(name, _, _)| *name == file.as_str())
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(secured(
        &api,
        HttpResponse::Ok().content_type(*mime).body(*body),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn gateway_origins() {
        assert_eq!(
            super::origin_of("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            super::origin_of("https://gw.example.com/base"),
            "https://gw.example.com"
        );
        assert_eq!(super::origin_of("http://0.0.0.0:8080"), "http://*:8080");
    }
}
