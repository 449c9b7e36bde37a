#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Embedded mode end to end: both planes in one process with no Redis, a local durable store and an
//! in-process bus; the same connect → serve flow, then a restart that keeps everything.

use serde_json::json;
use to11_tests::client::{chat, gated_stream, wait_version, ApiClient};
use to11_tests::mock::{stream_chunks, MockUpstream};
use to11_tests::sandbox::embedded;

const UPSTREAM_KEY: &str = "sk-embedded-upstream-7777";

#[actix_rt::test]
async fn embedded_flow_survives_restart() {
    let dir = std::env::temp_dir().join(format!("to11-embedded-{}", uuid::Uuid::new_v4()));
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o", "gpt-4o-mini"]);

    let e = embedded(&dir).expect("embedded starts");
    let token = e
        .info
        .generated_admin_token
        .clone()
        .expect("a token is generated on first start");
    let api = ApiClient::new(e.info.api, &token);
    assert_eq!(api.with_token("nope").get("/projects").await.0, 401);

    let (s, p) = api.post("/projects", json!({"name": "Laptop"})).await;
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("id").to_string();
    let (s, prov) = api
        .post(
            "/projects/laptop/providers",
            json!({"kind": "openai-compatible", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}, "models": ["gpt-4o"]}),
        )
        .await;
    assert_eq!(s, 201, "{prov}");
    let (_, k) = api
        .post("/projects/laptop/keys", json!({"name": "dev"}))
        .await;
    let key = k["key"].as_str().expect("key").to_string();
    let version = k["version"].as_u64().expect("version");
    wait_version(&[e.info.gateway], &project, version).await;

    let r = chat(e.info.gateway, &key, "gpt-4o").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        mock.last_request("/v1/chat/completions")
            .expect("rec")
            .header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    let (status, _, events) = gated_stream(e.info.gateway, &key, "gpt-4o", "emb", |_| {
        mock.release("emb")
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(events, stream_chunks("gpt-4o"));
    assert_eq!(chat(e.info.gateway, &key, "gpt-4o-mini").await.status, 404);
    e.stop();

    // On disk: the master key is private, the token is kept only as a hash, no secret in clear.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("master.key"))
            .expect("master.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "master.key must not be readable by others");
    }
    let stored = read_all_but_key(&dir);
    for secret in [UPSTREAM_KEY, key.as_str(), token.as_str()] {
        assert!(!stored.contains(secret), "a secret is stored in clear");
    }

    // A crash mid-write leaves at most a temporary file beside the real ones: it is ignored.
    std::fs::write(
        dir.join("store/projects").join(format!("{project}.tmp999")),
        b"{\"state\":{\"trunc",
    )
    .expect("write");

    let e = embedded(&dir).expect("embedded restarts");
    assert!(
        !dir.join("store/projects")
            .join(format!("{project}.tmp999"))
            .exists(),
        "the leftover is cleaned up"
    );
    assert!(
        e.info.generated_admin_token.is_none(),
        "the token is shown only once"
    );
    let api = ApiClient::new(e.info.api, &token);
    let (s, got) = api
        .get("/projects/laptop/providers/openai-compatible")
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["exposed"], json!(["gpt-4o"]));
    wait_version(&[e.info.gateway], &project, version).await;
    assert_eq!(chat(e.info.gateway, &key, "gpt-4o").await.status, 200);

    // Writes after the restart get newer versions and reach the gateway.
    let (s, m) = api
        .put(
            "/projects/laptop/providers/openai-compatible/models",
            json!({"exposed": ["gpt-4o", "gpt-4o-mini"]}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert!(m["version"].as_u64().expect("v") > version);
    let v2 = m["version"].as_u64().expect("v");
    wait_version(&[e.info.gateway], &project, v2).await;
    assert_eq!(chat(e.info.gateway, &key, "gpt-4o-mini").await.status, 200);
    e.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file under `dir` but `master.key`, read as text. The stores write atomically while the
/// gateway runs (a temporary file renamed over its target), so a file can vanish between the
/// listing and the read: then everything is read again, from a fresh listing.
fn read_all_but_key(dir: &std::path::Path) -> String {
    'again: for _ in 0..50 {
        let mut stored = String::new();
        for entry in walk(dir) {
            if entry.file_name().is_some_and(|n| n == "master.key") {
                continue;
            }
            match std::fs::read(&entry) {
                Ok(bytes) => stored.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue 'again,
                Err(e) => panic!("read {}: {e}", entry.display()),
            }
        }
        return stored;
    }
    panic!("the data directory kept changing while it was read");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every operation the OpenAPI document describes is served (none falls through to "no such
/// endpoint"), and the document is valid JSON with the core calls.
#[actix_rt::test]
async fn openapi_document_matches_the_routes() {
    let dir = std::env::temp_dir().join(format!("to11-openapi-{}", uuid::Uuid::new_v4()));
    let e = embedded(&dir).expect("embedded starts");
    let token = e.info.generated_admin_token.clone().expect("token");
    let api = ApiClient::new(e.info.api, &token);
    let (s, doc) = api.get("/openapi.json").await;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "{paths:?}");
    let id = uuid::Uuid::nil().to_string();
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{p}", "nope")
            .replace("{slug}", "nope")
            .replace("{id}", &id);
        for method in ops.as_object().expect("ops").keys() {
            let m =
                awc::http::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
            let (_, v) = api.call(m, &concrete, body).await;
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !msg.starts_with("no such endpoint"),
                "{method} {path} is documented but not served"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
    // And an undocumented path is reported as such.
    let (s, v) = api.get("/no-such-thing").await;
    assert_eq!(s, 404);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("no such endpoint"));
    e.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /projects` searched and bounded: what the dashboard's project picker asks for, so that
/// a deployment with very many projects is never listed whole.
#[actix_rt::test]
async fn projects_are_searched_and_paged() {
    let dir = std::env::temp_dir().join(format!("to11-embedded-{}", uuid::Uuid::new_v4()));
    let e = embedded(&dir).expect("embedded starts");
    let token = e.info.generated_admin_token.clone().expect("token");
    let api = ApiClient::new(e.info.api, &token);
    for i in 0..12 {
        let name = if i % 3 == 0 {
            format!("Blue Team {i}")
        } else {
            format!("Red {i}")
        };
        let (s, p) = api.post("/projects", json!({"name": name})).await;
        assert_eq!(s, 201, "{p}");
    }
    let (s, all) = api.get("/projects").await;
    assert_eq!((s, all["total"].as_u64()), (200, Some(12)));
    assert_eq!(all["data"].as_array().map(Vec::len), Some(12));
    let (_, page) = api.get("/projects?limit=5").await;
    assert_eq!(page["total"], 12);
    let names: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Blue Team 0", "Red 1", "Red 2", "Blue Team 3", "Red 4"],
        "oldest first"
    );
    let (_, blue) = api.get("/projects?q=bLUe&limit=2").await;
    assert_eq!(blue["total"], 4);
    assert_eq!(blue["data"][1]["name"], "Blue Team 3");
    let (_, by_slug) = api.get("/projects?q=red-1").await;
    assert_eq!(by_slug["total"], 3, "red-1, red-10, red-11: {by_slug}");
    for bad in [
        "/projects?limit=0",
        "/projects?limit=5000",
        "/projects?sort=name",
    ] {
        assert_eq!(api.get(bad).await.0, 400, "{bad}");
    }
    e.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
