#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The audit log through the API: every change (who, what, where from, the version), every
//! sign-in and failed authentication; tenant-scoped (a management key reads only its project's
//! log, not the operator's), newest first with `limit`/`before` paging; never a secret; kept
//! across a restart in embedded mode; and a failing audit store does not fail the write.

use serde_json::{json, Value};
use to11_tests::client::ApiClient;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, embedded, embedded_with, ADMIN_TOKEN};

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

async fn sign_in(api: &ApiClient, token: &str) -> u16 {
    to11_tests::client::http()
        .post(format!("{}/session", api.base))
        .send_json(&json!({ "token": token }))
        .await
        .expect("answer")
        .status()
        .as_u16()
}

#[actix_rt::test]
async fn changes_and_sign_ins_are_recorded_and_read_per_tenant() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "audit:").expect("control plane");
    let op = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    for slug in ["alpha", "beta"] {
        let (s, _) = op
            .post("/projects", json!({"name": slug, "slug": slug}))
            .await;
        assert_eq!(s, 201);
    }
    let (_, mk) = op
        .post("/projects/alpha/management-keys", json!({"name": "ci"}))
        .await;
    let alpha_key = mk["key"].as_str().unwrap().to_string();
    let alpha = op.with_token(&alpha_key);
    let (s, gk) = alpha
        .post("/projects/alpha/keys", json!({"name": "app"}))
        .await;
    assert_eq!(s, 201);
    let gateway_key = gk["key"].as_str().unwrap().to_string();
    let (s, _) = alpha
        .post("/projects/alpha/keys", json!({"name": ""}))
        .await;
    assert_eq!(s, 400, "refused before the registry: not a change");
    let (s, _) = alpha
        .delete(&format!("/projects/alpha/keys/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(s, 404, "refused by the registry: recorded with its code");
    let (s, _) = op
        .post("/projects/beta/keys", json!({"name": "other"}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(sign_in(&op, &alpha_key).await, 200);
    assert_eq!(sign_in(&op, "not-a-token-at-all").await, 401);
    assert_eq!(
        op.with_token("wrong-bearer-token").get("/projects").await.0,
        401
    );

    // The project's log, newest first: its own changes (by the operator and by its key).
    let (s, page) = alpha.get("/projects/alpha/audit").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        actions(&page),
        [
            "sign_in",
            "RevokeGatewayKey",
            "IssueGatewayKey",
            "IssueManagementKey",
            "CreateProject"
        ]
    );
    let entries = page["data"].as_array().unwrap();
    let alpha_id = entries[4]["project"].as_str().unwrap();
    assert_eq!(entries[0]["actor"], format!("project:{alpha_id}"));
    assert_eq!(entries[1]["outcome"], "not_found");
    assert_eq!(entries[2]["actor"], format!("project:{alpha_id}"));
    assert_eq!(entries[2]["target"], gk["id"]);
    assert!(entries[2]["version"].as_u64().unwrap() > 0);
    assert_eq!(entries[3]["actor"], "operator");
    assert_eq!(entries[4]["target"], "alpha");
    assert!(entries
        .iter()
        .all(|e| e["source"] == "127.0.0.1" && e["at"].is_string()));
    let text = page.to_string();
    for secret in [alpha_key.as_str(), gateway_key.as_str(), ADMIN_TOKEN] {
        assert!(!text.contains(secret), "a secret in the audit log");
    }

    // Tenant-scoped: not another project's log, not the operator's.
    assert_eq!(alpha.get("/projects/beta/audit").await.0, 404);
    assert_eq!(alpha.get("/audit").await.0, 403);

    // The operator's log has everything, including failures; paged with `before`.
    let (_, all) = op.get("/audit?limit=100").await;
    let all_actions = actions(&all);
    assert_eq!(
        &all_actions[..3],
        ["auth_failed", "sign_in_failed", "sign_in"]
    );
    assert_eq!(all["data"][0]["target"], "GET /api/v1/projects");
    assert_eq!(all["data"][0]["actor"], "unknown");
    assert_eq!(all_actions.len(), 9, "{all_actions:?}");
    assert!(all["next"].is_null());
    let (_, first) = op.get("/audit?limit=4").await;
    let next = first["next"].as_str().unwrap();
    let (_, second) = op.get(&format!("/audit?limit=4&before={next}")).await;
    let mut paged = actions(&first);
    paged.extend(actions(&second));
    assert_eq!(paged, all_actions[..8]);
    assert_eq!(op.get("/audit?limit=0").await.0, 400);
    assert_eq!(op.get("/audit?before=yesterday").await.0, 400);
    cp.stop();
}

#[actix_rt::test]
async fn a_failing_audit_store_does_not_fail_the_write() {
    let redis = RedisServer::start(false);
    let cp = control_plane(&redis.url(), "audit-broken:").expect("control plane");
    let op = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    // The operator-wide stream's key holds a string: every XADD to it fails.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let () = redis::cmd("SET")
        .arg("audit-broken:audit")
        .arg("not a stream")
        .query(&mut conn)
        .unwrap();
    let (s, p) = op.post("/projects", json!({"name": "Still works"})).await;
    assert_eq!(s, 201, "{p}");
    let (s, _) = op
        .get(&format!("/projects/{}", p["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 200);
    let metrics = to11_tests::client::http()
        .get(format!("http://{}/metrics", cp.info.addr))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("to11_cp_audit_failures_total 1\n"),
        "{metrics}"
    );
    cp.stop();
}

#[actix_rt::test]
async fn embedded_mode_keeps_its_audit_log_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("to11-audit-{}", uuid::Uuid::new_v4()));
    let first = embedded(&dir).expect("embedded");
    let token = first.info.generated_admin_token.clone().unwrap();
    let api = ApiClient::new(first.info.api, &token);
    assert_eq!(
        api.post("/projects", json!({"name": "Kept", "slug": "kept"}))
            .await
            .0,
        201
    );
    assert_eq!(
        api.post("/projects/kept/keys", json!({"name": "k"}))
            .await
            .0,
        201
    );
    first.stop();

    let second = embedded_with(&dir, |_| {}).expect("embedded again");
    let api = ApiClient::new(second.info.api, &token);
    let (s, page) = api.get("/projects/kept/audit").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(actions(&page), ["IssueGatewayKey", "CreateProject"]);
    let (_, all) = api.get("/audit?limit=1").await;
    assert_eq!(actions(&all), ["IssueGatewayKey"]);
    let (_, rest) = api
        .get(&format!("/audit?before={}", all["next"].as_str().unwrap()))
        .await;
    assert_eq!(actions(&rest), ["CreateProject"]);
    second.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
