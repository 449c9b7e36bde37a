#![allow(clippy::expect_used, clippy::unwrap_used)]
//! OpenTelemetry traces, received by a test OTLP/HTTP receiver that decodes them with the official
//! protobuf definitions (`tests/otel/receiver.py` over the pip package `opentelemetry-proto`,
//! pinned in `tests/otel/requirements.txt`, installed into `target/otel-venv` on first run): the
//! span tree of a routed request whose first target answers 503, continued from the client's
//! `traceparent` and passed on to each upstream as its attempt's context; and a dead collector,
//! which leaves every request served and is counted.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use to11_shared::config::Source;
use to11_shared::otel::{TraceParent, TraceSettings};
use to11_tests::client::{gateway, post_chat, wait_version, ApiClient};
use to11_tests::mock::{MockUpstream, Scripted, RICH_USAGE};
use to11_tests::redis_server::free_port;
use to11_tests::sandbox::{embedded_with, EmbeddedInfo, Spawned};

const CHAT: &str = "/v1/chat/completions";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The receiver process; its spans arrive on `spans`, one JSON object each.
struct Receiver {
    child: Child,
    port: u16,
    spans: mpsc::Receiver<Value>,
}

impl Receiver {
    fn start() -> Receiver {
        let bin = to11_tests::venv("otel-venv", "tests/otel/requirements.txt");
        let script = to11_tests::repo_root().join("tests/otel/receiver.py");
        let mut child = Command::new(bin.join("python"))
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the receiver starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a line").expect("utf-8");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .expect("listening <port>");
        let (tx, spans) = mpsc::channel();
        std::thread::spawn(move || forward(lines, tx));
        Receiver { child, port, spans }
    }

    /// The spans of `trace_id` once `n` have arrived (fails if they do not within a minute).
    fn spans_of(&self, trace_id: &str, n: usize) -> Vec<Value> {
        let mut got = vec![];
        while got.len() < n {
            let s = self
                .spans
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{n} spans of {trace_id} expected, got {got:#?}"));
            if s["trace_id"] == trace_id {
                got.push(s);
            }
        }
        got
    }
}

fn forward(lines: std::io::Lines<BufReader<ChildStdout>>, tx: mpsc::Sender<Value>) {
    for line in lines.map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str(&line) {
            if tx.send(v).is_err() {
                return;
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Trace settings read from the standard variables, as the binaries read them.
fn trace_settings(vars: &[(&str, &str)]) -> TraceSettings {
    let source = Source::from_pairs(vars);
    let mut r = source.reader();
    let s = TraceSettings::read(&mut r, "to11-data-plane");
    r.finish(()).expect("valid settings");
    s.expect("tracing on")
}

/// Embedded mode with `tracing`, a project `o` whose route `r` has the targets `mocks` (named
/// `a`, `b`, …; no retries, so a failure moves on), and a key.
async fn gateway_with(
    tracing: TraceSettings,
    mocks: &[&MockUpstream],
) -> (Spawned<EmbeddedInfo>, String, String) {
    let dir = std::env::temp_dir().join(format!("to11-traces-{}", uuid::Uuid::new_v4()));
    let gw = embedded_with(&dir, move |c| c.gateway.tracing = Some(tracing)).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "o", "slug": "o"}))
        .await;
    let mut targets = vec![];
    for (i, mock) in mocks.iter().enumerate() {
        let slug = ["a", "b"][i];
        let (s, e) = api
            .post(
                "/projects/o/providers",
                json!({"kind": "openai-compatible", "slug": slug, "base_url": mock.base_url(), "credential": {"api_key": "sk-up"}}),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        targets.push(json!({"provider": slug, "model": format!("m{i}")}));
    }
    let (s, r) = api
        .post(
            "/projects/o/routes",
            json!({"name": "r", "targets": targets, "policy": {"max_retries": 0}}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (_, k) = api.post("/projects/o/keys", json!({"name": "k"})).await;
    let id = p["id"].as_str().expect("id").to_string();
    wait_version(&[gw.info.gateway], &id, k["version"].as_u64().expect("v")).await;
    (gw, k["key"].as_str().expect("key").to_string(), id)
}

async fn metrics(addr: SocketAddr) -> String {
    let r = gateway(addr, awc::http::Method::GET, "/metrics", &[], None).await;
    String::from_utf8(r.body.to_vec()).unwrap()
}

fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until counter `name` of `/metrics` reaches `at_least` (the exporter counts after the
/// collector answered); its value.
async fn counted(addr: SocketAddr, name: &str, at_least: f64) -> f64 {
    for _ in 0..600 {
        let v = counter(&metrics(addr).await, name);
        if v >= at_least {
            return v;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never reached {at_least}: {}", metrics(addr).await);
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[actix_rt::test]
async fn a_routed_request_with_a_failed_attempt_is_one_trace_continued_from_the_client() {
    RICH_USAGE.store(true, std::sync::atomic::Ordering::Relaxed);
    let receiver = Receiver::start();
    let failing = MockUpstream::start("sk-up", &["m0"]);
    failing.always(Some(Scripted::error(503, "overloaded")));
    let serving = MockUpstream::start("sk-up", &["m1"]);
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let tracing = trace_settings(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=k%201"),
        ("OTEL_SERVICE_NAME", "gw-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
    ]);
    let (gw, key, project) = gateway_with(tracing, &[&failing, &serving]).await;

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let auth = format!("Bearer {key}");
    let body =
        json!({"model": "r", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let r = post_chat(
        gw.info.gateway,
        &[
            ("x-to11-authorization", &auth),
            ("traceparent", &traceparent),
            ("tracestate", "vendor=x"),
        ],
        &body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let request_id = r
        .header("x-to11-request-id")
        .expect("request id")
        .to_string();

    let spans = receiver.spans_of(TRACE_ID, 3);
    let root = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a server span");
    assert_eq!(
        root["parent_span_id"], CLIENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(root["trace_state"], "vendor=x");
    assert_eq!(root["name"], "chat r");
    assert_eq!(root["status_code"], 0, "a success leaves the status unset");
    assert_eq!(root["scope"], "to11-data-plane");
    assert_eq!(root["resource"]["service.name"], "gw-test");
    assert_eq!(root["resource"]["deployment.environment"], "test");
    assert_eq!(
        root["auth"], "k 1",
        "OTEL_EXPORTER_OTLP_HEADERS, percent-decoded"
    );
    for (k, v) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.request.model", json!("r")),
        ("gen_ai.response.model", json!("m1")),
        ("gen_ai.provider.name", json!("openai-compatible")),
        ("gen_ai.request.max_tokens", json!(64)),
        // The mock's rich usage: 10 prompt tokens (7 read from the cache), 6 completion tokens
        // (4 of reasoning).
        ("gen_ai.usage.input_tokens", json!(10)),
        ("gen_ai.usage.output_tokens", json!(6)),
        ("gen_ai.usage.cache_read.input_tokens", json!(7)),
        ("gen_ai.usage.reasoning.output_tokens", json!(4)),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("http.response.status_code", json!(200)),
        ("to11.layer", json!("route")),
        ("to11.route", json!("r")),
        ("to11.provider", json!("b")),
        ("to11.project", json!(project)),
        ("to11.request_id", json!(request_id)),
        ("to11.attempts", json!(2)),
    ] {
        assert_eq!(attr(root, k), &v, "{k}: {root:#}");
    }
    let root_id = root["span_id"].as_str().unwrap();
    let mut attempts: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    attempts.sort_by_key(|s| s["start"].as_u64());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for (a, (provider, model, status, mock)) in attempts
        .iter()
        .zip([("a", "m0", 503, &failing), ("b", "m1", 200, &serving)])
    {
        assert_eq!(a["parent_span_id"], root_id, "{a:#}");
        assert_eq!(a["name"], format!("chat {model}"));
        assert_eq!(attr(a, "to11.provider"), provider);
        assert_eq!(attr(a, "gen_ai.request.model"), model);
        assert_eq!(attr(a, "gen_ai.provider.name"), "openai-compatible");
        assert_eq!(attr(a, "http.response.status_code"), status);
        assert_eq!(attr(a, "server.address"), "127.0.0.1");
        let port = mock
            .base_url()
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert_eq!(attr(a, "server.port"), port);
        // The upstream was sent this attempt's context, in the client's trace.
        let got = mock.last_request(CHAT).expect("the mock was called");
        let sent = TraceParent::parse(got.header("traceparent").expect("traceparent").as_bytes())
            .expect("a valid traceparent");
        assert_eq!(to11_shared::otel::context::hex(&sent.trace_id.0), TRACE_ID);
        assert_eq!(
            to11_shared::otel::context::hex(&sent.span_id.0),
            a["span_id"].as_str().unwrap()
        );
        assert!(sent.sampled);
        assert_eq!(got.header("tracestate"), Some("vendor=x"));
    }
    assert_eq!(attempts[0]["status_code"], 2, "the 503 attempt is an error");
    assert_eq!(attr(attempts[0], "error.type"), "503");
    assert_eq!(attempts[1]["status_code"], 0);
    assert!(attempts[1]["attributes"].get("error.type").is_none());
    counted(gw.info.gateway, "to11_trace_spans_exported_total", 3.0).await;

    // A streamed answer: its finish reason is read from the stream as it passes.
    let streamed = "5bf92f3577b34da6a3ce929d0e0e4737";
    let body_stream =
        json!({"model": "r", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = post_chat(
        gw.info.gateway,
        &[
            ("x-to11-authorization", &auth),
            ("traceparent", &format!("00-{streamed}-{CLIENT_SPAN}-01")),
        ],
        &body_stream.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let spans = receiver.spans_of(streamed, 3);
    let root = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a server span");
    assert_eq!(attr(root, "gen_ai.request.stream"), true, "{root:#}");
    assert_eq!(
        attr(root, "gen_ai.response.finish_reasons"),
        &json!(["stop"]),
        "{root:#}"
    );

    // The sampler's ratio is 0: a request without a sampled parent is not traced, and the
    // client's unsampled traceparent goes upstream as it came.
    let unsampled = format!("00-{TRACE_ID}-{CLIENT_SPAN}-00");
    let r = post_chat(
        gw.info.gateway,
        &[("x-to11-authorization", &auth), ("traceparent", &unsampled)],
        &body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = serving.last_request(CHAT).expect("called");
    assert_eq!(got.header("traceparent"), Some(unsampled.as_str()));
    gw.stop();
}

#[actix_rt::test]
async fn a_dead_collector_leaves_requests_served_and_counts_its_failures() {
    let mock = MockUpstream::start("sk-up", &["m0"]);
    // Nothing listens there.
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", free_port());
    let tracing = trace_settings(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
    ]);
    let (gw, key, _) = gateway_with(tracing, &[&mock]).await;
    let auth = format!("Bearer {key}");
    let body = json!({"model": "r", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    for _ in 0..20 {
        let r = post_chat(gw.info.gateway, &[("x-to11-authorization", &auth)], &body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    counted(gw.info.gateway, "to11_trace_export_failures_total", 1.0).await;
    let page = metrics(gw.info.gateway).await;
    assert!(
        counter(&page, "to11_trace_spans_dropped_total") >= 1.0,
        "{page}"
    );
    assert_eq!(counter(&page, "to11_trace_spans_exported_total"), 0.0);
    assert_eq!(mock.count(CHAT), 20);
    gw.stop();
}
