#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Usage limits and budgets end to end, over real Redis and three replicas: a shared request
//! limit and a token limit held across replicas; the budget race (500 requests at once against a
//! budget for about 100); concurrency slots under streams and disconnects; Redis killed and
//! restarted under load; tenant isolation; the API (plans the project cannot raise, usage shown,
//! alerts listed); embedded mode keeping a budget's spend across a restart.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use to11_tests::client::{gated_stream, post_chat, wait_version, ApiClient, GatewayResponse};
use to11_tests::mock::MockUpstream;
use to11_tests::redis_server::RedisServer;
use to11_tests::sandbox::{control_plane, embedded, replica, ADMIN_TOKEN};
use to11_tests::wait_until;

const UPSTREAM_KEY: &str = "sk-limits";

struct Deployment {
    _redis: RedisServer,
    _cp: to11_tests::sandbox::Spawned<to11_tests::sandbox::ControlPlaneInfo>,
    _replicas: Vec<to11_tests::sandbox::Spawned<SocketAddr>>,
    api: ApiClient,
    gws: Vec<SocketAddr>,
}

fn deployment(replicas: usize) -> Deployment {
    let redis = RedisServer::start(false);
    let prefix = "to11:";
    let cp = control_plane(&redis.url(), prefix).expect("control plane");
    let api = ApiClient::new(cp.info.addr, ADMIN_TOKEN);
    let reps: Vec<_> = (0..replicas)
        .map(|_| replica(&redis.url(), prefix).expect("replica"))
        .collect();
    let gws = reps.iter().map(|r| r.info).collect();
    Deployment {
        _redis: redis,
        _cp: cp,
        _replicas: reps,
        api,
        gws,
    }
}

/// A project `slug` with `mock` connected as `kind` ("openai" is priced: budgets count it).
async fn project(api: &ApiClient, slug: &str, mock: &MockUpstream, kind: &str) -> String {
    let (s, p) = api
        .post("/projects", json!({"name": slug, "slug": slug}))
        .await;
    assert_eq!(s, 201, "{p}");
    let (s, e) = api
        .post(
            &format!("/projects/{slug}/providers"),
            json!({"kind": kind, "slug": "up", "base_url": mock.base_url(), "credential": {"api_key": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    p["id"].as_str().expect("id").to_string()
}

/// A key with `limits`, applied on every replica: (key id, secret).
async fn key(d: &Deployment, slug: &str, project: &str, limits: Value) -> (String, String) {
    let (s, k) = d
        .api
        .post(
            &format!("/projects/{slug}/keys"),
            json!({"name": "k", "limits": limits}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    wait_version(&d.gws, project, k["version"].as_u64().expect("v")).await;
    (
        k["id"].as_str().expect("id").to_string(),
        k["key"].as_str().expect("key").to_string(),
    )
}

fn body(max_tokens: u64) -> String {
    json!({"model": "up/gpt-4o", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string()
}

/// Sends `n` chats, `parallel` at a time, spread over `gws`; answers every response.
async fn load(
    gws: &[SocketAddr],
    key: &str,
    n: usize,
    parallel: usize,
    max_tokens: u64,
) -> Vec<GatewayResponse> {
    let auth = format!("Bearer {key}");
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (gw, auth) = (gws[i % gws.len()], auth.clone());
            async move {
                post_chat(gw, &[("x-to11-authorization", &auth)], &body(max_tokens)).await
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// Waits until at least `margin` seconds are left of the current UTC minute, so a burst lands in
/// one window of a per-minute limit.
async fn within_one_minute(margin: u64) {
    let s = chrono::Utc::now().timestamp() as u64 % 60;
    if s + margin > 60 {
        tokio::time::sleep(Duration::from_millis((61 - s) * 1000)).await;
    }
}

/// A counter of a replica's `/metrics`.
async fn metric(gw: SocketAddr, name: &str) -> u64 {
    let r = to11_tests::client::gateway(gw, awc::http::Method::GET, "/metrics", &[], None).await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn count(rs: &[GatewayResponse], status: u16) -> usize {
    rs.iter().filter(|r| r.status == status).count()
}

/// A webhook receiver: records each call's signature and body; answers 500 to the first.
struct Receiver {
    addr: SocketAddr,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = calls.clone();
        let server = actix_web::HttpServer::new(move || {
            let kept = kept.clone();
            actix_web::App::new().default_service(actix_web::web::to(
                move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let signature = req
                            .headers()
                            .get("x-to11-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let mut calls = kept.lock().unwrap();
                        calls.push((signature, String::from_utf8_lossy(&body).to_string()));
                        if calls.len() == 1 {
                            actix_web::HttpResponse::InternalServerError().finish()
                        } else {
                            actix_web::HttpResponse::Ok().finish()
                        }
                    }
                },
            ))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let addr = server.addrs()[0];
        actix_rt::spawn(server.run());
        Receiver { addr, calls }
    }
}

#[actix_rt::test]
async fn three_replicas_hold_one_request_limit_and_one_token_limit() {
    let d = deployment(3);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let p = project(&d.api, "shared", &mock, "openai-compatible").await;
    let (rid, rkey) = key(&d, "shared", &p, json!({"requests_per_minute": 600})).await;
    // Each request reserves its estimated input (about 30 tokens for this body) and 10 output
    // tokens, and uses 9 (the mock's 5 + 4).
    let (tid, tkey) = key(&d, "shared", &p, json!({"tokens_per_minute": 3000})).await;
    within_one_minute(30).await;

    let answers = load(&d.gws, &rkey, 900, 24, 10).await;
    let (ok, refused) = (count(&answers, 200), count(&answers, 429));
    let ok_requests = ok;
    assert_eq!(ok + refused, 900, "only 200 and 429");
    assert!(ok <= 600, "never more than the limit: {ok} admitted");
    assert!(
        ok >= 594,
        "at most 1% of the limit left unused in slices: {ok} admitted"
    );
    assert_eq!(
        mock.count("/v1/chat/completions"),
        ok,
        "refused before the upstream"
    );
    let r = answers.iter().find(|r| r.status == 429).expect("a refusal");
    assert_eq!(r.error_code().as_deref(), Some("rate_limited"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("600"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    let served = answers.iter().find(|r| r.status == 200).expect("served");
    assert_eq!(served.header("x-ratelimit-limit-requests"), Some("600"));
    assert!(served.header("x-ratelimit-reset-requests").is_some());

    mock.reset();
    let answers = load(&d.gws, &tkey, 600, 24, 10).await;
    let ok = count(&answers, 200);
    assert!(count(&answers, 429) > 0, "the token limit refused some");
    assert!(
        ok * 9 <= 3000,
        "tokens used within the limit: {ok} requests"
    );
    assert_eq!(mock.count("/v1/chat/completions"), ok);
    assert_eq!(
        answers
            .iter()
            .find(|r| r.status == 200)
            .and_then(|r| r.header("x-ratelimit-limit-tokens")),
        Some("3000")
    );

    // The API shows what is used of each, once the replicas reported it.
    let (s, v) = wait_until("usage reported", 10, || async {
        let (s, v) = d
            .api
            .get(&format!("/projects/shared/keys/{rid}/limits"))
            .await;
        (v["usage"][0]["used"].as_u64() == Some(ok_requests as u64)).then_some((s, v))
    })
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["limits"]["requests_per_minute"], 600);
    assert_eq!(v["usage"][0]["limit"], "requests_per_minute");
    assert!(v["usage"][0]["resets_at"].is_string(), "{v}");
    let (_, t) = wait_until("tokens reported", 10, || async {
        let (s, v) = d
            .api
            .get(&format!("/projects/shared/keys/{tid}/limits"))
            .await;
        (v["usage"][0]["used"].as_u64() == Some(ok as u64 * 9)).then_some((s, v))
    })
    .await;
    assert_eq!(t["usage"][0]["max"], 3000);
}

#[actix_rt::test]
async fn the_budget_race_spends_at_most_the_budget_and_other_tenants_are_untouched() {
    let d = deployment(3);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let p = project(&d.api, "spender", &mock, "openai").await;
    // gpt-4o: 5 input tokens at 2.50 and 4 output tokens at 10.00 per million: 52.5 micro-units
    // a request, 53 once rounded; 0.0052 covers 98 of them.
    let (s, v) = d
        .api
        .put(
            "/projects/spender/limits",
            json!({"budget": {"amount": "0.0052", "period": "day", "alert_at_percent": 50}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let hook = Receiver::start();
    let (s, w) = d
        .api
        .put(
            "/projects/spender/limits/webhook",
            json!({"url": format!("http://{}/alerts", hook.addr)}),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    let hook_secret = w["secret"].as_str().expect("secret shown once").to_string();
    let (_, shown) = d.api.get("/projects/spender/limits/webhook").await;
    assert!(
        !shown.to_string().contains(&hook_secret),
        "never shown again"
    );
    let (_, secret) = key(&d, "spender", &p, json!(null)).await;
    let other = project(&d.api, "bystander", &mock, "openai").await;
    let (_, other_key) = key(&d, "bystander", &other, json!(null)).await;

    let answers = load(&d.gws, &secret, 500, 500, 10).await;
    let ok = count(&answers, 200);
    assert_eq!(ok + count(&answers, 429), 500);
    assert_eq!(
        mock.count("/v1/chat/completions"),
        ok,
        "every refusal before the upstream"
    );
    assert!(
        ok * 52 <= 5200,
        "spent at most the budget: {ok} requests of 52"
    );
    assert!(ok >= 50, "most of the budget was usable: {ok}");
    let r = answers.iter().find(|r| r.status == 429).expect("refused");
    assert_eq!(r.error_code().as_deref(), Some("budget_exceeded"));

    let (_, v) = wait_until("spend reported", 10, || async {
        let (s, v) = d.api.get("/projects/spender/limits").await;
        (s == 200
            && v["usage"][0]["used"] == json!(to11_shared::limits::format_amount(ok as u64 * 53)))
        .then_some(((), v))
    })
    .await;
    assert_eq!(v["usage"][0]["max"], "0.0052", "{v}");
    let (_, events) = wait_until("the alert", 10, || async {
        let (_, e) = d.api.get("/projects/spender/limits/events").await;
        (!e["data"].as_array().unwrap().is_empty()).then_some(((), e))
    })
    .await;
    assert_eq!(
        events["data"][events["data"].as_array().unwrap().len() - 1]["type"],
        "budget_alert"
    );
    let (_, none) = d.api.get("/projects/bystander/limits/events").await;
    assert_eq!(none["data"], json!([]), "tenant isolation of events");

    // The webhook got the alert, signed, after its first call was answered 500 (retried).
    let calls = wait_until("the webhook's second call", 15, || async {
        let c = hook.calls.lock().unwrap().clone();
        (c.len() >= 2).then_some(c)
    })
    .await;
    let (signature, body) = &calls[1];
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("t=");
    assert_eq!(
        signature,
        &to11_shared::limits::webhook_signature(&hook_secret, t, body.as_bytes())
    );
    let alert: Value = serde_json::from_str(body).unwrap();
    assert_eq!(alert["type"], "budget_alert");
    assert_eq!(alert["project"], json!(p));
    assert_eq!(calls[0].1, calls[1].1, "the same event, retried");

    // Tenant isolation: the other project is served as before.
    let others = load(&d.gws, &other_key, 30, 10, 10).await;
    assert_eq!(count(&others, 200), 30);
}

#[actix_rt::test]
async fn concurrency_slots_come_back_on_success_and_disconnect() {
    let d = deployment(2);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let p = project(&d.api, "streams", &mock, "openai-compatible").await;
    let (_, secret) = key(&d, "streams", &p, json!({"concurrent": 2})).await;
    let auth = format!("Bearer {secret}");

    // Two streams held at the mock occupy both slots, one on each replica.
    let held: Vec<_> = (0..2)
        .map(|i| {
            let (gw, auth) = (d.gws[i], auth.clone());
            actix_rt::spawn(async move {
                gated_stream(gw, &auth, "up/gpt-4o", &format!("g{i}"), |_| {}).await
            })
        })
        .collect();
    wait_until("both streams started", 10, || async {
        (mock.count("/v1/chat/completions") == 2).then_some(())
    })
    .await;
    let third = post_chat(d.gws[0], &[("x-to11-authorization", &auth)], &body(10)).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.error_code().as_deref(), Some("concurrency_limited"));

    // One client goes away mid-stream: its slot comes back.
    held[0].abort();
    wait_until("the slot of the client that left", 10, || async {
        let r = post_chat(d.gws[1], &[("x-to11-authorization", &auth)], &body(10)).await;
        (r.status == 200).then_some(())
    })
    .await;
    // A request the upstream fails gives its slot back too.
    mock.script(vec![to11_tests::mock::Scripted::error(500, "boom")]);
    let failed = post_chat(d.gws[1], &[("x-to11-authorization", &auth)], &body(10)).await;
    assert!(
        failed.status >= 500,
        "{}",
        String::from_utf8_lossy(&failed.body)
    );
    wait_until("the slot of the failed request", 10, || async {
        let r = post_chat(d.gws[1], &[("x-to11-authorization", &auth)], &body(10)).await;
        (r.status == 200).then_some(())
    })
    .await;
    // The other stream finishes: its slot comes back too, and two requests fit at once.
    for _ in 0..64 {
        mock.release("g1");
    }
    let (status, _, _) =
        tokio::time::timeout(Duration::from_secs(10), held.into_iter().nth(1).unwrap())
            .await
            .expect("stream ended")
            .expect("task");
    assert_eq!(status, 200);
    wait_until("both slots free", 10, || async {
        let rs = load(&d.gws, &secret, 2, 2, 10).await;
        (count(&rs, 200) == 2).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn redis_killed_and_restarted_under_load_fails_nothing_within_limits() {
    let mut d = deployment(2);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let p = project(&d.api, "steady", &mock, "openai-compatible").await;
    let (kid, secret) = key(
        &d,
        "steady",
        &p,
        // 600 requests are sent: within the limit, and slices of it (at most an eighth) run out
        // during the outage, so the replicas admit on their own shares.
        json!({"requests_per_minute": 1000, "concurrent": 50}),
    )
    .await;
    within_one_minute(25).await;

    let gws = d.gws.clone();
    let s2 = secret.clone();
    let traffic = actix_rt::spawn(async move {
        let mut all = Vec::new();
        for _ in 0..30 {
            all.extend(load(&gws, &s2, 20, 4, 10).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        all
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    d._redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d._redis.restart();
    let answers = traffic.await.expect("traffic");
    let failed: Vec<&GatewayResponse> = answers.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        failed
            .first()
            .map(|r| String::from_utf8_lossy(&r.body).to_string())
    );
    // The replicas counted on their own shares while Redis was gone.
    let mut local = 0;
    for gw in &d.gws {
        local += metric(*gw, "to11_limit_admitted_locally_total").await;
    }
    assert!(
        local > 0,
        "requests admitted on the replicas' own shares during the outage"
    );
    // What was admitted while Redis was gone is reported once it is back (the restarted Redis
    // started empty; every request since then is counted).
    wait_until("counters reconciled", 15, || async {
        let (_, v) = d
            .api
            .get(&format!("/projects/steady/keys/{kid}/limits"))
            .await;
        (v["usage"][0]["used"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn a_plan_binds_and_only_the_operator_sets_it() {
    let d = deployment(1);
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let p = project(&d.api, "planned", &mock, "openai-compatible").await;
    let (s, v) = d
        .api
        .put("/projects/planned/plan", json!({"requests_per_minute": 3}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, mk) = d
        .api
        .post("/projects/planned/management-keys", json!({"name": "m"}))
        .await;
    let tenant = d.api.with_token(mk["key"].as_str().expect("key"));
    let (s, v) = tenant
        .put(
            "/projects/planned/plan",
            json!({"requests_per_minute": 1000}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = tenant
        .put(
            "/projects/planned/limits",
            json!({"requests_per_minute": 1000}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = tenant
        .put(
            "/projects/planned/limits",
            json!({"request_per_minute": 5, "budget": {"amount": "-1", "period": "year"}}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let problems = v["error"]["details"]["problems"]
        .as_array()
        .expect("problems");
    assert_eq!(problems.len(), 3, "{v}");
    let (_, secret) = key(&d, "planned", &p, json!(null)).await;
    within_one_minute(10).await;
    let answers = load(&d.gws, &secret, 6, 1, 10).await;
    assert_eq!(count(&answers, 200), 3, "the plan's 3 per minute binds");
    let (_, v) = tenant.get("/projects/planned/limits").await;
    assert_eq!(v["limits"]["requests_per_minute"], 1000);
    assert_eq!(v["plan"]["limits"]["requests_per_minute"], 3, "{v}");
    // Another project cannot read these.
    let other = project(&d.api, "elsewhere", &mock, "openai-compatible").await;
    let _ = other;
    let (_, mk2) = d
        .api
        .post("/projects/elsewhere/management-keys", json!({"name": "m"}))
        .await;
    let stranger = d.api.with_token(mk2["key"].as_str().expect("key"));
    let (s, _) = stranger.get("/projects/planned/limits").await;
    assert_eq!(s, 404);
}

#[actix_rt::test]
async fn embedded_mode_keeps_a_budgets_spend_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("to11-limits-{}", uuid::Uuid::new_v4()));
    let mock = MockUpstream::start(UPSTREAM_KEY, &["gpt-4o"]);
    let spent = {
        let e = embedded(&dir).expect("embedded");
        let api = ApiClient::new(
            e.info.api,
            e.info.generated_admin_token.as_deref().expect("token"),
        );
        project(&api, "solo", &mock, "openai").await;
        let (s, k) = api
            .post(
                "/projects/solo/keys",
                json!({"name": "k", "limits": {"budget": {"amount": "0.00052", "period": "total"}}}),
            )
            .await;
        assert_eq!(s, 201, "{k}");
        let secret = k["key"].as_str().unwrap().to_string();
        let id = k["id"].as_str().unwrap().to_string();
        wait_until("key applied", 10, || async {
            let r = post_chat(
                e.info.gateway,
                &[("x-to11-authorization", &format!("Bearer {secret}"))],
                &body(10),
            )
            .await;
            (r.status != 401).then_some(())
        })
        .await;
        let answers = load(&[e.info.gateway], &secret, 20, 1, 10).await;
        assert!(count(&answers, 429) > 0, "the budget ran out");
        // Saved within a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, v) = api.get(&format!("/projects/solo/keys/{id}/limits")).await;
        (secret, id, v["usage"][0]["used"].clone())
    };
    let e = embedded(&dir).expect("embedded again");
    let (secret, _, used) = spent;
    assert!(used.is_string(), "spend shown before the restart: {used}");
    let r = wait_until("the key after the restart", 10, || async {
        let r = post_chat(
            e.info.gateway,
            &[("x-to11-authorization", &format!("Bearer {secret}"))],
            &body(10),
        )
        .await;
        (r.status != 401 && r.status != 503).then_some(r)
    })
    .await;
    assert_eq!(r.status, 429, "still spent after the restart");
    assert_eq!(r.error_code().as_deref(), Some("budget_exceeded"));
}
