#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Quotas on configuration through the API: each write that would grow a project past a limit
//! (`TO11_MAX_*`, set small here) is refused with 422 naming the setting, nothing is stored, and
//! free-text names with control characters are refused with 400.

use serde_json::{json, Value};
use to11_control_plane::domain::limits::Limits;
use to11_tests::client::ApiClient;
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane_with, ADMIN_TOKEN};

fn limit(answer: &(u16, Value)) -> (u16, &str) {
    (
        answer.0,
        answer.1["error"]["details"]["limit"]
            .as_str()
            .unwrap_or("none"),
    )
}

#[actix_rt::test]
async fn writes_past_a_limit_are_refused_naming_it() {
    let redis = RedisServer::start(false);
    let mock = MockUpstream::start("sk-limits-1111", &["m1", "m2", "m3"]);
    let cp = control_plane_with(&redis.url(), "limits:", |s| {
        s.api.limits = Limits {
            routes: 2,
            targets_per_route: 3,
            gateway_keys: 2,
            management_keys: 1,
            credentials: 2,
            providers: 1,
            models_per_provider: 2,
            functions: 1,
            name_length: 20,
        };
    })
    .expect("control plane");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    assert_eq!(
        api.post("/projects", json!({"name": "Limited", "slug": "lim"}))
            .await
            .0,
        201
    );
    let connect = |slug: &str, models: Value| {
        json!({"kind": "openai-compatible", "slug": slug, "base_url": mock.base_url(),
               "credential": {"api_key": "sk-limits-1111"}, "models": models})
    };
    let r = api
        .post(
            "/projects/lim/providers",
            connect("main", json!(["m1", "m2", "m3"])),
        )
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_MODELS_PER_PROVIDER"), "{}", r.1);
    let r = api
        .post(
            "/projects/lim/providers",
            connect("main", json!(["m1", "m2"])),
        )
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = api
        .post("/projects/lim/providers", connect("second", json!(["m1"])))
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_PROVIDERS"));
    let r = api
        .put(
            "/projects/lim/providers/main/models",
            json!({"exposed": ["m1", "m2", "m3"]}),
        )
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_MODELS_PER_PROVIDER"), "{}", r.1);

    let target = json!({"provider": "main", "model": "m1"});
    let r = api
        .post(
            "/projects/lim/routes",
            json!({"name": "wide", "targets": [target, target, target, target]}),
        )
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_TARGETS_PER_ROUTE"), "{}", r.1);
    for name in ["r1", "r2"] {
        let r = api
            .post(
                "/projects/lim/routes",
                json!({"name": name, "targets": [target]}),
            )
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let r = api
        .post(
            "/projects/lim/routes",
            json!({"name": "r3", "targets": [target]}),
        )
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_ROUTES"));
    let msg = r.1["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("at most 2 routes") && msg.contains("TO11_MAX_ROUTES"),
        "{msg}"
    );
    let r = api
        .put(
            "/projects/lim/routes/r1",
            json!({"targets": [target, target, target, target]}),
        )
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_TARGETS_PER_ROUTE"), "{}", r.1);

    let r = api
        .post(
            "/projects/lim/functions",
            json!({"name": "f1", "route": "r1"}),
        )
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = api
        .post(
            "/projects/lim/functions",
            json!({"name": "f2", "route": "r1"}),
        )
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_FUNCTIONS"));

    for name in ["k1", "k2"] {
        assert_eq!(
            api.post("/projects/lim/keys", json!({"name": name}))
                .await
                .0,
            201
        );
    }
    let r = api.post("/projects/lim/keys", json!({"name": "k3"})).await;
    assert_eq!(limit(&r), (422, "TO11_MAX_GATEWAY_KEYS"));
    assert_eq!(
        api.post("/projects/lim/management-keys", json!({"name": "m1"}))
            .await
            .0,
        201
    );
    let r = api
        .post("/projects/lim/management-keys", json!({"name": "m2"}))
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_MANAGEMENT_KEYS"));
    let cred = |id: &str| json!({"provider": "main", "id": id, "name": id, "credential": {"api_key": "sk-limits-1111"}});
    assert_eq!(
        api.post("/projects/lim/credentials", cred("c2")).await.0,
        201
    );
    let r = api.post("/projects/lim/credentials", cred("c3")).await;
    assert_eq!(limit(&r), (422, "TO11_MAX_CREDENTIALS"), "{}", r.1);

    // Names: bounded in characters, free of control characters.
    let r = api
        .patch("/projects/lim", json!({"name": "x".repeat(21)}))
        .await;
    assert_eq!(limit(&r), (422, "TO11_MAX_NAME_LENGTH"));
    let r = api
        .patch("/projects/lim", json!({"name": "evil\u{1b}[2J"}))
        .await;
    assert_eq!(r.0, 400, "{}", r.1);
    assert!(r.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("control characters"));
    let r = api.post("/projects", json!({"name": "two\nlines"})).await;
    assert_eq!(r.0, 400, "{}", r.1);

    // Nothing refused was stored.
    let (_, p) = api.get("/projects/lim").await;
    assert_eq!(p["name"], "Limited");
    let (_, routes) = api.get("/projects/lim/routes").await;
    assert_eq!(routes["data"].as_array().unwrap().len(), 2);
    let (_, keys) = api.get("/projects/lim/keys").await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
    cp.stop();
}
