#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Many tenants on one deployment: a private Redis, the real `to11-control-plane` and
//! `to11-data-plane` binaries (release builds from `tests/bench-scale.sh`), and N projects created
//! through the API, each with a provider exposing 3 models and a key. Prints one row: writes per
//! second while creating them, both processes' RSS, how long the control plane takes to restart
//! over them, how long a fresh replica takes to be ready, and the propagation p99 of a write to
//! that replica.
//!
//! Settings: `BENCH_PROJECTS` (10000), `BENCH_CONCURRENCY` (16), `BENCH_BIN_DIR`
//! (`target/release`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::{free_port, RedisServer};

const ADMIN: &str = "bench-Operator-Token-7f3a9c21d4";
const MASTER: &str = "bXktYmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy0wMDA=";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bin(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()))
        .join(name)
}

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn spawn(name: &str, listen_var: &str, redis: &str) -> Proc {
    let port = free_port();
    let mut child = Command::new(bin(name))
        .env("TO11_REDIS_URL", redis)
        .env("TO11_ADMIN_TOKEN", ADMIN)
        .env("TO11_MASTER_KEY", MASTER)
        .env(listen_var, format!("127.0.0.1:{port}"))
        .env("TO11_ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("TO11_GATEWAY_WORKERS", "1")
        .env("TO11_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts ({e}); build it first: tests/bench-scale.sh"));
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    std::thread::spawn(move || for _ in out.lines().map_while(Result::ok) {});
    Proc {
        child,
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
    }
}

/// Waits until `GET http://addr{path}` answers 200; the time it took.
async fn ready(c: &awc::Client, addr: SocketAddr, path: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if let Ok(r) = c.get(format!("http://{addr}{path}")).send().await {
            if r.status().as_u16() == 200 {
                return t.elapsed();
            }
        }
        assert!(
            t.elapsed() < limit,
            "{addr}{path} not ready within {limit:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(c: &awc::Client, api: SocketAddr, path: &str, body: Value) -> Value {
    let mut r = c
        .post(format!("http://{api}/api/v1{path}"))
        .insert_header(("authorization", format!("Bearer {ADMIN}")))
        .timeout(Duration::from_secs(30))
        .send_json(&body)
        .await
        .expect("api answers");
    let v: Value = r.json().limit(1 << 20).await.unwrap_or_default();
    assert!(r.status().is_success(), "{path}: {} {v}", r.status());
    v
}

/// A project with a provider exposing 3 models and a key: 3 writes. The key's version.
async fn create(c: &awc::Client, api: SocketAddr, mock: &str, i: usize) -> (String, u64) {
    let slug = format!("p{i}");
    let p = post(c, api, "/projects", json!({"name": slug, "slug": slug})).await;
    post(
        c,
        api,
        &format!("/projects/{slug}/providers"),
        json!({"kind": "openai-compatible", "base_url": mock, "credential": {"api_key": "sk-scale"}}),
    )
    .await;
    let k = post(
        c,
        api,
        &format!("/projects/{slug}/keys"),
        json!({"name": "k"}),
    )
    .await;
    (
        p["id"].as_str().unwrap_or_default().to_string(),
        k["version"].as_u64().unwrap_or(0),
    )
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n = setting("BENCH_PROJECTS", 10_000);
    let conc = setting("BENCH_CONCURRENCY", 16);
    let redis = RedisServer::start(false);
    let url = redis.url();
    let mock = MockUpstream::start("sk-scale", &["m1", "m2", "m3"]);
    actix_rt::System::new().block_on(async move {
        let c = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let mut cp = spawn("to11-control-plane", "TO11_API_LISTEN", &url);
        ready(&c, cp.addr, "/readyz", Duration::from_secs(60)).await;
        let base = mock.base_url();
        let t = Instant::now();
        let made: Vec<(String, u64)> = futures_util::stream::iter(0..n)
            .map(|i| {
                let (c, base) = (c.clone(), base.clone());
                let api = cp.addr;
                async move { create(&c, api, &base, i).await }
            })
            .buffer_unordered(conc)
            .collect()
            .await;
        let writes_per_s = (3 * n) as f64 / t.elapsed().as_secs_f64();
        let cp_rss = cp.rss_mb();
        // The control plane restarted over every project.
        drop(cp);
        let t = Instant::now();
        cp = spawn("to11-control-plane", "TO11_API_LISTEN", &url);
        ready(&c, cp.addr, "/readyz", Duration::from_secs(600)).await;
        let cp_restart = t.elapsed();
        // A fresh replica: ready once every project's snapshot is applied.
        let dp = spawn("to11-data-plane", "TO11_GATEWAY_LISTEN", &url);
        let cold = ready(&c, dp.addr, "/readyz", Duration::from_secs(600)).await;
        let dp_rss = dp.rss_mb();
        // Propagation: a write, then until the replica serves its version.
        let mut lat = Vec::new();
        for (id, _) in made.iter().step_by((n / 200).max(1)).take(200) {
            let t = Instant::now();
            let k = post(&c, cp.addr, &format!("/projects/{id}/keys"), json!({"name": "k2"})).await;
            let v = k["version"].as_u64().unwrap_or(0);
            loop {
                let mut r = c
                    .get(format!("http://{}/readyz?project={id}", dp.addr))
                    .send()
                    .await
                    .expect("replica answers");
                let body: Value = r.json().await.unwrap_or_default();
                if body["project_version"].as_u64().unwrap_or(0) >= v {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(30), "never propagated: {body}");
                actix_rt::time::sleep(Duration::from_micros(500)).await;
            }
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let p99 = percentile(&mut lat, 0.99);
        println!("| projects | writes/s | replica RSS | control-plane RSS | control-plane restart | replica cold start | propagation p99 |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        println!(
            "| {n} | {writes_per_s:.0} | {dp_rss:.0} MB | {cp_rss:.0} MB | {:.2} s | {:.2} s | {p99:.1} ms |",
            cp_restart.as_secs_f64(),
            cold.as_secs_f64()
        );
        drop(dp);
        drop(cp);
    });
    drop(redis);
}
