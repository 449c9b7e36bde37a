#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The dashboard in a real browser: `tests/dashboard/e2e.mjs` (playwright-core, pinned in
//! `tests/dashboard/package-lock.json`, installed with `npm ci` on first run) drives Debian's
//! chromium headless against embedded mode whose provider is a mock OpenAI-compatible upstream:
//! sign in, create a project, connect a provider through the drawer, pick models, create a key,
//! run the playground, create a route and a function; then real traffic through the gateway (one
//! route's first target is a second mock that fails every chat request) and, once its records
//! are stored, the Usage page (every chart must have drawn its data), its breakdowns, the
//! Requests page with filters and a request's drawer with its failed attempt, the keys' spend,
//! the providers' error rates and the operator's view across projects; revoke the key, sign out.
//! Screenshots of every main screen land in `tests/output/dashboard/`.
//!
//! Also here, without a browser: the session's cookie, CSRF and revocation rules.

use std::path::PathBuf;
use std::process::Command;

use awc::http::Method;
use bytes::Bytes;
use serde_json::{json, Value};
use to11_tests::checker::run_checks;
use to11_tests::client::{gateway, ApiClient};
use to11_tests::mock::{MockUpstream, Scripted};
use to11_tests::sandbox::embedded;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/dashboard/node_modules`, installed from the lock file when missing.
fn node_modules() {
    let dir = root().join("tests/dashboard");
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir)
        .status()
        .expect("npm runs (Node.js is needed for the dashboard tests)");
    assert!(ok.success(), "npm ci in tests/dashboard failed");
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium (tests/run.sh does) or set CHROMIUM"
    );
    path
}

#[actix_rt::test]
async fn the_dashboard_end_to_end_in_chromium() {
    node_modules();
    let browser = chromium();
    let mock = MockUpstream::start("sk-mock-dashboard", &["gpt-4o", "gpt-4o-mini"]);
    // Lists its models (so it can be connected), then fails every chat request.
    let flaky = MockUpstream::start("sk-mock-dashboard", &["gpt-4o"]);
    flaky.always(Some(Scripted::error(503, "overloaded")));
    let dir = std::env::temp_dir().join(format!("to11-dashboard-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let token = gw.info.generated_admin_token.clone().expect("token");
    let shots = root().join("tests/output/dashboard");
    let _ = std::fs::remove_dir_all(&shots);
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/dashboard/e2e.mjs"))
        .current_dir(root().join("tests/dashboard"))
        .env("TO11_API", format!("http://{}", gw.info.api))
        .env("TO11_ADMIN_TOKEN", token)
        .env("TO11_MOCK_BASE", mock.base_url())
        .env("TO11_MOCK_KEY", "sk-mock-dashboard")
        .env("TO11_FLAKY_BASE", flaky.base_url())
        .env("TO11_SHOTS", shots)
        .env("CHROMIUM", browser);
    run_checks(cmd, "the dashboard checks", "all dashboard checks passed").await;
    // The playground's calls really went through the gateway to the provider.
    assert!(mock.count("/v1/chat/completions") >= 2);
    // The traffic of the usage steps reached both upstreams: the failing one was tried.
    assert!(mock.count("/v1/chat/completions") >= 50);
    assert!(flaky.count("/v1/chat/completions") >= 2);
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw call to the control plane with the given headers.
async fn call(
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let r = gateway(
        addr,
        method,
        path,
        &[&[("content-type", "application/json")], headers].concat(),
        body.map(|b| Bytes::from(b.to_string())),
    )
    .await;
    let cookie = r
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap_or("").to_string());
    (r.status, r.json(), cookie)
}

/// The status of a GET made with only a session cookie.
async fn get_with(addr: std::net::SocketAddr, path: &str, cookie: &str) -> u16 {
    call(addr, Method::GET, path, &[("cookie", cookie)], None)
        .await
        .0
}

#[actix_rt::test]
async fn sessions_resist_csrf_and_end_with_their_key() {
    let dir = std::env::temp_dir().join(format!("to11-session-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let token = gw.info.generated_admin_token.clone().expect("token");
    let cp = gw.info.api;
    let admin = ApiClient::new(cp, &token);
    let (_, p) = admin
        .post("/projects", json!({"name": "S", "slug": "s"}))
        .await;
    assert!(p["id"].is_string());

    // A wrong token signs nobody in; no cookie is set.
    let (s, _, cookie) = call(
        cp,
        Method::POST,
        "/api/v1/session",
        &[],
        Some(json!({"token": "to11_op_nope"})),
    )
    .await;
    assert_eq!((s, cookie), (401, None));

    // The operator token signs in: an HttpOnly, SameSite=Strict cookie, and a CSRF token.
    let r = gateway(
        cp,
        Method::POST,
        "/api/v1/session",
        &[("content-type", "application/json")],
        Some(Bytes::from(json!({"token": token}).to_string())),
    )
    .await;
    assert_eq!(r.status, 200);
    let set = r.header("set-cookie").expect("cookie").to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains(&token), "the cookie is not the token");
    let cookie = set.split(';').next().expect("pair").to_string();
    let csrf = r.json()["csrf"].as_str().expect("csrf").to_string();
    assert_eq!(r.json()["principal"], "operator");
    assert!(r.json()["gateway_url"]
        .as_str()
        .expect("gateway url")
        .starts_with("http://"));

    // Reads need only the cookie.
    let (s, v, _) = call(
        cp,
        Method::GET,
        "/api/v1/projects",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Changes need the CSRF token too, and a same-origin Origin when one is sent.
    let create = json!({"name": "Forged"});
    let (s, v, _) = call(
        cp,
        Method::POST,
        "/api/v1/projects",
        &[("cookie", &cookie)],
        Some(create.clone()),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (s, _, _) = call(
        cp,
        Method::POST,
        "/api/v1/projects",
        &[("cookie", &cookie), ("x-to11-csrf", "wrong")],
        Some(create.clone()),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = call(
        cp,
        Method::POST,
        "/api/v1/projects",
        &[
            ("cookie", &cookie),
            ("x-to11-csrf", &csrf),
            ("origin", "http://evil.example"),
        ],
        Some(create.clone()),
    )
    .await;
    assert_eq!(s, 403, "a foreign Origin");
    let host = format!("http://{cp}");
    let (s, v, _) = call(
        cp,
        Method::POST,
        "/api/v1/projects",
        &[
            ("cookie", &cookie),
            ("x-to11-csrf", &csrf),
            ("origin", &host),
        ],
        Some(json!({"name": "Real", "slug": "real"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // A management key's session ends when the key is revoked.
    let (_, mk) = admin
        .post("/projects/s/management-keys", json!({"name": "dash"}))
        .await;
    let secret = mk["key"].as_str().expect("key");
    let (s, v, mcookie) = call(
        cp,
        Method::POST,
        "/api/v1/session",
        &[],
        Some(json!({"token": secret})),
    )
    .await;
    assert_eq!((s, v["principal"].as_str()), (200, Some("project")), "{v}");
    let mcookie = mcookie.expect("cookie");
    let s = get_with(cp, "/api/v1/projects/s/keys", &mcookie).await;
    assert_eq!(s, 200);
    let s = get_with(cp, "/api/v1/projects/real", &mcookie).await;
    assert_eq!(
        s, 404,
        "another project is invisible to a management key's session"
    );
    let (s, _) = admin
        .delete(&format!(
            "/projects/s/management-keys/{}",
            mk["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(s, 200);
    let s = get_with(cp, "/api/v1/projects/s/keys", &mcookie).await;
    assert_eq!(s, 401, "the revoked key's session is over");

    // Signing out ends the session.
    let (s, _, cleared) = call(
        cp,
        Method::DELETE,
        "/api/v1/session",
        &[("cookie", &cookie), ("x-to11-csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert!(cleared.is_some_and(|c| c == "to11_session="));
    let s = get_with(cp, "/api/v1/projects", &cookie).await;
    assert_eq!(s, 401);

    // The page itself: served with a CSP that allows no foreign script.
    let r = gateway(cp, Method::GET, "/", &[], None).await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(String::from_utf8_lossy(&r.body).contains("/ui/app.js"));
    assert_eq!(
        gateway(cp, Method::GET, "/ui/app.js", &[], None)
            .await
            .status,
        200
    );
    // The vendored chart library is served from the binary too, and nothing but the listed files.
    let lib = gateway(cp, Method::GET, "/ui/vendor/uPlot.iife.min.js", &[], None).await;
    assert_eq!(lib.status, 200);
    assert!(String::from_utf8_lossy(&lib.body).contains("uPlot (v1.6.32)"));
    assert!(lib.header("content-security-policy").is_some());
    for missing in ["/ui/vendor/nope.js", "/ui/vendor/../../Cargo.toml"] {
        assert_eq!(
            gateway(cp, Method::GET, missing, &[], None).await.status,
            404,
            "{missing}"
        );
    }
    assert_eq!(
        gateway(cp, Method::GET, "/ui/nope.js", &[], None)
            .await
            .status,
        404
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn the_gateway_answers_browsers_from_other_origins() {
    let dir = std::env::temp_dir().join(format!("to11-cors-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let g = gw.info.gateway;
    let pre = gateway(
        g,
        Method::OPTIONS,
        "/v1/chat/completions",
        &[
            ("origin", "http://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, x-to11-authorization",
            ),
        ],
        None,
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("content-type, x-to11-authorization")
    );
    assert!(pre.header("access-control-allow-credentials").is_none());
    // An answer (here a refusal) is readable by the page, resolution headers included.
    let r = gateway(
        g,
        Method::POST,
        "/v1/chat/completions",
        &[("origin", "http://app.example")],
        Some(Bytes::from(
            json!({"model": "m", "messages": []}).to_string(),
        )),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("x-to11-provider")));
    // Without an Origin, nothing changes.
    let r = gateway(
        g,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(Bytes::from("{}")),
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
