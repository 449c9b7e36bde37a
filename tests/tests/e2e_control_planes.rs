#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Several control planes on one Redis (issue 18): concurrent writers on two instances lose no
//! acknowledged write, a slug is taken once, a write on one is readable on the other at once, a
//! rolling update under writes loses nothing; and the store's loss: a control plane refuses to
//! start over a flushed store while its backup says there was data, replicas keep serving, and a
//! restore brings every key back.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use to11_tests::client::{chat, replica_version, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, control_plane_with, replica, ADMIN_TOKEN};
use to11_tests::wait_until;

const UPSTREAM_KEY: &str = "sk-mock-valid-0001";

/// A project `slug` created through `api`, with `mock` connected.
async fn project_with_provider(api: &ApiClient, slug: &str, mock: &MockUpstream) -> String {
    let (s, p) = api
        .post("/projects", json!({"name": slug, "slug": slug}))
        .await;
    assert_eq!(s, 201, "{p}");
    let (s, e) = api
        .post(
            &format!("/projects/{slug}/providers"),
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    p["id"].as_str().expect("id").to_string()
}

/// A key acknowledged by a control plane: (id, secret, version).
type Acked = (String, String, u64);

/// `n` keys named `{name}-{i}` issued one after the other through `api`: the acknowledged ones,
/// and how many were refused with 409 `conflict` (any other answer fails the test).
async fn issue_keys(api: ApiClient, slug: String, name: String, n: usize) -> (Vec<Acked>, usize) {
    let mut acked = vec![];
    let mut refused = 0;
    for i in 0..n {
        let (s, k) = api
            .post(
                &format!("/projects/{slug}/keys"),
                json!({"name": format!("{name}-{i}")}),
            )
            .await;
        match s {
            201 => acked.push((
                k["id"].as_str().expect("id").to_string(),
                k["key"].as_str().expect("key").to_string(),
                k["version"].as_u64().expect("version"),
            )),
            409 => {
                println!("{name}-{i} refused: {k}");
                assert_eq!(k["error"]["code"], "conflict", "{k}");
                refused += 1;
            }
            _ => panic!("key {name}-{i}: {s} {k}"),
        }
    }
    (acked, refused)
}

/// The ids of the keys `api` lists for `slug`.
async fn key_ids(api: &ApiClient, slug: &str) -> Vec<String> {
    let (s, keys) = api.get(&format!("/projects/{slug}/keys")).await;
    assert_eq!(s, 200, "{keys}");
    keys["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|k| k["id"].as_str().map(String::from))
        .collect()
}

/// Every acknowledged key is listed by each control plane and authenticates at the replica.
async fn all_present(
    apis: &[&ApiClient],
    slug: &str,
    project: &str,
    acked: &[Acked],
    dp: std::net::SocketAddr,
) {
    for api in apis {
        let ids = wait_until("every acknowledged key listed", 5, || async {
            let ids = key_ids(api, slug).await;
            acked
                .iter()
                .all(|(id, _, _)| ids.contains(id))
                .then_some(ids)
        })
        .await;
        assert!(ids.len() >= acked.len());
    }
    let top = acked.iter().map(|(_, _, v)| *v).max().unwrap_or(0);
    wait_version(&[dp], project, top).await;
    for (id, key, _) in acked {
        assert_eq!(chat(dp, key, "gpt-4o").await.status, 200, "key {id}");
    }
}

/// A long watchdog interval: what keeps an instance fresh is then the change subscription alone.
fn no_watchdog(s: &mut to11_control_plane::Settings) {
    s.api.epoch_check_interval = Duration::from_secs(3600);
}

#[actix_rt::test]
async fn two_control_planes_lose_no_acknowledged_write_and_take_a_slug_once() {
    let redis = RedisServer::start(false);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let a = control_plane_with(&redis.url(), "two:", no_watchdog).expect("control plane A");
    let b = control_plane_with(&redis.url(), "two:", no_watchdog).expect("control plane B");
    let dp = replica(&redis.url(), "two:").expect("replica");
    let api_a = ApiClient::new(a.info.addr, ADMIN_TOKEN);
    let api_b = ApiClient::new(b.info.addr, ADMIN_TOKEN);

    // Created on A: readable on B at once (the notification, not the watchdog).
    let (s, p) = api_a
        .post("/projects", json!({"name": "Shared", "slug": "shared"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("id").to_string();
    let acked_at = Instant::now();
    wait_until("B reads the project A created", 2, || async {
        (api_b.get("/projects/shared").await.0 == 200).then_some(())
    })
    .await;
    let lag = acked_at.elapsed();
    println!("a project created on A was readable on B after {lag:?}");
    assert!(lag < Duration::from_millis(500), "{lag:?}");
    // A management key issued on A authenticates on B at once.
    let (s, mk) = api_a
        .post("/projects/shared/management-keys", json!({"name": "ci"}))
        .await;
    assert_eq!(s, 201, "{mk}");
    let tenant_b = api_b.with_token(mk["key"].as_str().expect("key"));
    let issued_at = Instant::now();
    wait_until("B accepts A's management key", 2, || async {
        (tenant_b.get("/projects/shared").await.0 == 200).then_some(())
    })
    .await;
    assert!(issued_at.elapsed() < Duration::from_millis(500));
    // B's write builds on A's.
    let (s, e) = api_b
        .post(
            "/projects/shared/providers",
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");

    // Four writers on each control plane, 25 new keys each, into the one project.
    let writers = (0..8).map(|w| {
        let api = if w % 2 == 0 { &api_a } else { &api_b };
        issue_keys(api.clone(), "shared".into(), format!("w{w}"), 25)
    });
    let started = Instant::now();
    let results = join_all(writers).await;
    let elapsed = started.elapsed();
    let acked: Vec<Acked> = results.iter().flat_map(|(a, _)| a.clone()).collect();
    let refused: usize = results.iter().map(|(_, r)| r).sum();
    println!(
        "8 writers on 2 control planes: {} acknowledged, {refused} refused with 409, in {elapsed:?}",
        acked.len()
    );
    assert_eq!(acked.len() + refused, 200);
    assert!(
        acked.len() >= 150,
        "most writes go through ({})",
        acked.len()
    );
    // Versions are unique across the instances.
    let mut versions: Vec<u64> = acked.iter().map(|(_, _, v)| *v).collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), acked.len(), "every version handed out once");
    all_present(&[&api_a, &api_b], "shared", &project, &acked, dp.info).await;
    let listed = key_ids(&api_a, "shared").await.len();
    assert_eq!(listed, acked.len(), "a refused write left nothing behind");

    // The same slug created on both at once: exactly one succeeds.
    for i in 0..10 {
        let slug = format!("dup-{i}");
        let body = json!({"name": slug.clone(), "slug": slug.clone()});
        let (ra, rb) = tokio::join!(
            api_a.post("/projects", body.clone()),
            api_b.post("/projects", body.clone())
        );
        let mut statuses = [ra.0, rb.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{slug}: {} {}", ra.1, rb.1);
        for api in [&api_a, &api_b] {
            let p = wait_until("the winner listed", 2, || async {
                let (_, list) = api.get("/projects").await;
                let n = list["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .filter(|p| p["slug"] == Value::String(slug.clone()))
                    .count();
                (n > 0).then_some(n)
            })
            .await;
            assert_eq!(p, 1);
        }
    }
    // Deleted on B: gone on A at once, and a write to it on A is refused, not resurrected.
    let (s, e) = api_b.delete("/projects/dup-0").await;
    assert_eq!(s, 200, "{e}");
    wait_until("A drops the project B deleted", 2, || async {
        (api_a.get("/projects/dup-0").await.0 == 404).then_some(())
    })
    .await;
    let (s, _) = api_a
        .post("/projects/dup-0/keys", json!({"name": "late"}))
        .await;
    assert_eq!(s, 404);
}

#[actix_rt::test]
async fn a_rolling_update_under_writes_loses_nothing() {
    let redis = RedisServer::start(false);
    let url = redis.url();
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let a = control_plane(&url, "roll:").expect("control plane A");
    let dp = replica(&url, "roll:").expect("replica");
    let api_a = ApiClient::new(a.info.addr, ADMIN_TOKEN);
    let project = project_with_provider(&api_a, "roll", &mock).await;

    // B starts while A serves writes.
    let starting_b = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || control_plane(&url, "roll:").expect("control plane B"))
    };
    let (on_a, b) = tokio::join!(
        issue_keys(api_a.clone(), "roll".into(), "before".into(), 20),
        starting_b
    );
    let b = b.expect("join");
    let api_b = ApiClient::new(b.info.addr, ADMIN_TOKEN);
    // Both serve writes; then A stops while B keeps taking them.
    let (both_a, both_b) = tokio::join!(
        issue_keys(api_a.clone(), "roll".into(), "both-a".into(), 15),
        issue_keys(api_b.clone(), "roll".into(), "both-b".into(), 15)
    );
    let stopping_a = tokio::task::spawn_blocking(move || a.stop());
    let (after, stopped) = tokio::join!(
        issue_keys(api_b.clone(), "roll".into(), "after".into(), 20),
        stopping_a
    );
    stopped.expect("A stopped");
    let mut acked = vec![];
    let mut refused = 0;
    for (a, r) in [on_a, both_a, both_b, after] {
        acked.extend(a);
        refused += r;
    }
    println!(
        "rolling update: {} acknowledged, {refused} refused with 409",
        acked.len()
    );
    assert_eq!(acked.len() + refused, 70);
    all_present(&[&api_b], "roll", &project, &acked, dp.info).await;
}

#[actix_rt::test]
async fn a_flushed_store_is_refused_at_start_and_restored_from_the_backup() {
    let redis = RedisServer::start(true);
    let url = redis.url();
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let dir = std::env::temp_dir().join(format!("to11-backups-{}", uuid::Uuid::new_v4()));
    let with_backups = |restore: Option<std::path::PathBuf>| {
        let dir = dir.clone();
        move |s: &mut to11_control_plane::Settings| {
            s.recovery.backup_dir = Some(dir);
            s.recovery.restore_from = restore;
        }
    };
    let cp = control_plane_with(&url, "lost:", with_backups(None)).expect("control plane");
    let dp = replica(&url, "lost:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let project = project_with_provider(&api, "kept", &mock).await;
    let (acked, _) = issue_keys(api.clone(), "kept".into(), "k".into(), 3).await;
    let before = acked.iter().map(|(_, _, v)| *v).max().expect("a key");
    wait_version(&[dp.info], &project, before).await;
    // On demand: the operator only.
    let (s, _) = api
        .with_token("to11_mk_nobody")
        .post("/backups", json!({}))
        .await;
    assert_eq!(s, 401);
    let (s, taken) = api.post("/backups", json!({})).await;
    assert_eq!(s, 201, "{taken}");
    assert_eq!(taken["projects"], 1);
    let file = std::path::PathBuf::from(taken["file"].as_str().expect("file"));
    let text = std::fs::read_to_string(&file).expect("backup file");
    assert!(!text.contains(UPSTREAM_KEY), "credentials stay sealed");
    for (_, key, _) in &acked {
        assert!(!text.contains(key.as_str()), "keys are hashed");
    }

    // Redis loses everything, and the control plane restarts.
    drop(cp);
    let mut conn = redis::Client::open(url.clone())
        .expect("client")
        .get_connection()
        .expect("conn");
    let () = redis::cmd("FLUSHALL").query(&mut conn).expect("flushall");
    let refused = control_plane_with(&url, "lost:", with_backups(None))
        .err()
        .expect("refuses to start over the flushed store")
        .to_string();
    println!("{refused}");
    assert!(refused.contains("lost its data"), "{refused}");
    assert!(
        refused.contains(&format!("--restore-from {}", file.display())),
        "{refused}"
    );
    let epoch: Option<String> = redis::cmd("GET")
        .arg("lost:epoch")
        .query(&mut conn)
        .expect("get");
    assert_eq!(epoch, None, "the refused start wrote nothing");
    // No tenant wiped at the replica.
    for (_, key, _) in &acked {
        assert_eq!(chat(dp.info, key, "gpt-4o").await.status, 200);
    }
    assert_eq!(replica_version(dp.info, &project).await, before);

    // Restored: new versions above the old ones reach the replica; every key authenticates,
    // at the old replica and at a new one.
    let cp = control_plane_with(&url, "lost:", with_backups(Some(file.clone())))
        .expect("control plane restoring the backup");
    wait_until("the replica applies the restore", 10, || async {
        (replica_version(dp.info, &project).await > before).then_some(())
    })
    .await;
    let fresh = replica(&url, "lost:").expect("a new replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (_, log) = api.get("/audit").await;
    assert!(
        log["data"]
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e["action"] == "RestoreBackup" && e["target"] == file.display().to_string()),
        "the restore is audited: {log}"
    );
    let restored = key_ids(&api, "kept").await;
    for (id, key, _) in &acked {
        assert!(restored.contains(id));
        assert_eq!(chat(dp.info, key, "gpt-4o").await.status, 200);
        let at_fresh = wait_until("the new replica serves the key", 10, || async {
            let s = chat(fresh.info, key, "gpt-4o").await.status;
            (s == 200).then_some(s)
        })
        .await;
        assert_eq!(at_fresh, 200);
    }
    // A restore never writes over a store that holds projects.
    drop(cp);
    let again = control_plane_with(&url, "lost:", with_backups(Some(file)))
        .err()
        .expect("a second restore is refused")
        .to_string();
    assert!(again.contains("already holds projects"), "{again}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request to a control plane with a session cookie (and its CSRF token for changes).
async fn with_cookie(
    addr: std::net::SocketAddr,
    method: awc::http::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = to11_tests::client::http()
        .request(method, format!("http://{addr}/api/v1{path}"))
        .insert_header(("cookie", cookie.to_string()));
    if let Some(t) = csrf {
        req = req.insert_header(("x-to11-csrf", t.to_string()));
    }
    let mut resp = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("answer");
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (resp.status().as_u16(), v)
}

#[actix_rt::test]
async fn a_dashboard_session_opened_on_one_control_plane_works_on_the_other() {
    use awc::http::Method;
    let redis = RedisServer::start(false);
    let a = control_plane(&redis.url(), "sess:").expect("control plane A");
    let b = control_plane(&redis.url(), "sess:").expect("control plane B");
    let resp = to11_tests::client::http()
        .post(format!("http://{}/api/v1/session", a.info.addr))
        .send_json(&json!({ "token": ADMIN_TOKEN }))
        .await;
    let mut resp = resp.expect("sign-in answers");
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_string();
    let signed_in: Value = resp.json().await.expect("json");
    let csrf = signed_in["csrf"].as_str().expect("csrf").to_string();

    let (s, who) = with_cookie(b.info.addr, Method::GET, "/session", &cookie, None, None).await;
    assert_eq!(
        (s, who["principal"].as_str()),
        (200, Some("operator")),
        "{who}"
    );
    assert_eq!(who["csrf"], signed_in["csrf"]);
    // A change on B with the session opened on A (and its CSRF token).
    let (s, p) = with_cookie(
        b.info.addr,
        Method::POST,
        "/projects",
        &cookie,
        Some(&csrf),
        Some(json!({"name": "Via B"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let (s, _) = with_cookie(
        b.info.addr,
        Method::POST,
        "/projects",
        &cookie,
        None,
        Some(json!({"name": "No CSRF"})),
    )
    .await;
    assert_eq!(s, 403, "the CSRF rule holds on B");
    // Signed out on B: over on A too.
    let (s, _) = with_cookie(
        b.info.addr,
        Method::DELETE,
        "/session",
        &cookie,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = with_cookie(a.info.addr, Method::GET, "/projects", &cookie, None, None).await;
    assert_eq!(s, 401);
    // A restart of A signs nobody out: a new session survives it.
    let resp = to11_tests::client::http()
        .post(format!("http://{}/api/v1/session", a.info.addr))
        .send_json(&json!({ "token": ADMIN_TOKEN }))
        .await
        .expect("sign-in answers");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_string();
    a.stop();
    let a = control_plane(&redis.url(), "sess:").expect("control plane A again");
    let (s, _) = with_cookie(a.info.addr, Method::GET, "/projects", &cookie, None, None).await;
    assert_eq!(s, 200);
}

/// A control plane that remembers nothing (no backups) starts over a flushed store while another
/// still runs with the configuration: the running one re-seeds over the empty epoch the new one
/// created, the new one reloads it, and no replica drops a tenant.
#[actix_rt::test]
async fn an_empty_epoch_never_wins_over_a_running_control_planes_configuration() {
    let redis = RedisServer::start(false);
    let url = redis.url();
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let a = control_plane_with(&url, "empty:", no_watchdog).expect("control plane A");
    let dp = replica(&url, "empty:").expect("replica");
    let api_a = ApiClient::new(a.info.addr, ADMIN_TOKEN);
    let project = project_with_provider(&api_a, "held", &mock).await;
    let (acked, _) = issue_keys(api_a.clone(), "held".into(), "k".into(), 2).await;
    let v = acked.iter().map(|(_, _, v)| *v).max().expect("a key");
    wait_version(&[dp.info], &project, v).await;

    let mut conn = redis::Client::open(url.clone())
        .expect("client")
        .get_connection()
        .expect("conn");
    let () = redis::cmd("FLUSHALL").query(&mut conn).expect("flushall");
    let b = control_plane(&url, "empty:").expect("control plane B (no backups: starts empty)");
    let api_b = ApiClient::new(b.info.addr, ADMIN_TOKEN);
    // A's next write finds its epoch gone (503) and A re-seeds over B's empty epoch.
    let (s, e) = api_a
        .post("/projects/held/keys", json!({"name": "during"}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("store_reset")),
        "{e}"
    );
    wait_until("B reloads A's configuration", 10, || async {
        (api_b.get("/projects/held").await.0 == 200).then_some(())
    })
    .await;
    let (acked_b, _) = issue_keys(api_b.clone(), "held".into(), "after".into(), 2).await;
    let mut all = acked.clone();
    all.extend(acked_b);
    all_present(&[&api_a, &api_b], "held", &project, &all, dp.info).await;
}

/// Signs in with `token` at `addr`: the status.
async fn sign_in(addr: std::net::SocketAddr, token: &str) -> u16 {
    to11_tests::client::http()
        .post(format!("http://{addr}/api/v1/session"))
        .send_json(&json!({ "token": token }))
        .await
        .expect("answer")
        .status()
        .as_u16()
}

/// The session table's bound holds across control planes: with room for two projects'
/// sessions, a third project's sign-in is refused on either instance; the operator still signs in.
#[actix_rt::test]
async fn the_session_table_is_bounded_across_control_planes() {
    let redis = RedisServer::start(false);
    let two = |s: &mut to11_control_plane::Settings| {
        s.api.max_sessions = 2;
        s.api.sessions_per_principal = 1;
    };
    let a = control_plane_with(&redis.url(), "bound:", two).expect("control plane A");
    let b = control_plane_with(&redis.url(), "bound:", two).expect("control plane B");
    let api = ApiClient::new(a.info.addr, ADMIN_TOKEN);
    let mut keys = vec![];
    for slug in ["p1", "p2", "p3"] {
        let (s, _) = api
            .post("/projects", json!({"name": slug, "slug": slug}))
            .await;
        assert_eq!(s, 201);
        let (s, k) = api
            .post(
                &format!("/projects/{slug}/management-keys"),
                json!({"name": "dash"}),
            )
            .await;
        assert_eq!(s, 201, "{k}");
        keys.push(k["key"].as_str().expect("key").to_string());
    }
    // Management keys issued on A are known to B within milliseconds.
    wait_until("B knows p3's key", 2, || async {
        (api.with_token(&keys[2]).get("/projects/p3").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(sign_in(a.info.addr, &keys[0]).await, 200);
    assert_eq!(sign_in(b.info.addr, &keys[1]).await, 200);
    assert_eq!(sign_in(b.info.addr, &keys[2]).await, 429);
    assert_eq!(sign_in(a.info.addr, &keys[2]).await, 429);
    assert_eq!(sign_in(b.info.addr, ADMIN_TOKEN).await, 200);
    // A project signing in again makes room among its own sessions only (one each here).
    assert_eq!(sign_in(b.info.addr, &keys[0]).await, 200);
    assert_eq!(sign_in(a.info.addr, &keys[2]).await, 429);
}

/// Redis is flushed under two running control planes: exactly one re-seeds it (one new epoch,
/// which then stays), the other reloads, and both keep taking writes that reach the replica.
#[actix_rt::test]
async fn a_flush_under_two_control_planes_is_reseeded_once() {
    let redis = RedisServer::start(false);
    let url = redis.url();
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let a = control_plane(&url, "twice:").expect("control plane A");
    let b = control_plane(&url, "twice:").expect("control plane B");
    let dp = replica(&url, "twice:").expect("replica");
    let api_a = ApiClient::new(a.info.addr, ADMIN_TOKEN);
    let api_b = ApiClient::new(b.info.addr, ADMIN_TOKEN);
    let project = project_with_provider(&api_a, "both", &mock).await;
    // B learns of A's project over Redis within milliseconds, but not within the same one: a
    // key asked of B before it did is a 404 (seen on a loaded machine). This test is about the
    // flush, so it waits.
    wait_until("B sees A's project", 5, || async {
        (api_b.get("/projects/both").await.0 == 200).then_some(())
    })
    .await;
    let (mut acked, _) = issue_keys(api_b.clone(), "both".into(), "before".into(), 3).await;
    wait_until("A sees B's keys", 2, || async {
        (key_ids(&api_a, "both").await.len() == 3).then_some(())
    })
    .await;

    let mut conn = redis::Client::open(url.clone())
        .expect("client")
        .get_connection()
        .expect("conn");
    let () = redis::cmd("FLUSHALL").query(&mut conn).expect("flushall");
    // Both watchdogs tick every 200 ms: watch the epoch for 2 s.
    let mut epochs: Vec<String> = vec![];
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        let e: Option<String> = redis::cmd("GET")
            .arg("twice:epoch")
            .query(&mut conn)
            .expect("get");
        if let Some(e) = e {
            if epochs.last() != Some(&e) {
                epochs.push(e);
            }
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(epochs.len(), 1, "one re-seed, no fight: {epochs:?}");
    for (api, name) in [(&api_a, "after-a"), (&api_b, "after-b")] {
        let (more, refused) = issue_keys(api.clone(), "both".into(), name.into(), 3).await;
        assert_eq!(refused, 0);
        acked.extend(more);
    }
    all_present(&[&api_a, &api_b], "both", &project, &acked, dp.info).await;
}
