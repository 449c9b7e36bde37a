#![allow(clippy::expect_used, clippy::unwrap_used)]
//! SIGTERM to the real `to11-data-plane` binary with streams open (the 45 s streams, with
//! short configured times): `/readyz` answers 503 during the grace period while requests are still
//! served; a stream that finishes within the drain timeout ends with `[DONE]`; the streams still
//! open at the drain timeout end with a terminal error event in their API's shape (OpenAI chat and
//! Anthropic Messages), never a silent cut; then the process exits.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use to11_tests::client::{chat, http, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, master_key, ADMIN_TOKEN};
use to11_tests::wait_until;

const GRACE_MS: u64 = 3_000;
const DRAIN_MS: u64 = 4_000;

/// The `to11-data-plane` binary, built (or found fresh) in this test's target directory.
fn data_plane_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args([
            "build",
            "-q",
            "--locked",
            "-p",
            "to11-data-plane",
            "--bin",
            "to11-data-plane",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(ok.success(), "the data-plane binary builds");
    let exe = std::env::current_exe().expect("test binary");
    // target/debug/deps/e2e_drain-… → target/debug/to11-data-plane
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("to11-data-plane")
}

struct Replica {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(redis: &str, prefix: &str) -> Replica {
    let mut child = Command::new(data_plane_binary())
        .env("TO11_MASTER_KEY", master_key())
        .env("TO11_REDIS_URL", redis)
        .env("TO11_REDIS_PREFIX", prefix)
        .env("TO11_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("TO11_GATEWAY_WORKERS", "2")
        .env("TO11_ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("TO11_DRAIN_GRACE_MS", GRACE_MS.to_string())
        .env("TO11_DRAIN_TIMEOUT_MS", DRAIN_MS.to_string())
        .env("TO11_REPLICA_ID", "drain-test-1")
        .env("TO11_REPORT_INTERVAL_MS", "100")
        .env("TO11_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("to11-data-plane starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // Keep reading its output (its logs), so the process never writes to a closed pipe.
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            eprintln!("[to11-data-plane] {l}");
        }
    });
    Replica { child, addr }
}

/// A streamed call held open at the mock by `gate`: everything received until the stream ends
/// (or the connection is cut: the error is returned too).
async fn stream(addr: SocketAddr, key: &str, path: &str, gate: &str) -> (String, Option<String>) {
    let body = if path == "/v1/messages" {
        json!({"model": "m", "stream": true, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
    } else {
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
    };
    let mut resp = http()
        .post(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(60))
        .insert_header(("x-to11-authorization", key))
        .insert_header(("x-mock-gate", gate))
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_string())
        .await
        .expect("gateway answers");
    assert_eq!(resp.status().as_u16(), 200);
    let mut text = String::new();
    while let Some(chunk) = resp.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(e) => return (text, Some(e.to_string())),
        }
    }
    (text, None)
}

async fn readyz(addr: SocketAddr) -> Option<(u16, serde_json::Value)> {
    let mut r = http()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .ok()?;
    Some((r.status().as_u16(), r.json().await.ok()?))
}

#[actix_rt::test]
async fn sigterm_drains_then_ends_open_streams_with_a_terminal_event() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "drain:").expect("control plane");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let mock = MockUpstream::start("sk-up", &["m"]);
    let (_, p) = api
        .post("/projects", json!({"name": "d", "slug": "d"}))
        .await;
    let (s, e) = api
        .post(
            "/projects/d/providers",
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": "sk-up"}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (_, k) = api.post("/projects/d/keys", json!({"name": "k"})).await;
    let key = k["key"].as_str().expect("key").to_string();
    let replica = start_replica(&redis.url(), "drain:");
    let gw = replica.addr;
    wait_version(
        &[gw],
        p["id"].as_str().expect("id"),
        k["version"].as_u64().expect("v"),
    )
    .await;

    // Streams held open at the mock: `finishing` is released during the drain, the others never.
    let open = |path: &'static str, gate: &'static str| {
        let key = key.clone();
        actix_rt::spawn(async move { stream(gw, &key, path, gate).await })
    };
    let finishing = open("/v1/chat/completions", "finishing");
    let held_chat = open("/v1/chat/completions", "held-chat");
    let held_messages = open("/v1/messages", "held-messages");
    wait_until("three streams open at the mock", 10, || async {
        (mock.count("/v1/chat/completions") >= 3).then_some(())
    })
    .await;

    let sigterm = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &replica.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());

    // The grace period: not ready, still serving.
    let (status, body) = wait_until("/readyz answers 503", 5, || async {
        readyz(gw).await.filter(|(s, _)| *s == 503)
    })
    .await;
    assert_eq!((status, &body["draining"]), (503, &json!(true)));
    let served = chat(gw, &key, "m").await;
    assert_eq!(served.status, 200, "a new request is still served");
    assert!(
        sigterm.elapsed() < Duration::from_millis(GRACE_MS),
        "checked within the grace period ({:?}); the machine is too slow for this check",
        sigterm.elapsed()
    );
    // Its report says so too (the binary reports through Redis, under its configured id).
    let listed = wait_until("the report says draining", 5, || async {
        let (_, b) = api.get("/replicas").await;
        b["replicas"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["id"] == "drain-test-1").cloned())
            .filter(|r| r["draining"] == true)
    })
    .await;
    assert_eq!(listed["projects"], 1, "{listed}");

    // A stream that finishes within the drain timeout ends normally.
    for _ in 0..20 {
        mock.release("finishing");
    }
    let (text, err) = finishing.await.expect("task");
    assert!(err.is_none(), "{err:?}");
    assert!(text.contains("data: [DONE]"), "{text}");

    // The others are ended at the drain timeout with a terminal event in their API's shape.
    let (text, err) = held_chat.await.expect("task");
    let ended = sigterm.elapsed();
    assert!(err.is_none(), "not cut: {err:?}");
    assert!(!text.contains("[DONE]"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().expect("an event");
    assert!(
        last.starts_with("data: {\"error\"") && last.contains("shutting_down"),
        "{text}"
    );
    assert!(
        ended >= Duration::from_millis(GRACE_MS + DRAIN_MS) - Duration::from_millis(200),
        "ended at {ended:?}, not before the drain timeout"
    );
    let (text, err) = held_messages.await.expect("task");
    assert!(err.is_none(), "not cut: {err:?}");
    let last = text.trim_end().rsplit("\n\n").next().expect("an event");
    assert!(
        last.starts_with("event: error\n") && last.contains("shutting_down"),
        "{text}"
    );

    // Then the process exits, well before actix-web's own timeout would have cut anything.
    let mut replica = replica;
    wait_until("the replica exits", 20, || {
        let done = replica.child.try_wait().expect("wait").is_some();
        async move { done.then_some(()) }
    })
    .await;
    eprintln!(
        "streams ended {ended:?} after SIGTERM; exited {:?} after",
        sigterm.elapsed()
    );
}
