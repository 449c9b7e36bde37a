#![allow(clippy::expect_used, clippy::unwrap_used)]
//! One conformance suite run against every catalog entry: each against a mock speaking that
//! provider family's wire format (its path prefix, listing shape and the way it refuses a bad
//! key). discover → connect → call (plain and streaming) → invalid key → unreachable host.

use serde_json::json;
use to11_tests::client::{chat, gated_stream, wait_version, ApiClient};
use to11_tests::mock::{stream_chunks, Family, InvalidKeyShape, ListingShape, MockUpstream};
use to11_tests::redis_server::free_port;
use to11_tests::sandbox::embedded;

/// The wire format each catalog entry's provider really speaks (see shared/reference/providers.md).
fn family(id: &str) -> Family {
    let f = Family::default();
    match id {
        "openai" | "openai-compatible" => f,
        "mistral" => Family {
            invalid: InvalidKeyShape::Detail,
            ..f
        },
        "groq" => Family {
            prefix: "/openai/v1",
            ..f
        },
        "deepseek" => Family { prefix: "", ..f },
        "xai" => Family {
            invalid: InvalidKeyShape::Xai400,
            ..f
        },
        "together" => Family {
            listing: ListingShape::BareArray,
            ..f
        },
        "fireworks" => Family {
            prefix: "/inference/v1",
            ..f
        },
        "openrouter" => Family {
            prefix: "/api/v1",
            key_path: Some("/key"),
            ..f
        },
        "perplexity" => Family {
            prefix: "",
            listing: ListingShape::None,
            invalid: InvalidKeyShape::Html,
            strict_models: true,
            ..f
        },
        "cerebras" => Family {
            invalid: InvalidKeyShape::TopLevel,
            ..f
        },
        "deepinfra" => Family {
            prefix: "/v1/openai",
            ..f
        },
        "ollama" => Family {
            listing: ListingShape::OllamaTags,
            ..f
        },
        "vllm" => Family {
            invalid: InvalidKeyShape::BareString,
            ..f
        },
        other => panic!("no conformance family for catalog entry '{other}': add one"),
    }
}

#[actix_rt::test]
async fn every_catalog_entry_connects_validates_discovers_and_serves() {
    let dir = std::env::temp_dir().join(format!("to11-conformance-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "Conformance", "slug": "conf"}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    let (_, catalog) = api.get("/catalog").await;
    let entries = catalog["data"].as_array().expect("catalog");
    assert!(entries.len() >= 14, "{} entries", entries.len());

    for e in entries {
        let id = e["id"].as_str().expect("id");
        let fam = family(id);
        let keyless = id == "ollama";
        let key = if keyless {
            String::new()
        } else {
            format!("sk-{id}-valid-9876")
        };
        let mock = MockUpstream::start_family(&key, &["m1", "m2"], fam);
        let base = format!("http://{}{}", mock.addr, fam.prefix);
        let named = fam.listing == ListingShape::None;
        let mut body = json!({"kind": id, "base_url": base});
        if !keyless {
            body["credential"] = json!({"api_key": key});
        }
        if named {
            body["models"] = json!(["m1"]);
        }

        // Discover: validates and lists (or checks the named models), saves nothing.
        let (s, d) = api
            .post("/projects/conf/providers/discover", body.clone())
            .await;
        assert_eq!(s, 200, "{id}: discover: {d}");
        let ids: Vec<&str> = d["models"]
            .as_array()
            .expect("models")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert!(ids.contains(&"m1"), "{id}: {ids:?}");
        if !named {
            assert_eq!(ids, ["m1", "m2"], "{id}");
        }
        if named {
            let mut unknown = body.clone();
            unknown["models"] = json!(["nope"]);
            let (s, e) = api.post("/projects/conf/providers/discover", unknown).await;
            assert_eq!(
                s, 422,
                "{id}: a named model the provider does not serve: {e}"
            );
        }

        // Connect with m1 exposed.
        let mut connect = body.clone();
        connect["models"] = json!(["m1"]);
        let (s, c) = api.post("/projects/conf/providers", connect).await;
        assert_eq!(s, 201, "{id}: connect: {c}");
        assert!(
            !c.to_string().contains(&key) || keyless,
            "{id}: secret in the answer"
        );

        // Call through the gateway, plain and streaming, on the provider's own path.
        let (_, k) = api.post("/projects/conf/keys", json!({"name": id})).await;
        let gk = k["key"].as_str().expect("key").to_string();
        wait_version(
            &[gw.info.gateway],
            &project,
            k["version"].as_u64().expect("v"),
        )
        .await;
        let model = format!("{id}/m1");
        let r = chat(gw.info.gateway, &gk, &model).await;
        assert_eq!(r.status, 200, "{id}: chat: {:?}", r.body);
        assert_eq!(r.header("x-to11-provider"), Some(id));
        let rec = mock
            .last_request(&format!("{}/chat/completions", fam.prefix))
            .expect("recorded");
        assert_eq!(rec.json()["model"], "m1", "{id}");
        let auth = rec.header("authorization").map(String::from);
        if keyless {
            assert_eq!(auth, None, "{id}: no key, no header");
        } else {
            assert_eq!(auth, Some(format!("Bearer {key}")), "{id}");
        }
        let gate = format!("conf-{id}");
        let (status, _, events) =
            gated_stream(gw.info.gateway, &gk, &model, &gate, |_| mock.release(&gate)).await;
        assert_eq!(status, 200, "{id}: stream");
        assert_eq!(events, stream_chunks("m1"), "{id}: stream chunks as sent");

        // An invalid key: the provider's own refusal, in its own shape, is one clear error.
        if !keyless {
            let mut bad = body.clone();
            bad["credential"] = json!({"api_key": "sk-echo-wrong-1234"});
            let (s, e) = api.post("/projects/conf/providers/discover", bad).await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (400, Some("provider_invalid_credential")),
                "{id}: {e}"
            );
            assert!(
                !e.to_string().contains("sk-echo-wrong-1234"),
                "{id}: key echoed: {e}"
            );
        }

        // An unreachable host.
        let mut dead = body.clone();
        dead["base_url"] = json!(format!("http://127.0.0.1:{}{}", free_port(), fam.prefix));
        let (s, e) = api.post("/projects/conf/providers/discover", dead).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("provider_unreachable")),
            "{id}: {e}"
        );
    }
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
