#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Credentials, routes and functions through the API, over Redis, served by a replica: the
//! compile step refuses bad configuration with every problem listed; functions and routes resolve
//! top-down to the right upstream, model and credential; function defaults fill what the request
//! leaves out; credentials rotate and are not deleted while in use.

use serde_json::{json, Value};
use to11_tests::client::{chat, post_chat, wait_version, ApiClient};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, replica, ADMIN_TOKEN};

fn version(v: &Value) -> u64 {
    v["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version in {v}"))
}

#[actix_rt::test]
async fn credentials_routes_and_functions() {
    let redis = RedisServer::start(false);
    let main = MockUpstream::start("sk-main-key-1111", &["gpt-4o", "gpt-4o-mini"]);
    let backup = MockUpstream::start("sk-backup-key-2222", &["llama"]);
    let cp = control_plane(&redis.url(), "routing:").expect("control plane");
    let dp = replica(&redis.url(), "routing:").expect("replica");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);

    let (_, p) = api.post("/projects", json!({"name": "Routes"})).await;
    let project = p["id"].as_str().expect("id").to_string();
    let connect = |slug: &str, base: String, key: &str, models: Value| json!({"kind": "openai-compatible", "slug": slug, "base_url": base, "credential": {"api_key": key}, "models": models});
    let (s, _) = api
        .post(
            "/projects/routes/providers",
            connect(
                "main",
                main.base_url(),
                "sk-main-key-1111",
                json!(["gpt-4o", "gpt-4o-mini"]),
            ),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .post(
            "/projects/routes/providers",
            connect(
                "backup",
                backup.base_url(),
                "sk-backup-key-2222",
                json!(["llama"]),
            ),
        )
        .await;
    assert_eq!(s, 201);

    // Credentials: listed with hints; a new one is validated with the provider first.
    let (_, creds) = api.get("/projects/routes/credentials").await;
    assert_eq!(creds["data"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(creds["data"][0]["hint"], "…1111");
    assert!(!creds.to_string().contains("sk-main-key-1111"));
    let (s, e) = api
        .post(
            "/projects/routes/credentials",
            json!({"provider": "main", "id": "second", "credential": {"api_key": "sk-nope"}}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_invalid_credential")),
        "{e}"
    );
    let (s, c) = api.post("/projects/routes/credentials", json!({"provider": "main", "id": "second", "name": "Second account", "credential": {"api_key": "sk-byok-second-3333"}})).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(
        (c["hint"].as_str(), c["default"].as_bool()),
        (Some("…3333"), Some(false))
    );
    assert_eq!(
        api.post(
            "/projects/routes/credentials",
            json!({"provider": "main", "id": "second", "credential": {"api_key": "sk-byok-x"}})
        )
        .await
        .0,
        409
    );

    // Bad routes are refused with every problem listed.
    let (s, e) = api
        .post(
            "/projects/routes/routes",
            json!({"name": "broken", "targets": [
                {"provider": "nope", "model": "x"},
                {"provider": "main", "model": "gpt-5"},
                {"provider": "main", "model": "gpt-4o", "credential": "missing"}]}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let ats: Vec<&str> = e["error"]["details"]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["at"].as_str())
        .collect();
    assert_eq!(
        ats,
        [
            "routes[broken].targets[0].provider",
            "routes[broken].targets[1].model",
            "routes[broken].targets[2].credential"
        ]
    );
    let (s, e) = api
        .post(
            "/projects/routes/routes",
            json!({"name": "a/b", "targets": [{"provider": "main", "model": "gpt-4o"}]}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        api.post(
            "/projects/routes/routes",
            json!({"name": "x", "targets": [], "retries": 3})
        )
        .await
        .0,
        400,
        "unknown fields are refused"
    );

    // Good ones.
    let (s, r) = api
        .post("/projects/routes/routes", json!({"name": "smart", "strategy": "fallback", "targets": [
            {"provider": "backup", "model": "llama"}, {"provider": "main", "model": "gpt-4o", "credential": "second"}]}))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        api.post(
            "/projects/routes/routes",
            json!({"name": "smart", "targets": [{"provider": "main", "model": "gpt-4o"}]})
        )
        .await
        .0,
        409
    );
    let (s, _) = api
        .post(
            "/projects/routes/routes",
            json!({"name": "gpt-4o-mini", "targets": [{"provider": "backup", "model": "llama"}]}),
        )
        .await;
    assert_eq!(s, 201, "a route may share a model's name");
    let (s, e) = api
        .post(
            "/projects/routes/functions",
            json!({"name": "f", "route": "missing"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, e) = api
        .post(
            "/projects/routes/functions",
            json!({"name": "f", "model": "gpt-4o", "defaults": {"model": "x"}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, f) = api.post("/projects/routes/functions", json!({"name": "summarize", "route": "smart", "defaults": {"temperature": 0.1, "max_tokens": 64}})).await;
    assert_eq!(s, 201, "{f}");
    let (s, f) = api
        .post(
            "/projects/routes/functions",
            json!({"name": "cheap", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (_, rs) = api.get("/projects/routes/resolve?model=summarize").await;
    assert_eq!(
        (
            rs["layer"].as_str(),
            rs["function"].as_str(),
            rs["route"].as_str()
        ),
        (Some("function"), Some("summarize"), Some("smart")),
        "{rs}"
    );
    assert_eq!(rs["targets"].as_array().map(|t| t.len()), Some(2));
    let (_, rs) = api.get("/projects/routes/resolve?model=gpt-4o-mini").await;
    assert_eq!(rs["layer"], "route");

    let (_, k) = api
        .post("/projects/routes/keys", json!({"name": "app"}))
        .await;
    let key = k["key"].as_str().expect("key").to_string();
    wait_version(&[dp.info], &project, version(&k)).await;

    // route → first target (strategies are the routing work still to come).
    let r = chat(dp.info, &key, "smart").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (
            r.header("x-to11-layer"),
            r.header("x-to11-route"),
            r.header("x-to11-provider"),
            r.header("x-to11-upstream-model")
        ),
        (Some("route"), Some("smart"), Some("backup"), Some("llama"))
    );
    let rec = backup.last_request("/v1/chat/completions").expect("rec");
    assert_eq!(
        (rec.json()["model"].as_str(), rec.header("authorization")),
        (Some("llama"), Some("Bearer sk-backup-key-2222"))
    );

    // function → route → target, with defaults filling only what the request leaves out.
    let auth = format!("Bearer {key}");
    let body = json!({"model": "summarize", "temperature": 0.9, "messages": [{"role": "user", "content": "x"}]}).to_string();
    let r = post_chat(dp.info, &[("x-to11-authorization", &auth)], &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.header("x-to11-layer"),
            r.header("x-to11-function"),
            r.header("x-to11-route")
        ),
        (Some("function"), Some("summarize"), Some("smart"))
    );
    let sent = backup
        .last_request("/v1/chat/completions")
        .expect("rec")
        .json();
    assert_eq!(
        (
            sent["model"].clone(),
            sent["temperature"].clone(),
            sent["max_tokens"].clone()
        ),
        (json!("llama"), json!(0.9), json!(64))
    );

    // function → model; a route named like a model wins over the model.
    let r = chat(dp.info, &key, "cheap").await;
    assert_eq!(
        (
            r.header("x-to11-layer"),
            r.header("x-to11-route"),
            r.header("x-to11-provider")
        ),
        (Some("function"), None, Some("main"))
    );
    assert_eq!(
        main.last_request("/v1/chat/completions")
            .expect("rec")
            .header("authorization"),
        Some("Bearer sk-main-key-1111")
    );
    assert_eq!(
        chat(dp.info, &key, "gpt-4o-mini")
            .await
            .header("x-to11-provider"),
        Some("backup")
    );

    // Replace a route: a target with a named credential uses that credential.
    let (s, r) = api
        .put(
            "/projects/routes/routes/smart",
            json!({"targets": [{"provider": "main", "model": "gpt-4o", "credential": "second"}]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        api.put(
            "/projects/routes/routes/smart",
            json!({"name": "other", "targets": []})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.put(
            "/projects/routes/routes/nope",
            json!({"targets": [{"provider": "main", "model": "gpt-4o"}]})
        )
        .await
        .0,
        404
    );
    wait_version(&[dp.info], &project, version(&r)).await;
    assert_eq!(chat(dp.info, &key, "smart").await.status, 200);
    assert_eq!(
        main.last_request("/v1/chat/completions")
            .expect("rec")
            .header("authorization"),
        Some("Bearer sk-byok-second-3333")
    );

    // Credentials in use are not deleted; the answer names the users.
    let (s, e) = api.delete("/projects/routes/credentials/main/second").await;
    assert_eq!(
        (s, e["error"]["details"]["used_by"].clone()),
        (409, json!(["smart"])),
        "{e}"
    );
    let (s, e) = api
        .delete("/projects/routes/credentials/main/default")
        .await;
    assert_eq!(s, 409, "{e}");

    // Rotation: validated first; a bad secret changes nothing; a good one takes over.
    let (s, _) = api
        .put(
            "/projects/routes/credentials/main/default",
            json!({"credential": {"api_key": "sk-bad"}}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, c) = api
        .put(
            "/projects/routes/credentials/main/default",
            json!({"credential": {"api_key": "sk-byok-rotated-4444"}}),
        )
        .await;
    assert_eq!((s, c["hint"].as_str()), (200, Some("…4444")), "{c}");
    wait_version(&[dp.info], &project, version(&c)).await;
    assert_eq!(chat(dp.info, &key, "cheap").await.status, 200);
    assert_eq!(
        main.last_request("/v1/chat/completions")
            .expect("rec")
            .header("authorization"),
        Some("Bearer sk-byok-rotated-4444")
    );

    // /v1/models lists functions and routes with their layer.
    let r = to11_tests::client::gateway(
        dp.info,
        awc::http::Method::GET,
        "/v1/models",
        &[("x-to11-authorization", &auth)],
        None,
    )
    .await;
    let layers: Vec<(String, String)> = r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or("").to_string(),
                m["to11_layer"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("summarize", "function"),
        ("cheap", "function"),
        ("smart", "route"),
        ("gpt-4o-mini", "route"),
        ("gpt-4o", "passthrough"),
    ] {
        assert!(
            layers.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {layers:?}"
        );
    }

    // GET /v1/models/{id} (the SDKs' models.retrieve) answers each name the key may call, in
    // OpenAI's shape, Anthropic's with anthropic-version, Gemini's under /v1beta; 404 otherwise.
    let get = |path: String, extra: Option<(&'static str, &'static str)>| {
        let auth = auth.clone();
        async move {
            let mut h = vec![("x-to11-authorization", auth.as_str())];
            h.extend(extra);
            to11_tests::client::gateway(dp.info, awc::http::Method::GET, &path, &h, None).await
        }
    };
    let r = get("/v1/models/summarize".into(), None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (
            r.json()["id"].clone(),
            r.json()["object"].clone(),
            r.json()["to11_layer"].clone()
        ),
        (json!("summarize"), json!("model"), json!("function"))
    );
    let r = get("/v1/models/main/gpt-4o".into(), None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["id"], "main/gpt-4o");
    let r = get(
        "/v1/models/smart".into(),
        Some(("anthropic-version", "2023-06-01")),
    )
    .await;
    assert_eq!(
        (r.json()["type"].clone(), r.json()["id"].clone()),
        (json!("model"), json!("smart"))
    );
    let r = get("/v1beta/models/gpt-4o".into(), None).await;
    assert_eq!(r.json()["name"], "models/gpt-4o");
    let r = get("/v1/models/nope".into(), None).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("model_not_found"))
    );
    let r = get(
        "/v1/models/nope".into(),
        Some(("anthropic-version", "2023-06-01")),
    )
    .await;
    assert_eq!((r.status, r.json()["type"].clone()), (404, json!("error")));

    // A route a function uses is not deleted; after the function goes, it can be.
    let (s, e) = api.delete("/projects/routes/routes/smart").await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("functions[summarize].route"), "{e}");
    assert_eq!(
        api.delete("/projects/routes/functions/summarize").await.0,
        200
    );
    let (s, d) = api.delete("/projects/routes/routes/smart").await;
    assert_eq!(s, 200, "{d}");
    wait_version(&[dp.info], &project, version(&d)).await;
    assert_eq!(chat(dp.info, &key, "smart").await.status, 404);
    assert_eq!(api.get("/projects/routes/routes/smart").await.0, 404);
    assert_eq!(
        api.get("/projects/routes/routes").await.1["data"]
            .as_array()
            .map(|a| a.len()),
        Some(1)
    );
    assert_eq!(
        api.get("/projects/routes/functions/cheap").await.1["model"],
        "gpt-4o"
    );

    // Another project's management key sees none of it.
    api.post("/projects", json!({"name": "Other"})).await;
    let (_, mk) = api
        .post("/projects/other/management-keys", json!({"name": "m"}))
        .await;
    let other = api.with_token(mk["key"].as_str().expect("key"));
    assert_eq!(other.get("/projects/routes/routes").await.0, 404);
    assert_eq!(other.get("/projects/routes/credentials").await.0, 404);
    assert_eq!(
        other.delete("/projects/routes/functions/cheap").await.0,
        404
    );
}
