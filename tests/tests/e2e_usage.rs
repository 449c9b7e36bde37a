#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Usage end to end: every request leaves exactly one record, with the usage the upstream
//! reported, in SQLite (embedded mode) and in PostgreSQL over the Redis stream; rollups equal the
//! sum of the records; the usage API and the request log are tenant-scoped; Redis and PostgreSQL
//! going away under load fail no request and lose no record.

use std::time::Duration;

use serde_json::{json, Value};
use to11_tests::client::{gateway, post_chat, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::postgres::{PgServer, TestDatabase};
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane_metered, embedded, replica, ADMIN_TOKEN};
use to11_tests::wait_until;

const UPSTREAM_KEY: &str = "sk-usage";

/// A project `slug` with `mock` connected and one key, applied on `gw`: (project id, key).
async fn project(
    api: &ApiClient,
    slug: &str,
    mock: &MockUpstream,
    gw: std::net::SocketAddr,
) -> (String, String) {
    let (s, p) = api
        .post("/projects", json!({"name": slug, "slug": slug}))
        .await;
    assert_eq!(s, 201, "{p}");
    let (s, e) = api
        .post(
            &format!("/projects/{slug}/providers"),
            json!({"kind": "openai-compatible", "slug": "up", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (_, k) = api
        .post(&format!("/projects/{slug}/keys"), json!({"name": "k"}))
        .await;
    let id = p["id"].as_str().expect("id").to_string();
    wait_version(&[gw], &id, k["version"].as_u64().expect("v")).await;
    (id, k["key"].as_str().expect("key").to_string())
}

fn auth(key: &str) -> String {
    format!("Bearer {key}")
}

/// Sends the mix every test uses: whole and streamed answers, tags and an end user, an unknown
/// model; returns how many were sent.
async fn traffic(gw: std::net::SocketAddr, key: &str, n: usize) -> usize {
    let a = auth(key);
    for i in 0..n {
        let stream = i % 3 == 1;
        let body = json!({"model": "up/gpt-4o", "stream": stream, "user": "end-user-1",
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let r = post_chat(
            gw,
            &[
                ("x-to11-authorization", &a),
                ("x-to11-tags", r#"{"team":"search"}"#),
            ],
            &body,
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = post_chat(
        gw,
        &[("x-to11-authorization", &a)],
        r#"{"model":"nope","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    n + 1
}

/// Every page of the request log.
async fn all_records(api: &ApiClient, slug: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/projects/{slug}/requests?limit=7&cursor={c}"),
            None => format!("/projects/{slug}/requests?limit=7"),
        };
        let (s, page) = api.get(&path).await;
        assert_eq!(s, 200, "{page}");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn wait_records(api: &ApiClient, slug: &str, n: usize) -> Vec<Value> {
    wait_until(&format!("{n} records"), 30, || async {
        let r = all_records(api, slug).await;
        (r.len() >= n).then_some(r)
    })
    .await
}

/// What every test checks of the records and the usage of the mix.
async fn check_mix(api: &ApiClient, slug: &str, n: usize) {
    let records = wait_records(api, slug, n + 1).await;
    assert_eq!(records.len(), n + 1, "exactly one record per request");
    let ok: Vec<&Value> = records.iter().filter(|r| r["status"] == 200).collect();
    assert_eq!(ok.len(), n);
    for r in &ok {
        assert_eq!(r["usage"]["input"], 5, "{r}");
        assert_eq!(r["usage"]["output"], 4, "{r}");
        assert_eq!(r["usage_source"], "reported", "{r}");
        assert_eq!(r["user"], "end-user-1");
        assert_eq!(r["tags"]["team"], "search");
        assert_eq!(
            (r["provider"].as_str(), r["model"].as_str()),
            (Some("up"), Some("gpt-4o"))
        );
    }
    let missing = records
        .iter()
        .find(|r| r["status"] == 404)
        .expect("the 404");
    assert_eq!(missing["error"], "model_not_found");
    let ids: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), records.len(), "no record twice");

    let (s, u) = api
        .get(&format!(
            "/projects/{slug}/usage?group_by=model&interval=day"
        ))
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["totals"]["requests"], (n + 1) as u64, "{u}");
    assert_eq!(u["totals"]["errors"], 1);
    assert_eq!(u["totals"]["tokens"]["input"], 5 * n as u64);
    assert_eq!(u["totals"]["tokens"]["output"], 4 * n as u64);
    let (_, by_tag) = api
        .get(&format!("/projects/{slug}/usage?group_by=tag:team"))
        .await;
    assert_eq!(
        by_tag["groups"][0]["group"]["tag:team"], "search",
        "{by_tag}"
    );
    assert_eq!(by_tag["groups"][0]["requests"], n as u64);
    let (s, csv) = api.get(&format!("/projects/{slug}/usage?format=csv")).await;
    assert_eq!(s, 200, "{csv}");
}

/// The gateway asks an OpenAI-compatible upstream for the stream's usage and strips what it
/// asked for: a client that did not ask receives byte for byte what a direct call returns; one
/// that asked receives the usage chunk, also byte for byte.
async fn include_usage_is_invisible(gw: std::net::SocketAddr, mock: &MockUpstream, key: &str) {
    for asked in [false, true] {
        let mut body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        if asked {
            body["stream_options"] = json!({"include_usage": true});
        }
        let direct = gateway(
            mock.addr,
            awc::http::Method::POST,
            "/v1/chat/completions",
            &[("authorization", &auth(UPSTREAM_KEY))],
            Some(body.to_string().into()),
        )
        .await;
        assert_eq!(direct.status, 200);
        body["model"] = json!("up/gpt-4o");
        let via = post_chat(
            gw,
            &[("x-to11-authorization", &auth(key))],
            &body.to_string(),
        )
        .await;
        assert_eq!(via.status, 200);
        let sent = mock
            .last_request("/v1/chat/completions")
            .expect("sent")
            .json();
        assert_eq!(
            sent["stream_options"]["include_usage"], true,
            "the gateway asked for the usage (asked by the client: {asked})"
        );
        assert_eq!(
            String::from_utf8_lossy(&via.body),
            String::from_utf8_lossy(&direct.body),
            "client asked for usage: {asked}"
        );
        assert_eq!(
            String::from_utf8_lossy(&via.body).contains("\"usage\""),
            asked
        );
    }
}

#[actix_rt::test]
async fn embedded_mode_meters_every_request_into_sqlite() {
    let dir = std::env::temp_dir().join(format!("to11-usage-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let (_, key) = project(&api, "meter", &mock, gw.info.gateway).await;
    let n = traffic(gw.info.gateway, &key, 12).await - 1;
    check_mix(&api, "meter", n).await;

    // Tenant isolation: another project's management key sees nothing of this one.
    let (_, other) = project(&api, "other", &mock, gw.info.gateway).await;
    let _ = other;
    let (_, mk) = api
        .post("/projects/other/management-keys", json!({"name": "m"}))
        .await;
    let tenant = api.with_token(mk["key"].as_str().expect("key"));
    for path in [
        "/projects/meter/usage",
        "/projects/meter/requests",
        "/projects/meter/prices",
    ] {
        let (s, _) = tenant.get(path).await;
        assert_eq!(s, 404, "{path}");
    }
    let (s, own) = tenant.get("/projects/other/requests").await;
    assert_eq!((s, own["data"].as_array().map(Vec::len)), (200, Some(0)));
    let (s, _) = tenant.get("/usage").await;
    assert_eq!(s, 403, "the operator's view is the operator's");
    let (s, all) = api.get("/usage?group_by=project").await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["totals"]["requests"], (n + 1) as u64);
    let (s, bad) = api.get("/projects/meter/usage?interval=week").await;
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let bad_tags = post_chat(
        gw.info.gateway,
        &[
            ("x-to11-authorization", &auth(&key)),
            ("x-to11-tags", "[1]"),
        ],
        r#"{"model":"up/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(bad_tags.status, 400);
    include_usage_is_invisible(gw.info.gateway, &mock, &key).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn redis_mode_ingests_records_into_postgres_with_exact_rollups() {
    let redis = RedisServer::start(false);
    let db = TestDatabase::create();
    let cp = control_plane_metered(&redis.url(), "usage:", &db.url).expect("control plane");
    let dp = replica(&redis.url(), "usage:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let (_, key) = project(&api, "pg", &mock, dp.info).await;
    let n = traffic(dp.info, &key, 15).await - 1;
    check_mix(&api, "pg", n).await;
    let raw = db.query("SELECT count(*), sum(input), sum(output) FROM to11_requests");
    let minute = db.query("SELECT sum(requests), sum(input), sum(output) FROM to11_usage_minute");
    let hour = db.query("SELECT sum(requests), sum(input), sum(output) FROM to11_usage_hour");
    assert_eq!(raw, minute, "minute rollups equal the records");
    assert_eq!(raw, hour, "hour rollups equal the records");
    entries_it_cannot_read(&redis, &api, cp.info.addr, &db).await;
}

/// Entries on the usage stream that are not batches are acknowledged and counted; one written in
/// a newer format is left pending for a newer control plane; neither holds up the good ones.
async fn entries_it_cannot_read(
    redis: &RedisServer,
    api: &ApiClient,
    cp: std::net::SocketAddr,
    db: &TestDatabase,
) {
    let stored_before: u64 = db
        .query("SELECT count(*) FROM to11_requests")
        .parse()
        .expect("n");
    let mut record = all_records(api, "pg").await[0].clone();
    record["id"] = json!(uuid::Uuid::new_v4());
    let record: to11_shared::record::RequestRecord =
        serde_json::from_value(record).expect("a record");
    let good = to11_shared::record::encode_batch(&[record]);
    let mut newer = good.clone();
    newer[0] += 1;
    let stream = to11_shared::bus::usage_stream("usage:");
    let mut c = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    for payload in [b"[{\"not\":\"a batch\"}]".to_vec(), newer, good] {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(to11_shared::bus::USAGE_FIELD)
            .arg(payload)
            .query_async(&mut c)
            .await
            .expect("xadd");
    }
    wait_until("the good batch stored", 30, || async {
        let n: u64 = db
            .query("SELECT count(*) FROM to11_requests")
            .parse()
            .ok()?;
        (n == stored_before + 1).then_some(())
    })
    .await;
    assert_eq!(counter(cp, "to11_cp_usage_malformed_total").await, 1);
    assert_eq!(counter(cp, "to11_cp_usage_newer_format_total").await, 1);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(to11_shared::bus::USAGE_GROUP)
        .query_async(&mut c)
        .await
        .expect("xpending");
    assert_eq!(
        redis::from_redis_value::<u64>(pending[0].clone()).expect("count"),
        1,
        "only the newer-format entry is pending"
    );
}

/// Sends chat requests until `stop` is set; counts answers by status.
async fn load(
    gw: std::net::SocketAddr,
    key: String,
    stop: std::rc::Rc<std::cell::Cell<bool>>,
) -> (usize, usize) {
    let a = auth(&key);
    let (mut ok, mut failed) = (0, 0);
    let mut i = 0u64;
    while !stop.get() {
        i += 1;
        let body = json!({"model": "up/gpt-4o", "stream": i.is_multiple_of(2),
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let r = post_chat(gw, &[("x-to11-authorization", &a)], &body).await;
        if r.status == 200 {
            ok += 1;
        } else {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (ok, failed)
}

/// The replica's counter `name` from its `/metrics`.
async fn counter(gw: std::net::SocketAddr, name: &str) -> u64 {
    let r = gateway(gw, awc::http::Method::GET, "/metrics", &[], None).await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn redis_then_postgres_going_away_under_load_fails_nothing_and_loses_nothing() {
    // Redis keeps what it acknowledged (AOF, fsync always), as a deployment's must.
    let mut redis = RedisServer::start(true);
    let pg = PgServer::start();
    let cp = control_plane_metered(&redis.url(), "faults:", &pg.url("postgres")).expect("cp");
    let dp = replica(&redis.url(), "faults:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let (_, key) = project(&api, "fault", &mock, dp.info).await;

    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let running = actix_rt::spawn(load(dp.info, key, stop.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.down();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.up();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.set(true);
    let (ok, failed) = running.await.expect("load");
    assert_eq!(
        failed, 0,
        "no request failed while Redis and then PostgreSQL were away"
    );
    assert!(ok > 50, "the load ran ({ok} requests)");

    let dropped = counter(dp.info, "to11_usage_records_dropped_total").await;
    let want = ok as u64 - dropped;
    let stored = wait_until("every record not dropped", 60, || async {
        let n: u64 = pg
            .query("postgres", "SELECT count(*) FROM to11_requests")
            .parse()
            .unwrap_or(0);
        (n >= want).then_some(n)
    })
    .await;
    assert_eq!(
        stored, want,
        "no record twice, none lost (dropped: {dropped})"
    );
    let rolled: u64 = pg
        .query("postgres", "SELECT sum(requests) FROM to11_usage_hour")
        .parse()
        .expect("sum");
    assert_eq!(rolled, stored, "rollups count each record once");
}

/// Records over five days, with end users and tags, in batches (one of them twice).
fn days_of_records() -> Vec<to11_shared::record::RequestRecord> {
    use to11_shared::usage::{Usage, UsageSource};
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T05:00:00Z")
        .expect("time")
        .to_utc();
    (0..600u64)
        .map(|i| to11_shared::record::RequestRecord {
            id: uuid::Uuid::from_u128(u128::from(i) + 1),
            time: start + chrono::TimeDelta::minutes((i * 613 % 7_000) as i64),
            project: uuid::Uuid::from_u128(u128::from(i % 2) + 1),
            key: uuid::Uuid::from_u128(u128::from(i % 3) + 10),
            surface: "chat".into(),
            requested_model: "m".into(),
            layer: "provider".into(),
            function: None,
            route: (i % 4 == 0).then(|| "r".into()),
            provider: Some(["a", "b"][(i % 2) as usize].into()),
            provider_kind: Some("openai".into()),
            model: Some(["m1", "m2", "m3"][(i % 3) as usize].into()),
            stream: false,
            status: if i % 10 == 0 { 500 } else { 200 },
            error: None,
            attempts: 1,
            failed: vec![],
            latency_us: 1_000 * (i % 900),
            ttfb_us: None,
            usage: Some(Usage {
                input: i,
                output: 2 * i,
                cache_read: i % 7,
                ..Usage::default()
            }),
            usage_source: Some(UsageSource::Reported),
            cancelled: false,
            cost: (i % 5 != 0).then_some(3 * i),
            user: Some(format!("u{}", i % 6)),
            tags: std::collections::BTreeMap::from([("team".to_string(), format!("t{}", i % 4))]),
        })
        .collect()
}

/// PostgreSQL answers usage queries from sums made in the database and from day rollups (whole
/// days) joined to hour rollups (the hours at either end); SQLite from hour rows merged in the
/// gateway. Over the same records, every answer is the same.
#[actix_rt::test]
async fn postgres_day_rollups_answer_exactly_as_hour_rows_do() {
    use to11_control_plane::usage::query::{parse_usage, report};
    let db = TestDatabase::create();
    let pg = to11_control_plane::usage::open(&db.url).expect("pg");
    let dir = std::env::temp_dir().join(format!("to11-days-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let lite = to11_control_plane::usage::open(dir.join("usage.db").to_str().expect("path"))
        .expect("sqlite");
    let records = days_of_records();
    for store in [&pg, &lite] {
        for chunk in records.chunks(70) {
            store.insert(chunk).await.expect("insert");
        }
        assert_eq!(store.insert(&records[..70]).await.expect("again"), 0);
    }
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T00:00:00Z")
        .expect("now")
        .to_utc();
    let queries = [
        (
            "2026-11-20T07:17:00Z",
            "2026-11-24T13:40:00Z",
            "day",
            "model",
        ),
        (
            "2026-11-19T00:00:00Z",
            "2026-11-26T00:00:00Z",
            "day",
            "key,provider",
        ),
        (
            "2026-11-21T00:00:00Z",
            "2026-11-23T00:00:00Z",
            "day",
            "route",
        ),
        (
            "2026-11-20T07:17:00Z",
            "2026-11-24T13:40:00Z",
            "day",
            "user",
        ),
        (
            "2026-11-20T23:59:00Z",
            "2026-11-24T00:01:00Z",
            "day",
            "tag:team",
        ),
        (
            "2026-11-20T07:17:00Z",
            "2026-11-22T13:40:00Z",
            "hour",
            "model,key",
        ),
        (
            "2026-11-22T10:00:00Z",
            "2026-11-22T20:00:00Z",
            "minute",
            "provider",
        ),
        ("2026-11-20T10:30:00Z", "2026-11-20T11:30:00Z", "day", ""),
    ];
    let mut nonzero = 0;
    for (from, to, interval, group) in queries {
        for (operator, project) in [(false, Some(uuid::Uuid::from_u128(1))), (true, None)] {
            let mut p = std::collections::HashMap::from([
                ("from".to_string(), from.to_string()),
                ("to".to_string(), to.to_string()),
                ("interval".to_string(), interval.to_string()),
            ]);
            let group = if operator && !group.contains("user") && !group.contains("tag") {
                format!("project{}{group}", if group.is_empty() { "" } else { "," })
            } else {
                group.to_string()
            };
            if !group.is_empty() {
                p.insert("group_by".into(), group.clone());
            }
            let params = parse_usage(&p, now, operator).expect("valid");
            let q = params.rows(project);
            let from_pg = report(&params, &pg.rows(&q).await.expect("pg rows"));
            let from_lite = report(&params, &lite.rows(&q).await.expect("sqlite rows"));
            assert_eq!(
                from_pg, from_lite,
                "{from}..{to} by {interval}, group_by={group}"
            );
            nonzero += usize::from(from_pg.totals.requests > 0);
        }
    }
    assert!(nonzero >= 14, "the queries found records ({nonzero})");
    let _ = std::fs::remove_dir_all(dir);
}
