use super::*;
use to11_io::counters::{CounterError, Grant, LocalCounters};
use to11_shared::limits::{Budget, Limits, Owner, Period, Reservation, Scope, Window, MICROS};

fn limiter(store: Arc<dyn CounterStore>) -> Arc<Limiter> {
    Limiter::new(store, WhenDown::Local, 100)
}

fn checks_for(limits: &Limits, need: Reservation) -> Vec<Check> {
    to11_shared::limits::checks(
        &[Scope {
            owner: Owner::Key,
            id: Uuid::from_u128(7),
            limits,
        }],
        "m",
        None,
        &need,
    )
}

fn rpm(n: u64) -> Limits {
    Limits {
        requests_per_minute: Some(n),
        ..Default::default()
    }
}

/// A minute's start plus 10 s, so a test never straddles two windows.
const NOW: i64 = 1_800_000_000_000 - 50_000;

#[actix_rt::test]
async fn workers_together_admit_exactly_the_limit_then_refuse_with_headers() {
    let l = limiter(Arc::new(LocalCounters::in_memory()));
    let workers = [l.worker(), l.worker(), l.worker()];
    let limits = rpm(100);
    let mut admitted = 0;
    let mut refused = None;
    for i in 0..300 {
        match workers[i % 3]
            .admit(
                Uuid::nil(),
                checks_for(&limits, Reservation::default()),
                NOW,
            )
            .await
        {
            Ok(t) => {
                admitted += 1;
                let r = t.headers.requests.expect("requests header");
                assert_eq!(r.limit, 100);
                assert_eq!(r.reset_ms, 1_800_000_000_000 - 50_000 + 50_000);
            }
            Err(r) => refused = Some(r),
        }
    }
    assert_eq!(
        admitted, 100,
        "never more than the limit, and no slice left unused"
    );
    let r = refused.expect("refusals");
    assert_eq!(r.error.code, ErrorCode::RateLimited);
    assert_eq!(r.error.retry_after, Some(50));
    assert_eq!(r.headers.requests.map(|h| h.remaining), Some(0));
    assert_eq!(l.stats.rate_limited.load(Ordering::Relaxed), 200);
    // The next minute starts afresh.
    assert!(workers[0]
        .admit(
            Uuid::nil(),
            checks_for(&limits, Reservation::default()),
            NOW + 60_000
        )
        .await
        .is_ok());
}

#[actix_rt::test]
async fn token_reservations_settle_to_what_was_used() {
    let l = limiter(Arc::new(LocalCounters::in_memory()));
    let w = l.worker();
    let limits = Limits {
        tokens_per_minute: Some(1_000),
        ..Default::default()
    };
    let need = Reservation {
        input_tokens: 100,
        output_tokens: 400,
        spend: None,
    };
    let a = w
        .admit(Uuid::nil(), checks_for(&limits, need), NOW)
        .await
        .ok();
    let b = w
        .admit(Uuid::nil(), checks_for(&limits, need), NOW)
        .await
        .ok();
    assert!(a.is_some() && b.is_some());
    let c = w.admit(Uuid::nil(), checks_for(&limits, need), NOW).await;
    assert!(c.is_err(), "1000 tokens reserved by two requests");
    let used = Usage {
        input: 90,
        output: 10,
        ..Default::default()
    };
    a.unwrap().settle(&used, None);
    // 400 tokens came back to this worker's slice: a request reserving 400 fits, one reserving
    // 500 does not (600 of the 1000 are used or reserved).
    assert!(w
        .admit(Uuid::nil(), checks_for(&limits, need), NOW)
        .await
        .is_err());
    let smaller = Reservation {
        input_tokens: 100,
        output_tokens: 300,
        spend: None,
    };
    assert!(w
        .admit(Uuid::nil(), checks_for(&limits, smaller), NOW)
        .await
        .is_ok());
}

#[actix_rt::test]
async fn concurrency_slots_come_back_on_every_end() {
    let l = limiter(Arc::new(LocalCounters::in_memory()));
    let (w1, w2) = (l.worker(), l.worker());
    let limits = Limits {
        concurrent: Some(2),
        ..Default::default()
    };
    let c = || checks_for(&limits, Reservation::default());
    let a = w1.admit(Uuid::nil(), c(), NOW).await.ok().expect("first");
    let b = w2.admit(Uuid::nil(), c(), NOW).await.ok().expect("second");
    let refused = w1.admit(Uuid::nil(), c(), NOW).await.err().expect("third");
    assert_eq!(refused.error.code, ErrorCode::ConcurrencyLimited);
    drop(a); // ended without an answer
    actix_rt::time::sleep(Duration::from_millis(20)).await; // the slot's release
    let again = w2
        .admit(Uuid::nil(), c(), NOW)
        .await
        .ok()
        .expect("a slot came back");
    b.settle(&Usage::default(), None); // ended with an answer
    again.settle(&Usage::default(), None);
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    for w in [&w1, &w2] {
        assert!(w.admit(Uuid::nil(), c(), NOW).await.is_ok());
    }
}

#[actix_rt::test]
async fn a_refused_request_gives_back_what_it_took_on_other_limits() {
    let l = limiter(Arc::new(LocalCounters::in_memory()));
    let w = l.worker();
    let limits = Limits {
        requests_per_minute: Some(10),
        tokens_per_minute: Some(150),
        ..Default::default()
    };
    let need = Reservation {
        input_tokens: 50,
        output_tokens: 50,
        spend: None,
    };
    let _one = w
        .admit(Uuid::nil(), checks_for(&limits, need), NOW)
        .await
        .ok();
    for _ in 0..5 {
        assert!(w
            .admit(Uuid::nil(), checks_for(&limits, need), NOW)
            .await
            .is_err());
    }
    let small = Reservation {
        input_tokens: 10,
        output_tokens: 10,
        spend: None,
    };
    // Only one request was counted: nine more fit.
    for _ in 0..2 {
        assert!(w
            .admit(Uuid::nil(), checks_for(&limits, small), NOW)
            .await
            .is_ok());
    }
}

/// A store that fails every call (the store is down).
struct Down;

impl CounterStore for Down {
    fn prefix(&self) -> &str {
        ""
    }
    fn grant<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: u64,
        _: u64,
        _: Option<u64>,
    ) -> futures_util::future::BoxFuture<'a, Result<Grant, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn acquire<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: u64,
        _: u64,
        _: u64,
        _: i64,
    ) -> futures_util::future::BoxFuture<'a, Result<Grant, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn release<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: u64,
    ) -> futures_util::future::BoxFuture<'a, Result<(), CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn set_held<'a>(
        &'a self,
        _: &'a str,
        _: &'a [(String, u64)],
    ) -> futures_util::future::BoxFuture<'a, Result<(), CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn add<'a>(
        &'a self,
        _: &'a [Add],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<i64>, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn heartbeat<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> futures_util::future::BoxFuture<'a, Result<u64, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn read<'a>(
        &'a self,
        _: &'a [String],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<i64>, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn held<'a>(
        &'a self,
        _: &'a [String],
        _: i64,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u64>, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn push_event<'a>(
        &'a self,
        _: String,
    ) -> futures_util::future::BoxFuture<'a, Result<(), CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn events(
        &self,
        _: usize,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<String>, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn claim_events<'a>(
        &'a self,
        _: &'a str,
        _: usize,
        _: Duration,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<(String, String)>, CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
    fn ack_events<'a>(
        &'a self,
        _: &'a [String],
    ) -> futures_util::future::BoxFuture<'a, Result<(), CounterError>> {
        Box::pin(async { Err(CounterError("down".into())) })
    }
}

#[actix_rt::test]
async fn with_the_store_down_a_worker_admits_its_share_or_refuses_when_told() {
    let l = limiter(Arc::new(Down));
    let (w1, _w2) = (l.worker(), l.worker());
    let limits = rpm(100);
    let mut admitted = 0;
    for _ in 0..200 {
        if w1
            .admit(
                Uuid::nil(),
                checks_for(&limits, Reservation::default()),
                NOW,
            )
            .await
            .is_ok()
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 50, "half the limit: two workers share it");
    assert_eq!(l.stats.admitted_locally.load(Ordering::Relaxed), 50);
    assert!(l.stats.store_failures.load(Ordering::Relaxed) >= 1);

    let strict = Limiter::new(Arc::new(Down), WhenDown::Refuse, 100);
    let r = strict
        .worker()
        .admit(
            Uuid::nil(),
            checks_for(&limits, Reservation::default()),
            NOW,
        )
        .await
        .err()
        .expect("refused");
    assert_eq!(r.error.code, ErrorCode::Overloaded);
}

#[actix_rt::test]
async fn spend_is_reported_in_batches_and_an_alert_is_recorded_once() {
    let store = Arc::new(LocalCounters::in_memory());
    let l = limiter(store.clone());
    let w = l.worker();
    let limits = Limits {
        budget: Some(Budget {
            amount: MICROS,
            period: Period::Day,
            alert_at_percent: Some(50),
        }),
        ..Default::default()
    };
    let need = Reservation {
        input_tokens: 1,
        output_tokens: 1,
        spend: Some(200_000),
    };
    let now = chrono::Utc::now().timestamp_millis();
    for _ in 0..4 {
        let t = w
            .admit(Uuid::nil(), checks_for(&limits, need), now)
            .await
            .ok()
            .expect("within budget");
        t.settle(&Usage::default(), Some(150_000));
    }
    actix_rt::time::sleep(TICK * 3).await;
    let key = checks_for(&limits, need)[0]
        .counter
        .key("", Window::Day.index(now));
    let used = store.read(&[format!("{key}:u")]).await.unwrap();
    assert_eq!(used, vec![600_000], "four requests of 0.15");
    let events = store.events(10).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("\"budget_alert\"") && events[0].contains("\"0.60\""));
    assert_eq!(l.stats.alerts.load(Ordering::Relaxed), 1);
    // Refunds made room: 0.2 reserved and 0.15 used, four times.
    let refused = loop {
        match w.admit(Uuid::nil(), checks_for(&limits, need), now).await {
            Ok(t) => t.settle(&Usage::default(), Some(200_000)),
            Err(r) => break r,
        }
    };
    assert_eq!(refused.error.code, ErrorCode::BudgetExceeded);
    assert!(
        refused.error.message.contains("1.00 per day"),
        "{}",
        refused.error.message
    );
}

#[actix_rt::test]
async fn planned_admission_counts_like_plain_admission_and_follows_new_versions() {
    let l = limiter(Arc::new(LocalCounters::in_memory()));
    let w = l.worker();
    let (tight, loose) = (rpm(10), rpm(20));
    let plan = |version| PlanKey {
        key: Uuid::from_u128(7),
        version,
        model: "m",
        user: None,
    };
    let mut admitted = 0;
    for _ in 0..30 {
        let t = w
            .admit_planned(
                Uuid::nil(),
                plan(1),
                || checks_for(&tight, Reservation::default()),
                &Reservation::default(),
                NOW,
            )
            .await;
        admitted += usize::from(t.is_ok());
    }
    assert_eq!(admitted, 10);
    // A new configuration version makes a new plan: the limit is now 20, on the same counter.
    let mut more = 0;
    for _ in 0..30 {
        let t = w
            .admit_planned(
                Uuid::nil(),
                plan(2),
                || checks_for(&loose, Reservation::default()),
                &Reservation::default(),
                NOW,
            )
            .await;
        more += usize::from(t.is_ok());
    }
    assert_eq!(more, 10, "ten more fit under the raised limit");
}

#[actix_rt::test]
async fn an_idle_budget_meter_is_forgotten_and_gives_its_slice_back() {
    let store = Arc::new(LocalCounters::in_memory());
    let l = limiter(store.clone());
    let w = l.worker();
    let limits = Limits {
        budget: Some(Budget {
            amount: MICROS,
            period: Period::Day,
            alert_at_percent: None,
        }),
        ..Default::default()
    };
    let need = Reservation {
        input_tokens: 1,
        output_tokens: 1,
        spend: Some(200_000),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let t = w
        .admit(Uuid::nil(), checks_for(&limits, need), now)
        .await
        .ok()
        .expect("admitted");
    t.settle(&Usage::default(), Some(150_000));
    let key = checks_for(&limits, need)[0]
        .counter
        .key("", Window::Day.index(now));
    assert_eq!(
        store.read(std::slice::from_ref(&key)).await.unwrap(),
        vec![200_000]
    );
    w.0.tick().await; // the use is reported
    w.0.forget_past(now + IDLE_MS + 61_000);
    assert!(
        w.0.meters.borrow().is_empty(),
        "the idle meter is forgotten"
    );
    w.0.tick().await; // and its unused 0.05 given back
    assert_eq!(
        store.read(std::slice::from_ref(&key)).await.unwrap(),
        vec![150_000]
    );
    assert_eq!(
        store.read(&[format!("{key}:u")]).await.unwrap(),
        vec![150_000]
    );
}
