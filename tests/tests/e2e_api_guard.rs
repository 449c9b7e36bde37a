#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The control plane's API against hostile clients: it authenticates before it reads a body (so
//! anonymous stalled uploads cost it nothing), cuts stalled headers and bodies after their
//! timeouts, backs off on failed tokens per source (another source is unaffected), and bounds
//! dashboard sessions per principal (one tenant signing in 10,001 times signs out nobody else).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use to11_tests::client::ApiClient;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane_with, ADMIN_TOKEN};

/// Resident memory of this process (which runs the control plane on its threads), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Opens a connection and sends the head of a request announcing `length` body bytes.
fn send_head(addr: SocketAddr, head: &str, length: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{head}Host: cp\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("head");
    s
}

/// Writes as much of `body` as the connection takes without waiting.
fn push(s: &mut TcpStream, body: &[u8]) -> usize {
    s.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0;
    while sent < body.len() {
        match s.write(&body[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    s.set_nonblocking(false).expect("blocking");
    sent
}

/// What the server sends until it closes the connection or `wait` passes (then `None`).
fn answer(s: &mut TcpStream, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into()),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                    return Some(String::from_utf8_lossy(&got).into());
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into())
            }
            Err(_) if started.elapsed() < wait => continue,
            Err(_) => return None,
        }
    }
}

async fn management_key(api: &ApiClient, slug: &str) -> String {
    let (s, _) = api
        .post("/projects", json!({"name": slug, "slug": slug}))
        .await;
    assert_eq!(s, 201);
    let (s, k) = api
        .post(
            &format!("/projects/{slug}/management-keys"),
            json!({"name": "ci"}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    k["key"].as_str().expect("key").to_string()
}

#[actix_rt::test]
async fn anonymous_uploads_are_refused_before_their_body_is_read() {
    let redis = RedisServer::start(false);
    let cp = control_plane_with(&redis.url(), "guard-anon:", |_| {}).expect("control plane");
    let addr = cp.info.addr;

    // The answer comes while almost all of the announced body is still unsent: the handler
    // did not wait for it.
    let mut s = send_head(addr, "POST /api/v1/projects HTTP/1.1\r\n", 1 << 20);
    s.write_all(b"{\"name\":").expect("a little body");
    let got = answer(&mut s, Duration::from_secs(30)).expect("an answer before the body");
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    assert!(got.contains("unauthorized"), "{got}");

    // 200 anonymous connections each push ~1 MiB and stall: the control plane holds no copy.
    let body = vec![b'a'; 1 << 20];
    let before = rss_kib();
    let mut conns = Vec::new();
    let mut pushed = 0;
    for _ in 0..200 {
        let mut s = send_head(
            addr,
            "PUT /api/v1/projects/x/routes/r HTTP/1.1\r\n",
            1 << 20,
        );
        pushed += push(&mut s, &body);
        conns.push(s);
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    eprintln!(
        "200 stalled anonymous uploads: {} MiB pushed, RSS grew {grown_mib} MiB",
        pushed >> 20
    );
    assert!(grown_mib < 64, "RSS grew {grown_mib} MiB");
    for s in &mut conns {
        let got = answer(s, Duration::from_secs(30)).expect("answered");
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 401"), "{got}");
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 64, "RSS grew {grown_mib} MiB");

    // The control plane still serves.
    let api = ApiClient::new(addr, ADMIN_TOKEN);
    assert_eq!(api.get("/projects").await.0, 200);
    cp.stop();
}

#[actix_rt::test]
async fn stalled_headers_and_bodies_are_cut_after_their_timeouts() {
    let redis = RedisServer::start(false);
    let cp = control_plane_with(&redis.url(), "guard-stall:", |s| {
        s.api.body_timeout = Duration::from_secs(1);
        s.api.header_timeout = Duration::from_secs(1);
    })
    .expect("control plane");
    let addr = cp.info.addr;

    // An authenticated upload that stalls mid-body: 408, and the connection is closed.
    let started = Instant::now();
    let mut s = send_head(
        addr,
        &format!("POST /api/v1/projects HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"),
        1000,
    );
    s.write_all(b"{\"name\": \"sl").expect("part of the body");
    let got = answer(&mut s, Duration::from_secs(60)).expect("cut");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("not received within 1 s"), "{got}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let rest = answer(&mut s, Duration::from_secs(60)).expect("closed");
    assert!(rest.is_empty(), "{rest}");

    // Headers that never end: the connection is answered (408) or closed, not kept.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /api/v1/projects HTTP/1.1\r\nHost: cp\r\n")
        .expect("part of the head");
    let got = answer(&mut s, Duration::from_secs(60)).expect("cut");
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");

    // A body that arrives in time is served.
    let api = ApiClient::new(addr, ADMIN_TOKEN);
    assert_eq!(
        api.post("/projects", json!({"name": "on time"})).await.0,
        201
    );
    cp.stop();
}

/// The API from another loopback source address.
async fn get_from(source: IpAddr, addr: SocketAddr, token: &str) -> (u16, Option<u64>) {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().local_address(source))
        .timeout(Duration::from_secs(30))
        .finish();
    let resp = client
        .get(format!("http://{addr}/api/v1/projects"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("answer");
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (resp.status().as_u16(), retry)
}

#[actix_rt::test]
async fn failed_tokens_back_off_per_source() {
    let redis = RedisServer::start(false);
    let cp = control_plane_with(&redis.url(), "guard-throttle:", |s| {
        s.api.auth_free_failures = 3;
        s.api.auth_backoff = Duration::from_secs(1);
    })
    .expect("control plane");
    let addr = cp.info.addr;
    let here: IpAddr = "127.0.0.1".parse().unwrap();
    let elsewhere: IpAddr = "127.0.0.2".parse().unwrap();

    // Three free failures, the fourth starts a 1 s block.
    for i in 0..4 {
        let (s, _) = get_from(here, addr, &format!("wrong-token-{i}")).await;
        assert_eq!(s, 401, "failure {i}");
    }
    let (s, retry) = get_from(here, addr, "wrong-token-x").await;
    assert_eq!((s, retry), (429, Some(1)));
    // While blocked even the right token is not checked from this source...
    assert_eq!(get_from(here, addr, ADMIN_TOKEN).await.0, 429);
    // ...but another source is unaffected.
    assert_eq!(get_from(elsewhere, addr, ADMIN_TOKEN).await.0, 200);

    // Sign-ins count too, and are refused with the same back-off.
    let signin = |token: &'static str| async move {
        let resp = to11_tests::client::http()
            .post(format!("http://{addr}/api/v1/session"))
            .send_json(&json!({"token": token}))
            .await
            .expect("answer");
        resp.status().as_u16()
    };
    assert_eq!(signin("wrong").await, 429);

    // After the block, the next failure blocks twice as long.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get_from(here, addr, "wrong-again").await.0, 401);
    let (s, retry) = get_from(here, addr, "wrong-again").await;
    assert_eq!((s, retry), (429, Some(2)));
    cp.stop();
}

#[actix_rt::test]
async fn one_tenant_signing_in_10001_times_signs_out_nobody_else() {
    let redis = RedisServer::start(false);
    let cp = control_plane_with(&redis.url(), "guard-sessions:", |_| {}).expect("control plane");
    let addr = cp.info.addr;
    let api = ApiClient::new(addr, ADMIN_TOKEN);
    let a = management_key(&api, "tenant-a").await;
    let b = management_key(&api, "tenant-b").await;
    let client = to11_tests::client::http();
    let sign_in = |token: String| {
        let client = client.clone();
        async move {
            let resp = client
                .post(format!("http://{addr}/api/v1/session"))
                .send_json(&json!({ "token": token }))
                .await
                .expect("answer");
            assert_eq!(resp.status().as_u16(), 200);
            let set = resp.headers().get("set-cookie").expect("cookie");
            let set = set.to_str().expect("ascii");
            set.split(';').next().expect("name=value").to_string()
        }
    };
    let whoami = |cookie: String| {
        let client = client.clone();
        async move {
            let mut resp = client
                .get(format!("http://{addr}/api/v1/session"))
                .insert_header(("cookie", cookie))
                .send()
                .await
                .expect("answer");
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            (resp.status().as_u16(), v)
        }
    };
    let operator = sign_in(ADMIN_TOKEN.to_string()).await;
    let other = sign_in(b).await;
    let first_a = sign_in(a.clone()).await;
    for _ in 0..10_001 {
        sign_in(a.clone()).await;
    }
    let (s, v) = whoami(operator).await;
    assert_eq!((s, v["principal"].as_str()), (200, Some("operator")));
    let (s, v) = whoami(other).await;
    assert_eq!((s, v["principal"].as_str()), (200, Some("project")));
    assert_eq!(
        whoami(first_a).await.0,
        401,
        "only a's own oldest session made room"
    );
    cp.stop();
}

async fn scrape(addr: SocketAddr, token: Option<&str>) -> (u16, String) {
    let mut req = to11_tests::client::http().get(format!("http://{addr}/metrics"));
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    let mut resp = req.send().await.expect("answer");
    let body = resp.body().await.expect("body");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into(),
    )
}

fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[actix_rt::test]
async fn metrics_follow_writes_and_can_need_a_token() {
    let redis = RedisServer::start(false);
    let open = control_plane_with(&redis.url(), "guard-metrics-open:", |_| {}).expect("cp");
    let api = ApiClient::new(open.info.addr, ADMIN_TOKEN);
    let (s, text) = scrape(open.info.addr, None).await;
    assert_eq!((s, gauge(&text, "to11_cp_projects")), (200, 0));
    let (_, p) = api.post("/projects", json!({"name": "Counted"})).await;
    let (_, text) = scrape(open.info.addr, None).await;
    assert_eq!(gauge(&text, "to11_cp_projects"), 1);
    assert_eq!(
        gauge(&text, "to11_cp_config_version"),
        p["version"].as_u64().unwrap()
    );
    assert_eq!(api.with_token("wrong-token").get("/projects").await.0, 401);
    let (_, text) = scrape(open.info.addr, None).await;
    assert_eq!(gauge(&text, "to11_cp_auth_failures_total"), 1);
    api.delete(&format!("/projects/{}", p["id"].as_str().unwrap()))
        .await;
    let (_, text) = scrape(open.info.addr, None).await;
    assert_eq!(gauge(&text, "to11_cp_projects"), 0);
    open.stop();

    let closed = control_plane_with(&redis.url(), "guard-metrics-token:", |s| {
        s.api.metrics_token = Some(to11_shared::config::Secret::new("scrape-token-0123456789"));
    })
    .expect("cp");
    let addr = closed.info.addr;
    assert_eq!(scrape(addr, None).await.0, 401);
    assert_eq!(scrape(addr, Some("not-the-scrape-token")).await.0, 401);
    assert_eq!(
        scrape(addr, Some(ADMIN_TOKEN)).await.0,
        401,
        "only its own token"
    );
    let (s, text) = scrape(addr, Some("scrape-token-0123456789")).await;
    assert_eq!(s, 200);
    assert_eq!(gauge(&text, "to11_cp_auth_failures_total"), 3);
    closed.stop();
}
