#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Hostile upstreams and hostile callers against a running gateway: an upstream that echoes the
//! credential it received never gets it back to a caller (any family, any form, translated or
//! not, stored or the client's own); a to11 key in a non-canonical form never reaches an
//! upstream; redirects are errors. And the gateway's paths as a browser or a stray client meets
//! them: API calls (served past actix-web's router, `data-plane/src/front.rs`) and every other
//! answer carry the CORS headers, a path answers 404 or 405 for a method it lacks.

use awc::http::Method;
use bytes::Bytes;
use serde_json::{json, Value};
use to11_tests::client::{gateway, wait_version, ApiClient, GatewayResponse};
use to11_tests::mock::{MockUpstream, Scripted};
use to11_tests::native_mock::{Native, NativeMock, AWS_KEY_ID, AWS_REGION, AWS_SECRET};
use to11_tests::sandbox::{embedded_with, EmbeddedInfo, Spawned};

const OPENAI_KEY: &str = "sk-stored-openai-0123456789abcdef";
const NATIVE_KEY: &str = "sk-stored-native-fedcba9876543210";
const SESSION: &str = "FQoGZXIvYXdzEMockSessionToken0123456789";
const BYOK: &str = "sk-byok-client-own-key-5555";

/// Every run of eight characters of `secret` that appears in the answer (body or any header).
fn leaks(r: &GatewayResponse, secret: &str) -> Vec<String> {
    let mut text = String::from_utf8_lossy(&r.body).into_owned();
    for (name, v) in r.headers.iter() {
        text.push_str(&format!(
            "\n{name}: {}",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    secret
        .as_bytes()
        .windows(8)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .filter(|w| text.contains(w.as_str()))
        .collect()
}

struct World {
    gw: Spawned<EmbeddedInfo>,
    api: ApiClient,
    key: String,
    openai: MockUpstream,
    _native: Vec<NativeMock>,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(
    adjust: impl FnOnce(&mut to11_embedded::EmbeddedConfig) + Send + 'static,
) -> World {
    let dir = std::env::temp_dir().join(format!("to11-security-{}", uuid::Uuid::new_v4()));
    let gw = embedded_with(&dir, adjust).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "Sec", "slug": "sec"}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    let openai = MockUpstream::start(OPENAI_KEY, &["m"]);
    let (s, e) = api
        .post(
            "/projects/sec/providers",
            json!({"kind": "openai-compatible", "slug": "openai", "base_url": openai.base_url(), "credential": {"api_key": OPENAI_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let mut native = Vec::new();
    for (kind, id, prefix, credential, account) in [
        (
            Native::Anthropic,
            "anthropic",
            "/v1",
            json!({"api_key": NATIVE_KEY}),
            json!({}),
        ),
        (
            Native::Gemini,
            "gemini",
            "/v1beta",
            json!({"api_key": NATIVE_KEY}),
            json!({}),
        ),
        (
            Native::Bedrock,
            "bedrock",
            "",
            json!({"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET, "session_token": SESSION}),
            json!({"region": AWS_REGION}),
        ),
    ] {
        let m = NativeMock::start(kind, NATIVE_KEY);
        let (s, e) = api
            .post(
                "/projects/sec/providers",
                json!({"kind": id, "slug": id, "base_url": format!("http://{}{prefix}", m.addr),
                       "credential": credential, "account": account, "models": ["m1"]}),
            )
            .await;
        assert_eq!(s, 201, "{id}: {e}");
        native.push(m);
    }
    let (_, k) = api.post("/projects/sec/keys", json!({"name": "k"})).await;
    wait_version(
        &[gw.info.gateway],
        &project,
        k["version"].as_u64().expect("v"),
    )
    .await;
    World {
        gw,
        api,
        key: k["key"].as_str().expect("key").to_string(),
        openai,
        _native: native,
    }
}

impl World {
    async fn call(&self, path: &str, body: Value, extra: &[(&str, &str)]) -> GatewayResponse {
        let auth = format!("Bearer {}", self.key);
        let mut headers = vec![
            ("x-to11-authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        gateway(
            self.gw.info.gateway,
            Method::POST,
            path,
            &headers,
            Some(Bytes::from(body.to_string())),
        )
        .await
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[actix_rt::test]
async fn an_upstream_that_echoes_credentials_never_gets_them_to_a_caller() {
    let w = world().await;
    let echo = [("x-mock-echo-credentials", "1")];
    let converse = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "openai, native",
            "/v1/chat/completions",
            chat("openai/m"),
            vec![OPENAI_KEY],
        ),
        (
            "openai, stream",
            "/v1/chat/completions",
            json!({"model": "openai/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            vec![OPENAI_KEY],
        ),
        (
            "anthropic, native",
            "/v1/messages",
            json!({"model": "anthropic/m1", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
            vec![NATIVE_KEY],
        ),
        (
            "anthropic, translated",
            "/v1/chat/completions",
            chat("anthropic/m1"),
            vec![NATIVE_KEY],
        ),
        (
            "gemini, native",
            "/v1beta/models/gemini/m1:generateContent",
            gemini,
            vec![NATIVE_KEY],
        ),
        (
            "gemini, translated",
            "/v1/chat/completions",
            chat("gemini/m1"),
            vec![NATIVE_KEY],
        ),
        (
            "bedrock converse",
            "/model/bedrock/m1/converse",
            converse,
            vec![AWS_KEY_ID, SESSION, AWS_SECRET],
        ),
        (
            "bedrock, translated",
            "/v1/chat/completions",
            chat("bedrock/m1"),
            vec![AWS_KEY_ID, SESSION, AWS_SECRET],
        ),
    ];
    for (what, path, body, secrets) in cases {
        let r = w.call(path, body, &echo).await;
        assert_eq!(
            r.status,
            401,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        for s in secrets {
            assert_eq!(
                leaks(&r, s),
                Vec::<String>::new(),
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    // The client's own key (BYOK) is scrubbed from what comes back too.
    let auth = format!("Bearer {BYOK}");
    let r = w
        .call(
            "/v1/chat/completions",
            chat("openai/m"),
            &[
                ("x-mock-echo-credentials", "1"),
                ("authorization", auth.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(leaks(&r, BYOK), Vec::<String>::new());
    // The echo really happened: the mock received the key it quoted.
    let last = w.openai.last_request("/v1/chat/completions").expect("sent");
    assert_eq!(last.header("authorization"), Some(auth.as_str()));
    drop(w.api);
}

#[actix_rt::test]
async fn a_to11_key_in_any_form_never_reaches_an_upstream() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let w = world().await;
    let k = w.key.clone();
    let basic = format!("Basic {}", STANDARD.encode(format!("{k}:")));
    let forms = [
        ("authorization", format!("Bearer\t{k}")),
        ("authorization", format!("Token {k}")),
        ("authorization", format!("Bearer: {k}")),
        ("authorization", format!("\"{k}\"")),
        ("authorization", basic),
        ("x-api-key", format!("Bearer {k}")),
        ("x-goog-api-key", k.clone()),
        ("api-key", format!("'{k}'")),
    ];
    for (name, value) in &forms {
        let r = w
            .call(
                "/v1/chat/completions",
                chat("openai/m"),
                &[(name, value.as_str())],
            )
            .await;
        assert_eq!(r.status, 200, "{name}: {value}");
    }
    for q in [
        format!("?key={k}"),
        format!("?api_key=Bearer%20{k}"),
        format!("?x={}", k.replace('_', "%5F")),
    ] {
        let r = w
            .call(&format!("/v1/chat/completions{q}"), chat("openai/m"), &[])
            .await;
        assert_eq!(r.status, 200, "{q}");
    }
    let sent: Vec<_> = w
        .openai
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/chat/completions"))
        .collect();
    assert_eq!(sent.len(), forms.len() + 3);
    for r in sent {
        let everything = format!("{} {:?}", r.path, r.headers).to_ascii_lowercase();
        assert!(
            !everything.contains("to11_"),
            "a to11 key reached the upstream: {everything}"
        );
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {OPENAI_KEY}").as_str())
        );
    }
}

#[actix_rt::test]
async fn an_upstream_redirect_is_an_error_never_passed_on() {
    let w = world().await;
    w.openai.always(Some(
        Scripted::error(307, "moved").with_header("location", "https://collector.example/steal"),
    ));
    let r = w.call("/v1/chat/completions", chat("openai/m"), &[]).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.headers.get("location").is_none());
    let m = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(m.contains("redirect"), "{m}");
    assert!(!String::from_utf8_lossy(&r.body).contains("collector.example"));
}

/// A raw upload: the head (declaring `declared` body bytes) and the first `sent` bytes of body.
async fn upload(w: &World, declared: usize, sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(w.gw.info.gateway)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-to11-authorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n",
        w.key
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&vec![b' '; sent]).await.expect("body");
    s
}

/// The status line of the answer on `s`, read within `within`.
async fn status_of(s: &mut tokio::net::TcpStream, within: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, s.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[actix_rt::test]
async fn request_bodies_are_bounded_in_memory_and_time() {
    use std::time::{Duration, Instant};
    let w = world_with(|s| {
        s.gateway.body_memory_bytes = 1 << 20;
        s.gateway.max_body_bytes = 1 << 20;
        s.gateway.body_memory_wait = Duration::from_millis(200);
        s.gateway.body_idle_timeout = Duration::from_millis(1500);
        s.gateway.body_read_timeout = Duration::from_secs(4);
    })
    .await;
    let big = || chat_with("x".repeat(200 << 10));
    let r = w.call("/v1/chat/completions", big(), &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Two stalled uploads of 512 KiB hold the whole budget (1 MiB).
    let started = Instant::now();
    let mut a = upload(&w, 512 << 10, 1024).await;
    let mut b = upload(&w, 512 << 10, 1024).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another large body waits briefly, then is refused: 503 overloaded, retry-after.
    let r = w.call("/v1/chat/completions", big(), &[]).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "overloaded");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    // The stalled uploads are cut after the idle timeout, with 408.
    for s in [&mut a, &mut b] {
        let line = status_of(s, Duration::from_secs(10)).await;
        assert!(line.contains(" 408 "), "{line}");
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // What they held is returned: the large body passes again.
    assert_eq!(w.call("/v1/chat/completions", big(), &[]).await.status, 200);
    // A body that drips in (a byte every 500 ms, never idle long enough) is cut at the read
    // timeout.
    let mut c = upload(&w, 1000, 1).await;
    let dripping = Instant::now();
    let line = loop {
        use tokio::io::AsyncWriteExt;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if c.write_all(b" ").await.is_err() || dripping.elapsed() > Duration::from_secs(8) {
            break status_of(&mut c, Duration::from_secs(2)).await;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), c.peek(&mut probe)).await
        {
            if n > 0 {
                break status_of(&mut c, Duration::from_secs(2)).await;
            }
        }
    };
    assert!(line.contains(" 408 "), "{line}");
    let took = dripping.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

/// A body is forwarded as it came, whether it arrived with its head (taken as the connection's
/// chunk, not copied) or in pieces with pauses between them (gathered): the upstream receives
/// the same bytes, and the answers are the same.
#[actix_rt::test]
async fn a_body_in_pieces_and_a_body_in_one_piece_reach_the_upstream_byte_for_byte() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world().await;
    let body =
        serde_json::to_vec(&chat_with("d\u{e9}j\u{e0} vu, \"quoted\"\n".repeat(40))).expect("json");
    for pieces in [1, 3, 7] {
        w.openai.reset();
        let mut s = tokio::net::TcpStream::connect(w.gw.info.gateway)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-to11-authorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            w.key,
            body.len()
        );
        if pieces == 1 {
            s.write_all(&[head.as_bytes(), &body].concat())
                .await
                .expect("request");
        } else {
            s.write_all(head.as_bytes()).await.expect("head");
            for part in body.chunks(body.len().div_ceil(pieces)) {
                tokio::time::sleep(Duration::from_millis(30)).await;
                s.write_all(part).await.expect("part");
            }
        }
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
            .await
            .expect("an answer in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{pieces} pieces: {answer}"
        );
        let sent = w
            .openai
            .last_request("/v1/chat/completions")
            .expect("forwarded");
        let mut want: Value = serde_json::from_slice(&body).expect("json");
        want["model"] = json!("m");
        let got: Value = serde_json::from_slice(&sent.body).expect("the upstream got JSON");
        assert_eq!(got, want, "{pieces} pieces");
        let expected = String::from_utf8(body.clone())
            .expect("utf-8")
            .replace("\"openai/m\"", "\"m\"");
        assert_eq!(
            String::from_utf8_lossy(&sent.body),
            expected,
            "{pieces} pieces: byte for byte, but the model"
        );
    }
}

fn chat_with(content: String) -> Value {
    json!({"model": "openai/m", "messages": [{"role": "user", "content": content}]})
}

#[actix_rt::test]
async fn a_source_that_keeps_presenting_bad_keys_is_backed_off() {
    use std::time::Duration;
    let w = world_with(|s| s.gateway.failed_auth_per_minute = 5).await;
    let bad = |n: usize| {
        let gw = w.gw.info.gateway;
        async move {
            let auth = format!("Bearer to11_gk_not-a-key-{n}");
            gateway(
                gw,
                Method::POST,
                "/v1/chat/completions",
                &[("x-to11-authorization", auth.as_str())],
                Some(Bytes::from(chat("openai/m").to_string())),
            )
            .await
        }
    };
    for n in 0..6 {
        assert_eq!(bad(n).await.status, 401, "failure {n} is a plain 401");
    }
    // Past the allowance: refused before the key is looked at, good key or not.
    let r = bad(7).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    assert_eq!(
        w.call("/v1/chat/completions", chat("openai/m"), &[])
            .await
            .status,
        429
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        w.call("/v1/chat/completions", chat("openai/m"), &[])
            .await
            .status,
        200
    );
}

/// This process's resident memory, in MiB.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// Images by URL cannot make a replica hold more than its budget: over the request's limit is
/// refused early, and concurrent requests within it share the memory budget. Before these bounds,
/// sixteen 20 MiB images made one request hold about 2.6 GiB.
#[actix_rt::test]
async fn images_by_url_stay_within_the_memory_budget() {
    use std::time::Duration;
    let w = world_with(|s| {
        s.gateway.allow_private_image_urls = true;
        s.gateway.body_memory_bytes = 96 << 20;
        s.gateway.body_memory_wait = Duration::from_millis(100);
        s.gateway.image_fetch_timeout = Duration::from_secs(20);
    })
    .await;
    let gemini = w._native[1].addr;
    let with_images = |mib: usize, n: usize, tag: &str| {
        let parts: Vec<Value> = (0..n)
            .map(|i| json!({"type": "image_url", "image_url": {"url": format!("http://{gemini}/images/big-{mib}-{tag}{i}.png")}}))
            .collect();
        json!({"model": "gemini/m1", "messages": [{"role": "user", "content": parts}]})
    };
    let before = rss_mib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = {
        let peak = peak.clone();
        actix_rt::spawn(async move {
            loop {
                peak.fetch_max(rss_mib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Sixteen 5 MiB images: past the request's 20 MiB of images, refused once that is passed.
    let r = w
        .call("/v1/chat/completions", with_images(5, 16, "a"), &[])
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("for one request"));
    // Six requests of 18 MiB of images at once: the budget (96 MiB, four bytes held per byte of
    // image) lets about one through at a time; the others wait briefly or get 503.
    let calls = (0..6).map(|i| {
        w.call(
            "/v1/chat/completions",
            with_images(6, 3, &format!("c{i}-")),
            &[],
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    sampling.abort();
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    // The mock's own copies of the images and the test's are in this process too.
    eprintln!("images: resident memory grew by {grew} MiB; statuses {statuses:?}");
    assert!(
        grew < 600,
        "resident memory grew by {grew} MiB ({statuses:?})"
    );
}

#[actix_rt::test]
async fn paths_answer_by_method_and_every_answer_to_a_page_is_readable_by_it() {
    let w = world().await;
    let gw = w.gw.info.gateway;
    let origin = ("origin", "https://app.example");
    let allowed = |r: &GatewayResponse, what: &str| {
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{what}");
        assert!(
            r.header("access-control-expose-headers")
                .is_some_and(|h| h.contains("x-to11-request-id")),
            "{what}: {:?}",
            r.headers
        );
    };
    let served = w
        .call("/v1/chat/completions", chat("openai/m"), &[origin])
        .await;
    assert_eq!(served.status, 200, "{:?}", served.body);
    allowed(&served, "an API call");
    let anonymous = gateway(
        gw,
        Method::POST,
        "/v1/chat/completions",
        &[origin],
        Some(Bytes::from(chat("openai/m").to_string())),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    allowed(&anonymous, "a refused API call");
    let plain = w.call("/v1/chat/completions", chat("openai/m"), &[]).await;
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("access-control-allow-origin"),
        None,
        "no origin"
    );
    let preflight = gateway(
        gw,
        Method::OPTIONS,
        "/v1/chat/completions",
        &[
            origin,
            ("access-control-request-headers", "x-to11-authorization"),
        ],
        None,
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("x-to11-authorization")
    );
    // A path of an API with another method: no such endpoint; a model's path: GET only.
    let get = gateway(gw, Method::GET, "/v1/chat/completions", &[origin], None).await;
    assert_eq!(get.status, 404);
    assert_eq!(get.error_code().as_deref(), Some("not_found"));
    allowed(&get, "a 404");
    let put = gateway(gw, Method::PUT, "/v1/models/openai/m", &[], None).await;
    assert_eq!(put.status, 405);
    // A POST to a model's path that names no API's method is the gateway's 404, after the key.
    let no_api = w.call("/v1/models/openai/m", json!({}), &[]).await;
    assert_eq!(no_api.status, 404, "{:?}", no_api.body);
    assert!(
        no_api.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no API at /v1/models/openai/m")),
        "{}",
        no_api.json()
    );
    let trailing = w.call("/v1/chat/completions/", chat("openai/m"), &[]).await;
    assert_eq!(trailing.status, 404);
}
