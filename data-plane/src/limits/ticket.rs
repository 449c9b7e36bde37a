//! What one request took from the limits, and its settlement when it ends.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use to11_shared::limits::{CounterId, Metric};
use to11_shared::usage::Usage;

use super::{Inner, Meter, RateHeaders};

/// What a request took, given back or settled when it ends (`settle`, or dropped: settled with
/// no usage).
pub struct Ticket {
    pub(super) worker: Rc<Inner>,
    pub(super) taken: Vec<Taken>,
    /// The values of the `x-ratelimit-*` headers.
    pub headers: RateHeaders,
}

pub(super) struct Taken {
    pub(super) meter: Rc<RefCell<Meter>>,
    pub(super) counter: Arc<CounterId>,
    pub(super) metric: Metric,
    pub(super) reserve: u64,
    pub(super) window: i64,
    /// From the store's slices (false: on the worker's own share while the store was down).
    pub(super) leased: bool,
}

impl Ticket {
    /// Whether the request met no limit (the limits it has do not apply to its model).
    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }

    /// Settles the request to what it used: `usage` (exact, or estimated), `cost` its price
    /// (`None`: unpriced, counted 0 towards budgets). A slice is refunded what a reservation
    /// exceeded; what a request used beyond its reservation is owed to the store.
    pub fn settle(mut self, usage: &Usage, cost: Option<u64>) {
        self.settle_with(Settled::Used(usage, cost));
    }

    /// Settles a request that failed without an answer: one request, nothing else used.
    pub fn nothing_used(mut self) {
        self.settle_with(Settled::Nothing);
    }

    /// The request's cost, when settling needs it (a budget was met): `usage` on `kind`'s
    /// `model`.
    pub fn cost(&self, kind: Option<&str>, model: Option<&str>, usage: &Usage) -> Option<u64> {
        if !self.taken.iter().any(|t| t.metric == Metric::Spend) {
            return None;
        }
        self.worker.cost(kind?, model?, usage)
    }

    fn settle_with(&mut self, settled: Settled<'_>) {
        let taken = std::mem::take(&mut self.taken);
        let (input, output, spend) = match settled {
            Settled::Used(u, cost) => (u.prompt(), u.output, cost.unwrap_or(0)),
            _ => (0, 0, 0),
        };
        for t in taken {
            if t.metric == Metric::Concurrent {
                self.worker.free_slot(&t.meter, &t.counter);
                continue;
            }
            let actual = match t.metric {
                _ if matches!(settled, Settled::Reserved) => t.reserve,
                Metric::Requests => 1,
                Metric::Tokens => input + output,
                Metric::InputTokens => input,
                Metric::OutputTokens => output,
                Metric::Spend => spend,
                Metric::Concurrent => 0,
            };
            let diff = actual as i64 - t.reserve as i64;
            let mut m = t.meter.borrow_mut();
            if m.window != t.window {
                // The window ended while the request ran: its usage counts in the new one's
                // report (the old window's is reported already).
                m.used += actual;
                continue;
            }
            if t.leased {
                // A refund goes back to the slice; use beyond the reservation comes out of what
                // is left of the slice, and only the rest is owed to the store.
                let from_slice = diff.min(m.lease.max(0));
                m.lease -= from_slice;
                m.debt += (diff - from_slice).max(0) as u64;
            } else {
                m.local = (m.local as i64 + diff).max(0) as u64;
                m.unsynced = (m.unsynced as i64 + diff).max(0) as u64;
            }
            m.used += actual;
        }
    }

    /// Gives back every reservation whole (a refused request used nothing; not even a request).
    pub(super) fn give_back(&mut self) {
        let taken = std::mem::take(&mut self.taken);
        for t in taken {
            if t.metric == Metric::Concurrent {
                self.worker.free_slot(&t.meter, &t.counter);
                continue;
            }
            let mut m = t.meter.borrow_mut();
            if m.window != t.window {
                continue;
            }
            if t.leased {
                m.lease += t.reserve as i64;
                m.since = m.since.saturating_sub(t.reserve);
            } else {
                m.local = m.local.saturating_sub(t.reserve);
                m.unsynced = m.unsynced.saturating_sub(t.reserve);
            }
        }
    }
}

/// How a request ended, for its settlement.
#[derive(Clone, Copy)]
enum Settled<'a> {
    /// With an answer: what it used and cost.
    Used(&'a Usage, Option<u64>),
    /// Failed without an answer: one request.
    Nothing,
    /// Dropped before it was settled (the client left while the upstream was answering): what
    /// was reserved, since the provider may bill it.
    Reserved,
}

impl Drop for Ticket {
    /// A request dropped without settling (its client left before its answer) counts as what it
    /// reserved; its concurrency slot is free again.
    fn drop(&mut self) {
        if !self.taken.is_empty() {
            self.settle_with(Settled::Reserved);
        }
    }
}
