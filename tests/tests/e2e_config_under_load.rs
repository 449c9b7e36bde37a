#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Configuration changes while traffic flows (C9): requests never fail because of a swap, and
//! the configuration version a client sees never goes backwards.

use serde_json::json;
use to11_tests::client::{chat, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, replica, ADMIN_TOKEN};

#[actix_rt::test]
async fn swaps_under_load_lose_no_request() {
    let redis = RedisServer::start(false);
    let mock = MockUpstream::start("sk-byok-load-0", &["gpt-4o", "gpt-4o-mini", "o3"]);
    let cp = control_plane(&redis.url(), "load:").expect("control plane");
    let dp = replica(&redis.url(), "load:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let (_, p) = api.post("/projects", json!({"name": "L"})).await;
    let project = p["id"].as_str().expect("id").to_string();
    let (s, _) = api
        .post(
            "/projects/l/providers",
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": "sk-byok-load-0"}, "models": ["gpt-4o"]}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, k) = api.post("/projects/l/keys", json!({"name": "k"})).await;
    let key = k["key"].as_str().expect("key").to_string();
    wait_version(&[dp.info], &project, k["version"].as_u64().expect("v")).await;

    // Traffic: sequential requests for a model that stays exposed throughout.
    let done = std::rc::Rc::new(std::cell::Cell::new(false));
    let traffic = {
        let (done, key, addr) = (done.clone(), key.clone(), dp.info);
        actix_rt::spawn(async move {
            let (mut versions, mut failures) = (vec![], vec![]);
            while !done.get() || versions.len() < 200 {
                let r = chat(addr, &key, "gpt-4o").await;
                if r.status != 200 {
                    failures.push((r.status, String::from_utf8_lossy(&r.body).to_string()));
                }
                versions.push(
                    r.header("x-to11-config-version")
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0),
                );
            }
            (versions, failures)
        })
    };

    // Changes: the exposed set moves around gpt-4o and the credential rotates, 60 times.
    let mut last = 0;
    for i in 0..60 {
        let (s, w) = if i % 3 == 2 {
            api.put(
                "/projects/l/credentials/openai-compatible/default",
                json!({"credential": {"api_key": format!("sk-byok-load-{i}")}}),
            )
            .await
        } else {
            let exposed = if i % 2 == 0 {
                json!(["gpt-4o", "gpt-4o-mini"])
            } else {
                json!(["o3", "gpt-4o"])
            };
            api.put(
                "/projects/l/providers/openai-compatible/models",
                json!({"exposed": exposed}),
            )
            .await
        };
        assert_eq!(s, 200, "{w}");
        last = w["version"].as_u64().expect("v");
    }
    wait_version(&[dp.info], &project, last).await;
    done.set(true);
    let (versions, failures) = traffic.await.expect("traffic");

    assert!(
        failures.is_empty(),
        "{} of {} requests failed during swaps: {:?}",
        failures.len(),
        versions.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "a client saw the configuration go backwards"
    );
    assert!(
        versions.first() < versions.last(),
        "traffic spanned the changes"
    );
    // Every request went upstream with one of the credentials that was current.
    for rec in mock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
    {
        assert!(rec
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer sk-byok-load-")));
    }
}
