#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Faults over a real Redis: the store going away under the control plane and the replicas, a
//! replica with no configuration, and a snapshot tampered with in Redis.

use awc::http::Method;
use serde_json::json;
use to11_tests::client::{chat, gateway, replica_version, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::{free_port, RedisServer};
use to11_tests::sandbox::{control_plane, control_plane_with, replica, ADMIN_TOKEN};
use to11_tests::wait_until;

const UPSTREAM_KEY: &str = "sk-mock-valid-0001";

/// A project named `name` (slug = name lowercased) with `mock` connected and one gateway key,
/// applied on the replica at `dp`: its id, the key and the version that carried the key.
async fn serving_project(
    api: &ApiClient,
    name: &str,
    mock: &MockUpstream,
    dp: std::net::SocketAddr,
) -> (String, String, u64) {
    let slug = name.to_lowercase();
    let (_, p) = api.post("/projects", json!({ "name": name })).await;
    let project = p["id"].as_str().expect("id").to_string();
    let (s, e) = api
        .post(
            &format!("/projects/{slug}/providers"),
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (_, k) = api
        .post(&format!("/projects/{slug}/keys"), json!({"name": "k"}))
        .await;
    let key = k["key"].as_str().expect("key").to_string();
    let version = k["version"].as_u64().expect("v");
    wait_version(&[dp], &project, version).await;
    (project, key, version)
}

#[actix_rt::test]
async fn store_outage_refuses_writes_and_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start(true);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let cp = control_plane(&redis.url(), "outage:").expect("control plane");
    let dp = replica(&redis.url(), "outage:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (s, p) = api
        .post("/projects", json!({"name": "Durable", "slug": "durable"}))
        .await;
    assert_eq!(s, 201);
    let project = p["id"].as_str().expect("id").to_string();
    let (s, _) = api
        .post(
            "/projects/durable/providers",
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201);
    let mut acknowledged = vec![];
    let mut gateway_key = String::new();
    let mut last_version = 0;
    for i in 0..5 {
        let (s, k) = api
            .post("/projects/durable/keys", json!({"name": format!("k{i}")}))
            .await;
        assert_eq!(s, 201);
        acknowledged.push(k["id"].as_str().expect("id").to_string());
        gateway_key = k["key"].as_str().expect("key").to_string();
        last_version = k["version"].as_u64().expect("v");
    }
    wait_version(&[dp.info], &project, last_version).await;

    redis.kill();
    // The replica keeps serving its last good configuration while the store is gone.
    for _ in 0..5 {
        assert_eq!(chat(dp.info, &gateway_key, "gpt-4o").await.status, 200);
    }
    let (s, e) = api
        .post("/projects/durable/keys", json!({"name": "during-outage"}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{e}"
    );
    let (s, _) = api.post("/projects", json!({"name": "Lost"})).await;
    assert_eq!(s, 503);
    let ready = to11_tests::client::http()
        .get(format!("{}/readyz", cp.info.url()))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 503);

    redis.restart();
    // The control plane reloads the project it could not write, then accepts writes again.
    let (s, k) = wait_until("writes accepted again", 15, || async {
        let (s, k) = api
            .post("/projects/durable/keys", json!({"name": "after"}))
            .await;
        (s == 201).then_some((s, k))
    })
    .await;
    assert_eq!(s, 201, "{k}");
    // The replica reconnects and picks up the change made after recovery.
    wait_version(&[dp.info], &project, k["version"].as_u64().expect("v")).await;
    assert_eq!(
        chat(dp.info, k["key"].as_str().expect("key"), "gpt-4o")
            .await
            .status,
        200
    );

    drop(cp);
    let cp = control_plane(&redis.url(), "outage:").expect("control plane again");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (_, keys) = api.get("/projects/durable/keys").await;
    let names: Vec<&str> = keys["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    for id in &acknowledged {
        assert!(
            keys.to_string().contains(id.as_str()),
            "acknowledged key {id} lost"
        );
    }
    assert!(!names.contains(&"during-outage"));
    assert!(names.contains(&"after"));
    assert_eq!(
        api.get("/projects").await.1["data"]
            .as_array()
            .map(|a| a.len()),
        Some(1)
    );
}

#[actix_rt::test]
async fn replica_without_configuration_answers_503() {
    // Nothing listens on this port: the replica never loads a configuration.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let dp = replica(&url, "none:").expect("replica");
    let r = chat(dp.info, "to11_gk_whatever", "gpt-4o").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (503, Some("not_configured"))
    );
    let r = gateway(dp.info, Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        gateway(dp.info, Method::GET, "/healthz", &[], None)
            .await
            .status,
        200
    );
}

#[actix_rt::test]
async fn replica_refuses_tampered_snapshot_and_keeps_serving() {
    let redis = RedisServer::start(false);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let cp = control_plane(&redis.url(), "tamper:").expect("control plane");
    let dp = replica(&redis.url(), "tamper:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (project, key, v) = serving_project(&api, "T", &mock, dp.info).await;

    // Someone with Redis access but not the master key rewrites the snapshot and announces it.
    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_connection()
        .expect("conn");
    let skey = format!("tamper:snapshot:{project}");
    let raw: String = redis::cmd("GET").arg(&skey).query(&mut conn).expect("get");
    let forged = raw
        .replace(
            &format!("\"version\":{v}"),
            &format!("\"version\":{}", v + 100),
        )
        .replace("gpt-4o", "gpt-evil");
    let () = redis::cmd("SET")
        .arg(&skey)
        .arg(&forged)
        .query(&mut conn)
        .expect("set");
    let () = redis::cmd("HSET")
        .arg("tamper:snapshot-index")
        .arg(&project)
        .arg(v + 100)
        .query(&mut conn)
        .expect("hset");
    let _: i64 = redis::cmd("PUBLISH")
        .arg("tamper:changes")
        .arg(format!("{project} {}", v + 100))
        .query(&mut conn)
        .expect("publish");

    wait_until("the replica reports the refusal", 10, || async {
        let r = gateway(dp.info, Method::GET, "/readyz", &[], None).await;
        r.json()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused"))
            .then_some(())
    })
    .await;
    assert_eq!(
        replica_version(dp.info, &project).await,
        v,
        "kept the last good snapshot"
    );
    assert_eq!(chat(dp.info, &key, "gpt-4o").await.status, 200);
}

/// The store is flushed under running planes (C7): replicas keep serving their last good
/// configuration; the control plane notices (on a write, or its epoch watchdog), answers the write
/// it cannot store with 503 `store_reset`, re-seeds Redis from memory with versions that keep
/// increasing, and everything carries on.
#[actix_rt::test]
async fn flushed_store_is_reseeded_and_replicas_never_drop_configuration() {
    let redis = RedisServer::start(false);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    // A long watchdog interval, so the write below is what discovers the flush.
    let cp = control_plane_with(&redis.url(), "flush:", |s| {
        s.api.epoch_check_interval = std::time::Duration::from_secs(3600);
    })
    .expect("control plane");
    let dp = replica(&redis.url(), "flush:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (project, key, v1) = serving_project(&api, "F", &mock, dp.info).await;

    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_connection()
        .expect("conn");
    let () = redis::cmd("FLUSHALL").query(&mut conn).expect("flushall");

    // Several reconcile intervals pass: the replica keeps serving and keeps its version.
    let reconciles = |body: &serde_json::Value| {
        body["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("epoch")
    };
    wait_until("the replica notices the missing epoch", 10, || async {
        let r = gateway(dp.info, Method::GET, "/readyz", &[], None).await;
        reconciles(&r.json()).then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(chat(dp.info, &key, "gpt-4o").await.status, 200);
    }
    assert_eq!(replica_version(dp.info, &project).await, v1);

    // The first write after the flush is refused, not half-stored, and starts the re-seed.
    let (s, e) = api.post("/projects/f/keys", json!({"name": "lost"})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("store_reset")),
        "{e}"
    );
    let (s, k2) = wait_until("writes accepted after the re-seed", 10, || async {
        let (s, k) = api.post("/projects/f/keys", json!({"name": "after"})).await;
        (s == 201).then_some((s, k))
    })
    .await;
    assert_eq!(s, 201);
    let v2 = k2["version"].as_u64().expect("v");
    assert!(
        v2 > v1,
        "versions keep increasing across the reset ({v1} → {v2})"
    );
    wait_version(&[dp.info], &project, v2).await;
    assert_eq!(
        chat(dp.info, k2["key"].as_str().expect("key"), "gpt-4o")
            .await
            .status,
        200
    );
    assert_eq!(chat(dp.info, &key, "gpt-4o").await.status, 200);

    // Everything is back in Redis: a restarted control plane finds it.
    drop(cp);
    let cp = control_plane(&redis.url(), "flush:").expect("control plane again");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (_, keys) = api.get("/projects/f/keys").await;
    let names: Vec<&str> = keys["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["k", "after"]);
}

/// The watchdog alone re-seeds a flushed store (no write needed), so a replica started after the
/// flush finds the configuration.
#[actix_rt::test]
async fn epoch_watchdog_reseeds_without_a_write() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "watch:").expect("control plane");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (_, p) = api.post("/projects", json!({"name": "W"})).await;
    let project = p["id"].as_str().expect("id").to_string();
    let (_, k) = api.post("/projects/w/keys", json!({"name": "k"})).await;
    let v = k["version"].as_u64().expect("v");
    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_connection()
        .expect("conn");
    let () = redis::cmd("FLUSHALL").query(&mut conn).expect("flushall");
    wait_until("the watchdog re-seeds", 10, || async {
        let mut c = redis::Client::open(redis.url())
            .ok()?
            .get_connection()
            .ok()?;
        let v: Option<u64> = redis::cmd("HGET")
            .arg("watch:snapshot-index")
            .arg(&project)
            .query(&mut c)
            .ok()?;
        v.map(|_| ())
    })
    .await;
    let dp = replica(&redis.url(), "watch:").expect("replica after the flush");
    wait_version(&[dp.info], &project, v).await;
}

/// Redis hangs (SIGSTOP, C5): serving goes on without a single error, the replica's watchdog marks
/// the subscription dead, control-plane writes fail with 503 instead of hanging, and after the
/// store resumes a change reaches the replica.
#[actix_rt::test]
async fn hung_redis_does_not_stall_serving() {
    let redis = RedisServer::start(false);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let cp = control_plane(&redis.url(), "hung:").expect("control plane");
    let dp = replica(&redis.url(), "hung:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (project, key, _version) = serving_project(&api, "H", &mock, dp.info).await;

    redis.signal("STOP");
    wait_until("the watchdog marks the subscription dead", 15, || async {
        let r = gateway(dp.info, Method::GET, "/readyz", &[], None).await;
        assert_eq!(
            chat(dp.info, &key, "gpt-4o").await.status,
            200,
            "serving stalled"
        );
        (r.json()["subscribed"] == false).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let (s, e) = api
        .post("/projects/h/keys", json!({"name": "while-hung"}))
        .await;
    assert_eq!(s, 503, "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a write hung for {:?}",
        started.elapsed()
    );

    redis.signal("CONT");
    let (s, k2) = wait_until("writes accepted again", 15, || async {
        let (s, k) = api.post("/projects/h/keys", json!({"name": "after"})).await;
        (s == 201).then_some((s, k))
    })
    .await;
    assert_eq!(s, 201);
    wait_version(&[dp.info], &project, k2["version"].as_u64().expect("v")).await;
    assert_eq!(
        chat(dp.info, k2["key"].as_str().expect("key"), "gpt-4o")
            .await
            .status,
        200
    );
}
