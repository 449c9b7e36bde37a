#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `to11-bench-usage`: the usage pipeline at scale, over a real Redis and a real PostgreSQL.
//!
//! 1. Ingestion: `BENCH_USAGE_INGEST` records (400,000) wait on the usage stream in batches of
//!    200, as replicas ship them; the control plane's ingester (the real one: consumer group,
//!    pricing, one insert per read, rollups per minute and hour by project, key, model, provider
//!    and route, and hourly by end user and tag) drains them into PostgreSQL, timed from its start
//!    to the last record stored.
//! 2. Fill: records up to `BENCH_USAGE_RECORDS` (10,000,000) spread over the last 30 days, stored
//!    through the same store in batches of 5,000, then `VACUUM (ANALYZE)`.
//! 3. Queries: the usage API and the request log over HTTP against a control plane on that
//!    database, for the busiest project (half of all records) and the operator, each run
//!    `BENCH_USAGE_RUNS` (5) times: p50 and max.
//!
//! The database: `BENCH_USAGE_DATABASE_URL`, else a fresh database on the local server
//! (127.0.0.1:5432, dropped at the end), else a private server. Run it with
//! `tests/bench-usage.sh`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::json;
use to11_control_plane::usage::ingest::{IngestStats, Ingester};
use to11_control_plane::usage::{self, Pricer};
use to11_shared::record::{encode_batch, RequestRecord};
use to11_shared::usage::{Usage, UsageSource};
use to11_tests::client::ApiClient;
use to11_tests::postgres::TestDatabase;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane_metered, ADMIN_TOKEN};
use uuid::Uuid;

const PROJECTS: usize = 20;
const KEYS_PER_PROJECT: usize = 5;
const MODELS: [(&str, &str); 8] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("gemini-2.5-pro", "gemini"),
    ("gemini-2.5-flash", "gemini"),
    ("mistral-large-latest", "mistral"),
    ("llama-3.3-70b-versatile", "groq"),
];
const TEAMS: [&str; 5] = ["search", "support", "agents", "growth", "platform"];
const STREAM_BATCH: usize = 200;
const FILL_BATCH: usize = 5_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Records as a multi-tenant deployment makes them: half of them for one busy project, keys,
/// models, end users and tags spread, 3 % errors.
struct Traffic {
    state: u64,
    projects: Vec<(Uuid, Vec<Uuid>)>,
}

impl Traffic {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, and the same traffic on every run.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn record(&mut self, time: DateTime<Utc>) -> RequestRecord {
        let r = self.next();
        let p = if r.is_multiple_of(2) {
            0
        } else {
            (r >> 8) as usize % self.projects.len()
        };
        let id = Uuid::from_u64_pair(self.next(), self.next());
        let (project, keys) = &self.projects[p];
        let key = keys[(r >> 16) as usize % keys.len()];
        let (model, provider) = MODELS[(r >> 24) as usize % MODELS.len()];
        let status = match (r >> 32) % 100 {
            0..=96 => 200,
            97 => 429,
            98 => 500,
            _ => 400,
        };
        let routed = (r >> 40).is_multiple_of(5);
        let ok = status == 200;
        let input = 100 + (r >> 20) % 4_000;
        let cache_read = if (r >> 44).is_multiple_of(3) {
            input / 2
        } else {
            0
        };
        RequestRecord {
            id,
            time,
            project: *project,
            key,
            surface: "chat".into(),
            requested_model: if routed {
                "chat-default".into()
            } else {
                format!("{provider}/{model}")
            },
            layer: if routed { "route" } else { "provider" }.into(),
            function: None,
            route: routed.then(|| "chat-default".into()),
            provider: Some(provider.into()),
            provider_kind: Some(provider.into()),
            model: Some(model.into()),
            stream: (r >> 48).is_multiple_of(2),
            status,
            error: (!ok).then(|| "upstream_error".into()),
            attempts: 1,
            failed: vec![],
            latency_us: 200_000 + (r >> 28) % 5_000_000,
            ttfb_us: Some(150_000 + (r >> 30) % 500_000),
            usage: ok.then(|| Usage {
                input: input - cache_read,
                output: 10 + (r >> 12) % 1_000,
                cache_read,
                ..Usage::default()
            }),
            usage_source: ok.then_some(UsageSource::Reported),
            cancelled: false,
            cost: None,
            user: Some(format!("user-{}", (r >> 36) % 2_000)),
            tags: BTreeMap::from([
                (
                    "team".to_string(),
                    TEAMS[(r >> 52) as usize % TEAMS.len()].to_string(),
                ),
                (
                    "env".to_string(),
                    if (r >> 56).is_multiple_of(4) {
                        "dev"
                    } else {
                        "prod"
                    }
                    .to_string(),
                ),
            ]),
        }
    }
}

/// The projects (and their keys) the records belong to, made through the API.
async fn projects(api: &ApiClient) -> Vec<(Uuid, Vec<Uuid>)> {
    let mut out = vec![];
    for p in 0..PROJECTS {
        let slug = format!("p{p:02}");
        let (s, body) = api
            .post("/projects", json!({"name": slug, "slug": slug}))
            .await;
        assert_eq!(s, 201, "{body}");
        let mut keys = vec![];
        for k in 0..KEYS_PER_PROJECT {
            let (s, key) = api
                .post(
                    &format!("/projects/{slug}/keys"),
                    json!({"name": format!("key-{k}")}),
                )
                .await;
            assert_eq!(s, 201, "{key}");
            keys.push(key["id"].as_str().expect("key id").parse().expect("uuid"));
        }
        out.push((
            body["id"].as_str().expect("id").parse().expect("uuid"),
            keys,
        ));
    }
    out
}

/// Queues `n` records of the last ten minutes, in the order they arrived, on the usage stream
/// under `prefix`.
async fn queue(redis: &RedisServer, prefix: &str, traffic: &mut Traffic, n: usize) {
    let mut c = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let stream = to11_shared::bus::usage_stream(prefix);
    let start = Utc::now() - TimeDelta::minutes(10);
    let step = 600_000_000 / n.max(1) as i64;
    let mut made = 0i64;
    let mut left = n;
    while left > 0 {
        let mut pipe = redis::pipe();
        for _ in 0..50 {
            if left == 0 {
                break;
            }
            let size = left.min(STREAM_BATCH);
            let batch: Vec<RequestRecord> = (0..size)
                .map(|_| {
                    made += 1;
                    traffic.record(start + TimeDelta::microseconds(made * step))
                })
                .collect();
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(to11_shared::bus::USAGE_FIELD)
                .arg(encode_batch(&batch))
                .ignore();
            left -= size;
        }
        let () = pipe.query_async(&mut c).await.expect("xadd");
    }
}

/// Drains the queued stream with the control plane's ingester; returns the time it took.
async fn ingest(redis: &RedisServer, db: &str, prefix: &str, n: usize) -> Duration {
    let store = usage::open(db).expect("store");
    // The schema and today's partitions exist before the clock starts, as in a running system.
    store.maintain(Utc::now(), 30, 400).await.expect("schema");
    let stats = Arc::new(IngestStats::default());
    let ingester = Ingester {
        redis_url: redis.url(),
        prefix: prefix.to_string(),
        consumer: "bench".into(),
        store,
        pricer: Arc::new(Pricer::default()),
        stats: stats.clone(),
        raw_days: 30,
        rollup_days: 400,
    };
    let started = Instant::now();
    let running = actix_rt::spawn(ingester.run());
    loop {
        let done = stats.records.load(Ordering::Relaxed) + stats.duplicates.load(Ordering::Relaxed);
        if done >= n as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "ingestion stalled at {done} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    running.abort();
    took
}

/// Stores `n` records spread over the last 30 days straight through the store, oldest first (as
/// they would have arrived).
async fn fill(db: &str, traffic: &mut Traffic, n: usize) -> Duration {
    let store = usage::open(db).expect("store");
    let pricer = Pricer::default();
    let now = Utc::now();
    let span: i64 = 30 * 24 * 3600 * 1000;
    let start = now - TimeDelta::milliseconds(span);
    let started = Instant::now();
    let mut done = 0;
    let mut last_report = Instant::now();
    while done < n {
        let size = (n - done).min(FILL_BATCH);
        let mut batch: Vec<RequestRecord> = (done..done + size)
            .map(|i| {
                let at = (i as i128 * span as i128 / n as i128) as i64;
                traffic.record(start + TimeDelta::milliseconds(at))
            })
            .collect();
        pricer.price(&mut batch);
        let stored = store.insert(&batch).await.expect("insert");
        assert_eq!(stored, size, "every record is new");
        done += size;
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "  stored {done} of {n} ({:.0} records/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    started.elapsed()
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Each query's p50 and max over `runs` runs (ms), and what it answered.
async fn queries(api: &ApiClient, runs: usize) -> Vec<(String, f64, f64, String)> {
    let now = Utc::now();
    let days = |d: i64| at(now - TimeDelta::days(d));
    let hours = |h: i64| at(now - TimeDelta::hours(h));
    let mut list: Vec<(String, String)> = vec![
        (
            "usage, 30 days by day, by model".into(),
            format!(
                "/projects/p00/usage?from={}&interval=day&group_by=model",
                days(30)
            ),
        ),
        (
            "usage, 24 hours by hour, by key".into(),
            format!(
                "/projects/p00/usage?from={}&interval=hour&group_by=key",
                hours(24)
            ),
        ),
        (
            "usage, last hour by minute, by provider".into(),
            format!(
                "/projects/p00/usage?from={}&interval=minute&group_by=provider",
                hours(1)
            ),
        ),
        (
            "usage, 7 days by day, by end user".into(),
            format!(
                "/projects/p00/usage?from={}&interval=day&group_by=user",
                days(7)
            ),
        ),
        (
            "usage, 7 days by day, by tag team".into(),
            format!(
                "/projects/p00/usage?from={}&interval=day&group_by=tag:team",
                days(7)
            ),
        ),
        (
            "usage, 30 days, CSV by model and key".into(),
            format!(
                "/projects/p00/usage?from={}&interval=day&group_by=model,key&format=csv",
                days(30)
            ),
        ),
        (
            "operator usage, 30 days by day, by project".into(),
            format!("/usage?from={}&interval=day&group_by=project", days(30)),
        ),
        (
            "request log, first page of 50".into(),
            "/projects/p00/requests?limit=50".into(),
        ),
        (
            "request log, one model".into(),
            "/projects/p00/requests?limit=50&model=claude-haiku-4-5".into(),
        ),
        (
            "request log, one end user".into(),
            "/projects/p00/requests?limit=50&user=user-17".into(),
        ),
        (
            "request log, 5xx only".into(),
            "/projects/p00/requests?limit=50&status=5xx".into(),
        ),
        (
            "request log, tag team:agents".into(),
            "/projects/p00/requests?limit=50&tag=team:agents".into(),
        ),
        (
            "request log, last 24 hours, CSV".into(),
            format!(
                "/projects/p00/requests?limit=500&from={}&format=csv",
                hours(24)
            ),
        ),
    ];
    // A page deep in the log: follow the cursor 20 pages down.
    let mut path = "/projects/p00/requests?limit=50".to_string();
    for _ in 0..20 {
        let (s, page) = api.get(&path).await;
        assert_eq!(s, 200, "{page}");
        let c = page["next_cursor"].as_str().expect("a next page");
        path = format!("/projects/p00/requests?limit=50&cursor={c}");
    }
    list.push(("request log, 21st page (cursor)".into(), path));

    let mut out = vec![];
    for (name, path) in list {
        let mut times = vec![];
        let mut answer = String::new();
        for _ in 0..runs {
            let started = Instant::now();
            let (s, body) = api.get(&path).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(s, 200, "{name}: {body}");
            answer = summary(&body);
        }
        times.sort_by(f64::total_cmp);
        out.push((name, times[times.len() / 2], times[times.len() - 1], answer));
    }
    out
}

/// What an answer held, in a few words (to show the queries did real work).
fn summary(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(csv) => format!("{} CSV lines", csv.lines().count()),
        v if v.get("totals").is_some() => format!(
            "{} requests, {} groups, {} points",
            v["totals"]["requests"],
            v["groups"].as_array().map_or(0, Vec::len),
            v["series"].as_array().map_or(0, Vec::len)
        ),
        v => format!("{} records", v["data"].as_array().map_or(0, Vec::len)),
    }
}

fn main() {
    let total = setting("BENCH_USAGE_RECORDS", 10_000_000) as usize;
    let ingested = (setting("BENCH_USAGE_INGEST", 400_000) as usize).min(total);
    let runs = setting("BENCH_USAGE_RUNS", 5).max(1) as usize;
    let redis = RedisServer::start(false);
    let own_db = std::env::var("BENCH_USAGE_DATABASE_URL")
        .is_err()
        .then(TestDatabase::create);
    let db = std::env::var("BENCH_USAGE_DATABASE_URL")
        .unwrap_or_else(|_| own_db.as_ref().map(|d| d.url.clone()).expect("database"));
    let cp = control_plane_metered(&redis.url(), "bench:", &db).expect("control plane");
    let sys = actix_rt::System::new();
    sys.block_on(async {
        let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
        let mut traffic = Traffic {
            state: 0x9e37_79b9_7f4a_7c15,
            projects: projects(&api).await,
        };

        eprintln!("queueing {ingested} records on the usage stream");
        queue(&redis, "ingest:", &mut traffic, ingested).await;
        let took = ingest(&redis, &db, "ingest:", ingested).await;
        println!(
            "\ningestion, Redis stream → PostgreSQL (batches of {STREAM_BATCH}; raw records, minute and hour rollups, user and tag rollups):\n  {ingested} records in {:.1} s: {:.0} records/s",
            took.as_secs_f64(),
            ingested as f64 / took.as_secs_f64()
        );

        let rest = total - ingested;
        eprintln!("storing {rest} more records over 30 days");
        let took = fill(&db, &mut traffic, rest).await;
        println!(
            "\nfill, straight into the store in batches of {FILL_BATCH} (records spread over 30 days): {rest} records in {:.0} s: {:.0} records/s",
            took.as_secs_f64(),
            rest as f64 / took.as_secs_f64()
        );
        let started = Instant::now();
        let vacuum = std::process::Command::new("psql")
            .arg(&db)
            .args(["-qc", "VACUUM (ANALYZE)"])
            .status()
            .expect("psql");
        assert!(vacuum.success(), "VACUUM (ANALYZE) failed");
        let counts = std::process::Command::new("psql")
            .arg(&db)
            .args([
                "-Atc",
                "SELECT (SELECT count(*) FROM to11_requests) || ' records, ' || \
                 (SELECT count(*) FROM to11_usage_minute) || ' minute rollup rows, ' || \
                 (SELECT count(*) FROM to11_usage_hour) || ' hour rollup rows; database ' || \
                 pg_size_pretty(pg_database_size(current_database()))",
            ])
            .output()
            .expect("psql");
        println!(
            "VACUUM (ANALYZE) in {:.0} s; {}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&counts.stdout).trim()
        );

        let results = queries(&api, runs).await;
        println!(
            "\nqueries over HTTP (the busiest project holds half the records), {runs} runs each:\n"
        );
        println!("{:<44} {:>9} {:>9}   answer", "query", "p50 ms", "max ms");
        for (name, p50, max, answer) in &results {
            println!("{name:<44} {p50:>9.1} {max:>9.1}   {answer}");
        }
        let worst = results.iter().map(|r| r.1).fold(0.0, f64::max);
        println!("\nslowest p50: {worst:.1} ms");
    });
    drop(cp);
    drop(own_db);
}
