#![allow(clippy::expect_used, clippy::unwrap_used)]
//! End to end over a real Redis: control plane, two replicas (then a third, late one), a mock
//! OpenAI-compatible upstream. The whole connect → serve → change → restart → heal flow.

use awc::http::Method;
use serde_json::json;
use to11_tests::client::{chat, gated_stream, gateway, post_chat, wait_version, ApiClient};
use to11_tests::mock::{stream_chunks, MockUpstream};
use to11_tests::redis_server::{free_port, RedisServer};
use to11_tests::sandbox::{control_plane, replica, ADMIN_TOKEN};

const UPSTREAM_KEY: &str = "sk-mock-valid-0001";

fn no_secret_in(v: &serde_json::Value, secret: &str) {
    assert!(
        !v.to_string().contains(secret),
        "response leaks a secret: {v}"
    );
}

#[actix_rt::test]
async fn full_flow_over_redis() {
    let redis = RedisServer::start(false);
    let prefix = "e2e:";
    let mock = MockUpstream::start(
        UPSTREAM_KEY,
        &["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"],
    );
    let mut cp = control_plane(&redis.url(), prefix).expect("control plane");
    let dp1 = replica(&redis.url(), prefix).expect("replica 1");
    let dp2 = replica(&redis.url(), prefix).expect("replica 2");
    let replicas = [dp1.info, dp2.info];
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);

    // Operator auth.
    assert_eq!(api.with_token("").get("/projects").await.0, 401);
    assert_eq!(api.with_token("wrong").get("/projects").await.0, 401);

    // Projects.
    let (s, p) = api
        .post("/projects", json!({"name": "Acme", "slug": "acme"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("id").to_string();
    assert!(p["version"].as_u64().expect("version") > 0);
    assert_eq!(
        api.post("/projects", json!({"name": "Acme again", "slug": "acme"}))
            .await
            .0,
        409
    );
    assert_eq!(
        api.post("/projects", json!({"name": "Bad", "slug": "Bad Slug"}))
            .await
            .0,
        400
    );
    let (s, other) = api.post("/projects", json!({"name": "Other Co"})).await;
    assert_eq!((s, other["slug"].as_str()), (201, Some("other-co")));

    // Management keys: scoped to their project; other projects look nonexistent.
    let (s, mk) = api
        .post("/projects/acme/management-keys", json!({"name": "ops"}))
        .await;
    assert_eq!(s, 201, "{mk}");
    let mgmt = api.with_token(mk["key"].as_str().expect("key"));
    assert_eq!(mgmt.get("/projects/acme").await.0, 200);
    assert_eq!(mgmt.get("/projects/other-co").await.0, 404);
    assert_eq!(mgmt.post("/projects", json!({"name": "x"})).await.0, 403);
    let (_, listed) = mgmt.get("/projects").await;
    assert_eq!(listed["data"].as_array().map(|a| a.len()), Some(1));
    let (_, mks) = api.get("/projects/acme/management-keys").await;
    no_secret_in(&mks, mk["key"].as_str().expect("key"));

    // Catalog.
    let (_, cat) = api.get("/catalog").await;
    let ids: Vec<&str> = cat["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"openai") && ids.contains(&"openai-compatible"),
        "{ids:?}"
    );

    // Discover: each failure is distinct and clear; success lists models and saves nothing.
    let discover = |base: String, key: &str| json!({"kind": "openai-compatible", "base_url": base, "credential": {"api_key": key}});
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover(mock.base_url(), "sk-wrong"),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_invalid_credential")),
        "{e}"
    );
    no_secret_in(&e, "sk-wrong");
    // An upstream that echoes the key in its error does not make the gateway repeat it.
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover(mock.base_url(), "sk-echo-secret-4242"),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("[redacted]"),
        "{e}"
    );
    no_secret_in(&e, "sk-echo-secret-4242");
    // A key echoed across the 300th character of the message: redacted before the message is
    // cut short, so no part of it survives.
    let long = "sk-echo-pad-0123456789abcdefghij";
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover(mock.base_url(), long),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let text = e.to_string();
    for run in long.as_bytes().windows(8) {
        let run = std::str::from_utf8(run).unwrap();
        assert!(!text.contains(run), "{run} of the key is in {text}");
    }
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover(dead, UPSTREAM_KEY),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_unreachable")),
        "{e}"
    );
    let wrong_base = format!("http://{}/api", mock.addr);
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover(wrong_base, UPSTREAM_KEY),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_bad_base_url")),
        "{e}"
    );
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            json!({"kind": "nope", "credential": {"api_key": "x"}}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    // A metadata address is refused before any connection is made, even with the allowance.
    let (s, e) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover("http://169.254.169.254/v1".into(), UPSTREAM_KEY),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("upstream_url_refused")),
        "{e}"
    );
    let (s, d) = mgmt
        .post(
            "/projects/acme/providers/discover",
            discover(mock.base_url(), UPSTREAM_KEY),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["count"], 3);
    no_secret_in(&d, UPSTREAM_KEY);
    assert_eq!(
        mgmt.get("/projects/acme/providers").await.1["data"],
        json!([])
    );

    // Connect with a chosen subset; an unknown model is refused.
    let mut body = discover(mock.base_url(), UPSTREAM_KEY);
    body["models"] = json!(["gpt-4o", "nope-model"]);
    let (s, e) = mgmt.post("/projects/acme/providers", body.clone()).await;
    assert_eq!(
        (s, e["error"]["details"]["unknown_models"].clone()),
        (422, json!(["nope-model"])),
        "{e}"
    );
    body["models"] = json!(["gpt-4o", "text-embedding-3-small"]);
    let (s, prov) = mgmt.post("/projects/acme/providers", body.clone()).await;
    assert_eq!(s, 201, "{prov}");
    assert_eq!(prov["slug"], "openai-compatible");
    assert_eq!(prov["exposed"], json!(["gpt-4o", "text-embedding-3-small"]));
    assert_eq!(prov["credentials"][0]["hint"], "…0001");
    no_secret_in(&prov, UPSTREAM_KEY);
    assert_eq!(mgmt.post("/projects/acme/providers", body).await.0, 409);
    let (_, got) = mgmt.get("/projects/acme/providers/openai-compatible").await;
    no_secret_in(&got, UPSTREAM_KEY);

    // Gateway key: shown once, listed without the secret.
    let (s, k) = mgmt
        .post("/projects/acme/keys", json!({"name": "ci"}))
        .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().expect("key").to_string();
    let version = k["version"].as_u64().expect("version");
    let (_, keys) = mgmt.get("/projects/acme/keys").await;
    no_secret_in(&keys, &key);
    assert_eq!(keys["data"].as_array().map(|a| a.len()), Some(1));

    // Both replicas follow.
    wait_version(&replicas, &project, version).await;

    // Non-streaming chat through each replica.
    for (i, dp) in replicas.iter().enumerate() {
        let r = chat(*dp, &key, "gpt-4o").await;
        assert_eq!(r.status, 200, "replica {i}: {:?}", r.body);
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "Hello from the mock"
        );
        assert_eq!(r.header("x-to11-layer"), Some("passthrough"));
        assert_eq!(r.header("x-to11-provider"), Some("openai-compatible"));
        assert_eq!(r.header("x-to11-upstream-model"), Some("gpt-4o"));
        assert_eq!(r.header("x-to11-attempts"), Some("1"));
        assert!(r.header("x-to11-request-id").is_some_and(|v| v.len() == 36));
        assert!(r
            .header("x-to11-config-version")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v >= version));
        assert_eq!(
            r.header("x-request-id"),
            Some("req_mock"),
            "upstream headers are passed through"
        );
        let rec = mock.last_request("/v1/chat/completions").expect("recorded");
        assert_eq!(
            rec.header("authorization"),
            Some(format!("Bearer {UPSTREAM_KEY}").as_str())
        );
        assert!(
            rec.header("x-to11-authorization").is_none(),
            "to11 key forwarded upstream"
        );
    }

    // Streaming through each replica: every chunk arrives as sent, one at a time.
    for (i, dp) in replicas.iter().enumerate() {
        let gate = format!("stream-{i}");
        let (status, headers, events) =
            gated_stream(*dp, &key, "gpt-4o", &gate, |_| mock.release(&gate)).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        assert_eq!(
            events,
            stream_chunks("gpt-4o"),
            "replica {i}: chunks must arrive exactly as sent"
        );
    }

    // Explicit `slug/model` goes to that provider with the upstream's own model name.
    let r = chat(dp1.info, &key, "openai-compatible/gpt-4o").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        mock.last_request("/v1/chat/completions")
            .expect("rec")
            .json()["model"],
        "gpt-4o"
    );

    // Other OpenAI surfaces.
    let auth = format!("Bearer {key}");
    for (path, model) in [
        ("/v1/embeddings", "text-embedding-3-small"),
        ("/v1/completions", "gpt-4o"),
        ("/v1/responses", "gpt-4o"),
    ] {
        let r = gateway(
            dp1.info,
            Method::POST,
            path,
            &[("x-to11-authorization", &auth)],
            Some(json!({"model": model, "input": "x"}).to_string().into()),
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        // An OpenAI-compatible server has no Responses API: it is asked through chat.
        let upstream = match path {
            "/v1/responses" => "/v1/chat/completions",
            p => p,
        };
        assert_eq!(mock.last_request(upstream).expect("rec").path, upstream);
        if path == "/v1/responses" {
            assert_eq!(r.json()["object"], "response", "{:?}", r.json());
        }
    }

    // Unknown model → 404 in OpenAI's error shape; then expose it and see both replicas follow.
    let r = chat(dp1.info, &key, "gpt-4o-mini").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (404, Some("model_not_found"))
    );
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let (s, m) = mgmt
        .put(
            "/projects/acme/providers/openai-compatible/models",
            json!({"exposed": ["gpt-4o", "gpt-4o-mini"]}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    wait_version(&replicas, &project, m["version"].as_u64().expect("v")).await;
    for dp in &replicas {
        assert_eq!(chat(*dp, &key, "gpt-4o-mini").await.status, 200);
        let r = gateway(
            *dp,
            Method::POST,
            "/v1/embeddings",
            &[("x-to11-authorization", &auth)],
            Some(
                json!({"model": "text-embedding-3-small", "input": "x"})
                    .to_string()
                    .into(),
            ),
        )
        .await;
        assert_eq!(r.status, 404, "no longer exposed");
    }
    let (s, e) = mgmt
        .put(
            "/projects/acme/providers/openai-compatible/models",
            json!({"exposed": ["not-offered"]}),
        )
        .await;
    assert_eq!(s, 422, "{e}");

    // GET /v1/models lists every name the key may call.
    let r = gateway(
        dp2.info,
        Method::GET,
        "/v1/models",
        &[("x-to11-authorization", &auth)],
        None,
    )
    .await;
    let names: Vec<String> = r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str().map(String::from))
        .collect();
    assert_eq!(
        names,
        [
            "gpt-4o",
            "gpt-4o-mini",
            "openai-compatible/gpt-4o",
            "openai-compatible/gpt-4o-mini"
        ]
    );

    // Refresh: upstream adds and removes models.
    mock.set_models(&["gpt-4o", "gpt-4o-mini", "o3"]);
    let (s, rf) = mgmt
        .post(
            "/projects/acme/providers/openai-compatible/refresh",
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{rf}");
    assert_eq!(
        (rf["added"].clone(), rf["removed"].clone()),
        (json!(["o3"]), json!(["text-embedding-3-small"]))
    );

    // A second connection exposing the same model: the write warns, existing traffic stays put,
    // `slug/model` reaches the new one, and reordering the providers moves the bare name.
    let mut second = discover(mock.base_url(), UPSTREAM_KEY);
    second["slug"] = json!("second");
    second["models"] = json!(["gpt-4o"]);
    let (s, c2) = mgmt.post("/projects/acme/providers", second).await;
    assert_eq!(s, 201, "{c2}");
    let warning = c2["warnings"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        warning.contains("gpt-4o") && warning.contains("second/gpt-4o"),
        "{c2}"
    );
    let (_, rs) = mgmt.get("/projects/acme/resolve?model=gpt-4o").await;
    assert_eq!(
        (rs["layer"].as_str(), rs["targets"][0]["provider"].as_str()),
        (Some("passthrough"), Some("openai-compatible")),
        "{rs}"
    );
    let (_, k_after) = mgmt
        .post("/projects/acme/keys", json!({"name": "no-new-warning"}))
        .await;
    assert!(
        k_after.get("warnings").is_none(),
        "warnings are not repeated: {k_after}"
    );
    wait_version(&replicas, &project, k_after["version"].as_u64().expect("v")).await;
    assert_eq!(
        chat(dp1.info, &key, "gpt-4o")
            .await
            .header("x-to11-provider"),
        Some("openai-compatible")
    );
    assert_eq!(
        chat(dp1.info, &key, "second/gpt-4o")
            .await
            .header("x-to11-provider"),
        Some("second")
    );
    let (s, po) = mgmt
        .patch(
            "/projects/acme",
            json!({"provider_order": ["openai-compatible"]}),
        )
        .await;
    assert_eq!(s, 400, "a partial order is refused: {po}");
    let (s, po) = mgmt
        .patch(
            "/projects/acme",
            json!({"provider_order": ["second", "openai-compatible"]}),
        )
        .await;
    assert_eq!(s, 200, "{po}");
    wait_version(&replicas, &project, po["version"].as_u64().expect("v")).await;
    assert_eq!(
        chat(dp2.info, &key, "gpt-4o")
            .await
            .header("x-to11-provider"),
        Some("second")
    );
    assert_eq!(mgmt.delete("/projects/acme/providers/second").await.0, 200);
    assert_eq!(mgmt.get("/projects/acme/resolve?model=nope").await.0, 404);

    // Bad, missing and misplaced keys → 401.
    let r = chat(dp1.info, "to11_gk_not-a-real-key", "gpt-4o").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (401, Some("invalid_api_key"))
    );
    let body = json!({"model": "gpt-4o", "messages": []}).to_string();
    let r = post_chat(dp1.info, &[], &body).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (401, Some("missing_api_key"))
    );
    let r = post_chat(dp1.info, &[("authorization", &auth)], &body).await;
    assert_eq!(
        r.status, 401,
        "a to11 key in Authorization is not accepted as one"
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("x-to11-authorization")));
    assert!(
        !String::from_utf8_lossy(&r.body).contains(&key),
        "error echoes the key"
    );

    // Bad input.
    let r = post_chat(dp1.info, &[("x-to11-authorization", &auth)], "{not json").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("invalid_json"))
    );
    let r = post_chat(dp1.info, &[("x-to11-authorization", &auth)], "{}").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("missing_model"))
    );
    let big = json!({"model": "gpt-4o", "pad": "x".repeat(100 * 1024)}).to_string();
    let r = post_chat(dp1.info, &[("x-to11-authorization", &auth)], &big).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (413, Some("payload_too_large"))
    );

    // BYOK: the client's own key reaches the upstream; a to11 key in Authorization never does.
    let r = post_chat(
        dp1.info,
        &[
            ("x-to11-authorization", &auth),
            ("authorization", "Bearer sk-byok-client-9"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        mock.last_request("/v1/chat/completions")
            .expect("rec")
            .header("authorization"),
        Some("Bearer sk-byok-client-9")
    );
    let r = post_chat(
        dp1.info,
        &[("x-to11-authorization", &auth), ("authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        mock.last_request("/v1/chat/completions")
            .expect("rec")
            .header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    let r = post_chat(
        dp1.info,
        &[
            ("x-to11-authorization", &auth),
            ("x-api-key", "sk-byok-xapi"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    let rec = mock.last_request("/v1/chat/completions").expect("rec");
    assert_eq!(
        rec.header("authorization"),
        Some("Bearer sk-byok-xapi"),
        "BYOK is presented in the upstream's form"
    );
    assert!(rec.header("x-api-key").is_none());
    for rec in mock.requests() {
        assert!(
            !rec.headers.values().any(|v| v.contains("to11_")),
            "a to11 key reached the upstream: {:?}",
            rec.headers
        );
    }

    // A key limited to some models gets 403 for others.
    let (_, lk) = mgmt
        .post(
            "/projects/acme/keys",
            json!({"name": "limited", "models": ["gpt-4o"]}),
        )
        .await;
    let limited = lk["key"].as_str().expect("key").to_string();
    wait_version(&replicas, &project, lk["version"].as_u64().expect("v")).await;
    assert_eq!(chat(dp1.info, &limited, "gpt-4o").await.status, 200);
    let r = chat(dp1.info, &limited, "gpt-4o-mini").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (403, Some("model_not_allowed"))
    );

    // Revoked key → 401 on both replicas.
    let (s, rv) = mgmt
        .delete(&format!(
            "/projects/acme/keys/{}",
            lk["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(s, 200, "{rv}");
    wait_version(&replicas, &project, rv["version"].as_u64().expect("v")).await;
    for dp in &replicas {
        assert_eq!(chat(*dp, &limited, "gpt-4o").await.status, 401);
    }

    // Restart the control plane: everything is still there, and writes still propagate.
    cp.stop();
    cp = control_plane(&redis.url(), prefix).expect("control plane again");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let mgmt = api.with_token(mgmt.token.as_str());
    let (s, p2) = mgmt.get("/projects/acme").await;
    assert_eq!(s, 200, "management key survives a restart: {p2}");
    let (_, provs) = api.get("/projects/acme/providers").await;
    assert_eq!(
        provs["data"][0]["exposed"],
        json!(["gpt-4o", "gpt-4o-mini"])
    );
    assert_eq!(provs["data"][0]["discovered_count"], 3);
    assert_eq!(
        api.get("/projects/acme/keys").await.1["data"]
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );
    assert_eq!(
        api.get("/projects").await.1["data"]
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );
    let (_, k2) = api
        .post("/projects/acme/keys", json!({"name": "after-restart"}))
        .await;
    let key2 = k2["key"].as_str().expect("key").to_string();
    wait_version(&replicas, &project, k2["version"].as_u64().expect("v")).await;
    assert_eq!(chat(dp2.info, &key2, "gpt-4o").await.status, 200);
    assert_eq!(chat(dp1.info, &key, "gpt-4o").await.status, 200);

    // A replica started later catches up.
    let dp3 = replica(&redis.url(), prefix).expect("replica 3");
    wait_version(&[dp3.info], &project, k2["version"].as_u64().expect("v")).await;
    assert_eq!(chat(dp3.info, &key2, "gpt-4o-mini").await.status, 200);

    // A notification dropped on purpose is healed by reconciliation.
    cp.info
        .publish
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (_, k3) = api
        .post("/projects/acme/keys", json!({"name": "unannounced"}))
        .await;
    let key3 = k3["key"].as_str().expect("key").to_string();
    let v3 = k3["version"].as_u64().expect("v");
    wait_version(&[dp1.info, dp2.info, dp3.info], &project, v3).await;
    assert_eq!(chat(dp3.info, &key3, "gpt-4o").await.status, 200);
    cp.info
        .publish
        .store(true, std::sync::atomic::Ordering::SeqCst);

    // Deleting a project removes it from every replica.
    let (s, del) = api
        .delete(&format!("/projects/{}", other["id"].as_str().expect("id")))
        .await;
    assert_eq!(s, 200, "{del}");
    assert_eq!(api.get("/projects/other-co").await.0, 404);

    // Secrets never reach Redis in clear.
    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_connection()
        .expect("conn");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("keys");
    assert!(keys.iter().all(|k| k.starts_with(prefix)), "{keys:?}");
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query(&mut conn).expect("type");
        if t == "string" {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut conn).expect("get");
            let v = String::from_utf8_lossy(&v);
            for secret in [
                UPSTREAM_KEY,
                key.as_str(),
                key2.as_str(),
                mgmt.token.as_str(),
            ] {
                assert!(!v.contains(secret), "{k} contains a secret in clear");
            }
        }
    }
    drop(dp3);
}
