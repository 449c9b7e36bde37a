#![allow(clippy::expect_used, clippy::unwrap_used)]
//! A replica under an operator's week: a provider outage (the retry budget bounds the attempts),
//! a hung or cut Redis subscription (noticed within 5 s), a replica started while Redis is down
//! (ready within 1 s of Redis coming back), and replicas reporting in through Redis (listed by
//! `GET /api/v1/replicas`, refusals included). Draining on SIGTERM is in `e2e_drain.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use to11_tests::client::{chat, http, wait_version, ApiClient};
use to11_tests::mock::{MockUpstream, Scripted};
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, embedded_with, replica, Spawned, ADMIN_TOKEN};
use to11_tests::wait_until;

const CHAT: &str = "/v1/chat/completions";

async fn readyz(addr: SocketAddr) -> (u16, Value) {
    match http().get(format!("http://{addr}/readyz")).send().await {
        Ok(mut r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn metrics(addr: SocketAddr) -> String {
    let mut r = http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics");
    String::from_utf8(r.body().await.expect("body").to_vec()).expect("utf-8")
}

/// The sum of a counter's series in a Prometheus text page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `n` chat calls, `concurrency` at a time; the statuses seen.
async fn burst(gw: SocketAddr, key: &str, model: &str, n: usize, concurrency: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(concurrency);
        let calls = (0..k).map(|_| chat(gw, key, model));
        statuses.extend(
            futures_util::future::join_all(calls)
                .await
                .into_iter()
                .map(|r| r.status),
        );
        left -= k;
    }
    statuses
}

/// A 100 % 503 outage of every target of a route: once the budget is spent (the first burst),
/// upstream attempts per request stay at most 1.2 (the default 20 %), counted at the mocks.
/// Without a budget the default policy (one retry per target) makes 2.0 per request for one
/// target and 4.0 for two.
async fn outage(targets: &[&str]) -> f64 {
    let dir = std::env::temp_dir().join(format!("to11-budget-{}", uuid::Uuid::new_v4()));
    let gw = embedded_with(&dir, |c| {
        c.gateway.retry_budget_percent = 20;
        c.gateway.retry_budget_min_per_second = 1;
    })
    .expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "o", "slug": "o"}))
        .await;
    let mocks: Vec<MockUpstream> = targets
        .iter()
        .map(|_| MockUpstream::start("sk-up", &["m"]))
        .collect();
    for (name, mock) in targets.iter().zip(&mocks) {
        let (s, e) = api
            .post(
                "/projects/o/providers",
                json!({"kind": "openai-compatible", "slug": name, "base_url": mock.base_url(), "credential": {"api_key": "sk-up"}}),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        mock.always(Some(Scripted::error(503, "overloaded")));
    }
    let route_targets: Vec<Value> = targets
        .iter()
        .map(|t| json!({"provider": t, "model": "m"}))
        .collect();
    // The default policy (one retry, cool-down after 3 failures), with a short backoff.
    let (s, r) = api
        .post(
            "/projects/o/routes",
            json!({"name": "r", "targets": route_targets, "policy": {"backoff_ms": 1, "backoff_max_ms": 2}}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (_, k) = api.post("/projects/o/keys", json!({"name": "k"})).await;
    let key = k["key"].as_str().expect("key").to_string();
    wait_version(
        &[gw.info.gateway],
        p["id"].as_str().expect("id"),
        k["version"].as_u64().expect("v"),
    )
    .await;

    // Spend the budget.
    let spent = burst(gw.info.gateway, &key, "r", 100, 8).await;
    assert!(spent.iter().all(|s| *s == 503), "{spent:?}");
    let before: usize = mocks.iter().map(|m| m.count(CHAT)).sum();
    let n = 300;
    let statuses = burst(gw.info.gateway, &key, "r", n, 8).await;
    assert!(statuses.iter().all(|s| *s == 503), "the outage is reported");
    let attempts: usize = mocks.iter().map(|m| m.count(CHAT)).sum::<usize>() - before;
    let per_request = attempts as f64 / n as f64;
    eprintln!(
        "{targets:?}: {attempts} upstream attempts for {n} requests = {per_request:.3} per request"
    );
    let refused = counter(
        &metrics(gw.info.gateway).await,
        "to11_retries_refused_total",
    );
    assert!(refused > 0.0, "refusals are counted");
    per_request
}

#[actix_rt::test]
async fn an_outage_of_one_target_costs_at_most_1_2_attempts_per_request() {
    let per_request = outage(&["a"]).await;
    assert!(per_request <= 1.2, "{per_request} attempts per request");
}

#[actix_rt::test]
async fn an_outage_of_two_targets_costs_at_most_1_2_attempts_per_request() {
    let per_request = outage(&["a", "b"]).await;
    assert!(per_request <= 1.2, "{per_request} attempts per request");
}

/// A replica following `redis` (with its control plane), subscribed.
async fn following(redis: &RedisServer, prefix: &str) -> Spawned<SocketAddr> {
    let dp = replica(&redis.url(), prefix).expect("replica");
    let addr = dp.info;
    wait_until("subscribed", 10, || async {
        let (s, b) = readyz(addr).await;
        (s == 200 && b["subscribed"] == true).then_some(())
    })
    .await;
    dp
}

#[actix_rt::test]
async fn a_hung_redis_is_noticed_within_5_s() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "hung:").expect("control plane");
    let replica = following(&redis, "hung:").await;
    let dp = replica.info;
    redis.signal("STOP");
    let t0 = Instant::now();
    wait_until("the hung subscription noticed", 15, || async {
        (readyz(dp).await.1["subscribed"] == false).then_some(())
    })
    .await;
    let noticed = t0.elapsed();
    eprintln!("hung Redis noticed after {noticed:?}");
    let (status, _) = readyz(dp).await;
    assert_eq!(status, 200, "still serving its configuration");
    redis.signal("CONT");
    assert!(
        noticed <= Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    wait_until("subscribed again", 10, || async {
        (readyz(dp).await.1["subscribed"] == true).then_some(())
    })
    .await;
    drop(cp);
}

#[actix_rt::test]
async fn a_cut_subscription_is_noticed_within_5_s_and_changes_flow_again() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "cut:").expect("control plane");
    let replica = following(&redis, "cut:").await;
    let dp = replica.info;
    let losses = |b: &Value| b["subscription_losses"].as_u64().expect("losses");
    let before = losses(&readyz(dp).await.1);
    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_connection()
        .expect("conn");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .expect("client kill");
    assert!(killed >= 1, "the replica's subscription was cut");
    let t0 = Instant::now();
    wait_until("the cut subscription noticed", 15, || async {
        (losses(&readyz(dp).await.1) > before).then_some(())
    })
    .await;
    let noticed = t0.elapsed();
    eprintln!("cut subscription noticed after {noticed:?}");
    assert!(
        noticed <= Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    // Subscribed again: a change reaches the replica by notification.
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (_, p) = api.post("/projects", json!({"name": "after"})).await;
    wait_version(
        &[dp],
        p["id"].as_str().expect("id"),
        p["version"].as_u64().unwrap_or(1),
    )
    .await;
}

#[actix_rt::test]
async fn a_replica_started_while_redis_is_down_is_ready_within_1_s_of_its_return() {
    let mut redis = RedisServer::start(true);
    let cp = control_plane(&redis.url(), "cold:").expect("control plane");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (s, _) = api.post("/projects", json!({"name": "cold"})).await;
    assert_eq!(s, 201);
    drop(cp);
    redis.kill();
    let dp = replica(&redis.url(), "cold:").expect("replica");
    // Long enough for any backoff to reach its cap.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(readyz(dp.info).await.0, 503, "no configuration yet");
    redis.restart(); // returns once Redis answers PING
    let t0 = Instant::now();
    wait_until("ready after Redis is back", 10, || async {
        (readyz(dp.info).await.0 == 200).then_some(())
    })
    .await;
    let ready = t0.elapsed();
    eprintln!("ready {ready:?} after Redis came back");
    assert!(ready <= Duration::from_secs(1), "ready after {ready:?}");
}

/// The replicas' reports, as the operator lists them.
async fn replicas(api: &ApiClient) -> Vec<Value> {
    let (s, b) = api.get("/replicas").await;
    assert_eq!(s, 200, "{b}");
    b["replicas"].as_array().expect("replicas").clone()
}

#[actix_rt::test]
async fn replicas_report_in_and_the_operator_sees_them_with_their_refusals() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "rep:").expect("control plane");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let r1 = replica(&redis.url(), "rep:").expect("replica");
    let r2 = replica(&redis.url(), "rep:").expect("replica");
    let (_, p) = api
        .post("/projects", json!({"name": "R", "slug": "r"}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    let (_, k) = api.post("/projects/r/keys", json!({"name": "k"})).await;
    assert!(k["version"].is_u64(), "{k}");
    // A management key, made before the project's stored snapshot is tampered with below (the
    // control plane then refuses writes to it: the stored version no longer matches its own).
    let (_, mk) = api
        .post("/projects/r/management-keys", json!({"name": "m"}))
        .await;
    let v = mk["version"].as_u64().expect("v");
    wait_version(&[r1.info, r2.info], &project, v).await;

    let listed = wait_until("both replicas report version v", 10, || async {
        let l = replicas(&api).await;
        (l.len() == 2 && l.iter().all(|r| r["version"].as_u64() >= Some(v))).then_some(l)
    })
    .await;
    for r in &listed {
        assert_eq!(r["projects"], 1, "{r}");
        assert_eq!(
            (
                &r["loaded"],
                &r["subscribed"],
                &r["degraded"],
                &r["draining"]
            ),
            (&json!(true), &json!(true), &json!(false), &json!(false)),
            "{r}"
        );
        assert!(
            r["staleness_ms"].as_u64().expect("reconciled") < 5_000,
            "{r}"
        );
        assert_eq!(r["last_refusal"], Value::Null);
    }
    assert_ne!(listed[0]["id"], listed[1]["id"]);

    // A tampered snapshot: every replica refuses it, and says so.
    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_connection()
        .expect("conn");
    let skey = format!("rep:snapshot:{project}");
    let raw: String = redis::cmd("GET").arg(&skey).query(&mut conn).expect("get");
    let forged = raw.replace(
        &format!("\"version\":{v}"),
        &format!("\"version\":{}", v + 1),
    );
    let () = redis::cmd("SET")
        .arg(&skey)
        .arg(&forged)
        .query(&mut conn)
        .expect("set");
    let () = redis::cmd("HSET")
        .arg("rep:snapshot-index")
        .arg(&project)
        .arg(v + 1)
        .query(&mut conn)
        .expect("hset");
    let listed = wait_until("both replicas report the refusal", 10, || async {
        let l = replicas(&api).await;
        (l.len() == 2
            && l.iter()
                .all(|r| r["last_refusal"]["project"] == json!(project)))
        .then_some(l)
    })
    .await;
    for r in &listed {
        assert!(r["refused"].as_u64() >= Some(1), "{r}");
        assert_eq!(
            r["version"].as_u64(),
            Some(v),
            "the last good one is kept: {r}"
        );
        assert!(
            r["last_refusal"]["reason"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{r}"
        );
    }

    // The operator's only: a project's management key is refused, and so is no token.
    let tenant = api.with_token(mk["key"].as_str().expect("management key"));
    assert_eq!(tenant.get("/replicas").await.0, 403);
    assert_eq!(api.with_token("").get("/replicas").await.0, 401);

    // A replica that stops reporting drops out once its report expires (three intervals).
    r2.stop();
    wait_until("the stopped replica is no longer listed", 10, || async {
        (replicas(&api).await.len() == 1).then_some(())
    })
    .await;

    // The store loses its data (no control plane to re-seed it): the replica keeps serving its
    // last good configuration and reports itself degraded.
    drop(cp);
    let () = redis::cmd("FLUSHALL").query(&mut conn).expect("flushall");
    let body = wait_until("the replica says it is degraded", 10, || async {
        let (s, b) = readyz(r1.info).await;
        (s == 200 && b["degraded"] == true).then_some(b)
    })
    .await;
    assert_eq!(body["projects"], 1, "{body}");
    let report: String = wait_until("a degraded report in Redis", 10, || {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("rep:replica:*")
            .query(&mut conn)
            .expect("keys");
        let report = keys
            .first()
            .and_then(|k| {
                redis::cmd("GET")
                    .arg(k)
                    .query::<Option<String>>(&mut conn)
                    .ok()
            })
            .flatten()
            .filter(|r| r.contains("\"degraded\":true"));
        async move { report }
    })
    .await;
    assert!(report.contains("\"projects\":1"), "{report}");
}

#[actix_rt::test]
async fn embedded_mode_lists_its_own_gateway() {
    let dir = std::env::temp_dir().join(format!("to11-rep-{}", uuid::Uuid::new_v4()));
    let gw = embedded_with(&dir, |_| {}).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "E", "slug": "e"}))
        .await;
    let v = p["version"].as_u64().unwrap_or(1);
    let listed = wait_until("the gateway reports", 10, || async {
        let l = replicas(&api).await;
        (l.len() == 1 && l[0]["version"].as_u64() >= Some(v)).then_some(l)
    })
    .await;
    assert_eq!(listed[0]["projects"], 1);
}
