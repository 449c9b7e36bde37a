#![allow(clippy::expect_used, clippy::unwrap_used)]
//! C12 of the reliability catalogue, for the control planes: randomised concurrent writers on
//! two control planes over one Redis (AOF, `appendfsync always`) while a nemesis restarts either
//! control plane or kills Redis with SIGKILL and restarts it. The checker then requires every
//! acknowledged outcome: each key whose issue was acknowledged (and whose revocation was not
//! attempted) is listed by both control planes and authenticates at a replica; each key whose
//! revocation was acknowledged is gone from both and refused at the replica; a write refused
//! with 409 left nothing; versions are unique. Writes whose outcome the client could not know (a
//! 503, a cut connection) may have happened or not.
//!
//! Scale with `C12_OPS` (operations per writer, default 100) and replay with `C12_SEED`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use awc::http::Method;
use futures_util::future::join_all;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use to11_tests::client::{chat, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, replica, ADMIN_TOKEN};
use to11_tests::wait_until;

const UPSTREAM_KEY: &str = "sk-mock-valid-0001";
const PREFIX: &str = "c12:";
const WRITERS: usize = 6;

/// What the client learned of one write.
enum Outcome {
    Acked(Value),
    Refused,
    Unknown,
}

/// One API call that never panics: a cut connection or a 503 is an unknown outcome.
async fn call(addr: SocketAddr, method: Method, path: &str, body: Option<Value>) -> Outcome {
    let req = to11_tests::client::http()
        .request(method, format!("http://{addr}/api/v1{path}"))
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .timeout(Duration::from_secs(10));
    let resp = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let Ok(mut resp) = resp else {
        return Outcome::Unknown;
    };
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    match status {
        200 | 201 => Outcome::Acked(v),
        409 => Outcome::Refused,
        503 => Outcome::Unknown,
        other => panic!("{path}: unexpected {other} {v}"),
    }
}

#[derive(Default)]
struct History {
    /// (id, secret, version) of keys whose issue was acknowledged.
    issued: Vec<(String, String, u64)>,
    /// Names of keys whose issue was refused.
    refused: Vec<String>,
    /// Ids whose revocation was acknowledged.
    revoked: Vec<String>,
    /// Ids whose revocation was attempted with an unknown or refused outcome.
    maybe_revoked: Vec<String>,
    /// Versions of every acknowledged write.
    versions: Vec<u64>,
    unknown: usize,
}

/// The control planes' addresses while they are up.
type Live = Rc<RefCell<[Option<SocketAddr>; 2]>>;

async fn writer(w: usize, seed: u64, ops: usize, live: Live) -> History {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + w as u64);
    let mut h = History::default();
    for i in 0..ops {
        let up: Vec<SocketAddr> = live.borrow().iter().flatten().copied().collect();
        if up.is_empty() {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let addr = up[rng.random_range(0..up.len())];
        let open: Vec<String> = h
            .issued
            .iter()
            .map(|(id, _, _)| id.clone())
            .filter(|id| !h.revoked.contains(id) && !h.maybe_revoked.contains(id))
            .collect();
        if !open.is_empty() && rng.random_bool(0.3) {
            let id = open[rng.random_range(0..open.len())].clone();
            match call(
                addr,
                Method::DELETE,
                &format!("/projects/chk/keys/{id}"),
                None,
            )
            .await
            {
                Outcome::Acked(v) => {
                    h.versions.push(v["version"].as_u64().expect("version"));
                    h.revoked.push(id);
                }
                Outcome::Refused => h.maybe_revoked.push(id),
                Outcome::Unknown => {
                    h.unknown += 1;
                    h.maybe_revoked.push(id);
                }
            }
        } else {
            let name = format!("w{w}-{i}");
            let body = json!({ "name": name });
            match call(addr, Method::POST, "/projects/chk/keys", Some(body)).await {
                Outcome::Acked(k) => {
                    let v = k["version"].as_u64().expect("version");
                    h.versions.push(v);
                    h.issued.push((
                        k["id"].as_str().expect("id").into(),
                        k["key"].as_str().expect("key").into(),
                        v,
                    ));
                }
                Outcome::Refused => h.refused.push(name),
                Outcome::Unknown => h.unknown += 1,
            }
        }
    }
    h
}

#[actix_rt::test]
async fn acknowledged_outcomes_survive_restarts_of_control_planes_and_redis() {
    let ops: usize = std::env::var("C12_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("C12_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("C12: {WRITERS} writers × {ops} operations, seed {seed}");
    let mut redis = RedisServer::start(true);
    let url = redis.url();
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let mut planes = [
        Some(control_plane(&url, PREFIX).expect("control plane A")),
        Some(control_plane(&url, PREFIX).expect("control plane B")),
    ];
    let dp = replica(&url, PREFIX).expect("replica");
    let admin = ApiClient::new(planes[0].as_ref().unwrap().info.addr, ADMIN_TOKEN);
    let (s, p) = admin
        .post("/projects", json!({"name": "chk", "slug": "chk"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("id").to_string();
    let (s, e) = admin
        .post(
            "/projects/chk/providers",
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");

    let live: Live = Rc::new(RefCell::new([
        planes[0].as_ref().map(|p| p.info.addr),
        planes[1].as_ref().map(|p| p.info.addr),
    ]));
    let done = Rc::new(Cell::new(false));
    let writers = {
        let (live, done) = (live.clone(), done.clone());
        async move {
            let h = join_all((0..WRITERS).map(|w| writer(w, seed, ops, live.clone()))).await;
            done.set(true);
            h
        }
    };
    let nemesis = {
        let live = live.clone();
        let done = done.clone();
        let url = url.clone();
        let redis = &mut redis;
        let planes = &mut planes;
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut faults = vec![];
            while !done.get() {
                actix_rt::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
                if done.get() {
                    break;
                }
                match rng.random_range(0..4) {
                    n @ (0 | 1) => {
                        live.borrow_mut()[n] = None;
                        let old = planes[n].take().expect("running");
                        tokio::task::spawn_blocking(move || old.stop())
                            .await
                            .expect("stopped");
                        let url = url.clone();
                        let new = tokio::task::spawn_blocking(move || control_plane(&url, PREFIX))
                            .await
                            .expect("join")
                            .expect("restarted");
                        live.borrow_mut()[n] = Some(new.info.addr);
                        planes[n] = Some(new);
                        faults.push(if n == 0 { "restart A" } else { "restart B" });
                    }
                    2 => {
                        redis.restart();
                        faults.push("kill -9 Redis");
                    }
                    _ => faults.push("nothing"),
                }
            }
            faults
        }
    };
    let (histories, faults) = futures_util::future::join(writers, nemesis).await;
    println!("nemesis: {faults:?}");

    let apis: Vec<ApiClient> = planes
        .iter()
        .map(|p| ApiClient::new(p.as_ref().expect("up").info.addr, ADMIN_TOKEN))
        .collect();
    let mut versions: Vec<u64> = histories.iter().flat_map(|h| h.versions.clone()).collect();
    let (acked, unknown, refused) = (
        versions.len(),
        histories.iter().map(|h| h.unknown).sum::<usize>(),
        histories.iter().map(|h| h.refused.len()).sum::<usize>(),
    );
    println!("{acked} acknowledged, {unknown} unknown, {refused} refused with 409");
    versions.sort_unstable();
    let top = versions.last().copied().unwrap_or(0);
    versions.dedup();
    assert_eq!(
        versions.len(),
        acked,
        "every acknowledged version is unique"
    );

    let listed = |api: ApiClient| async move {
        let (s, keys) = api.get("/projects/chk/keys").await;
        assert_eq!(s, 200, "{keys}");
        keys["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|k| {
                (
                    k["id"].as_str().unwrap_or("").to_string(),
                    k["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect::<Vec<(String, String)>>()
    };
    for api in &apis {
        let keys = wait_until(
            "the control plane lists every acknowledged key",
            10,
            || async {
                let keys = listed(api.clone()).await;
                let all = histories.iter().all(|h| {
                    h.issued
                        .iter()
                        .filter(|(id, _, _)| {
                            !h.revoked.contains(id) && !h.maybe_revoked.contains(id)
                        })
                        .all(|(id, _, _)| keys.iter().any(|(k, _)| k == id))
                });
                all.then_some(keys)
            },
        )
        .await;
        for h in &histories {
            for id in &h.revoked {
                assert!(!keys.iter().any(|(k, _)| k == id), "revoked {id} listed");
            }
            for name in &h.refused {
                assert!(
                    !keys.iter().any(|(_, n)| n == name),
                    "refused {name} listed"
                );
            }
        }
    }
    wait_version(&[dp.info], &project, top).await;
    // Every acknowledged key first; then at most 40 revoked ones (each 401 counts towards the
    // replica's back-off on failed keys, 60 a minute).
    let mut revoked = vec![];
    for h in &histories {
        for (id, key, _) in &h.issued {
            if h.revoked.contains(id) {
                revoked.push((id, key));
            } else if !h.maybe_revoked.contains(id) {
                let status = chat(dp.info, key, "gpt-4o").await.status;
                assert_eq!(status, 200, "acknowledged key {id}");
            }
        }
    }
    for (id, key) in revoked.into_iter().take(40) {
        assert_eq!(
            chat(dp.info, key, "gpt-4o").await.status,
            401,
            "revoked key {id}"
        );
    }
}
