//! Per-project, per-target health: consecutive failures, cool-down and a moving average of time to
//! first byte. Lives beside the project's tables (so one tenant's failures never touch another's)
//! and is carried over when a new snapshot of the same project is applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// (provider slug, upstream model, credential id): what identifies a target across snapshots.
pub type TargetKey = (String, String, String);

#[derive(Default, Debug)]
pub struct TargetHealth {
    failures: AtomicU32,
    cooldown_until_ms: AtomicU64,
    /// Moving average of time to first byte, in µs; 0 = not measured yet.
    ttfb_us: AtomicU64,
}

impl TargetHealth {
    pub fn cooling(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms
    }

    pub fn ttfb_ms(&self) -> Option<f64> {
        match self.ttfb_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(us as f64 / 1000.0),
        }
    }

    pub fn success(&self, ttfb_us: u64) {
        self.failures.store(0, Ordering::Relaxed);
        self.cooldown_until_ms.store(0, Ordering::Relaxed);
        let sample = ttfb_us.max(1);
        let old = self.ttfb_us.load(Ordering::Relaxed);
        let next = if old == 0 {
            sample
        } else {
            (old * 4 + sample) / 5
        };
        self.ttfb_us.store(next, Ordering::Relaxed);
    }

    /// Records a failure; after `threshold` consecutive ones the target cools down.
    pub fn failure(&self, now_ms: u64, threshold: u32, cooldown_ms: u64, ttfb_us: Option<u64>) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if threshold > 0 && n >= threshold {
            self.cooldown_until_ms
                .store(now_ms + cooldown_ms, Ordering::Relaxed);
        }
        // A slow failure still tells least-latency the target is slow.
        if let Some(us) = ttfb_us {
            let old = self.ttfb_us.load(Ordering::Relaxed);
            if old != 0 {
                self.ttfb_us.store((old * 4 + us) / 5, Ordering::Relaxed);
            }
        }
    }
}

/// Health of every route target of one project.
#[derive(Default)]
pub struct HealthBook {
    by_key: HashMap<TargetKey, Arc<TargetHealth>>,
    /// Route name → health of each of its targets, in the route's order.
    routes: HashMap<String, Vec<Arc<TargetHealth>>>,
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
        h.failure(1_000, 2, 500, None);
        assert!(!h.cooling(1_000));
        h.failure(1_000, 2, 500, None);
        assert!(h.cooling(1_499) && !h.cooling(1_500));
        h.success(10_000);
        assert!(!h.cooling(1_000));
        assert_eq!(h.ttfb_ms(), Some(10.0));
        h.success(20_000);
        assert_eq!(h.ttfb_ms(), Some(12.0));
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
