//! Per-project, per-target health: consecutive failures, cool-down and a moving average of time to
//! first byte. Lives beside the project's tables (so one tenant's failures never touch another's)
//! and is carried over when a new snapshot of the same project is applied.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use to11_shared::FastMap;

/// (provider slug, upstream model, credential id): what identifies a target across snapshots.
pub type TargetKey = (String, String, String);

/// How fast a latency measurement loses weight with age: a target measured slow is tried again
/// once its decayed cost falls below the others', so recoveries are noticed.
const DECAY_TAU_MS: f64 = 2_000.0;

#[derive(Default, Debug)]
pub struct TargetHealth {
    failures: AtomicU32,
    cooldown_until_ms: AtomicU64,
    /// Peak-EWMA of time to first byte, in µs; 0 = not measured yet.
    ttfb_us: AtomicU64,
    /// When `ttfb_us` was last updated (ms since the epoch).
    sampled_ms: AtomicU64,
    /// Requests whose first attempt went to this target, and extra attempts sent to it, over
    /// the last seconds: its retry budget (`to11_shared::policy::budget`).
    pub retries: to11_shared::policy::budget::Window,
}

impl TargetHealth {
    pub fn cooling(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// The latency estimate at `now_ms`: the peak-EWMA, decayed by its age.
    pub fn latency_ms(&self, now_ms: u64) -> Option<f64> {
        self.decayed_us(now_ms).map(|us| us / 1000.0)
    }

    fn decayed_us(&self, now_ms: u64) -> Option<f64> {
        match self.ttfb_us.load(Ordering::Relaxed) {
            0 => None,
            us => {
                let age = now_ms.saturating_sub(self.sampled_ms.load(Ordering::Relaxed)) as f64;
                Some(us as f64 * (-age / DECAY_TAU_MS).exp())
            }
        }
    }

    /// Peak-EWMA: a slower sample is taken at once (react to a slowdown now); a faster one is
    /// blended in (one fast answer does not erase a slow history).
    fn sample(&self, us: u64, now_ms: u64) {
        let us = us.max(1) as f64;
        let next = match self.decayed_us(now_ms) {
            None => us,
            Some(old) if us >= old => us,
            Some(old) => (old * 4.0 + us) / 5.0,
        };
        self.ttfb_us.store(next.max(1.0) as u64, Ordering::Relaxed);
        self.sampled_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn success(&self, ttfb_us: u64, now_ms: u64) {
        self.failures.store(0, Ordering::Relaxed);
        self.cooldown_until_ms.store(0, Ordering::Relaxed);
        self.sample(ttfb_us, now_ms);
    }

    /// Records a failure; after `threshold` consecutive ones the target cools down. Whether it
    /// entered a cool-down now (it was not cooling before).
    pub fn failure(
        &self,
        now_ms: u64,
        threshold: u32,
        cooldown_ms: u64,
        ttfb_us: Option<u64>,
    ) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut entered = false;
        if threshold > 0 && n >= threshold {
            entered = !self.cooling(now_ms);
            self.cooldown_until_ms
                .store(now_ms + cooldown_ms, Ordering::Relaxed);
        }
        // A slow failure still tells least-latency the target is slow.
        if let (Some(us), Some(_)) = (ttfb_us, self.decayed_us(now_ms)) {
            self.sample(us, now_ms);
        }
        entered
    }
}

/// Health of every route target of one project.
#[derive(Default)]
pub struct HealthBook {
    by_key: FastMap<TargetKey, Arc<TargetHealth>>,
    /// Route name → health of each of its targets, in the route's order.
    routes: FastMap<String, Vec<Arc<TargetHealth>>>,
}

impl HealthBook {
    /// Builds the book for a project's routes, reusing the entries of `previous` (same project,
    /// older snapshot) for targets that still exist.
    pub fn build(
        routes: impl Iterator<Item = (String, Vec<TargetKey>)>,
        previous: Option<&HealthBook>,
    ) -> HealthBook {
        let mut book = HealthBook::default();
        for (name, keys) in routes {
            let entries = keys
                .into_iter()
                .map(|k| {
                    book.by_key
                        .entry(k.clone())
                        .or_insert_with(|| {
                            previous
                                .and_then(|p| p.by_key.get(&k).cloned())
                                .unwrap_or_default()
                        })
                        .clone()
                })
                .collect();
            book.routes.insert(name, entries);
        }
        book
    }

    pub fn route(&self, name: &str) -> &[Arc<TargetHealth>] {
        self.routes.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> TargetKey {
        (p.into(), "m".into(), "default".into())
    }

    #[test]
    fn cooldown_after_threshold_and_reset_on_success() {
        let h = TargetHealth::default();
        assert!(!h.failure(1_000, 2, 500, None), "below the threshold");
        assert!(!h.cooling(1_000));
        assert!(h.failure(1_000, 2, 500, None), "entered");
        assert!(h.cooling(1_499) && !h.cooling(1_500));
        assert!(
            !h.failure(1_200, 2, 500, None),
            "already cooling: extended, not entered"
        );
        assert!(h.cooling(1_699));
        h.success(10_000, 1_000);
        assert!(!h.cooling(1_000));
        assert_eq!(h.latency_ms(1_000), Some(10.0));
    }

    #[test]
    fn peak_ewma_reacts_to_slowdowns_at_once_and_decays_with_age() {
        let h = TargetHealth::default();
        assert_eq!(h.latency_ms(0), None);
        h.success(10_000, 0);
        h.success(100_000, 0);
        assert_eq!(
            h.latency_ms(0),
            Some(100.0),
            "a slower sample is taken at once"
        );
        h.success(10_000, 0);
        assert_eq!(h.latency_ms(0), Some(82.0), "a faster one is blended in");
        let later = h.latency_ms(2_000).expect("measured");
        assert!(
            (later - 82.0 / std::f64::consts::E).abs() < 0.1,
            "decays with age: {later}"
        );
        assert!(
            h.latency_ms(20_000).expect("measured") < 0.01,
            "a stale slow target looks cheap again"
        );
    }

    #[test]
    fn health_survives_a_new_snapshot_and_is_shared_by_routes() {
        let old = HealthBook::build(
            [
                ("r1".to_string(), vec![key("a"), key("b")]),
                ("r2".to_string(), vec![key("a")]),
            ]
            .into_iter(),
            None,
        );
        assert!(
            Arc::ptr_eq(&old.route("r1")[0], &old.route("r2")[0]),
            "same target, same health"
        );
        old.route("r1")[0].failure(0, 1, 1_000, None);
        let new = HealthBook::build(
            [("r3".to_string(), vec![key("b"), key("a")])].into_iter(),
            Some(&old),
        );
        assert!(new.route("r3")[1].cooling(10), "carried over");
        assert!(!new.route("r3")[0].cooling(10));
        assert!(new.route("nope").is_empty());
    }
}
