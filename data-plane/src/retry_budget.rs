//! The retry budget on the request path: the pure decision and lock-free window are
//! `to11_shared::policy::budget`; this holds which windows a request draws on. An extra attempt
//! (a retry or a fallback) needs room both in its worker's window (the replica's budget, split
//! between its workers so no counter is shared) and in the window of the target it goes to
//! (shared by the workers: one atomic add per request). Refusals are counted in `/metrics`.

use to11_shared::policy::budget::{Budget, Window};

use crate::health_book::{now_ms, TargetHealth};

/// What a request's attempts draw on. `window: None` turns the budget off (unit tests of the
/// attempt loop).
#[derive(Clone, Copy, Default)]
pub struct RetryGate<'a> {
    /// The budget of one route target (its window is shared by every worker).
    pub target: Option<Budget>,
    /// The worker's share of the replica's budget, over `window`.
    pub worker: Option<Budget>,
    pub window: Option<&'a Window>,
}

/// Why an extra attempt was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The replica (this worker's share) spent its budget.
    Replica,
    /// The target the attempt would go to spent its budget.
    Target,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Replica => "replica",
            Refused::Target => "target",
        }
    }
}

/// Seconds for the windows (coarse: slots are one second).
fn now_s() -> u64 {
    now_ms() / 1000
}

impl<'a> RetryGate<'a> {
    /// The gate of a worker with `settings`' budget, `workers` sharing the replica's floor.
    pub fn new(percent: u32, min_per_second: u32, workers: usize, window: &'a Window) -> Self {
        let budget = Budget {
            percent,
            min_per_second_milli: u64::from(min_per_second) * 1000,
        };
        RetryGate {
            target: Some(budget),
            worker: Some(budget.split(workers)),
            window: Some(window),
        }
    }

    /// Counts a request: on its worker, and on the target its first attempt goes to.
    pub fn request(&self, first: Option<&TargetHealth>) {
        let Some(w) = self.window else { return };
        let now = now_s();
        w.request(now);
        if let Some(h) = first {
            h.retries.request(now);
        }
    }

    /// Takes room for one extra attempt to `target` (or refuses it, taking nothing).
    pub fn spend(&self, target: Option<&TargetHealth>) -> Result<(), Refused> {
        let (Some(w), Some(worker)) = (self.window, self.worker.as_ref()) else {
            return Ok(());
        };
        let now = now_s();
        if !w.allows(worker, now) {
            return Err(Refused::Replica);
        }
        if let (Some(h), Some(b)) = (target, self.target.as_ref()) {
            if !h.retries.allows(b, now) {
                return Err(Refused::Target);
            }
            h.retries.retry(now);
        }
        w.retry(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_attempt_needs_room_on_the_worker_and_on_its_target() {
        let window = Window::default();
        let gate = RetryGate::new(50, 0, 1, &window);
        let (a, b) = (TargetHealth::default(), TargetHealth::default());
        for _ in 0..4 {
            gate.request(Some(&a));
        }
        // Worker: 50 % of 4 = 2. Target b had no request of its own: no room there.
        assert_eq!(gate.spend(Some(&b)), Err(Refused::Target));
        assert_eq!(gate.spend(Some(&a)), Ok(()));
        assert_eq!(gate.spend(None), Ok(()));
        assert_eq!(gate.spend(Some(&a)), Err(Refused::Replica));
        // Off: everything passes.
        let off = RetryGate::default();
        off.request(Some(&a));
        assert_eq!(off.spend(Some(&b)), Ok(()));
    }
}
