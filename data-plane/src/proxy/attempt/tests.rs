//! The retry, fallback and timeout contract of the attempt loop, against a fake upstream that
//! answers from a script and records which target each attempt went to.

use std::cell::RefCell;
use std::collections::VecDeque;

use serde_json::json;
use to11_shared::body::scan;
use to11_shared::model::{ByokPolicy, Route, Strategy, Target};
use to11_shared::upstream::{GoogleMethod, Surface};

use super::*;
use crate::proxy::prepare::Request;
use crate::state::tests::{keyring, snapshot};
use crate::state::{prepare, Live};
use crate::Settings;

type Body = futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, awc::error::PayloadError>>>;

/// What the fake answers to one attempt.
enum Step {
    Status(u16, &'static [(&'static str, &'static str)], &'static str),
    Timeout,
    Refused,
    NoToken,
}

/// Answers attempts from a script (then 200), recording the model each was for.
#[derive(Default)]
struct Fake {
    script: RefCell<VecDeque<Step>>,
    sent: RefCell<Vec<String>>,
}

impl Fake {
    fn new(script: Vec<Step>) -> Fake {
        Fake {
            script: RefCell::new(script.into()),
            sent: RefCell::default(),
        }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.borrow().clone()
    }
}

impl Upstream for Fake {
    type Body = Body;

    async fn send(&self, a: &Attempt<'_>) -> Result<Answered<Body>, SendError> {
        let body: serde_json::Value = serde_json::from_slice(&a.prepared.body).expect("json");
        self.sent
            .borrow_mut()
            .push(body["model"].as_str().unwrap_or("").to_string());
        let step = self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or(Step::Status(200, &[], "{}"));
        let (status, headers, body) = match step {
            Step::Status(s, h, b) => (s, h, b),
            Step::Timeout => return Err(SendError::Timeout),
            Step::Refused => return Err(SendError::Connect("connection refused".into())),
            Step::NoToken => {
                return Err(SendError::Credential(GatewayError::new(
                    ErrorCode::UpstreamAuth,
                    "could not get a Google access token",
                )))
            }
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        Ok(Answered {
            status: StatusCode::from_u16(status).expect("status"),
            headers: map,
            body: futures_util::stream::iter(vec![Ok(Bytes::from_static(body.as_bytes()))]),
        })
    }
}

/// A project whose route `r` tries models `a`, `b`, `c` of one provider, with `policy`.
fn project(policy: serde_json::Value) -> Arc<ProjectLive> {
    let mut s = snapshot(1, &[], ByokPolicy::Allowed);
    s.providers[0].exposed = vec!["a".into(), "b".into(), "c".into()];
    s.routes = vec![Route {
        name: "r".into(),
        strategy: Strategy::Fallback,
        targets: ["a", "b", "c"]
            .iter()
            .map(|m| Target {
                provider: "openai".into(),
                model: m.to_string(),
                credential: None,
                weight: None,
            })
            .collect(),
        policy: serde_json::from_value(policy).expect("policy"),
    }];
    let (p, keys) = prepare(&s, &keyring()).expect("prepare");
    let live = Live::default();
    let id = p.id;
    live.apply(p, keys);
    let project = live.load().projects.get(&id).expect("applied").clone();
    project
}

/// Fast backoff, no cool-down, so tests do not wait.
fn fast() -> serde_json::Value {
    json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0})
}

struct Outcome {
    /// The model of each attempt, in order.
    sent: Vec<String>,
    /// The status delivered (an answer or a failure), or the gateway error's code.
    delivered: Result<u16, ErrorCode>,
    attempts: Option<String>,
    /// A delivered failure's headers and body.
    failure: Option<(HeaderMap, Bytes)>,
}

/// Runs the loop for `model` (a route name or `openai/x`) on `surface` against `script`.
async fn run_on(
    project: &ProjectLive,
    model: &str,
    surface: Surface,
    deadline: Option<Instant>,
    script: Vec<Step>,
) -> Outcome {
    run_capped(
        project,
        model,
        surface,
        deadline,
        script,
        10,
        Default::default(),
    )
    .await
}

/// `run_on` with at most `max_attempts` attempts.
async fn run_capped(
    project: &ProjectLive,
    model: &str,
    surface: Surface,
    deadline: Option<Instant>,
    script: Vec<Step>,
    max_attempts: u32,
    budget: RetryGate<'_>,
) -> Outcome {
    let r = project.tables.resolve(model).expect("resolves");
    let body = Bytes::from(json!({"model": model, "messages": []}).to_string());
    let scan = scan(&body).expect("scan");
    let settings = Settings::with_listen("127.0.0.1:0");
    let metrics = Metrics::default();
    let health = r.route.map(|n| project.health.route(n)).unwrap_or(&[]);
    let attempts = Attempts {
        request_id: "req",
        project,
        layer: r.layer,
        function: r.function,
        route: r.route,
        targets: r.targets,
        policy: r.policy,
        health,
        first_byte: Duration::from_secs(5),
        deadline,
        byok: None,
        max_attempts,
        budget,
        metrics: &metrics,
        tally: Default::default(),
        failed: Default::default(),
        trace: Default::default(),
    };
    let mut prep = Preparer::new(
        project,
        Request {
            surface,
            model,
            streaming: false,
            query: None,
            body: &body,
            scan: &scan,
            defaults: None,
            strict: false,
        },
        &settings,
    );
    let fake = Fake::new(script);
    let order: Vec<usize> = (0..r.targets.len()).collect();
    let served_attempts = |served: &super::super::answer::Served<'_>| {
        let mut head = actix_web::dev::ResponseHead::new(actix_web::http::StatusCode::OK);
        served.put(&mut head);
        super::super::answer::tests::served_lines(&head).remove("x-to11-attempts")
    };
    let mut failure = None;
    let (delivered, attempts) = match attempts
        .run(&fake, &mut prep, &order, Duration::from_secs(1))
        .await
    {
        Delivery::Answer {
            answered, served, ..
        } => (
            Ok(answered.status.as_u16()),
            Some(served.attempts.to_string()),
        ),
        Delivery::Failed(
            Failure::Answered {
                status,
                headers,
                body,
            },
            served,
            _,
        ) => {
            failure = Some((headers, body));
            (Ok(status), served_attempts(&served))
        }
        Delivery::Failed(Failure::Error(e), served, _) => (Err(e.code), served_attempts(&served)),
        Delivery::Error(e) => (Err(e.code), None),
    };
    Outcome {
        sent: fake.sent(),
        delivered,
        attempts,
        failure,
    }
}

async fn run(policy: serde_json::Value, script: Vec<Step>) -> Outcome {
    run_on(&project(policy), "r", Surface::Chat, None, script).await
}

#[actix_rt::test]
async fn the_fallback_matrix() {
    use Step::*;
    // (what, policy, script, models tried, delivered); x-to11-attempts is the number tried.
    type Case = (
        &'static str,
        serde_json::Value,
        Vec<Step>,
        &'static [&'static str],
        Result<u16, ErrorCode>,
    );
    let cases: Vec<Case> = vec![
        ("success at once", fast(), vec![], &["a"], Ok(200)),
        (
            "503 retried once, then the next target",
            fast(),
            vec![Status(503, &[], "{}"), Status(503, &[], "{}")],
            &["a", "a", "b"],
            Ok(200),
        ),
        (
            "401 is not retried: the next target",
            fast(),
            vec![Status(401, &[], "{}")],
            &["a", "b"],
            Ok(200),
        ),
        (
            "400 is the client's: delivered, no fallback",
            fast(),
            vec![Status(400, &[], r#"{"error":{}}"#)],
            &["a"],
            Ok(400),
        ),
        (
            "billing (429 insufficient_quota) skips retries",
            fast(),
            vec![Status(
                429,
                &[],
                r#"{"error":{"code":"insufficient_quota"}}"#,
            )],
            &["a", "b"],
            Ok(200),
        ),
        (
            "timeouts and refused connections are retried and fall through",
            fast(),
            vec![Timeout, Refused, Timeout],
            &["a", "a", "b", "b"],
            Ok(200),
        ),
        (
            "a credential that cannot be presented moves on at once",
            fast(),
            vec![NoToken],
            &["a", "b"],
            Ok(200),
        ),
        (
            "every target fails: the last failure is delivered",
            json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0, "max_retries": 0}),
            vec![
                Status(503, &[], "{}"),
                Status(502, &[], "{}"),
                Status(500, &[], "{}"),
            ],
            &["a", "b", "c"],
            Ok(500),
        ),
        (
            "every target times out: the gateway's timeout",
            json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0, "max_retries": 0}),
            vec![Timeout, Timeout, Timeout],
            &["a", "b", "c"],
            Err(ErrorCode::UpstreamTimeout),
        ),
        (
            "an outcome the policy neither retries nor falls back on is delivered",
            json!({"cooldown_failures": 0, "retry_on": [], "fallback_on": ["auth"]}),
            vec![Status(503, &[], "{}")],
            &["a"],
            Ok(503),
        ),
        (
            "retry-after above the cap is not waited for",
            json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0, "retry_after_cap_ms": 10}),
            vec![Status(429, &[("retry-after", "120")], "{}")],
            &["a", "b"],
            Ok(200),
        ),
        (
            "a redirect is the target's failure, never passed on",
            fast(),
            vec![Status(302, &[("location", "https://elsewhere.test/")], "")],
            &["a", "a"],
            Ok(200),
        ),
        (
            "retry-after within the cap is waited for, on the same target",
            fast(),
            vec![Status(429, &[("retry-after-ms", "5")], "{}")],
            &["a", "a"],
            Ok(200),
        ),
    ];
    for (what, policy, script, tried, delivered) in cases {
        let o = run(policy, script).await;
        assert_eq!(o.sent, tried, "{what}: targets tried");
        assert_eq!(o.delivered, delivered, "{what}: delivered");
        assert_eq!(
            o.attempts,
            Some(tried.len().to_string()),
            "{what}: x-to11-attempts"
        );
    }
}

#[actix_rt::test]
async fn passthrough_is_one_attempt_delivered_whatever_it_answers() {
    let p = project(fast());
    let o = run_on(
        &p,
        "openai/a",
        Surface::Chat,
        None,
        vec![Step::Status(503, &[], "{}")],
    )
    .await;
    assert_eq!((o.sent, o.delivered), (vec!["a".to_string()], Ok(503)));
}

#[actix_rt::test]
async fn a_past_deadline_tries_nothing() {
    let p = project(fast());
    let o = run_on(&p, "r", Surface::Chat, Some(Instant::now()), vec![]).await;
    assert!(o.sent.is_empty());
    assert_eq!(o.delivered, Err(ErrorCode::UpstreamTimeout));
}

#[actix_rt::test]
async fn a_retry_that_would_pass_the_deadline_moves_on() {
    let p = project(fast());
    let deadline = Instant::now() + Duration::from_millis(500);
    let o = run_on(
        &p,
        "r",
        Surface::Chat,
        Some(deadline),
        vec![Step::Status(429, &[("retry-after", "2")], "{}")],
    )
    .await;
    assert_eq!(o.sent, ["a", "b"]);
    assert_eq!(o.delivered, Ok(200));
}

#[actix_rt::test]
async fn targets_that_cannot_serve_the_api_are_passed_over_and_named() {
    let p = project(fast());
    let o = run_on(
        &p,
        "r",
        Surface::Google(GoogleMethod::GenerateContent),
        None,
        vec![],
    )
    .await;
    assert!(o.sent.is_empty());
    assert_eq!(o.delivered, Err(ErrorCode::UnsupportedByTarget));
}

#[actix_rt::test]
async fn failures_cool_a_target_down_and_success_warms_it() {
    let p = project(
        json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 1, "max_retries": 0}),
    );
    run_on(
        &p,
        "r",
        Surface::Chat,
        None,
        vec![Step::Status(503, &[], "{}")],
    )
    .await;
    let health = p.health.route("r");
    assert!(health[0].cooling(now_ms()), "a failed once: cooling");
    assert!(!health[1].cooling(now_ms()));
    assert!(
        health[1].latency_ms(now_ms()).is_some(),
        "b's latency measured"
    );
}

/// One passthrough attempt (`openai/a`) answered by `step`.
async fn passthrough(step: Step) -> Outcome {
    run_on(
        &project(fast()),
        "openai/a",
        Surface::Chat,
        None,
        vec![step],
    )
    .await
}

/// An upstream that quotes the credential it received, in its body and a header, in the forms a
/// provider might: the client gets neither.
#[actix_rt::test]
async fn an_error_answer_never_carries_the_stored_credential_back() {
    let o = passthrough(Step::Status(
        401,
        &[("www-authenticate", "Bearer realm=x, token=sk-stored"), ("x-request-id", "r1")],
        r#"{"error":{"message":"Incorrect API key provided: sk-stored. Basic c2stc3RvcmVkOg== / sk-store"}}"#,
    ))
    .await;
    assert_eq!(o.delivered, Ok(401));
    let (headers, body) = o.failure.expect("the failure is delivered");
    let body = String::from_utf8_lossy(&body);
    assert!(
        !body.contains("sk-stored") && !body.contains("c2stc3RvcmVk"),
        "{body}"
    );
    assert!(body.contains("[redacted]"), "{body}");
    assert!(
        !body.contains("sk-store\""),
        "a cut-short key is redacted too: {body}"
    );
    let auth = headers.get("www-authenticate").expect("kept, scrubbed");
    assert!(!auth.to_str().unwrap().contains("sk-stored"), "{auth:?}");
    assert_eq!(headers.get("x-request-id").unwrap(), "r1");
}

/// A compressed error body cannot be searched for the credential: it is replaced.
#[actix_rt::test]
async fn a_compressed_error_body_is_replaced() {
    let o = passthrough(Step::Status(
        500,
        &[("content-encoding", "gzip")],
        "\u{1f}\u{8b}...",
    ))
    .await;
    let (headers, body) = o.failure.expect("delivered");
    assert!(headers.get("content-encoding").is_none());
    assert!(String::from_utf8_lossy(&body).contains("'gzip'-encoded body"));
}

/// However many targets and retries a route allows, a request makes at most `max_attempts`
/// upstream calls.
#[actix_rt::test]
async fn attempts_per_request_are_bounded() {
    let p = project(
        json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0, "max_retries": 3}),
    );
    let failing = || {
        (0..20)
            .map(|_| Step::Status(503, &[], "{}"))
            .collect::<Vec<_>>()
    };
    let o = run_capped(
        &p,
        "r",
        Surface::Chat,
        None,
        failing(),
        5,
        Default::default(),
    )
    .await;
    assert_eq!(o.sent.len(), 5, "{:?}", o.sent);
    assert_eq!(o.delivered, Ok(503));
    let o = run_capped(
        &p,
        "r",
        Surface::Chat,
        None,
        failing(),
        1,
        Default::default(),
    )
    .await;
    assert_eq!(o.sent, vec!["a"]);
}

/// The retry budget bounds retries and fallbacks alike: with no room a failure is answered after
/// one attempt; with room for one extra attempt, the retry is made and the fallback refused.
#[actix_rt::test]
async fn the_retry_budget_bounds_retries_and_fallbacks() {
    use to11_shared::policy::budget::Window;
    let policy = json!({"backoff_ms": 1, "backoff_max_ms": 2, "cooldown_failures": 0});
    let failing = || {
        (0..20)
            .map(|_| Step::Status(503, &[], "{}"))
            .collect::<Vec<_>>()
    };
    // (percent, floor per second, attempts made)
    let rows: &[(u32, u32, &[&str])] = &[
        (0, 0, &["a"]),
        // One request at 100 %: one extra attempt, the retry of a; the fallback is refused.
        (100, 0, &["a", "a"]),
        // A floor of 1 a second: 10 over the window, more than this request wants.
        (0, 1, &["a", "a", "b", "b", "c", "c"]),
    ];
    for (percent, min, want) in rows {
        let window = Window::default();
        let gate = RetryGate::new(*percent, *min, 1, &window);
        let o = run_capped(
            &project(policy.clone()),
            "r",
            Surface::Chat,
            None,
            failing(),
            10,
            gate,
        )
        .await;
        assert_eq!(&o.sent, want, "{percent}% floor {min}/s");
        assert_eq!(o.delivered, Ok(503));
    }
}
