use super::*;
use crate::model::Strategy;

/// The fallback matrix with the default policy: the contract, one row per outcome.
/// (outcome, first attempt decision, decision once retries are spent)
#[test]
fn default_matrix() {
    let p = RoutePolicy::default();
    let retry = |d: Decision| matches!(d, Decision::Retry { .. });
    let rows: &[(Outcome, &str, Decision)] = &[
        (Outcome::Status(200), "deliver", Decision::Deliver),
        (Outcome::Status(400), "deliver", Decision::Deliver),
        (Outcome::Status(401), "next", Decision::Next),
        (Outcome::Status(403), "next", Decision::Next),
        (Outcome::Status(404), "deliver", Decision::Deliver),
        (Outcome::Status(408), "next", Decision::Next),
        (Outcome::Status(409), "deliver", Decision::Deliver),
        (Outcome::Status(413), "deliver", Decision::Deliver),
        (Outcome::Status(422), "deliver", Decision::Deliver),
        (Outcome::Status(429), "retry", Decision::Next),
        (Outcome::Status(500), "retry", Decision::Next),
        (Outcome::Status(502), "retry", Decision::Next),
        (Outcome::Status(503), "retry", Decision::Next),
        (Outcome::Status(504), "retry", Decision::Next),
        (Outcome::Status(529), "retry", Decision::Next),
        (Outcome::Billing, "next", Decision::Next),
        (Outcome::Connect, "retry", Decision::Next),
        (Outcome::Timeout, "retry", Decision::Next),
    ];
    for (o, first, spent) in rows {
        let d = p.decide(*o, 0, None, 0.5);
        let got = match d {
            Decision::Deliver => "deliver",
            Decision::Next => "next",
            Decision::Retry { .. } => "retry",
        };
        assert_eq!(got, *first, "{o:?} first attempt");
        assert_eq!(
            p.decide(*o, p.max_retries, None, 0.5),
            *spent,
            "{o:?} after retries"
        );
        if retry(d) {
            assert!(p.decide(*o, 0, None, 0.0) == Decision::Retry { after_ms: 0 });
        }
    }
}

#[test]
fn retry_after_is_honoured_up_to_the_cap() {
    let p = RoutePolicy::default();
    assert_eq!(
        p.decide(Outcome::Status(429), 0, Some(2_000), 0.5),
        Decision::Retry { after_ms: 2_000 }
    );
    assert_eq!(
        p.decide(Outcome::Status(429), 0, Some(120_000), 0.5),
        Decision::Next,
        "over the cap: next target now"
    );
    assert_eq!(retry_after_ms(None, Some("2")), Some(2_000));
    assert_eq!(retry_after_ms(None, Some("0.5")), Some(500));
    assert_eq!(
        retry_after_ms(Some("150"), Some("9")),
        Some(150),
        "retry-after-ms wins"
    );
    assert_eq!(
        retry_after_ms(None, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
        None
    );
    assert_eq!(retry_after_ms(None, Some("-1")), None);
}

#[test]
fn backoff_grows_and_is_capped() {
    let p = RoutePolicy {
        max_retries: 8,
        ..RoutePolicy::default()
    };
    let d = |n| p.decide(Outcome::Status(503), n, None, 0.999_999);
    assert_eq!(d(0), Decision::Retry { after_ms: 199 });
    assert_eq!(d(1), Decision::Retry { after_ms: 399 });
    assert_eq!(
        d(5),
        Decision::Retry { after_ms: 3_999 },
        "capped at backoff_max_ms"
    );
}

#[test]
fn configurable_classes_and_validation() {
    let p = RoutePolicy {
        retry_on: vec![],
        fallback_on: vec!["404".into()],
        ..RoutePolicy::default()
    };
    assert_eq!(p.decide(Outcome::Status(404), 0, None, 0.5), Decision::Next);
    assert_eq!(
        p.decide(Outcome::Status(503), 0, None, 0.5),
        Decision::Deliver
    );
    let bad = RoutePolicy {
        retry_on: vec!["billing".into(), "7xx".into()],
        ..RoutePolicy::default()
    };
    assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
    assert!(RoutePolicy::default().problems().is_empty());
}

#[test]
fn loadbalance_weights_hold() {
    let weights = [70, 25, 5];
    let mut counts = [0usize; 3];
    let n = 100_000;
    for i in 0..n {
        let r = (i as f64 + 0.5) / n as f64;
        let o = order(Strategy::Loadbalance, &weights, &[None; 3], r, 0.0);
        counts[o[0]] += 1;
        let mut sorted = o.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2], "every target stays reachable");
    }
    for (c, w) in counts.iter().zip(weights) {
        let share = *c as f64 / n as f64 * 100.0;
        assert!((share - f64::from(w)).abs() < 0.5, "{share} vs {w}");
    }
}

#[test]
fn least_latency_prefers_fast_and_explores() {
    let lat = [Some(500.0), Some(20.0), None];
    assert_eq!(
        order(Strategy::LeastLatency, &[1, 1, 1], &lat, 0.9, 0.1),
        vec![2, 1, 0],
        "unknown first, then fastest"
    );
    let lat = [Some(500.0), Some(20.0)];
    assert_eq!(order(Strategy::LeastLatency, &[1, 1], &lat, 0.9, 0.1)[0], 1);
    assert_eq!(
        order(Strategy::LeastLatency, &[1, 1], &lat, 0.05, 0.1)[0],
        0,
        "explores the slow one sometimes"
    );
    assert_eq!(
        order(Strategy::Fallback, &[1, 1, 1], &[None; 3], 0.3, 0.0),
        vec![0, 1, 2]
    );
}

#[test]
fn candidates_follow_the_strategy_and_skip_cooling_targets() {
    let view = |weight, latency_ms, cooling| TargetView {
        weight,
        latency_ms,
        cooling,
    };
    type Case = (Option<Strategy>, Vec<TargetView>, f64, Vec<usize>);
    let cases: &[Case] = &[
        // No strategy: as given, cooling targets skipped.
        (
            None,
            vec![view(1, None, true), view(1, None, false)],
            0.5,
            vec![1],
        ),
        (None, vec![view(1, None, false)], 0.5, vec![0]),
        (
            Some(Strategy::Fallback),
            vec![
                view(1, None, false),
                view(1, None, true),
                view(1, None, false),
            ],
            0.5,
            vec![0, 2],
        ),
        // Weighted pick of the third target, then the rest in order.
        (
            Some(Strategy::Loadbalance),
            vec![
                view(10, None, false),
                view(10, None, false),
                view(80, None, false),
            ],
            0.9,
            vec![2, 0, 1],
        ),
        // The weighted pick is cooling: skipped.
        (
            Some(Strategy::Loadbalance),
            vec![
                view(10, None, false),
                view(10, None, false),
                view(80, None, true),
            ],
            0.9,
            vec![0, 1],
        ),
        (
            Some(Strategy::LeastLatency),
            vec![
                view(1, Some(300.0), false),
                view(1, Some(30.0), false),
                view(1, Some(3.0), true),
            ],
            0.9,
            vec![1, 0],
        ),
        // Every target cooling: the strategy's order.
        (
            Some(Strategy::LeastLatency),
            vec![view(1, Some(300.0), true), view(1, Some(30.0), true)],
            0.9,
            vec![1, 0],
        ),
    ];
    for (strategy, targets, r, want) in cases {
        assert_eq!(
            &candidates(*strategy, targets, *r),
            want,
            "{strategy:?} {targets:?}"
        );
    }
}
