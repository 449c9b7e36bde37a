#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The routing engine against scripted upstreams: the fallback matrix with exact attempt counts,
//! retry-after, weighted distribution, cool-down and recovery (per tenant), and a stream served
//! by the target a fallback reached.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use to11_tests::client::{chat, gated_stream, wait_version, ApiClient, GatewayResponse};
use to11_tests::mock::{stream_chunks, MockUpstream, Scripted};
use to11_tests::sandbox::{embedded, EmbeddedInfo, Spawned};
use to11_tests::wait_until;

const CHAT: &str = "/v1/chat/completions";

struct World {
    gw: Spawned<EmbeddedInfo>,
    api: ApiClient,
    project: String,
    key: String,
    a: MockUpstream,
    b: MockUpstream,
    c: MockUpstream,
}

/// Embedded planes (the routing engine is the same in both modes), three upstreams `a`, `b`, `c`
/// (each its own provider, model `m`), and a key.
async fn world(slug: &str) -> World {
    let dir = std::env::temp_dir().join(format!("to11-engine-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": slug, "slug": slug}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    let (a, b, c) = (
        MockUpstream::start("sk-a", &["m"]),
        MockUpstream::start("sk-b", &["m"]),
        MockUpstream::start("sk-c", &["m"]),
    );
    for (name, mock, key) in [("a", &a, "sk-a"), ("b", &b, "sk-b"), ("c", &c, "sk-c")] {
        let (s, e) = api
            .post(
                &format!("/projects/{slug}/providers"),
                json!({"kind": "openai-compatible", "slug": name, "base_url": mock.base_url(), "credential": {"api_key": key}}),
            )
            .await;
        assert_eq!(s, 201, "{e}");
    }
    let (_, k) = api
        .post(&format!("/projects/{slug}/keys"), json!({"name": "k"}))
        .await;
    // Everything above is applied before a test sends traffic.
    wait_version(
        &[gw.info.gateway],
        &project,
        k["version"].as_u64().expect("v"),
    )
    .await;
    World {
        gw,
        api,
        project,
        key: k["key"].as_str().expect("key").to_string(),
        a,
        b,
        c,
    }
}

impl World {
    async fn route(&self, slug: &str, name: &str, strategy: &str, targets: Value, policy: Value) {
        self.post_applied(
            &format!("/projects/{slug}/routes"),
            json!({"name": name, "strategy": strategy, "targets": targets, "policy": policy}),
        )
        .await;
    }

    /// Posts `body` to `path` (a 201 expected) and waits until the gateway applied the version.
    async fn post_applied(&self, path: &str, body: Value) {
        let (s, r) = self.api.post(path, body).await;
        assert_eq!(s, 201, "{r}");
        wait_version(
            &[self.gw.info.gateway],
            &self.project,
            r["version"].as_u64().expect("v"),
        )
        .await;
    }

    async fn call(&self, model: &str) -> GatewayResponse {
        chat(self.gw.info.gateway, &self.key, model).await
    }

    fn reset(&self) {
        self.a.reset();
        self.b.reset();
        self.c.reset();
    }

    fn counts(&self) -> (usize, usize, usize) {
        (self.a.count(CHAT), self.b.count(CHAT), self.c.count(CHAT))
    }
}

impl World {
    /// Connects an OpenAI-compatible upstream at `up` as provider `slug` (model `m`), applied.
    async fn connect_raw(&self, slug: &str, up: std::net::SocketAddr) {
        self.post_applied(
            &format!("/projects/{}/providers", self.project),
            json!({"kind": "openai-compatible", "slug": slug, "base_url": format!("http://{up}/v1"), "models": ["m"]}),
        )
        .await;
    }

    /// A chat request for `model` on `client`'s keep-alive connection: its status and body.
    async fn chat_on(&self, client: &awc::Client, model: &str) -> (u16, bytes::Bytes) {
        let mut r = client
            .post(format!("http://{}{CHAT}", self.gw.info.gateway))
            .insert_header(("x-to11-authorization", format!("Bearer {}", self.key)))
            .insert_header(("content-type", "application/json"))
            .send_body(format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
            ))
            .await
            .expect("send");
        let body = r.body().await.expect("body");
        (r.status().as_u16(), body)
    }
}

fn fast() -> Value {
    json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0})
}

fn targets(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"provider": n, "model": "m"}))
            .collect(),
    )
}

fn attempts(r: &GatewayResponse) -> u32 {
    r.header("x-to11-attempts")
        .and_then(|v| v.parse().ok())
        .expect("attempts header")
}

#[actix_rt::test]
async fn fallback_matrix() {
    let w = world("matrix").await;
    w.route("matrix", "ab", "fallback", targets(&["a", "b"]), fast())
        .await;

    // (what `a` answers always, status to the client, attempts, provider that answered, a's and b's request counts)
    let cases: Vec<(Scripted, u16, u32, &str, usize, usize)> = vec![
        (Scripted::error(503, "overloaded"), 200, 3, "b", 2, 1),
        (Scripted::error(500, "x"), 200, 3, "b", 2, 1),
        (Scripted::error(529, "x"), 200, 3, "b", 2, 1),
        (
            Scripted::error(429, "rate_limit_exceeded"),
            200,
            3,
            "b",
            2,
            1,
        ),
        (
            Scripted::error(429, "insufficient_quota"),
            200,
            2,
            "b",
            1,
            1,
        ),
        (Scripted::error(402, "payment_required"), 200, 2, "b", 1, 1),
        (Scripted::error(401, "invalid_api_key"), 200, 2, "b", 1, 1),
        (Scripted::error(403, "forbidden"), 200, 2, "b", 1, 1),
        (Scripted::error(408, "timeout"), 200, 2, "b", 1, 1),
        (Scripted::error(400, "bad_request"), 400, 1, "a", 1, 0),
        (Scripted::error(404, "model_not_found"), 404, 1, "a", 1, 0),
        (Scripted::error(422, "unprocessable"), 422, 1, "a", 1, 0),
    ];
    for (answer, status, n, provider, a_count, b_count) in cases {
        w.reset();
        let code = answer.status;
        w.a.always(Some(answer));
        let r = w.call("ab").await;
        assert_eq!(
            (r.status, attempts(&r), r.header("x-to11-provider")),
            (status, n, Some(provider)),
            "a answers {code}: {:?}",
            r.body
        );
        assert_eq!(w.counts(), (a_count, b_count, 0), "a answers {code}");
        if status >= 400 {
            assert!(
                String::from_utf8_lossy(&r.body).contains(&format!("scripted {code}")),
                "the upstream's own error is passed through"
            );
        }
    }

    // One 503, then fine: retried on the same target.
    w.reset();
    w.a.script(vec![Scripted::error(503, "x")]);
    let r = w.call("ab").await;
    assert_eq!(
        (r.status, attempts(&r), r.header("x-to11-provider")),
        (200, 2, Some("a"))
    );
    assert_eq!(w.counts(), (2, 0, 0));

    // Everything fails: the last upstream answer is delivered, after every attempt.
    w.reset();
    w.a.always(Some(Scripted::error(503, "x")));
    w.b.always(Some(Scripted::error(502, "y")));
    let r = w.call("ab").await;
    assert_eq!(
        (r.status, attempts(&r), r.header("x-to11-provider")),
        (502, 4, Some("b"))
    );

    // An unreachable target: connect errors are retried, then fall through.
    w.reset();
    w.c.stop();
    w.route("matrix", "cb", "fallback", targets(&["c", "b"]), fast())
        .await;
    let r = w.call("cb").await;
    assert_eq!(
        (r.status, attempts(&r), r.header("x-to11-provider")),
        (200, 3, Some("b"))
    );

    // Passthrough has no policy: one attempt, the upstream's answer as it is.
    w.reset();
    w.a.always(Some(Scripted::error(503, "x")));
    let r = w.call("a/m").await;
    assert_eq!((r.status, attempts(&r)), (503, 1));

    // A stream through a fallback: a fails before any byte, b's chunks arrive as sent.
    w.reset();
    w.a.always(Some(Scripted::error(503, "x")));
    let (status, headers, events) =
        gated_stream(w.gw.info.gateway, &w.key, "ab", "fb", |_| w.b.release("fb")).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-to11-provider").and_then(|v| v.to_str().ok()),
        Some("b")
    );
    assert_eq!(events, stream_chunks("m"));
}

#[actix_rt::test]
async fn retry_after_is_honoured_up_to_its_cap() {
    let w = world("ra").await;
    w.route(
        "ra",
        "ab",
        "fallback",
        targets(&["a", "b"]),
        json!({"retry_after_cap_ms": 5000}),
    )
    .await;

    w.a.script(vec![
        Scripted::error(429, "rate_limit_exceeded").with_header("retry-after-ms", "400")
    ]);
    let started = Instant::now();
    let r = w.call("ab").await;
    assert_eq!(
        (r.status, attempts(&r), r.header("x-to11-provider")),
        (200, 2, Some("a"))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited as told: {:?}",
        started.elapsed()
    );

    w.reset();
    w.a.script(vec![
        Scripted::error(429, "rate_limit_exceeded").with_header("retry-after", "120")
    ]);
    let started = Instant::now();
    let r = w.call("ab").await;
    assert_eq!(
        (r.status, attempts(&r), r.header("x-to11-provider")),
        (200, 2, Some("b"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 120 s retry-after over the cap is not waited for"
    );
}

#[actix_rt::test]
async fn loadbalance_weights_hold() {
    let w = world("lb").await;
    let t = json!([
        {"provider": "a", "model": "m", "weight": 70},
        {"provider": "b", "model": "m", "weight": 25},
        {"provider": "c", "model": "m", "weight": 5}]);
    w.route("lb", "spread", "loadbalance", t, json!({})).await;
    let n = 2000;
    for _ in 0..n {
        assert_eq!(w.call("spread").await.status, 200);
    }
    let (a, b, c) = w.counts();
    for (got, want) in [(a, 70.0), (b, 25.0), (c, 5.0)] {
        let share = got as f64 * 100.0 / n as f64;
        // ±4 points is about 4 standard deviations at n = 2000.
        assert!(
            (share - want).abs() <= 4.0,
            "share {share:.1}% vs weight {want}% ({a}/{b}/{c})"
        );
    }
}

#[actix_rt::test]
async fn cooldown_skips_a_failing_target_per_tenant_and_recovers() {
    let w = world("cool").await;
    let policy = json!({"max_retries": 0, "cooldown_failures": 2, "cooldown_ms": 700, "backoff_ms": 1, "backoff_max_ms": 2});
    w.route(
        "cool",
        "ab",
        "fallback",
        targets(&["a", "b"]),
        policy.clone(),
    )
    .await;
    w.a.always(Some(Scripted::error(503, "down")));
    for _ in 0..10 {
        let r = w.call("ab").await;
        assert_eq!((r.status, r.header("x-to11-provider")), (200, Some("b")));
    }
    assert_eq!(
        w.counts().0,
        2,
        "after 2 failures a is skipped while it cools down"
    );

    // Another tenant using the same upstream is not affected by this tenant's cool-down.
    let (_, p2) = w
        .api
        .post("/projects", json!({"name": "other", "slug": "other"}))
        .await;
    let (s, _) = w
        .api
        .post("/projects/other/providers", json!({"kind": "openai-compatible", "slug": "a", "base_url": w.a.base_url(), "credential": {"api_key": "sk-a"}}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = w
        .api
        .post("/projects/other/providers", json!({"kind": "openai-compatible", "slug": "b", "base_url": w.b.base_url(), "credential": {"api_key": "sk-b"}}))
        .await;
    assert_eq!(s, 201);
    let (_, r2) = w
        .api
        .post(
            "/projects/other/routes",
            json!({"name": "ab", "targets": targets(&["a", "b"]), "policy": policy}),
        )
        .await;
    let (_, k2) = w
        .api
        .post("/projects/other/keys", json!({"name": "k"}))
        .await;
    wait_version(
        &[w.gw.info.gateway],
        p2["id"].as_str().expect("id"),
        k2["version"]
            .as_u64()
            .expect("v")
            .max(r2["version"].as_u64().unwrap_or(0)),
    )
    .await;
    let before = w.counts().0;
    let r = chat(w.gw.info.gateway, k2["key"].as_str().expect("key"), "ab").await;
    assert_eq!(r.header("x-to11-provider"), Some("b"));
    assert_eq!(
        w.counts().0,
        before + 1,
        "the other tenant still tried a first"
    );

    // a heals; once the cool-down passes it is probed and serves again.
    w.a.always(None);
    let r = wait_until("a is probed after its cool-down", 10, || async {
        let r = w.call("ab").await;
        (r.header("x-to11-provider") == Some("a")).then_some(r)
    })
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(w.call("ab").await.header("x-to11-provider"), Some("a"));
}

#[actix_rt::test]
async fn timeouts_first_byte_total_and_idle() {
    let w = world("time").await;
    // First byte: a hangs; each attempt gives up after 300 ms (retried once), then b answers.
    // (Cool-down off: a's timeouts here must not decide the later steps' order.)
    let policy =
        json!({"first_byte_ms": 300, "backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0});
    w.route("time", "ab", "fallback", targets(&["a", "b"]), policy)
        .await;
    w.a.always(Some(Scripted::slow(5_000)));
    let started = Instant::now();
    let r = w.call("ab").await;
    assert_eq!(
        (r.status, attempts(&r), r.header("x-to11-provider")),
        (200, 3, Some("b"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up on a in time: {:?}",
        started.elapsed()
    );

    // Total: the route's deadline ends the whole request with 504.
    let policy = json!({"total_ms": 400, "first_byte_ms": 10_000, "cooldown_failures": 0});
    w.route("time", "deadline", "fallback", targets(&["a", "b"]), policy)
        .await;
    let started = Instant::now();
    let r = w.call("deadline").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (504, Some("upstream_timeout")),
        "{:?}",
        r.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    w.a.always(None);

    // Idle: a stream that stalls after its first chunk ends with a terminal error event, no
    // [DONE], and no fallback after the first byte.
    w.route(
        "time",
        "stall",
        "fallback",
        targets(&["a", "b"]),
        json!({"idle_ms": 300}),
    )
    .await;
    w.reset();
    let (status, _, events) =
        gated_stream(w.gw.info.gateway, &w.key, "stall", "never", |_| {}).await;
    assert_eq!(status, 200);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], stream_chunks("m")[0]);
    assert!(
        events[1].starts_with("data: {\"error\"") && events[1].contains("upstream_timeout"),
        "{}",
        events[1]
    );
    assert!(!events.iter().any(|e| e.contains("[DONE]")));
    assert_eq!(w.b.count(CHAT), 0, "no fallback after the first byte");
    w.a.release("never");
}

#[actix_rt::test]
async fn a_stream_broken_midway_ends_with_an_error_event() {
    use to11_tests::breaking::{start, Break};
    for (i, how) in [Break::Reset, Break::Close].into_iter().enumerate() {
        let w = world(&format!("broken{i}")).await;
        let slug = format!("broken{i}");
        let up = start(2, how).await;
        // The breaking upstream needs no credential.
        let (s, e) = w
            .api
            .post(
                &format!("/projects/{slug}/providers"),
                json!({"kind": "openai-compatible", "slug": "r", "base_url": format!("http://{up}/v1"), "models": ["m"]}),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        w.route(&slug, "rb", "fallback", targets(&["r", "b"]), json!({}))
            .await;
        let (status, _, events) =
            gated_stream(w.gw.info.gateway, &w.key, "rb", "unused", |_| {}).await;
        assert_eq!(status, 200, "{how:?}");
        assert_eq!(
            &events[..2],
            &stream_chunks("m")[..2],
            "{how:?}: what arrived before the break is delivered"
        );
        assert_eq!(events.len(), 3, "{how:?}: {events:?}");
        assert!(
            events[2].starts_with("data: {\"error\"") && events[2].contains("upstream_failure"),
            "{how:?}: {}",
            events[2]
        );
        assert_eq!(
            w.b.count(CHAT),
            0,
            "{how:?}: no fallback after the first byte"
        );
    }
}

/// An upstream that writes its head and its body apart (as real providers' front ends do) must not
/// stall answers: without `TCP_NODELAY` on the gateway's sockets, each answer's body waited for
/// the client's delayed ACK, about 40 ms (p50 41.6 ms against 0.5 ms direct). The bound below is
/// ten times what an answer takes without the stall, and half the stall itself.
#[actix_rt::test]
async fn answers_written_in_several_writes_are_not_stalled() {
    let w = world("split").await;
    let up = to11_tests::breaking::start_split_writes().await;
    w.connect_raw("s", up).await;
    // One keep-alive connection, as SDKs use: past Linux's quick-ACK start, ACKs are delayed.
    let client = awc::Client::default();
    let mut times = vec![];
    for _ in 0..30 {
        let started = Instant::now();
        assert_eq!(w.chat_on(&client, "s/m").await.0, 200);
        times.push(started.elapsed());
    }
    times.sort();
    let p50 = times[times.len() / 2];
    assert!(
        p50 < Duration::from_millis(20),
        "answers stall: p50 {p50:?} over {times:?}"
    );
}

/// An upstream closes a kept-alive connection as a request on it goes out (idle keep-alive
/// timeouts of a few seconds are common): the request is sent once more on a new connection,
/// and the client sees the answer, not a 502.
#[actix_rt::test]
async fn a_kept_alive_connection_closed_by_the_upstream_is_retried_on_a_new_one() {
    let w = world("closing").await;
    let (up, connections) = to11_tests::breaking::start_closing_reused().await;
    w.connect_raw("closing", up).await;
    let before = connections.load(std::sync::atomic::Ordering::Relaxed);
    let client = awc::Client::default();
    for i in 0..5 {
        let (status, body) = w.chat_on(&client, "closing/m").await;
        assert_eq!(status, 200, "request {i}: {body:?}");
    }
    // Each request after the first found its pooled connection closed and took a new one.
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::Relaxed) - before,
        5
    );
}

#[actix_rt::test]
async fn least_latency_moves_traffic_off_a_slowed_target() {
    let w = world("ll").await;
    w.route(
        "ll",
        "quick",
        "least-latency",
        targets(&["a", "b"]),
        json!({"cooldown_failures": 0}),
    )
    .await;
    let share_of_b = |w: &World| {
        let (a, b, _) = w.counts();
        b as f64 / (a + b) as f64
    };
    // b is slow: once both are measured, most traffic goes to a (about 5% keeps probing b).
    w.b.always(Some(Scripted::slow(120)));
    for _ in 0..120 {
        assert_eq!(w.call("quick").await.status, 200);
    }
    assert!(
        share_of_b(&w) <= 0.2,
        "b is slow, yet took {:.0}%",
        share_of_b(&w) * 100.0
    );

    // Now a slows down and b recovers: traffic moves to b.
    w.b.always(None);
    w.a.always(Some(Scripted::slow(120)));
    w.reset();
    w.a.always(Some(Scripted::slow(120)));
    for _ in 0..150 {
        assert_eq!(w.call("quick").await.status, 200);
    }
    assert!(
        share_of_b(&w) >= 0.8,
        "a is slow now, yet b took only {:.0}%",
        share_of_b(&w) * 100.0
    );
}

#[actix_rt::test]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    let w = world("gone").await;
    // Waiting for the first byte: the client gives up after 300 ms.
    w.a.always(Some(Scripted::slow(5_000)));
    let impatient = awc::Client::builder()
        .timeout(Duration::from_millis(300))
        .finish();
    let r = impatient
        .post(format!("http://{}/v1/chat/completions", w.gw.info.gateway))
        .insert_header(("x-to11-authorization", w.key.as_str()))
        .send_body(json!({"model": "a/m", "messages": []}).to_string())
        .await;
    assert!(r.is_err(), "the client timed out");
    wait_until("the upstream sees the cancellation", 5, || async {
        (w.a.cancelled() >= 1).then_some(())
    })
    .await;
    w.a.always(None);

    // Mid-stream: the client reads two chunks, then goes away.
    let before = w.a.cancelled();
    let mut resp = to11_tests::client::http()
        .post(format!("http://{}/v1/chat/completions", w.gw.info.gateway))
        .insert_header(("x-to11-authorization", w.key.as_str()))
        .insert_header(("x-mock-gate", "gone"))
        .send_body(json!({"model": "a/m", "stream": true, "messages": []}).to_string())
        .await
        .expect("stream");
    use futures_util::StreamExt;
    let first = resp.next().await.expect("a chunk").expect("ok");
    assert!(first.starts_with(b"data: "));
    w.a.release("gone");
    let _second = resp.next().await.expect("a chunk").expect("ok");
    drop(resp);
    // The mock waits for the gate before its third chunk; the client is gone, so the gateway's
    // upstream connection closes and the mock's stream is dropped unfinished.
    wait_until("the upstream stream is cancelled", 5, || async {
        (w.a.cancelled() > before).then_some(())
    })
    .await;
}

/// `count_tokens` to a target without the API: an estimate, marked, never a refusal; nothing is
/// sent upstream.
#[actix_rt::test]
async fn count_tokens_is_estimated_for_targets_without_it() {
    let w = world("count").await;
    let auth = format!("Bearer {}", w.key);
    let body = json!({"model": "a/m", "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}]});
    let r = to11_tests::client::gateway(
        w.gw.info.gateway,
        awc::http::Method::POST,
        "/v1/messages/count_tokens?beta=true",
        &[
            ("x-to11-authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
        ],
        Some(bytes::Bytes::from(body.to_string())),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers.get("x-to11-token-count").unwrap(), "estimated");
    let n = r.json()["input_tokens"].as_u64().expect("input_tokens");
    assert!(n > 0 && n < 200, "{n}");
    assert_eq!(w.counts(), (0, 0, 0));
    assert!(w
        .a
        .requests()
        .iter()
        .all(|r| !r.path.contains("count_tokens")));
}

/// Claude Code's tuning hints against an OpenAI-format target: dropped, named in
/// `x-to11-dropped`, never sent upstream; the request is answered.
#[actix_rt::test]
async fn claude_code_hints_are_dropped_and_named_for_chat_targets() {
    let w = world("hints").await;
    let auth = format!("Bearer {}", w.key);
    for stream in [false, true] {
        let body = json!({"model": "a/m", "max_tokens": 64, "stream": stream,
            "thinking": {"type": "enabled", "budget_tokens": 2048}, "output_config": {"effort": "medium"},
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "messages": [{"role": "user", "content": "hi"}]});
        let r = to11_tests::client::gateway(
            w.gw.info.gateway,
            awc::http::Method::POST,
            "/v1/messages?beta=true",
            &[
                ("x-to11-authorization", auth.as_str()),
                ("content-type", "application/json"),
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "context-management-2025-06-27"),
            ],
            Some(bytes::Bytes::from(body.to_string())),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.headers.get("x-to11-dropped").unwrap(),
            "thinking, output_config.effort, context_management"
        );
        let sent = w.a.last_request(CHAT).expect("sent").json();
        for k in ["thinking", "output_config", "context_management"] {
            assert!(sent.get(k).is_none(), "{k} reached the upstream: {sent}");
        }
    }
}

/// Strict translation, from a route's policy or the project's setting: a target that would drop
/// a hint is passed over (nothing reaches it), and with no other target the request is refused
/// naming the hints; a request without such hints is served as before.
#[actix_rt::test]
async fn strict_translation_refuses_what_would_be_dropped() {
    let w = world("strict").await;
    let auth = format!("Bearer {}", w.key);
    let send = |model: &'static str, thinking: bool| {
        let mut body = json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
        if thinking {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
        }
        let (gw, auth) = (w.gw.info.gateway, auth.clone());
        async move {
            to11_tests::client::gateway(
                gw,
                awc::http::Method::POST,
                "/v1/messages",
                &[
                    ("x-to11-authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("anthropic-version", "2023-06-01"),
                ],
                Some(bytes::Bytes::from(body.to_string())),
            )
            .await
        }
    };
    w.route(
        "strict",
        "careful",
        "fallback",
        targets(&["a", "b"]),
        json!({"strict": true}),
    )
    .await;
    let r = send("careful", true).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        text.contains("unsupported_by_target") && text.contains("thinking"),
        "{text}"
    );
    assert_eq!(
        w.a.count(CHAT) + w.b.count(CHAT),
        0,
        "nothing went upstream"
    );
    assert_eq!(send("careful", false).await.status, 200);
    // Not strict: the hint is dropped and named.
    let r = send("a/m", true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("x-to11-dropped").unwrap(), "thinking");
    // The project's setting makes every request strict.
    let (s, p) = w
        .api
        .patch("/projects/strict", json!({"strict_translation": true}))
        .await;
    assert_eq!(
        (s, p["strict_translation"].as_bool()),
        (200, Some(true)),
        "{p}"
    );
    wait_version(
        &[w.gw.info.gateway],
        &w.project,
        p["version"].as_u64().expect("v"),
    )
    .await;
    let before = w.a.count(CHAT);
    let r = send("a/m", true).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(w.a.count(CHAT), before);
    assert_eq!(send("a/m", false).await.status, 200);
}
