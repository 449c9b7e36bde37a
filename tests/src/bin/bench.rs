#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `to11-bench`: one proxy hop, side by side in one run — direct to a fast mock upstream, through
//! nginx `proxy_pass` (upstream keepalive) and through a to11 data-plane replica — printing
//! requests/s (closed loop), p50/p99 latency at a fixed request rate (open loop, measured from the
//! intended send time), and CPU time per request of the proxy process, with the ratios.
//!
//! Run it with `tests/bench.sh`, which builds in release mode, installs nginx if missing and pins
//! the proxies to core 0 and this load generator and the mock to core 1.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use to11_tests::client::{replica_version, ApiClient};
use to11_tests::redis_server::{free_port, RedisServer};
use to11_tests::sandbox::{control_plane, master_key, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Opts {
    connections: usize,
    seconds: u64,
    rate: u64,
    changes: u64,
    rounds: usize,
}

fn opts() -> Opts {
    let n = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    Opts {
        connections: n("BENCH_CONNECTIONS", 32) as usize,
        seconds: n("BENCH_SECONDS", 5),
        rate: n("BENCH_RATE", 5000),
        changes: n("BENCH_CHANGES", 200),
        rounds: n("BENCH_METERING_ROUNDS", 4) as usize,
    }
}

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5}"#;

fn request_bytes(addr: SocketAddr, auth: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes()
}

thread_local! {
    /// The first answer that was not a 200, shown when a run fails.
    static FIRST_FAILURE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Reads one HTTP/1.1 response with a content-length body; returns false on a non-200.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let ok = head.starts_with("HTTP/1.1 200");
            if !ok {
                FIRST_FAILURE.with(|f| {
                    if f.borrow().is_empty() {
                        let body = &buf[end..buf.len().min(end + 400)];
                        *f.borrow_mut() = format!("{head}\n{}", String::from_utf8_lossy(body));
                    }
                });
            }
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| std::io::Error::other(format!("no content-length in: {head}")))?;
            let total = end + 4 + len;
            while buf.len() < total {
                read_more(s, buf).await?;
            }
            buf.drain(..total);
            return Ok(ok);
        }
        read_more(s, buf).await?;
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut tmp = [0u8; 16384];
    let n = s.read(&mut tmp).await?;
    if n == 0 {
        return Err(std::io::Error::other("connection closed"));
    }
    buf.extend_from_slice(&tmp[..n]);
    Ok(())
}

/// Closed loop: every connection sends as fast as answers come back. Returns completed requests.
async fn closed_loop(addr: SocketAddr, req: &[u8], conns: usize, dur: Duration) -> (u64, u64) {
    let deadline = Instant::now() + dur;
    let mut tasks = vec![];
    for _ in 0..conns {
        let req = req.to_vec();
        tasks.push(tokio::task::spawn_local(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).ok();
            let mut buf = Vec::with_capacity(4096);
            let (mut ok, mut bad) = (0u64, 0u64);
            while Instant::now() < deadline {
                s.write_all(&req).await.expect("write");
                match read_response(&mut s, &mut buf).await {
                    Ok(true) => ok += 1,
                    Ok(false) => bad += 1,
                    // A server may close a keep-alive connection between requests: reconnect.
                    Err(_) if buf.is_empty() => {
                        s = TcpStream::connect(addr).await.expect("reconnect");
                        s.set_nodelay(true).ok();
                    }
                    Err(e) => panic!("{addr}: {e}"),
                }
            }
            (ok, bad)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (o, b) = t.await.expect("task");
        total.0 += o;
        total.1 += b;
    }
    total
}

/// Open loop at a fixed rate spread over the connections; latency from the intended send time.
async fn fixed_rate(
    addr: SocketAddr,
    req: &[u8],
    conns: usize,
    rate: u64,
    dur: Duration,
) -> Vec<Duration> {
    let per_conn = Duration::from_secs_f64(conns as f64 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let total = (rate as f64 * dur.as_secs_f64()) as u64 / conns as u64;
    let mut tasks = vec![];
    for c in 0..conns {
        let req = req.to_vec();
        let offset = per_conn.mul_f64(c as f64 / conns as f64);
        tasks.push(tokio::task::spawn_local(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).ok();
            let mut buf = Vec::with_capacity(4096);
            let mut lat = Vec::with_capacity(total as usize);
            let mut prev_done = Instant::now();
            for i in 0..total {
                let intended = start + offset + per_conn.mul_f64(i as f64);
                // Late because the previous answer was late: count from the intended time (no
                // coordinated omission). On time: count from the actual send, so the timer's
                // millisecond granularity is not charged to the server.
                let from = if prev_done >= intended {
                    intended
                } else {
                    tokio::time::sleep_until(intended.into()).await;
                    Instant::now()
                };
                s.write_all(&req).await.expect("write");
                read_response(&mut s, &mut buf).await.expect("response");
                prev_done = Instant::now();
                lat.push(prev_done - from);
            }
            lat
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// utime + stime of a process and its threads, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

struct Row {
    name: &'static str,
    rps: f64,
    p50: f64,
    p99: f64,
    cpu_us: Option<f64>,
}

async fn measure(name: &'static str, addr: SocketAddr, req: &[u8], pids: &[u32], o: &Opts) -> Row {
    eprintln!("measuring {name} at {addr}");
    // Warm up connection pools.
    closed_loop(addr, req, o.connections, Duration::from_secs(1)).await;
    let t0 = cpu_ticks(pids);
    let started = Instant::now();
    let (ok, bad) = closed_loop(addr, req, o.connections, Duration::from_secs(o.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pids) - t0;
    assert_eq!(
        bad,
        0,
        "{name}: non-200 answers, the first: {}",
        FIRST_FAILURE.with(|f| f.borrow().clone())
    );
    let lat = fixed_rate(
        addr,
        req,
        o.connections,
        o.rate,
        Duration::from_secs(o.seconds),
    )
    .await;
    Row {
        name,
        rps: ok as f64 / elapsed,
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        cpu_us: (!pids.is_empty()).then(|| ticks as f64 * 10_000.0 / ok as f64),
    }
}

/// CPU µs per request of `pids` over one closed-loop run of `o.seconds` against `addr`.
async fn cpu_per_request(addr: SocketAddr, req: &[u8], pids: &[u32], o: &Opts) -> f64 {
    let t0 = cpu_ticks(pids);
    let (ok, bad) = closed_loop(addr, req, o.connections, Duration::from_secs(o.seconds)).await;
    assert_eq!(bad, 0, "{addr}: non-200 answers");
    (cpu_ticks(pids) - t0) as f64 * 10_000.0 / ok as f64
}

/// Metering's cost: the metered and the unmetered replica measured in alternating rounds (the
/// order flips each round), so drifts of a shared machine fall on both. Returns the per-round
/// CPU µs per request of each.
async fn metering_rounds(
    on: (SocketAddr, &[u8], u32),
    off: (SocketAddr, &[u8], u32),
    o: &Opts,
) -> (Vec<f64>, Vec<f64>) {
    let (mut with, mut without) = (vec![], vec![]);
    for round in 0..o.rounds {
        eprintln!("metering on/off, round {}", round + 1);
        if round % 2 == 0 {
            with.push(cpu_per_request(on.0, on.1, &[on.2], o).await);
            without.push(cpu_per_request(off.0, off.1, &[off.2], o).await);
        } else {
            without.push(cpu_per_request(off.0, off.1, &[off.2], o).await);
            with.push(cpu_per_request(on.0, on.1, &[on.2], o).await);
        }
    }
    (with, without)
}

/// Admission control's cost: the same replica called with a key that has limits and a budget and
/// with one that has none, in alternating rounds; each round gives CPU µs per request (closed
/// loop) and the p99 latency at `o.rate` (open loop) of both: (limited, plain) pairs.
async fn limits_rounds(
    gw: SocketAddr,
    pid: u32,
    limited: &[u8],
    plain: &[u8],
    o: &Opts,
) -> (Vec<(f64, f64)>, Vec<(f64, f64)>) {
    let (mut cpu, mut p99) = (vec![], vec![]);
    let dur = Duration::from_secs(o.seconds);
    for round in 0..o.rounds {
        eprintln!("limits on/off, round {}", round + 1);
        let order: [(&[u8], bool); 2] = if round % 2 == 0 {
            [(limited, true), (plain, false)]
        } else {
            [(plain, false), (limited, true)]
        };
        let (mut c, mut l) = ((0.0, 0.0), (0.0, 0.0));
        for (req, is_limited) in order {
            let cpu_us = cpu_per_request(gw, req, &[pid], o).await;
            let lat = fixed_rate(gw, req, o.connections, o.rate, dur).await;
            let p = pct(&lat, 0.99);
            if is_limited {
                (c.0, l.0) = (cpu_us, p);
            } else {
                (c.1, l.1) = (cpu_us, p);
            }
        }
        cpu.push(c);
        p99.push(l);
    }
    (cpu, p99)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Configuration propagation: sequential writes through the API, each timed from the API's
/// acknowledgement to the replica reporting that version (polled over HTTP, ~0.1 ms apart).
async fn propagation(api: &ApiClient, gw: SocketAddr, project: &str, n: u64) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let models = if i % 2 == 0 {
            json!(["gpt-4o", "gpt-4o-mini"])
        } else {
            json!(["gpt-4o"])
        };
        let (s, w) = api
            .put(
                "/projects/bench/providers/openai/models",
                json!({ "exposed": models }),
            )
            .await;
        let acked = Instant::now();
        assert_eq!(s, 200, "{w}");
        let v = w["version"].as_u64().expect("version");
        while replica_version(gw, project).await < v {
            assert!(
                acked.elapsed() < Duration::from_secs(10),
                "version {v} never arrived"
            );
        }
        out.push(acked.elapsed());
    }
    out.sort();
    out
}

fn sibling(bin: &str) -> std::path::PathBuf {
    std::env::current_exe().expect("exe").with_file_name(bin)
}

fn pinned(core: &str, program: &std::path::Path) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(core).arg(program);
    c
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        // SIGTERM first, so nginx's master takes its workers down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mock() -> (Kill, SocketAddr) {
    let mut child = pinned("1", &sibling("to11-mock-upstream"))
        .arg("127.0.0.1:0")
        .arg("--fast")
        .stdout(Stdio::piped())
        .spawn()
        .expect("mock");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("addr");
    (Kill(child), line.trim().parse().expect("mock addr"))
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx as the yardstick; stopped (then its directory removed) when the guards drop.
fn start_nginx(upstream: SocketAddr) -> ((Kill, TempDir), SocketAddr, Vec<u32>) {
    let dir = std::env::temp_dir().join(format!("to11-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000000;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n\
           upstream mock {{ server {upstream}; keepalive 64; keepalive_requests 100000000; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("conf");
    let child = pinned("0", std::path::Path::new("nginx"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (install it: apt-get install nginx)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_port(addr);
    // taskset execs nginx: its pid is the master; the worker is its child.
    let master = child.id();
    let mut pids = vec![master];
    for _ in 0..100 {
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        let kids: Vec<u32> = children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if !kids.is_empty() {
            pids.extend(kids);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ((Kill(child), TempDir(dir)), addr, pids)
}

/// A counter from a replica's `/metrics`.
async fn metric(gw: SocketAddr, name: &str) -> u64 {
    let r = to11_tests::client::gateway(gw, awc::http::Method::GET, "/metrics", &[], None).await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_port(addr: SocketAddr) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{addr} never opened");
}

/// A data-plane replica on core 0, metering every request into the Redis stream or not at all.
fn start_replica(redis: &RedisServer, metering: bool) -> (Kill, SocketAddr, u32) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let gw = pinned("0", &sibling("to11-data-plane"))
        .env("TO11_REDIS_URL", redis.url())
        .env("TO11_REDIS_PREFIX", "bench:")
        .env("TO11_MASTER_KEY", master_key())
        .env("TO11_GATEWAY_LISTEN", addr.to_string())
        .env("TO11_GATEWAY_WORKERS", "1")
        .env("TO11_USAGE", metering.to_string())
        // The mock upstream is on loopback, which replicas refuse without the allowance.
        .env("TO11_ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("TO11_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("to11-data-plane");
    let pid = gw.id();
    (Kill(gw), addr, pid)
}

fn main() {
    let o = opts();
    let redis = RedisServer::start(false);
    let (_mock, mock_addr) = start_mock();
    let (_nginx, nginx_addr, nginx_pids) = start_nginx(mock_addr);

    let cp = control_plane(&redis.url(), "bench:").expect("control plane");
    let sys = actix_rt::System::new();
    let (key, limited_key, project, version) = sys.block_on(async {
        let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
        let (_, p) = api.post("/projects", json!({"name": "Bench"})).await;
        let (s, prov) = api
            .post(
                "/projects/bench/providers",
                json!({"kind": "openai", "base_url": format!("http://{mock_addr}/v1"), "credential": {"api_key": "sk-mock"}, "models": ["gpt-4o"]}),
            )
            .await;
        assert_eq!(s, 201, "{prov}");
        let (_, k) = api.post("/projects/bench/keys", json!({"name": "bench"})).await;
        // The same requests through a key whose limits never refuse, with a budget (gpt-4o is
        // priced): what admission control costs.
        let (_, l) = api
            .post(
                "/projects/bench/keys",
                json!({"name": "limited", "limits": {"requests_per_minute": 100_000_000u64,
                    "tokens_per_minute": 100_000_000_000u64, "concurrent": 1000,
                    "budget": {"amount": "1000000", "period": "month"}}}),
            )
            .await;
        (
            k["key"].as_str().expect("key").to_string(),
            l["key"].as_str().expect("limited key").to_string(),
            p["id"].as_str().expect("id").to_string(),
            l["version"].as_u64().expect("v"),
        )
    });

    let (_gw, gw_addr, gw_pid) = start_replica(&redis, true);
    let (_plain, plain_addr, plain_pid) = start_replica(&redis, false);

    let prop = sys.block_on(async {
        to11_tests::wait_until("replica ready", 20, || async {
            (replica_version(gw_addr, &project).await >= version).then_some(())
        })
        .await;
        let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
        propagation(&api, gw_addr, &project, o.changes).await
    });

    let rows = sys.block_on(async {
        for gw in [gw_addr, plain_addr] {
            to11_tests::wait_until("replica ready", 20, || async {
                (replica_version(gw, &project).await >= version).then_some(())
            })
            .await;
        }
        let direct = request_bytes(mock_addr, "authorization: Bearer sk-mock");
        let via_nginx = request_bytes(nginx_addr, "authorization: Bearer sk-mock");
        let auth = format!("x-to11-authorization: Bearer {key}");
        let via_to11 = request_bytes(gw_addr, &auth);
        let via_plain = request_bytes(plain_addr, &auth);
        let via_limited = request_bytes(
            gw_addr,
            &format!("x-to11-authorization: Bearer {limited_key}"),
        );
        let rows = vec![
            measure("direct (no hop)", mock_addr, &direct, &[], &o).await,
            measure("nginx proxy_pass", nginx_addr, &via_nginx, &nginx_pids, &o).await,
            measure("to11 data plane", gw_addr, &via_to11, &[gw_pid], &o).await,
            measure(
                "to11, no metering",
                plain_addr,
                &via_plain,
                &[plain_pid],
                &o,
            )
            .await,
            measure("to11, key limited", gw_addr, &via_limited, &[gw_pid], &o).await,
        ];
        let rounds = metering_rounds(
            (gw_addr, &via_to11, gw_pid),
            (plain_addr, &via_plain, plain_pid),
            &o,
        )
        .await;
        let limited = limits_rounds(gw_addr, gw_pid, &via_limited, &via_to11, &o).await;
        (rows, rounds, limited)
    });
    let (rows, (with, without), (limit_cpu, limit_p99)) = rows;
    let (shipped, dropped) = sys.block_on(async {
        (
            metric(gw_addr, "to11_usage_records_shipped_total").await,
            metric(gw_addr, "to11_usage_records_dropped_total").await,
        )
    });

    println!(
        "\none proxy hop, {} connections, {} s closed loop for req/s, {} req/s open loop for latency, proxies on core 0\n",
        o.connections, o.seconds, o.rate
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>14}",
        "target", "req/s", "p50 ms", "p99 ms", "CPU µs/req"
    );
    for r in &rows {
        let cpu = r
            .cpu_us
            .map(|c| format!("{c:.1}"))
            .unwrap_or_else(|| "—".into());
        println!(
            "{:<18} {:>10.0} {:>10.3} {:>10.3} {:>14}",
            r.name, r.rps, r.p50, r.p99, cpu
        );
    }
    let (n, t) = (&rows[1], &rows[2]);
    println!(
        "\nto11 / nginx: throughput {:.2}×, p50 {:.2}×, p99 {:.2}×, CPU per request {:.2}×",
        t.rps / n.rps,
        t.p50 / n.p50,
        t.p99 / n.p99,
        t.cpu_us.unwrap_or(f64::NAN) / n.cpu_us.unwrap_or(f64::NAN)
    );
    println!("to11 / direct: throughput {:.2}×", t.rps / rows[0].rps);
    let ratios: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    let list = |v: &[f64], d: usize| {
        v.iter()
            .map(|x| format!("{x:.*}", d))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "\nmetering on vs off, {} alternating rounds of {} s, CPU µs/req: on {} | off {}\n\
         metering on / off: CPU per request {:.3}× (median of rounds {}); {shipped} request records shipped to the Redis stream, {dropped} dropped",
        o.rounds,
        o.seconds,
        list(&with, 1),
        list(&without, 1),
        median(&ratios),
        list(&ratios, 3),
    );
    println!(
        "\nconfiguration propagation over Redis, {} sequential changes, API ack → replica applied: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        prop.len(),
        pct(&prop, 0.50),
        pct(&prop, 0.99),
        prop.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
    );
    let cpu_ratios: Vec<f64> = limit_cpu.iter().map(|(l, p)| l / p).collect();
    let p99_added: Vec<f64> = limit_p99.iter().map(|(l, p)| l - p).collect();
    println!(
        "\nkey with limits and a budget vs none (same metered replica), {} alternating rounds: \
         CPU per request {:.3}× (median of rounds {}); p99 at {} req/s {:+.3} ms (median of rounds {})",
        o.rounds,
        median(&cpu_ratios),
        list(&cpu_ratios, 3),
        o.rate,
        median(&p99_added),
        list(&p99_added, 3),
    );
    drop(cp);
}
