//! The retry budget (the kind Finagle and Envoy use): extra upstream attempts — retries of the
//! same target and fallbacks to another — are limited to a share of recent requests, so an
//! upstream outage costs about `1 + percent/100` attempts per request instead of the route's
//! `max_retries × targets`. A small floor per second keeps retries possible at low traffic.
//!
//! `Window` counts requests and retries over the last `WINDOW_SECONDS` in one-second slots of
//! atomics: a request costs one relaxed `fetch_add` (a compare-and-swap when a second begins), no
//! lock. `allows` is the decision, a plain function of the counts. The clock is passed in.

use std::sync::atomic::{AtomicU64, Ordering};

/// How far back "recent" reaches, in seconds (one slot per second).
pub const WINDOW_SECONDS: u64 = 10;
const SLOTS: usize = WINDOW_SECONDS as usize;

/// The budget's two settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Extra attempts allowed, as a percentage of the requests in the window.
    pub percent: u32,
    /// Extra attempts allowed per second whatever the traffic (in thousandths, so a replica's
    /// floor can be split between its workers).
    pub min_per_second_milli: u64,
}

impl Budget {
    /// Whether one more extra attempt fits, given the requests and extra attempts already counted
    /// in the window: the allowance is the larger of `percent` of the requests and the floor over
    /// the window (not their sum, so a busy replica's ratio is exactly `percent`).
    pub fn allows(&self, requests: u64, retries: u64) -> bool {
        let by_share = requests.saturating_mul(u64::from(self.percent)) / 100;
        let floor = self.min_per_second_milli.saturating_mul(WINDOW_SECONDS) / 1000;
        retries < by_share.max(floor)
    }

    /// The budget split between `parts` independent counters (a replica's workers): the share is
    /// the same, the floor is divided.
    pub fn split(&self, parts: usize) -> Budget {
        Budget {
            percent: self.percent,
            min_per_second_milli: self.min_per_second_milli / parts.max(1) as u64,
        }
    }
}

/// Requests and extra attempts over the last `WINDOW_SECONDS`, lock-free.
///
/// Each slot packs the second it counts (high 32 bits) with its count (low 32 bits): a slot whose
/// second is not the current one is restarted by a compare-and-swap. A count beyond 2³² a second
/// is not a concern.
#[derive(Debug, Default)]
pub struct Window {
    requests: [AtomicU64; SLOTS],
    retries: [AtomicU64; SLOTS],
}

const LOW: u64 = 0xffff_ffff;

fn bump(slots: &[AtomicU64; SLOTS], now_s: u64) {
    let slot = &slots[(now_s % WINDOW_SECONDS) as usize];
    let stamp = (now_s & LOW) << 32;
    let mut seen = slot.load(Ordering::Relaxed);
    loop {
        if seen & !LOW == stamp {
            slot.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match slot.compare_exchange_weak(seen, stamp | 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => seen = now,
        }
    }
}

fn sum(slots: &[AtomicU64; SLOTS], now_s: u64) -> u64 {
    slots
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|v| {
            let second = v >> 32;
            let now = now_s & LOW;
            // Within the window: this second or one of the `SLOTS - 1` before it.
            second <= now && now - second < WINDOW_SECONDS
        })
        .map(|v| v & LOW)
        .sum()
}

impl Window {
    /// Counts a request (its first attempt) at `now_s` (seconds on any monotonic-enough clock).
    pub fn request(&self, now_s: u64) {
        bump(&self.requests, now_s);
    }

    /// Requests and extra attempts counted in the window ending at `now_s`.
    pub fn counts(&self, now_s: u64) -> (u64, u64) {
        (sum(&self.requests, now_s), sum(&self.retries, now_s))
    }

    /// Whether `budget` allows one more extra attempt now.
    pub fn allows(&self, budget: &Budget, now_s: u64) -> bool {
        let (requests, retries) = self.counts(now_s);
        budget.allows(requests, retries)
    }

    /// Counts an extra attempt made at `now_s`.
    pub fn retry(&self, now_s: u64) {
        bump(&self.retries, now_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(percent: u32, min_per_second: u64) -> Budget {
        Budget {
            percent,
            min_per_second_milli: min_per_second * 1000,
        }
    }

    #[test]
    fn the_allowance_is_the_share_or_the_floor_whichever_is_larger() {
        // (percent, floor per second, requests, retries so far, allowed)
        let rows: &[(u32, u64, u64, u64, bool)] = &[
            (20, 0, 100, 19, true),
            (20, 0, 100, 20, false),
            (20, 0, 4, 0, false),
            (20, 0, 5, 0, true),
            // The floor: 1 a second is 10 over the window, whatever the traffic.
            (20, 1, 0, 9, true),
            (20, 1, 0, 10, false),
            // Not the sum: 20 % of 1000 is 200, the floor (10) adds nothing.
            (20, 1, 1000, 199, true),
            (20, 1, 1000, 200, false),
            (0, 0, 1_000_000, 0, false),
            (100, 0, 7, 6, true),
            (100, 0, 7, 7, false),
        ];
        for &(percent, min, requests, retries, want) in rows {
            assert_eq!(
                budget(percent, min).allows(requests, retries),
                want,
                "{percent}% min {min}/s, {requests} requests, {retries} retries"
            );
        }
        assert_eq!(budget(20, 3).split(2).min_per_second_milli, 1500);
        assert_eq!(budget(20, 3).split(0), budget(20, 3));
    }

    #[test]
    fn counts_cover_the_last_ten_seconds_only() {
        let w = Window::default();
        for s in 100..120 {
            w.request(s);
            w.request(s);
            w.retry(s);
        }
        assert_eq!(w.counts(119), (20, 10));
        assert_eq!(w.counts(125), (8, 4), "seconds 116-119");
        assert_eq!(w.counts(200), (0, 0), "all stale");
        assert_eq!(w.counts(50), (0, 0), "a clock gone backwards sees nothing");
        // A slot is restarted when its second comes round again.
        w.request(130);
        assert_eq!(w.counts(130), (1, 0));
    }

    #[test]
    fn concurrent_counting_loses_nothing() {
        let w = std::sync::Arc::new(Window::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        w.request(7);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(w.counts(7), (40_000, 0));
    }

    /// The hot-path cost: `cargo test --release -p to11-shared --lib budget -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand in release"]
    fn cost_per_request() {
        let w = Window::default();
        let b = budget(20, 3);
        let n = 10_000_000u64;
        let t = std::time::Instant::now();
        for i in 0..n {
            w.request(1_000 + i / 1_000_000);
        }
        let per_request = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        let mut allowed = 0u64;
        for i in 0..n / 10 {
            allowed += u64::from(w.allows(&b, 1_009 + i / 1_000_000));
        }
        let per_check = t.elapsed().as_nanos() as f64 / (n / 10) as f64;
        eprintln!(
            "Window::request {per_request:.1} ns; Window::allows {per_check:.1} ns ({allowed})"
        );
    }

    proptest! {
        /// A total outage under steady traffic (`n` requests a second, each wanting up to
        /// `wants` extra attempts): once a window's worth of traffic has gone by, the extra
        /// attempts over any two windows stay within twice the allowance, i.e. at most
        /// `max(percent/100, min/n)` per request — 1.2 attempts per request at 20 % when the
        /// traffic is above the floor.
        #[test]
        fn an_outage_costs_at_most_the_budget(
            percent in 0u32..=100,
            min in 0u64..5,
            n in 1u64..60,
            wants in 1u64..4,
        ) {
            let b = budget(percent, min);
            let w = Window::default();
            let mut granted = Vec::new();
            for i in 0..3 * WINDOW_SECONDS {
                let now = 1_000 + i;
                let mut g = 0;
                for _ in 0..n {
                    w.request(now);
                    for _ in 0..wants {
                        if !w.allows(&b, now) {
                            break;
                        }
                        w.retry(now);
                        g += 1;
                    }
                }
                granted.push(g);
            }
            let allowance = (WINDOW_SECONDS * n * u64::from(percent) / 100).max(min * WINDOW_SECONDS);
            let steady: u64 = granted[WINDOW_SECONDS as usize..].iter().sum();
            prop_assert!(steady <= 2 * allowance, "{steady} extra attempts for {} requests", 2 * WINDOW_SECONDS * n);
            // And the budget is not left unused: it grants what it allows.
            prop_assert!(steady + 2 * wants >= (2 * allowance).min(2 * WINDOW_SECONDS * n * wants) / 2);
        }
    }
}
