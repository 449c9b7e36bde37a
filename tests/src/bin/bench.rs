#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `to11-bench`: one proxy hop, side by side in one run — direct to a fast mock upstream, through
//! nginx `proxy_pass` (upstream keepalive) and through a to11 data-plane replica — printing
//! requests/s (closed loop), p50/p99 latency at a fixed request rate (open loop, measured from the
//! intended send time), and CPU time per request of the proxy process, with the ratios. Further
//! rows: the closed loop at many connections, the added p99 and CPU at a fixed low rate, SSE
//! streams, OpenAI chat translated to an Anthropic upstream, and an upstream that writes its
//! headers and body ~1 ms apart (the stall check); then a summary of to11 / nginx with the targets.
//!
//! Run it with `tests/bench.sh`, which builds in release mode, installs nginx if missing and pins
//! the proxies to core 0 and this load generator and the mock to core 1.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use to11_tests::client::{replica_version, ApiClient};
use to11_tests::mock::FAST_BODY;
use to11_tests::redis_server::{free_port, RedisServer};
use to11_tests::sandbox::{control_plane, master_key, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Settings, from the environment (see `tests/bench.sh`).
struct Opts {
    connections: usize,
    high_connections: usize,
    seconds: u64,
    rate: u64,
    fixed_rate: u64,
    stall_requests: u64,
    changes: u64,
    rounds: usize,
    /// `BENCH_PAIR_RATE` (10,000 req/s; 0: none): metering's and observability's rounds also at
    /// this fixed rate, where both replicas are offered the same load (in a closed loop, a slower
    /// replica leaves the load generator's core idle more often, and each wake-up of it costs the
    /// replica more).
    pair_rate: u64,
    /// `BENCH_ONLY=metering` or `observability`: only those rounds (a quick check of their
    /// cost); `hop`: only nginx, the floor and to11 closed loops (32 and 256 connections,
    /// streams); `limits`: only the rounds of a key with limits and a budget against a plain one.
    only: Option<String>,
    /// `BENCH_ONLY=builds`: this build's replica against `BENCH_BASELINE` (the path of another
    /// build's `to11-data-plane`), in alternating rounds.
    baseline: Option<std::path::PathBuf>,
    /// `BENCH_SYSCALLS=1`: count each proxy's system calls per request with `perf stat` (closed
    /// loops; needs `perf` and access to the `raw_syscalls` tracepoints).
    syscalls: bool,
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
        high_connections: n("BENCH_HIGH_CONNECTIONS", 256) as usize,
        seconds: n("BENCH_SECONDS", 5),
        rate: n("BENCH_RATE", 5000),
        fixed_rate: n("BENCH_FIXED_RATE", 1000),
        stall_requests: n("BENCH_STALL_REQUESTS", 500),
        changes: n("BENCH_CHANGES", 200),
        rounds: n("BENCH_METERING_ROUNDS", 8) as usize,
        pair_rate: n("BENCH_PAIR_RATE", 10_000),
        only: std::env::var("BENCH_ONLY").ok().filter(|v| !v.is_empty()),
        syscalls: n("BENCH_SYSCALLS", 0) == 1,
        baseline: std::env::var_os("BENCH_BASELINE")
            .filter(|v| !v.is_empty())
            .map(Into::into),
    }
}

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5}"#;
/// The same chat asking for an SSE stream (with usage, as metering clients ask).
const STREAM_BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}"#;
/// An OpenAI chat for the model of the Anthropic connection: translated both ways by to11.
const TRANSLATED_BODY: &str = r#"{"model":"claude-bench","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5}"#;
/// An OpenAI chat for the model of the paced upstream (the stall check).
const PACED_BODY: &str = r#"{"model":"gpt-stall","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5}"#;

fn request_bytes(addr: SocketAddr, auth: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

thread_local! {
    /// The first answer that was not a 200 (or a stream without its end), printed with the results.
    static FIRST_FAILURE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// How many answers were not, over the whole run.
    static FAILURES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Answers that were not a 200 so far in this run.
fn failures() -> u64 {
    FAILURES.with(|f| f.get())
}

fn first_failure() -> String {
    FIRST_FAILURE.with(|f| f.borrow().clone())
}

/// Panics when no answer of a run was a 200: a target set up wrong, nothing to measure. Sporadic
/// failures are counted and printed with the rows instead.
fn assert_answered(what: impl std::fmt::Display, ok: u64) {
    assert!(
        ok > 0,
        "{what}: no answer was a 200, the first: {}",
        first_failure()
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` in a response or request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The length of the chunked body at the start of `buf` once all of it has arrived (trailers are
/// not expected), None while it is incomplete.
fn chunked_len(buf: &[u8]) -> std::io::Result<Option<usize>> {
    let mut pos = 0;
    loop {
        let Some(nl) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&buf[pos..pos + nl]);
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size line: {line}")))?;
        pos += nl + 2 + size + 2;
        if buf.len() < pos {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some(pos));
        }
    }
}

/// The length of a message body framed as `head` says, once `body` holds all of it.
fn body_len(head: &str, body: &[u8]) -> std::io::Result<Option<usize>> {
    if let Some(len) = header(head, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad content-length in: {head}")))?;
        return Ok((body.len() >= len).then_some(len));
    }
    if header(head, "transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        return chunked_len(body);
    }
    // A request without a body; a response must say how long it is.
    match head.starts_with("HTTP/") {
        true => Err(std::io::Error::other(format!("no body length in: {head}"))),
        false => Ok(Some(0)),
    }
}

/// A whole HTTP/1.1 message (content-length or chunked) at the front of `buf`: where its body
/// starts and its total length; None while it is incomplete.
fn complete_message(buf: &[u8]) -> std::io::Result<Option<(usize, usize)>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
    let start = end + 4;
    Ok(body_len(head, &buf[start..])?.map(|len| (start, start + len)))
}

/// Reads one response; returns false on a non-200 or on an SSE stream without its `[DONE]`.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        if let Some((start, total)) = complete_message(buf)? {
            let head = std::str::from_utf8(&buf[..start - 4]).unwrap_or("");
            let ok = check_answer(head, &buf[start..total]);
            buf.drain(..total);
            return Ok(ok);
        }
        read_more(s, buf).await?;
    }
}

/// Whether an answer is a 200 (an SSE stream: one that reached `data: [DONE]`); records the first
/// that is not.
fn check_answer(head: &str, body: &[u8]) -> bool {
    let ok = head.starts_with("HTTP/1.1 200")
        && (!header(head, "content-type").is_some_and(|c| c.starts_with("text/event-stream"))
            || find(body, b"data: [DONE]").is_some());
    if !ok {
        FAILURES.with(|f| f.set(f.get() + 1));
        FIRST_FAILURE.with(|f| {
            if f.borrow().is_empty() {
                let body = &body[..body.len().min(400)];
                *f.borrow_mut() = format!("{head}\n{}", String::from_utf8_lossy(body));
            }
        });
    }
    ok
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

/// Closed loop: every connection sends as fast as answers come back. Returns the complete 200s
/// (other answers count in `failures()`).
async fn closed_loop(addr: SocketAddr, req: &[u8], conns: usize, dur: Duration) -> u64 {
    let deadline = Instant::now() + dur;
    let mut tasks = vec![];
    for _ in 0..conns {
        let req = req.to_vec();
        tasks.push(tokio::task::spawn_local(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).ok();
            let mut buf = Vec::with_capacity(4096);
            let mut ok = 0u64;
            while Instant::now() < deadline {
                s.write_all(&req).await.expect("write");
                match read_response(&mut s, &mut buf).await {
                    Ok(answered) => ok += u64::from(answered),
                    // A server may close a keep-alive connection between requests: reconnect.
                    Err(_) if buf.is_empty() => {
                        s = TcpStream::connect(addr).await.expect("reconnect");
                        s.set_nodelay(true).ok();
                    }
                    Err(e) => panic!("{addr}: {e}"),
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
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
                // A failed answer counts in `failures()` and, like any other, in the latencies.
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

/// Sequential requests on one connection (after a few unmeasured ones): each one's latency.
async fn sequential(addr: SocketAddr, req: &[u8], n: u64) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let mut buf = Vec::with_capacity(4096);
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n + 20 {
        let sent = Instant::now();
        s.write_all(req).await.expect("write");
        read_response(&mut s, &mut buf).await.expect("response");
        if i >= 20 {
            lat.push(sent.elapsed());
        }
    }
    lat.sort();
    lat
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
    let (user, system) = cpu_split(pids);
    user + system
}

/// utime and stime of a process and its threads, in clock ticks.
fn cpu_split(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((
                f.get(11)?.parse::<u64>().ok()?,
                f.get(12)?.parse::<u64>().ok()?,
            ))
        })
        .fold((0, 0), |(u, s), (a, b)| (u + a, s + b))
}

/// CPU µs per request of `pids` for `ticks` clock ticks over `n` requests; None without pids.
fn cpu_us(pids: &[u32], ticks: u64, n: u64) -> Option<f64> {
    (!pids.is_empty()).then(|| ticks as f64 * 10_000.0 / n as f64)
}

/// One target as a benchmark sees it: a name, its address, the request bytes, the proxy's
/// processes whose CPU time is counted (none for the upstream itself).
#[derive(Clone, Copy)]
struct Target<'a> {
    name: &'static str,
    addr: SocketAddr,
    req: &'a [u8],
    pids: &'a [u32],
}

/// A printed row; what a phase did not measure is None (printed as —).
struct Row {
    name: &'static str,
    rps: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    cpu_us: Option<f64>,
    /// Answers that were not a 200 during the row's runs (warm-up included).
    errors: u64,
    /// System calls per request, by name (`BENCH_SYSCALLS=1`), most frequent first.
    syscalls: Vec<(String, f64)>,
}

/// The system calls counted by `perf stat` (tracepoints `syscalls:sys_enter_*`) while `pids`
/// run; `None` where `perf` cannot count them.
struct SyscallCount(Option<std::process::Child>);

/// The calls a proxy's hop makes, counted one by one (the rest are summed as "other").
const SYSCALLS: [&str; 14] = [
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "futex",
    "accept4",
    "close",
];

impl SyscallCount {
    fn start(pids: &[u32], on: bool) -> SyscallCount {
        if !on || pids.is_empty() {
            return SyscallCount(None);
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut c = Command::new("perf");
        c.args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter"]);
        for name in SYSCALLS {
            c.args(["-e", &format!("syscalls:sys_enter_{name}")]);
        }
        c.args(["-p", &list.join(",")]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        SyscallCount(c.spawn().ok())
    }

    /// Stops counting; the counts per request of `n` requests.
    fn per_request(self, n: u64) -> Vec<(String, f64)> {
        let Some(child) = self.0 else {
            return vec![];
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let Ok(out) = child.wait_with_output() else {
            return vec![];
        };
        let text = String::from_utf8_lossy(&out.stderr);
        let mut counts: Vec<(String, f64)> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let count: f64 = f.first()?.parse().ok()?;
                let name = f.get(2)?;
                let name = name
                    .strip_prefix("syscalls:sys_enter_")
                    .or(name.strip_prefix("raw_syscalls:sys_enter").map(|_| "all"))?;
                Some((name.to_string(), count / n.max(1) as f64))
            })
            .filter(|(_, c)| *c > 0.0)
            .collect();
        counts.sort_by(|a, b| b.1.total_cmp(&a.1));
        counts
    }
}

/// Closed loop at `conns` connections for `o.seconds` after a 1 s warm-up (connection pools):
/// req/s and CPU µs per request.
async fn closed_row(t: Target<'_>, conns: usize, o: &Opts) -> Row {
    eprintln!("measuring {} at {}, {conns} connections", t.name, t.addr);
    let f0 = failures();
    closed_loop(t.addr, t.req, conns, Duration::from_secs(1)).await;
    let counting = SyscallCount::start(t.pids, o.syscalls);
    let t0 = cpu_ticks(t.pids);
    let started = Instant::now();
    let ok = closed_loop(t.addr, t.req, conns, Duration::from_secs(o.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(t.pids) - t0;
    assert_answered(t.name, ok);
    Row {
        name: t.name,
        rps: Some(ok as f64 / elapsed),
        p50: None,
        p99: None,
        cpu_us: cpu_us(t.pids, ticks, ok),
        errors: failures() - f0,
        syscalls: counting.per_request(ok),
    }
}

/// Open loop at `rate` over `o.connections` for `o.seconds`: p50, p99 and CPU µs per request.
async fn rate_row(t: Target<'_>, rate: u64, o: &Opts) -> Row {
    eprintln!("measuring {} at {}, {rate} req/s", t.name, t.addr);
    let f0 = failures();
    let t0 = cpu_ticks(t.pids);
    let dur = Duration::from_secs(o.seconds);
    let lat = fixed_rate(t.addr, t.req, o.connections, rate, dur).await;
    let ticks = cpu_ticks(t.pids) - t0;
    Row {
        name: t.name,
        rps: None,
        p50: Some(pct(&lat, 0.50)),
        p99: Some(pct(&lat, 0.99)),
        cpu_us: cpu_us(t.pids, ticks, lat.len() as u64),
        errors: failures() - f0,
        syscalls: vec![],
    }
}

/// The main table's row: req/s and CPU µs per request from the closed loop, p50/p99 from the open
/// loop at `o.rate`.
async fn measure(t: Target<'_>, o: &Opts) -> Row {
    let f0 = failures();
    let closed = closed_row(t, o.connections, o).await;
    let lat = fixed_rate(
        t.addr,
        t.req,
        o.connections,
        o.rate,
        Duration::from_secs(o.seconds),
    )
    .await;
    Row {
        p50: Some(pct(&lat, 0.50)),
        p99: Some(pct(&lat, 0.99)),
        errors: failures() - f0,
        ..closed
    }
}

/// CPU µs per request of `pids` over one closed-loop run of `o.seconds` against `addr`.
/// (Printed to stderr split into user and system time.)
async fn cpu_per_request(addr: SocketAddr, req: &[u8], pids: &[u32], o: &Opts) -> f64 {
    let (u0, s0) = cpu_split(pids);
    let ok = closed_loop(addr, req, o.connections, Duration::from_secs(o.seconds)).await;
    assert_answered(addr, ok);
    let (u1, s1) = cpu_split(pids);
    let us = |ticks: u64| ticks as f64 * 10_000.0 / ok as f64;
    eprintln!(
        "  {addr}: {:.0} req/s, CPU µs per request: user {:.1}, system {:.1}",
        ok as f64 / o.seconds as f64,
        us(u1 - u0),
        us(s1 - s0)
    );
    us(u1 - u0 + s1 - s0)
}

/// A replica as a pair of rounds measures it: its address, the request, its process.
type Side<'a> = (SocketAddr, &'a [u8], u32);

/// A feature's cost: the replica with it and the replica without measured in alternating rounds
/// (the order flips each round), so drifts of a shared machine fall on both. Returns the
/// per-round CPU µs per request of each.
async fn paired_rounds(what: &str, on: Side<'_>, off: Side<'_>, o: &Opts) -> (Vec<f64>, Vec<f64>) {
    alternate(
        &format!("{what} on/off"),
        o.rounds,
        on,
        off,
        |(addr, req, pid)| async move { cpu_per_request(addr, req, &[pid], o).await },
    )
    .await
}

/// `paired_rounds` at the fixed rate `o.pair_rate` (open loop over `o.connections`): per-round
/// CPU µs per request of each replica; none when the rate is 0.
async fn paired_rate_rounds(
    what: &str,
    on: Side<'_>,
    off: Side<'_>,
    o: &Opts,
) -> (Vec<f64>, Vec<f64>) {
    let rounds = if o.pair_rate == 0 { 0 } else { o.rounds };
    let label = format!("{what} on/off at {} req/s", o.pair_rate);
    alternate(&label, rounds, on, off, |(addr, req, pid)| async move {
        let t0 = cpu_ticks(&[pid]);
        let dur = Duration::from_secs(o.seconds);
        let n = fixed_rate(addr, req, o.connections, o.pair_rate, dur)
            .await
            .len();
        assert_answered(addr, n as u64);
        cpu_us(&[pid], cpu_ticks(&[pid]) - t0, n as u64).expect("one process")
    })
    .await
}

/// A feature's cost measured with both replicas loaded at the same time (`loaded_together`, one
/// call per round, `o.connections` each). Whatever a shared machine does during a round (a
/// neighbour's burst, a slower clock, stolen time) falls on both alike, where alternating rounds
/// put it on whichever side ran then: on this kind of machine their ratios spread from 0.85 to
/// 1.38 around one value. Fit for two sides of about the same cost only: sharing a core, the
/// dearer side answers fewer requests a second, and CPU per request depends on the rate (fewer
/// requests per wake-up). nginx against to11 (twice the cost) measured this way gave 1.74×,
/// 2.32× and 1.90× where alternating runs gave 1.5–2.3×, 1.6–1.9× and 1.8–1.9×: not used there.
/// Per-round CPU µs per request of each.
async fn together_rounds(
    what: &str,
    on: Side<'_>,
    off: Side<'_>,
    o: &Opts,
) -> (Vec<f64>, Vec<f64>) {
    let (mut with, mut without) = (vec![], vec![]);
    for round in 0..o.rounds {
        eprintln!("{what} on and off together, round {}", round + 1);
        let (a, b) = loaded_together(
            (on.0, on.1, &[on.2]),
            (off.0, off.1, &[off.2]),
            o.connections,
            o,
        )
        .await;
        with.push(a);
        without.push(b);
    }
    (with, without)
}

/// One round of two proxies driven at the same time, both on core 0, each through its own closed
/// loop of `conns` connections for `o.seconds` (after half a second warming both): each one's CPU
/// µs per request, its processes' CPU time divided by its own answers.
async fn loaded_together(
    a: (SocketAddr, &[u8], &[u32]),
    b: (SocketAddr, &[u8], &[u32]),
    conns: usize,
    o: &Opts,
) -> (f64, f64) {
    let dur = Duration::from_secs(o.seconds);
    let warm = Duration::from_millis(500);
    tokio::join!(
        closed_loop(a.0, a.1, conns, warm),
        closed_loop(b.0, b.1, conns, warm)
    );
    let t0 = [cpu_ticks(a.2), cpu_ticks(b.2)];
    let (na, nb) = tokio::join!(
        closed_loop(a.0, a.1, conns, dur),
        closed_loop(b.0, b.1, conns, dur)
    );
    let (ta, tb) = (cpu_ticks(a.2) - t0[0], cpu_ticks(b.2) - t0[1]);
    assert_answered(a.0, na);
    assert_answered(b.0, nb);
    let [ca, cb] = [(a.2, ta, na), (b.2, tb, nb)]
        .map(|(pids, ticks, n)| cpu_us(pids, ticks, n).expect("the proxies' processes"));
    eprintln!(
        "  {}: {na} answers, {ca:.1} µs/req | {}: {nb} answers, {cb:.1} µs/req",
        a.0, b.0
    );
    (ca, cb)
}

/// `rounds` rounds of `measure` on each side, the order flipping each round.
async fn alternate<'a, F, Fut>(
    label: &str,
    rounds: usize,
    on: Side<'a>,
    off: Side<'a>,
    measure: F,
) -> (Vec<f64>, Vec<f64>)
where
    F: Fn(Side<'a>) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let (mut with, mut without) = (vec![], vec![]);
    for round in 0..rounds {
        eprintln!("{label}, round {}", round + 1);
        if round % 2 == 0 {
            with.push(measure(on).await);
            without.push(measure(off).await);
        } else {
            without.push(measure(off).await);
            with.push(measure(on).await);
        }
    }
    (with, without)
}

/// A feature's rounds, on and off: per-round CPU µs per request in closed loops, and at
/// `o.pair_rate` (empty when 0).
struct Paired {
    closed: (Vec<f64>, Vec<f64>),
    /// Both replicas loaded at once (`together_rounds`).
    together: (Vec<f64>, Vec<f64>),
    rate: (Vec<f64>, Vec<f64>),
}

/// One (limited, plain) pair per round.
type Pairs = Vec<(f64, f64)>;

/// Admission control's cost: the same replica called with a key that has limits and a budget and
/// with one that has none, in alternating rounds; each round gives CPU µs per request (closed
/// loop) and the p99 latency at `o.rate` (open loop) of both: (limited, plain) pairs.
async fn limits_rounds(
    gw: SocketAddr,
    pid: u32,
    limited: &[u8],
    plain: &[u8],
    o: &Opts,
) -> (Pairs, Pairs) {
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

/// The paced upstream's model list.
const PACED_MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-stall","object":"model","created":1,"owned_by":"bench"}]}"#;

/// An upstream that answers as real providers' front ends do, in several writes: the status line
/// and headers (with content-length) first, the body ~1 ms later (TCP_NODELAY, so each write is
/// its own segment). A proxy that holds the first write back (Nagle against a delayed ACK) shows
/// here as ~40 ms. HTTP/1.1 keep-alive, a thread per connection, in this process.
fn start_paced_upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind paced upstream");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve_paced(conn));
        }
    });
    addr
}

/// Answers the requests of one connection until it closes: `GET` lists [`PACED_MODELS`] in one
/// write; anything else gets [`FAST_BODY`], headers and body 1 ms apart.
fn serve_paced(mut s: std::net::TcpStream) {
    s.set_nodelay(true).ok();
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 16384];
    loop {
        let total = match complete_message(&buf) {
            Ok(Some((_, total))) => total,
            Ok(None) => match s.read(&mut tmp) {
                Ok(n) if n > 0 => {
                    buf.extend_from_slice(&tmp[..n]);
                    continue;
                }
                _ => return,
            },
            Err(_) => return,
        };
        let listing = buf.starts_with(b"GET ");
        buf.drain(..total);
        let body = if listing { PACED_MODELS } else { FAST_BODY };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let sent = if listing {
            s.write_all(format!("{head}{body}").as_bytes())
        } else {
            s.write_all(head.as_bytes()).and_then(|()| {
                std::thread::sleep(Duration::from_millis(1));
                s.write_all(body.as_bytes())
            })
        };
        if sent.is_err() {
            return;
        }
    }
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
    let mut cmd = pinned("1", &sibling("to11-mock-upstream"));
    cmd.arg("127.0.0.1:0").arg("--fast");
    let (child, addr) = to11_tests::spawn_listening(cmd);
    (Kill(child), addr)
}

/// `to11-floor-proxy` on core 0 in front of `upstream`: the stack's own cost of a hop (the same
/// server and upstream client as a replica, none of to11's work).
fn start_floor(upstream: SocketAddr) -> (Kill, SocketAddr, u32) {
    let mut cmd = pinned("0", &sibling("to11-floor-proxy"));
    cmd.arg("127.0.0.1:0").arg(format!("http://{upstream}"));
    let (child, addr) = to11_tests::spawn_listening(cmd);
    let pid = child.id();
    (Kill(child), addr, pid)
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Idle upstream connections nginx keeps: enough for every downstream connection of the
/// many-connections phase, so nginx does not open and close upstream connections there.
const IDLE_UPSTREAM: usize = 1024;

/// nginx as the yardstick; stopped (then its directory removed) when the guards drop. Its one
/// location has `proxy_buffering off` for every row (streams pass as they come; the short
/// non-stream answers fit one read either way), so all rows use the same configuration.
fn start_nginx(upstream: SocketAddr) -> ((Kill, TempDir), SocketAddr, Vec<u32>) {
    let dir = std::env::temp_dir().join(format!("to11-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000000;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n\
           upstream mock {{ server {upstream}; keepalive {idle}; keepalive_requests 100000000; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n",
        d = dir.display(),
        idle = IDLE_UPSTREAM,
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

/// A data-plane replica on core 0 with the settings `env` (metering on unless it says
/// `TO11_USAGE=false`: every request into the Redis stream).
fn start_replica(redis: &RedisServer, env: &[(&str, String)]) -> (Kill, SocketAddr, u32) {
    start_replica_of(&sibling("to11-data-plane"), redis, env)
}

/// `start_replica` with the binary at `program` (another build, for `BENCH_BASELINE`).
fn start_replica_of(
    program: &std::path::Path,
    redis: &RedisServer,
    env: &[(&str, String)],
) -> (Kill, SocketAddr, u32) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let gw = pinned("0", program)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TO11_REDIS_URL", redis.url())
        .env("TO11_REDIS_PREFIX", "bench:")
        .env("TO11_MASTER_KEY", master_key())
        .env("TO11_GATEWAY_LISTEN", addr.to_string())
        .env("TO11_GATEWAY_WORKERS", "1")
        // The mock upstream is on loopback, which replicas refuse without the allowance.
        .env("TO11_ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("TO11_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("to11-data-plane");
    let pid = gw.id();
    (Kill(gw), addr, pid)
}

/// What the benchmark talks to: the upstreams, the proxies and their processes, the gateway keys.
struct Endpoints {
    mock: SocketAddr,
    paced: SocketAddr,
    nginx: SocketAddr,
    nginx_pids: Vec<u32>,
    gw: SocketAddr,
    gw_pid: [u32; 1],
    plain: SocketAddr,
    plain_pid: [u32; 1],
    /// Metering, metrics and traces of every request (exported to the mock) on; and metering on,
    /// metrics off, no traces.
    observed: (SocketAddr, u32),
    bare: (SocketAddr, u32),
    /// `to11-floor-proxy`.
    floor: SocketAddr,
    floor_pid: [u32; 1],
    key: String,
    limited_key: String,
}

impl Endpoints {
    /// The header carrying a gateway key.
    fn auth(key: &str) -> String {
        format!("x-to11-authorization: Bearer {key}")
    }

    /// Metering's rounds: the same chat through the metered and the unmetered replica.
    async fn metering(&self, o: &Opts) -> Paired {
        self.pair(
            "metering",
            (self.gw, self.gw_pid[0]),
            (self.plain, self.plain_pid[0]),
            true,
            o,
        )
        .await
    }

    /// Observability's rounds: metrics and traces on, and both off (metering on in both).
    async fn observability(&self, o: &Opts) -> Paired {
        self.pair("metrics and tracing", self.observed, self.bare, true, o)
            .await
    }

    /// `what`'s rounds, the same chat through `on` and `off`: closed loops in alternating rounds
    /// and with both loaded together, and when `at_rate` also at the fixed rate.
    async fn pair(
        &self,
        what: &str,
        on: (SocketAddr, u32),
        off: (SocketAddr, u32),
        at_rate: bool,
        o: &Opts,
    ) -> Paired {
        let [a, b] = [on.0, off.0].map(|a| request_bytes(a, &Self::auth(&self.key), BODY));
        let closed = paired_rounds(what, (on.0, &a, on.1), (off.0, &b, off.1), o).await;
        let together = together_rounds(what, (on.0, &a, on.1), (off.0, &b, off.1), o).await;
        let rate = if at_rate {
            paired_rate_rounds(what, (on.0, &a, on.1), (off.0, &b, off.1), o).await
        } else {
            Default::default()
        };
        Paired {
            closed,
            together,
            rate,
        }
    }

    /// The traced replica's spans exported and dropped so far.
    async fn spans(&self) -> (u64, u64) {
        (
            metric(self.observed.0, "to11_trace_spans_exported_total").await,
            metric(self.observed.0, "to11_trace_spans_dropped_total").await,
        )
    }

    /// The metered replica's records shipped and dropped so far.
    async fn records(&self) -> (u64, u64) {
        (
            metric(self.gw, "to11_usage_records_shipped_total").await,
            metric(self.gw, "to11_usage_records_dropped_total").await,
        )
    }

    /// `body` sent direct to the mock, through nginx and through the metered replica.
    fn hop_requests(&self, body: &str) -> [Vec<u8>; 3] {
        [
            request_bytes(self.mock, "authorization: Bearer sk-mock", body),
            request_bytes(self.nginx, "authorization: Bearer sk-mock", body),
            request_bytes(self.gw, &Self::auth(&self.key), body),
        ]
    }

    /// The floor's target for `body` (nginx's request: it forwards the upstream's key).
    fn floor_target<'a>(&'a self, req: &'a [u8], name: &'static str) -> Target<'a> {
        Target {
            name,
            addr: self.floor,
            req,
            pids: &self.floor_pid,
        }
    }

    /// The direct, nginx and to11 targets of [`Endpoints::hop_requests`], named `names`.
    fn hop_targets<'a>(
        &'a self,
        reqs: &'a [Vec<u8>; 3],
        names: [&'static str; 3],
    ) -> [Target<'a>; 3] {
        let addrs = [self.mock, self.nginx, self.gw];
        let pids: [&[u32]; 3] = [&[], &self.nginx_pids, &self.gw_pid];
        std::array::from_fn(|i| Target {
            name: names[i],
            addr: addrs[i],
            req: &reqs[i],
            pids: pids[i],
        })
    }
}

/// Everything one run measured.
struct Results {
    /// direct, nginx, to11, to11 without metering, to11 with a limited key.
    main: Vec<Row>,
    /// direct, nginx, to11 closed loop at `high_connections`.
    high: Vec<Row>,
    /// direct, nginx, to11 open loop at `fixed_rate`.
    at_rate: Vec<Row>,
    /// direct, nginx, to11 SSE streams, closed loop.
    stream: Vec<Row>,
    /// OpenAI chat in, Anthropic Messages upstream out.
    translated: Row,
    /// direct and to11 against the paced upstream, sequential.
    stall: Vec<Row>,
    /// The floor at `connections`, at `high_connections`, and streaming.
    floor: [Row; 3],
    /// Per-round CPU µs per request, metering on and off.
    metering: Paired,
    /// Per-round CPU µs per request, metrics and traces on and both off.
    observability: Paired,
    /// Per-round (limited, plain) CPU µs per request and p99 at `rate`.
    limits: (Pairs, Pairs),
}

const HOP: [&str; 3] = ["direct (no hop)", "nginx proxy_pass", "to11 data plane"];
const STREAMING: [&str; 3] = ["direct, streaming", "nginx, streaming", "to11, streaming"];
const FLOOR: &str = "floor (actix-http + awc)";
const FLOOR_STREAMING: &str = "floor, streaming";

/// Every phase, in order: the main table's rows, many connections, fixed rate, streaming,
/// translated, the stall check, metering rounds, limits rounds.
async fn run_phases(e: &Endpoints, o: &Opts) -> Results {
    let plain_reqs = e.hop_requests(BODY);
    let hop = e.hop_targets(&plain_reqs, HOP);
    let via_plain = request_bytes(e.plain, &Endpoints::auth(&e.key), BODY);
    let via_limited = request_bytes(e.gw, &Endpoints::auth(&e.limited_key), BODY);
    let plain = Target {
        name: "to11, no metering",
        addr: e.plain,
        req: &via_plain,
        pids: &e.plain_pid,
    };
    let limited = Target {
        name: "to11, key limited",
        req: &via_limited,
        ..hop[2]
    };
    let mut main = vec![];
    for t in [hop[0], hop[1], hop[2], plain, limited] {
        main.push(measure(t, o).await);
    }
    let (mut high, mut at_rate, mut stream) = (vec![], vec![], vec![]);
    for t in hop {
        high.push(closed_row(t, o.high_connections, o).await);
    }
    for t in hop {
        at_rate.push(rate_row(t, o.fixed_rate, o).await);
    }
    let stream_reqs = e.hop_requests(STREAM_BODY);
    for t in e.hop_targets(&stream_reqs, STREAMING) {
        stream.push(closed_row(t, o.connections, o).await);
    }
    let floor_req = request_bytes(e.floor, "authorization: Bearer sk-mock", BODY);
    let floor_stream = request_bytes(e.floor, "authorization: Bearer sk-mock", STREAM_BODY);
    let floor = [
        closed_row(e.floor_target(&floor_req, FLOOR), o.connections, o).await,
        closed_row(e.floor_target(&floor_req, FLOOR), o.high_connections, o).await,
        closed_row(
            e.floor_target(&floor_stream, FLOOR_STREAMING),
            o.connections,
            o,
        )
        .await,
    ];
    let translated_req = request_bytes(e.gw, &Endpoints::auth(&e.key), TRANSLATED_BODY);
    let translated = Target {
        name: "to11 translated (chat → Anthropic)",
        req: &translated_req,
        ..hop[2]
    };
    let translated = measure(translated, o).await;
    let stall = stall_rows(e, o).await;
    let metering = e.metering(o).await;
    let observability = e.observability(o).await;
    let limits = limits_rounds(e.gw, e.gw_pid[0], &via_limited, hop[2].req, o).await;
    Results {
        main,
        high,
        at_rate,
        stream,
        translated,
        stall,
        floor,
        metering,
        observability,
        limits,
    }
}

/// `BENCH_ONLY=hop`: nginx, the floor and to11 in closed loops at `o.connections` and
/// `o.high_connections`, and streams, with the ratios (a quick check of a change to the hop,
/// about 90 s).
async fn hop_only(e: &Endpoints, o: &Opts) {
    let reqs = e.hop_requests(BODY);
    let hop = e.hop_targets(&reqs, HOP);
    let stream_reqs = e.hop_requests(STREAM_BODY);
    let streams = e.hop_targets(&stream_reqs, STREAMING);
    let floor_req = request_bytes(e.floor, "authorization: Bearer sk-mock", BODY);
    let floor_stream = request_bytes(e.floor, "authorization: Bearer sk-mock", STREAM_BODY);
    let floor = e.floor_target(&floor_req, FLOOR);
    let floor_streams = e.floor_target(&floor_stream, FLOOR_STREAMING);
    for (title, [_, nginx, to11], floor, conns) in [
        ("one proxy hop, closed loop", hop, floor, o.connections),
        (
            "many connections, closed loop",
            hop,
            floor,
            o.high_connections,
        ),
        (
            "streaming, closed loop",
            streams,
            floor_streams,
            o.connections,
        ),
    ] {
        let mut rows = vec![];
        for t in [nginx, floor, to11] {
            rows.push(closed_row(t, conns, o).await);
        }
        let title = format!("{title}, {conns} connections, {} s", o.seconds);
        print_table(&title, &rows.iter().collect::<Vec<_>>());
        print_floor_ratios(&rows[0], &rows[1], &rows[2]);
    }
}

/// to11 / nginx, and how it splits: the stack's floor / nginx, and to11 / the floor.
fn print_floor_ratios(nginx: &Row, floor: &Row, to11: &Row) {
    println!(
        "to11 / nginx: CPU per request {:.2}×, throughput {:.2}×; floor / nginx: CPU {:.2}×, throughput {:.2}×; to11 / floor: CPU {:.2}×",
        ratio(to11.cpu_us, nginx.cpu_us),
        ratio(to11.rps, nginx.rps),
        ratio(floor.cpu_us, nginx.cpu_us),
        ratio(floor.rps, nginx.rps),
        ratio(to11.cpu_us, floor.cpu_us),
    );
}

/// The stall check: `o.stall_requests` sequential requests on one connection to the paced
/// upstream, direct and through to11: p50 and p99.
async fn stall_rows(e: &Endpoints, o: &Opts) -> Vec<Row> {
    let direct = request_bytes(e.paced, "authorization: Bearer sk-mock", PACED_BODY);
    let via = request_bytes(e.gw, &Endpoints::auth(&e.key), PACED_BODY);
    let mut rows = vec![];
    for (name, addr, req) in [
        ("direct, paced upstream", e.paced, direct),
        ("to11, paced upstream", e.gw, via),
    ] {
        eprintln!("measuring {name} at {addr}, one connection");
        let f0 = failures();
        let lat = sequential(addr, &req, o.stall_requests).await;
        rows.push(Row {
            name,
            rps: None,
            p50: Some(pct(&lat, 0.50)),
            p99: Some(pct(&lat, 0.99)),
            cpu_us: None,
            errors: failures() - f0,
            syscalls: vec![],
        });
    }
    rows
}

/// What the project's setup hands the benchmark.
struct Setup {
    key: String,
    limited_key: String,
    project: String,
    /// The version the replicas must have applied.
    version: u64,
}

/// The benchmark's project: the fast mock connected as `openai` (gpt-4o) and as `anthropic`
/// (claude-bench, over Anthropic's Messages API), the paced upstream as `stall` (gpt-stall), a
/// plain key and a key with limits and a budget.
async fn setup_project(api: &ApiClient, mock: SocketAddr, paced: SocketAddr) -> Setup {
    let (_, p) = api.post("/projects", json!({"name": "Bench"})).await;
    let providers = [
        json!({"kind": "openai", "base_url": format!("http://{mock}/v1"), "credential": {"api_key": "sk-mock"}, "models": ["gpt-4o"]}),
        // The catalog's Anthropic base ends in /v1 (requests go to {base}/messages).
        json!({"kind": "anthropic", "base_url": format!("http://{mock}/v1"), "credential": {"api_key": "sk-ant-mock"}, "models": ["claude-bench"]}),
        json!({"kind": "openai", "slug": "stall", "base_url": format!("http://{paced}/v1"), "credential": {"api_key": "sk-mock"}, "models": ["gpt-stall"]}),
    ];
    for body in providers {
        let (s, prov) = api.post("/projects/bench/providers", body).await;
        assert_eq!(s, 201, "{prov}");
    }
    let (_, k) = api
        .post("/projects/bench/keys", json!({"name": "bench"}))
        .await;
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
    Setup {
        key: k["key"].as_str().expect("key").to_string(),
        limited_key: l["key"].as_str().expect("limited key").to_string(),
        project: p["id"].as_str().expect("id").to_string(),
        version: l["version"].as_u64().expect("v"),
    }
}

/// Waits until the replica at `gw` has applied `version` of `project`.
async fn wait_applied(gw: SocketAddr, project: &str, version: u64) {
    to11_tests::wait_until("replica ready", 20, || async {
        (replica_version(gw, project).await >= version).then_some(())
    })
    .await;
}

fn main() {
    let o = opts();
    let redis = RedisServer::start(false);
    let (_mock, mock_addr) = start_mock();
    let paced = start_paced_upstream();
    let (_nginx, nginx_addr, nginx_pids) = start_nginx(mock_addr);

    let cp = control_plane(&redis.url(), "bench:").expect("control plane");
    let sys = actix_rt::System::new();
    let setup = sys.block_on(async {
        setup_project(&ApiClient::new(cp.info.addr, ADMIN_TOKEN), mock_addr, paced).await
    });

    let usage = |on: bool| ("TO11_USAGE", on.to_string());
    let (_gw, gw_addr, gw_pid) = start_replica(&redis, &[usage(true)]);
    let (_plain, plain_addr, plain_pid) = start_replica(&redis, &[usage(false)]);
    let traces = format!("http://{mock_addr}/v1/traces");
    let (_observed, observed_addr, observed_pid) = start_replica(
        &redis,
        &[
            usage(true),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces),
            ("OTEL_TRACES_SAMPLER", "always_on".into()),
        ],
    );
    let (_bare, bare_addr, bare_pid) =
        start_replica(&redis, &[usage(true), ("TO11_METRICS", "false".into())]);
    let (_floor, floor_addr, floor_pid) = start_floor(mock_addr);

    let prop = sys.block_on(async {
        wait_applied(gw_addr, &setup.project, setup.version).await;
        let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
        propagation(&api, gw_addr, &setup.project, o.changes).await
    });
    let e = Endpoints {
        mock: mock_addr,
        paced,
        nginx: nginx_addr,
        nginx_pids,
        gw: gw_addr,
        gw_pid: [gw_pid],
        plain: plain_addr,
        plain_pid: [plain_pid],
        observed: (observed_addr, observed_pid),
        bare: (bare_addr, bare_pid),
        floor: floor_addr,
        floor_pid: [floor_pid],
        key: setup.key,
        limited_key: setup.limited_key,
    };
    sys.block_on(async {
        for gw in [gw_addr, plain_addr, observed_addr, bare_addr] {
            wait_applied(gw, &setup.project, setup.version).await;
        }
    });
    match o.only.as_deref() {
        Some("metering") => {
            let metering = sys.block_on(e.metering(&o));
            print_metering(&metering, &o, sys.block_on(e.records()));
            return;
        }
        Some("observability") => {
            let observability = sys.block_on(e.observability(&o));
            print_observability(&observability, &o, sys.block_on(e.spans()));
            return;
        }
        Some("builds") => {
            let Some(program) = o.baseline.as_deref() else {
                panic!("BENCH_ONLY=builds needs BENCH_BASELINE=<another build's to11-data-plane>");
            };
            let (_old, old_addr, old_pid) = start_replica_of(program, &redis, &[usage(true)]);
            sys.block_on(wait_applied(old_addr, &setup.project, setup.version));
            let pair = sys.block_on(e.pair(
                "this build vs the baseline",
                (e.gw, e.gw_pid[0]),
                (old_addr, old_pid),
                false,
                &o,
            ));
            print_builds(&pair, &o, program);
            return;
        }
        Some("hop") => {
            sys.block_on(hop_only(&e, &o));
            return;
        }
        Some("limits") => {
            let limited = request_bytes(e.gw, &Endpoints::auth(&e.limited_key), BODY);
            let plain = request_bytes(e.gw, &Endpoints::auth(&e.key), BODY);
            let limits = sys.block_on(limits_rounds(e.gw, e.gw_pid[0], &limited, &plain, &o));
            print_limits(&limits, &o);
            return;
        }
        Some(other) => {
            panic!("BENCH_ONLY={other}: metering, observability, hop, limits or builds")
        }
        None => {}
    }
    let r = sys.block_on(run_phases(&e, &o));
    let spans = sys.block_on(e.spans());
    print_main(&r, &o, &prop, sys.block_on(e.records()), spans);
    print_new_rows(&r, &o);
    print_summary(&r, &o);
    match failures() {
        0 => println!("\nevery answer of the run was a 200"),
        n => println!(
            "\n{n} answers of the run were not a 200 (or a stream without [DONE]); the first:\n{}",
            first_failure()
        ),
    }
    drop(cp);
}

/// A table cell: the value with `prec` decimals, or — where the phase did not measure it.
fn cell(v: Option<f64>, prec: usize) -> String {
    v.map(|v| format!("{v:.prec$}"))
        .unwrap_or_else(|| "—".into())
}

/// `a / b`, NaN where either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> f64 {
    a.unwrap_or(f64::NAN) / b.unwrap_or(f64::NAN)
}

/// A headed table of rows.
fn print_table(title: &str, rows: &[&Row]) {
    println!("\n{title}\n");
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>14}",
        "target", "req/s", "p50 ms", "p99 ms", "CPU µs/req"
    );
    for r in rows {
        println!(
            "{:<36} {:>10} {:>10} {:>10} {:>14}",
            r.name,
            cell(r.rps, 0),
            cell(r.p50, 3),
            cell(r.p99, 3),
            cell(r.cpu_us, 1)
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.errors > 0)
        .map(|r| format!("{} {}", r.name, r.errors))
        .collect();
    if !failed.is_empty() {
        println!(
            "non-200 answers (left out of req/s and CPU per request, kept in latency): {}",
            failed.join(", ")
        );
    }
    for r in rows.iter().filter(|r| !r.syscalls.is_empty()) {
        let calls: Vec<String> = r
            .syscalls
            .iter()
            .map(|(name, n)| format!("{name} {n:.2}"))
            .collect();
        println!("system calls per request, {}: {}", r.name, calls.join(", "));
    }
}

/// Metering's rounds: each round's CPU µs per request, on and off, and the median ratio.
fn print_metering(pair: &Paired, o: &Opts, (shipped, dropped): (u64, u64)) {
    print_pair(
        "metering",
        pair,
        o,
        &format!("{shipped} request records shipped to the Redis stream, {dropped} dropped"),
    );
}

/// Observability's rounds, the same way.
fn print_observability(pair: &Paired, o: &Opts, (exported, dropped): (u64, u64)) {
    print_pair(
        "metrics and tracing",
        pair,
        o,
        &format!("{exported} spans exported to the mock collector, {dropped} dropped"),
    );
}

/// `BENCH_ONLY=builds`: this build's rounds against the baseline's, and the median ratio.
fn print_builds(pair: &Paired, o: &Opts, baseline: &std::path::Path) {
    for (rounds, how, which) in [
        (&pair.closed, "alternating rounds", ""),
        (
            &pair.together,
            "rounds loaded together",
            ", loaded together",
        ),
    ] {
        print_rounds(
            &format!(
                "\nthis build vs the baseline ({}), {} {how} of {} s, metered replicas",
                baseline.display(),
                o.rounds,
                o.seconds
            ),
            ["this build", "baseline"],
            &format!("this build / baseline{which}"),
            rounds,
            "",
        );
    }
}

/// Two lines for a pair's rounds: `head`, then each side's CPU µs per request by round (sides
/// named `names`); then `ratio`, the median of the rounds' ratios and each one, and `after`.
fn print_rounds(
    head: &str,
    names: [&str; 2],
    ratio: &str,
    rounds: &(Vec<f64>, Vec<f64>),
    after: &str,
) {
    let r = ratios(rounds);
    println!(
        "{head}, CPU µs/req: {} {} | {} {}\n{ratio}: CPU per request {:.3}× (median of rounds {}){after}",
        names[0],
        list(&rounds.0, 1),
        names[1],
        list(&rounds.1, 1),
        median(&r),
        list(&r, 3),
    );
}

/// Each round's ratio of the first side's figure to the second's.
fn ratios((with, without): &(Vec<f64>, Vec<f64>)) -> Vec<f64> {
    with.iter().zip(without).map(|(a, b)| a / b).collect()
}

/// A feature's rounds: each round's CPU µs per request, on and off, and the median ratio; then
/// the same at the fixed rate, when measured.
fn print_pair(what: &str, p: &Paired, o: &Opts, after: &str) {
    let (rounds, seconds) = (o.rounds, o.seconds);
    print_rounds(
        &format!("\n{what} on vs off, {rounds} alternating rounds of {seconds} s"),
        ["on", "off"],
        &format!("{what} on / off"),
        &p.closed,
        &format!("; {after}"),
    );
    print_rounds(
        &format!(
            "{what} on and off loaded together, {rounds} rounds of {seconds} s, both on core 0"
        ),
        ["on", "off"],
        &format!("{what} on / off, loaded together"),
        &p.together,
        "",
    );
    if !p.rate.0.is_empty() {
        let rate = o.pair_rate;
        print_rounds(
            &format!("{what} at a fixed {rate} req/s"),
            ["on", "off"],
            &format!("{what} on / off at a fixed {rate} req/s"),
            &p.rate,
            "",
        );
    }
}

/// The original table and its comparisons: the hop at `o.connections`, metering on and off, the
/// limited key, configuration propagation.
fn print_main(
    r: &Results,
    o: &Opts,
    prop: &[Duration],
    (shipped, dropped): (u64, u64),
    spans: (u64, u64),
) {
    let rows = &r.main;
    print_table(
        &format!("one proxy hop, {} connections, {} s closed loop for req/s, {} req/s open loop for latency, proxies on core 0",
            o.connections, o.seconds, o.rate),
        &rows.iter().collect::<Vec<_>>(),
    );
    let (n, t) = (&rows[1], &rows[2]);
    println!(
        "\nto11 / nginx: throughput {:.2}×, p50 {:.2}×, p99 {:.2}×, CPU per request {:.2}×",
        ratio(t.rps, n.rps),
        ratio(t.p50, n.p50),
        ratio(t.p99, n.p99),
        ratio(t.cpu_us, n.cpu_us)
    );
    println!(
        "to11 / direct: throughput {:.2}×",
        ratio(t.rps, rows[0].rps)
    );
    print_metering(&r.metering, o, (shipped, dropped));
    print_observability(&r.observability, o, spans);
    println!(
        "\nconfiguration propagation over Redis, {} sequential changes, API ack → replica applied: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        prop.len(),
        pct(prop, 0.50),
        pct(prop, 0.99),
        prop.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
    );
    print_limits(&r.limits, o);
}

/// The limits rounds: CPU per request and added p99 of the limited key against the plain one.
fn print_limits((limit_cpu, limit_p99): &(Pairs, Pairs), o: &Opts) {
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
}

/// Numbers with `d` decimals, space-separated.
fn list(v: &[f64], d: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.d$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// (nginx − direct, to11 − direct) p99 at the fixed rate, in ms.
fn added_p99(r: &Results) -> (f64, f64) {
    let p = |i: usize| r.at_rate[i].p99.unwrap_or(f64::NAN);
    (p(1) - p(0), p(2) - p(0))
}

/// to11 − direct p50 against the paced upstream, in ms.
fn stall_added_p50(r: &Results) -> f64 {
    r.stall[1].p50.unwrap_or(f64::NAN) - r.stall[0].p50.unwrap_or(f64::NAN)
}

/// The tables of the many-connections, fixed-rate, streaming, translated and stall phases.
fn print_new_rows(r: &Results, o: &Opts) {
    let (n, t) = (&r.high[1], &r.high[2]);
    print_table(
        &format!(
            "many connections: {} connections, {} s closed loop",
            o.high_connections, o.seconds
        ),
        &r.high.iter().collect::<Vec<_>>(),
    );
    println!(
        "\nto11 / nginx at {} connections: CPU per request {:.2}×, throughput {:.2}×",
        o.high_connections,
        ratio(t.cpu_us, n.cpu_us),
        ratio(t.rps, n.rps)
    );
    print_table(
        &format!("fixed rate: {} req/s open loop over {} connections for {} s (latency from the intended send time; CPU over the same run)",
            o.fixed_rate, o.connections, o.seconds),
        &r.at_rate.iter().collect::<Vec<_>>(),
    );
    let (nginx_added, to11_added) = added_p99(r);
    println!(
        "\nadded p99 over direct at {} req/s: nginx {nginx_added:+.3} ms, to11 {to11_added:+.3} ms; to11 / nginx added p99 {:.2}×, CPU per request {:.2}×",
        o.fixed_rate,
        to11_added / nginx_added,
        ratio(r.at_rate[2].cpu_us, r.at_rate[1].cpu_us)
    );
    let (n, t) = (&r.stream[1], &r.stream[2]);
    print_table(
        &format!("streaming: OpenAI chat SSE (7 events, usage chunk, [DONE]), {} connections, {} s closed loop; req/s = streams completed per second, CPU µs per stream",
            o.connections, o.seconds),
        &r.stream.iter().collect::<Vec<_>>(),
    );
    println!(
        "\nto11 / nginx streaming: CPU per stream {:.2}×, streams/s {:.2}×",
        ratio(t.cpu_us, n.cpu_us),
        ratio(t.rps, n.rps)
    );
    let tr = &r.translated;
    print_table(
        &format!("translated: OpenAI chat in → Anthropic Messages upstream out, {} connections (req/s, CPU closed loop; latency open loop at {} req/s)",
            o.connections, o.rate),
        &[tr],
    );
    println!(
        "\nto11 translated: CPU per request {:.2}× vs nginx passthrough, {:.2}× vs to11 passthrough; throughput {:.2}× vs nginx passthrough",
        ratio(tr.cpu_us, r.main[1].cpu_us),
        ratio(tr.cpu_us, r.main[2].cpu_us),
        ratio(tr.rps, r.main[1].rps)
    );
    print_table(
        &format!("stall check: an upstream writing headers, then the body 1 ms later; {} sequential requests on one connection",
            o.stall_requests),
        &r.stall.iter().collect::<Vec<_>>(),
    );
    println!(
        "\nadded p50 through to11: {:+.3} ms (without TCP_NODELAY this was ~40 ms)",
        stall_added_p50(r)
    );
    print_table(
        &format!("the floor: to11-floor-proxy, the same server and upstream client as to11 and none of its work ({} and {} connections, streaming at {}), closed loop",
            o.connections, o.high_connections, o.connections),
        &r.floor.iter().collect::<Vec<_>>(),
    );
    for (what, floor, rows) in [
        (
            format!("{} connections", o.connections),
            &r.floor[0],
            &r.main,
        ),
        (
            format!("{} connections", o.high_connections),
            &r.floor[1],
            &r.high,
        ),
        ("streaming".to_string(), &r.floor[2], &r.stream),
    ] {
        print!("\n{what}: ");
        print_floor_ratios(&rows[1], floor, &rows[2]);
    }
}

/// A target of the issue for one measured number.
#[derive(Clone, Copy)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
    Below(f64),
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(t) => v <= t,
            Goal::AtLeast(t) => v >= t,
            Goal::Below(t) => v < t,
        }
    }

    /// The target as printed, with `unit`.
    fn show(self, unit: &str) -> String {
        match self {
            Goal::AtMost(t) => format!("≤ {t}{unit}"),
            Goal::AtLeast(t) => format!("≥ {t}{unit}"),
            Goal::Below(t) => format!("< {t}{unit}"),
        }
    }
}

/// The issue's targets, each next to its measured to11 / nginx ratio (or added latency).
fn print_summary(r: &Results, o: &Opts) {
    let (nginx_added, to11_added) = added_p99(r);
    let cpu = |rows: &[Row]| ratio(rows[2].cpu_us, rows[1].cpu_us);
    let lines = [
        (
            format!("CPU per request, {} connections", o.connections),
            cpu(&r.main),
            "×",
            Goal::AtMost(1.25),
        ),
        (
            format!("CPU per request, {} connections", o.high_connections),
            cpu(&r.high),
            "×",
            Goal::AtMost(1.25),
        ),
        (
            "CPU per request, streaming".into(),
            cpu(&r.stream),
            "×",
            Goal::AtMost(1.25),
        ),
        (
            format!("added p99 at {} req/s", o.fixed_rate),
            to11_added / nginx_added,
            "×",
            Goal::AtMost(1.5),
        ),
        (
            format!("throughput, {} connections", o.high_connections),
            ratio(r.high[2].rps, r.high[1].rps),
            "×",
            Goal::AtLeast(0.8),
        ),
        (
            "stall check: added p50 (to11 − direct)".into(),
            stall_added_p50(r),
            " ms",
            Goal::Below(1.0),
        ),
    ];
    println!("\nto11 / nginx, this run, against the targets\n");
    for (what, v, unit, goal) in lines {
        println!(
            "{what:<40} {:>9}   target {:<9} {}",
            format!("{v:.2}{unit}"),
            goal.show(unit),
            if goal.met(v) { "met" } else { "NOT met" }
        );
    }
}
