#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `to11-floor-proxy`, the benchmark's floor row, is a proxy and not a stand-in: what it answers
//! is what the upstream answers (status, body, streams byte for byte), and the upstream receives
//! the client's request (its body and end-to-end headers, no hop-by-hop ones). A floor that
//! skipped part of the hop would flatter the stack.

use std::process::{Child, Command};

use awc::http::Method;
use futures_util::StreamExt;
use to11_tests::mock::MockUpstream;

struct Floor(Child, String);

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn floor(upstream: std::net::SocketAddr) -> Floor {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_to11-floor-proxy"));
    cmd.arg("127.0.0.1:0").arg(format!("http://{upstream}"));
    let (child, addr) = to11_tests::spawn_listening(cmd);
    Floor(child, addr.to_string())
}

/// Status, content type and the whole body of `POST {base}{path}` with `body`.
async fn call(
    base: &str,
    path: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut req = to11_tests::client::http()
        .request(Method::POST, format!("http://{base}{path}"))
        .insert_header(("authorization", "Bearer sk-mock"))
        .insert_header(("content-type", "application/json"));
    for (k, v) in extra {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req.send_body(body.to_string()).await.expect("answer");
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut bytes = vec![];
    while let Some(chunk) = resp.next().await {
        bytes.extend_from_slice(&chunk.expect("chunk"));
    }
    (resp.status().as_u16(), kind, bytes)
}

#[actix_rt::test]
async fn the_floor_answers_what_the_upstream_answers_and_forwards_the_request() {
    // The benchmark's upstream: fixed answers, so direct and proxied compare byte for byte.
    let fast = MockUpstream::start_on("127.0.0.1:0", "sk-mock", &["gpt-4o"], 1, true);
    let proxy = floor(fast.addr);
    let direct = fast.addr.to_string();
    let whole = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let stream = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    for body in [whole, stream] {
        let through = call(&proxy.1, "/v1/chat/completions", body, &[]).await;
        let straight = call(&direct, "/v1/chat/completions", body, &[]).await;
        assert_eq!(through.0, 200);
        assert_eq!(through, straight, "{body}");
    }
    let (_, kind, events) = call(&proxy.1, "/v1/chat/completions", stream, &[]).await;
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    assert!(String::from_utf8(events)
        .unwrap()
        .trim_end()
        .ends_with("data: [DONE]"));

    // A recording upstream: the request arrives as the client sent it, less its hop-by-hop headers.
    let recording = MockUpstream::start("sk-mock", &["gpt-4o"]);
    let proxy = floor(recording.addr);
    let (status, _, answer) = call(
        &proxy.1,
        "/v1/chat/completions?trace=1",
        whole,
        &[("x-custom", "kept"), ("te", "trailers")],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let seen = recording
        .last_request("/v1/chat/completions")
        .expect("forwarded");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/chat/completions?trace=1");
    assert_eq!(seen.body, whole.as_bytes());
    assert_eq!(seen.header("authorization"), Some("Bearer sk-mock"));
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_eq!(
        seen.header("te"),
        None,
        "hop-by-hop headers stay on their hop"
    );
    assert_eq!(
        seen.header("host"),
        Some(recording.addr.to_string().as_str())
    );

    // An upstream's error answer passes as it is.
    recording.script(vec![to11_tests::mock::Scripted::error(429, "rate_limited")]);
    let (status, _, _) = call(&proxy.1, "/v1/chat/completions", whole, &[]).await;
    assert_eq!(status, 429);
}
