#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `/metrics` of both planes, read back through a real Prometheus (Debian's `prometheus`, started
//! here on a free port with a configuration and a TSDB of its own) after real requests through the
//! gateway: the series and values an operator's queries use. The expositions pass
//! `promtool check metrics`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use to11_tests::client::{gateway, post_chat, wait_version, ApiClient};
use to11_tests::mock::{MockUpstream, RICH_USAGE};
use to11_tests::redis_server::{free_port, RedisServer};
use to11_tests::sandbox::{control_plane_metered, replica, ADMIN_TOKEN};

const UPSTREAM_KEY: &str = "sk-metrics";

/// A Prometheus scraping `gateway` and `control_plane` every 200 ms.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(gateway: SocketAddr, control_plane: SocketAddr) -> Prometheus {
        let dir = TempDir::new("prom");
        let config = format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n\
             scrape_configs:\n\
             \x20 - job_name: gateway\n    static_configs:\n      - targets: ['{gateway}']\n\
             \x20 - job_name: control-plane\n    static_configs:\n      - targets: ['{control_plane}']\n"
        );
        let config_path = dir.0.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian's package; tests/run.sh installs it)");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The value of an instant query's single result (`None`: no result yet).
    async fn value(&self, query: &str) -> Option<f64> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let mut r = to11_tests::client::http()
            .get(url)
            .query(&[("query", query)])
            .ok()?
            .send()
            .await
            .ok()?;
        let v: Value = r.json().limit(1 << 20).await.ok()?;
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: one series expected, got {v}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` evaluates to `want` (Prometheus scrapes on its own schedule); fails
    /// with the last value seen if it never does.
    async fn expect(&self, query: &str, want: f64) {
        let until = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        while Instant::now() < until {
            last = self.value(query).await;
            if last == Some(want) {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{query}: expected {want}, last value {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("to11-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `promtool check metrics` on an exposition: passes, with nothing to say.
fn promtool_accepts(text: &str, what: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool on the {what}'s metrics: {said}\n{text}"
    );
}

async fn scrape(addr: SocketAddr) -> String {
    let r = gateway(addr, awc::http::Method::GET, "/metrics", &[], None).await;
    assert_eq!(r.status, 200);
    String::from_utf8(r.body.to_vec()).unwrap()
}

#[actix_rt::test]
async fn prometheus_reads_both_planes_series_after_real_requests() {
    RICH_USAGE.store(true, std::sync::atomic::Ordering::Relaxed);
    let redis = RedisServer::start(false);
    let data = TempDir::new("metrics-usage");
    let db = format!("sqlite://{}", data.0.join("usage.db").display());
    let cp = control_plane_metered(&redis.url(), "metrics:", &db).expect("control plane");
    let dp = replica(&redis.url(), "metrics:").expect("replica");
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);

    let (s, p) = api.post("/projects", json!({"name": "Metrics"})).await;
    assert_eq!(s, 201, "{p}");
    let (s, e) = api
        .post(
            "/projects/metrics/providers",
            json!({"kind": "openai-compatible", "slug": "up", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (s, k) = api
        .post("/projects/metrics/keys", json!({"name": "k"}))
        .await;
    assert_eq!(s, 201, "{k}");
    let id = p["id"].as_str().unwrap();
    wait_version(&[dp.info], id, k["version"].as_u64().unwrap()).await;
    let auth = format!("Bearer {}", k["key"].as_str().unwrap());

    // Five whole answers, two streamed, one unknown model (404), one bad key (401).
    for i in 0..7 {
        let body = json!({"model": "up/gpt-4o", "stream": i >= 5,
            "messages": [{"role": "user", "content": "hi"}]});
        let r = post_chat(
            dp.info,
            &[("x-to11-authorization", &auth)],
            &body.to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = post_chat(
        dp.info,
        &[("x-to11-authorization", &auth)],
        r#"{"model":"up/not-exposed","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = post_chat(
        dp.info,
        &[("x-to11-authorization", "Bearer to11_gk_nope")],
        r#"{"model":"up/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 401);

    let gw_text = scrape(dp.info).await;
    let cp_text = scrape(cp.info.addr).await;
    promtool_accepts(&gw_text, "gateway");
    promtool_accepts(&cp_text, "control plane");
    assert!(
        !gw_text.contains("not-exposed"),
        "a model nothing resolves never becomes a label"
    );
    assert!(!gw_text.contains("project="), "no project label by default");

    let prom = Prometheus::start(dp.info, cp.info.addr);
    let ok = r#"surface="chat",provider="openai-compatible",model="up/gpt-4o",layer="passthrough""#;
    prom.expect(r#"up{job="gateway"}"#, 1.0).await;
    prom.expect(r#"up{job="control-plane"}"#, 1.0).await;
    prom.expect(&format!(r#"to11_requests_total{{{ok},status="2xx"}}"#), 7.0)
        .await;
    prom.expect(
        r#"to11_requests_total{surface="chat",model="none",layer="none",status="4xx"}"#,
        1.0,
    )
    .await;
    prom.expect(r#"sum(to11_requests_total{status="4xx"})"#, 2.0)
        .await;
    prom.expect(r#"to11_request_errors_total{fault="client"}"#, 2.0)
        .await;
    prom.expect(&format!("to11_request_duration_seconds_count{{{ok}}}"), 7.0)
        .await;
    prom.expect(
        &format!("to11_time_to_first_byte_seconds_count{{{ok}}}"),
        7.0,
    )
    .await;
    prom.expect("sum(to11_gateway_overhead_seconds_count)", 9.0)
        .await;
    // Every request's overhead fell in a finite bucket, and is no more than its whole duration.
    prom.expect(r#"sum(to11_gateway_overhead_seconds_bucket{le="1"})"#, 9.0)
        .await;
    prom.expect(&format!("to11_upstream_attempts_total{{{ok}}}"), 7.0)
        .await;
    prom.expect("to11_requests_in_flight", 0.0).await;
    // The mocks' rich usage: 10 prompt tokens of which 7 cached, 6 completion of which 4
    // reasoning, on each of the seven answers (whole and streamed).
    for (kind, each) in [
        ("input", 3.0),
        ("cache_read", 7.0),
        ("output", 6.0),
        ("reasoning", 4.0),
    ] {
        prom.expect(
            &format!(r#"to11_tokens_total{{{ok},kind="{kind}"}}"#),
            7.0 * each,
        )
        .await;
    }
    prom.expect("to11_config_projects", 1.0).await;
    prom.expect("to11_config_subscribed", 1.0).await;
    prom.expect("to11_config_reconcile_age_seconds < bool 60", 1.0)
        .await;
    // Eight authenticated requests leave eight records; the control plane ingests them.
    prom.expect("to11_usage_records_shipped_total", 8.0).await;
    prom.expect("to11_usage_records_dropped_total", 0.0).await;
    prom.expect("to11_cp_usage_records_total", 8.0).await;
    prom.expect(
        r#"to11_cp_api_requests_total{method="POST",route="/api/v1/projects",status="201"}"#,
        1.0,
    )
    .await;
    prom.expect(
        r#"sum(to11_cp_api_write_duration_seconds_count{route="/api/v1/projects/{p}/keys"})"#,
        1.0,
    )
    .await;
    prom.expect(
        r#"to11_cp_probes_total{provider="openai-compatible",outcome="ok"}"#,
        1.0,
    )
    .await;
    prom.expect("to11_cp_projects", 1.0).await;
}
