//! Usage limits and budgets, held across replicas without a store round trip per request.
//!
//! Each worker leases slices of every limit it meets from the shared `CounterStore` (Redis, or
//! the in-process table in embedded mode) and admits requests from its slices: a request waits
//! on the store only when a slice is used up (and a slice is fetched again in the background
//! when a quarter of it is left). The store grants atomically and never more than the limit
//! leaves, so while it answers, what every replica admits together never passes a request or
//! concurrency limit; token and spend limits admit by reservation (estimated input, allowed
//! output, their cost) and settle to the exact usage after the answer, so they can pass only by
//! what in-flight requests use beyond what they reserved. Near a limit, grants shrink to a
//! quarter of what is left, so little of a limit sits unused in other replicas' slices.
//!
//! When the store does not answer (within its timeout), a worker admits on its own share of
//! each limit (the limit divided by the workers last seen alive) and reports what it admitted
//! when the store is back; or, when the operator chose so, refuses limited requests.
//! Settled usage goes to the store in batches (`tick`, every `TICK`), where budget alerts are
//! found (the batch whose addition crosses a threshold records the event, once).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use to11_io::counters::{Add, CounterStore};
use to11_shared::limits::{Check, CounterId, Metric};
use to11_shared::usage::Usage;
use to11_shared::ErrorCode;
use uuid::Uuid;

use crate::error::GatewayError;

/// How often a worker reports settled usage and gives back idle concurrency slots.
pub const TICK: Duration = Duration::from_millis(250);
/// Settled amounts a worker keeps while the store is down; beyond, the oldest are dropped and
/// counted.
const MAX_PENDING: usize = 100_000;
/// A meter of a longer window (a budget, concurrency) unused this long is forgotten, its unused
/// slice given back.
const IDLE_MS: i64 = 10 * 60_000;
/// How long a worker counts on its own after the store failed, before asking it again.
const DOWN_FOR_MS: i64 = 1_000;

/// What a worker does while the store cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenDown {
    /// Admit on this worker's share of each limit (the default).
    Local,
    /// Refuse requests that meet a limit (503), admit the others.
    Refuse,
}

/// Counters of the limiter, read by `/metrics`.
#[derive(Default)]
pub struct LimitStats {
    pub rate_limited: AtomicU64,
    pub budget_exceeded: AtomicU64,
    pub concurrency_limited: AtomicU64,
    /// Store calls that failed or timed out.
    pub store_failures: AtomicU64,
    /// Requests admitted on a worker's own share while the store was down.
    pub admitted_locally: AtomicU64,
    /// Settled amounts dropped because the store was down too long.
    pub dropped: AtomicU64,
    /// Budget alerts recorded.
    pub alerts: AtomicU64,
}

/// The replica's limiter, shared by its workers.
pub struct Limiter {
    store: Arc<dyn CounterStore>,
    prefix: String,
    when_down: WhenDown,
    /// Output tokens reserved for a request that sets no maximum.
    pub default_output_tokens: u64,
    replica: Uuid,
    workers: AtomicUsize,
    pub stats: Arc<LimitStats>,
}

impl Limiter {
    pub fn new(
        store: Arc<dyn CounterStore>,
        when_down: WhenDown,
        default_output_tokens: u64,
    ) -> Arc<Limiter> {
        Arc::new(Limiter {
            prefix: store.prefix().to_string(),
            store,
            when_down,
            default_output_tokens,
            replica: Uuid::new_v4(),
            workers: AtomicUsize::new(0),
            stats: Arc::default(),
        })
    }

    /// A worker's side of the limiter (one per worker thread).
    pub fn worker(self: &Arc<Self>) -> WorkerLimits {
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        WorkerLimits(Rc::new(Inner {
            shared: self.clone(),
            holder: format!("{}/{n}", self.replica),
            meters: RefCell::default(),
            pending: RefCell::default(),
            live_holders: Cell::new(0),
            down_until: Cell::new(0),
            ticking: Cell::new(false),
            ticks: Cell::new(0),
            forgot: Cell::new(0),
            prices: RefCell::default(),
            plans: RefCell::default(),
        }))
    }
}

/// One worker's slices of the limits it met.
#[derive(Clone)]
pub struct WorkerLimits(Rc<Inner>);

type Meters = HashMap<CounterId, Rc<RefCell<Meter>>, foldhash::fast::RandomState>;

struct Inner {
    shared: Arc<Limiter>,
    /// The repository's price of each (kind, model) this worker priced, by a hash of both (a
    /// scan of the price table costs more than the rest of the limits together).
    prices: RefCell<HashMap<u64, PriceMemo, foldhash::fast::FixedState>>,
    /// Requests' checks and meters, by a hash of their `PlanKey`; emptied whenever a meter is
    /// forgotten (a plan never holds a meter the tick no longer reports).
    plans: RefCell<HashMap<u64, Rc<Plan>, foldhash::fast::FixedState>>,
    /// This worker's name among the holders of concurrency slots.
    holder: String,
    /// One meter per counter met, found once per request and check; what a request settles goes
    /// into its meter, and the tick reports it (so no store key is formatted per request).
    meters: RefCell<Meters>,
    /// Settled amounts of past windows, and batches the store did not take, to report again.
    pending: RefCell<Vec<Pending>>,
    /// Workers (of every replica) alive at the last heartbeat; 0 before the first.
    live_holders: Cell<u64>,
    /// Until then (ms since the epoch) the store counts as down.
    down_until: Cell<i64>,
    ticking: Cell<bool>,
    ticks: Cell<u64>,
    /// The minute of the last `forget_past`.
    forgot: Cell<i64>,
}

/// What a request's checks depend on besides its size: its key, the configuration version of its
/// project (limits change only with it), the model it names and its end user.
pub struct PlanKey<'a> {
    pub key: Uuid,
    pub version: u64,
    pub model: &'a str,
    pub user: Option<&'a str>,
}

/// A request's checks (reserving nothing yet) and the meters they count on.
struct Plan {
    key: Uuid,
    version: u64,
    model: Box<str>,
    user: Option<Box<str>>,
    items: Vec<(Check, Rc<RefCell<Meter>>)>,
}

impl Plan {
    fn is(&self, k: &PlanKey<'_>) -> bool {
        self.key == k.key
            && self.version == k.version
            && &*self.model == k.model
            && self.user.as_deref() == k.user
    }
}

struct PriceMemo {
    kind: Box<str>,
    model: Box<str>,
    row: Option<&'static to11_shared::usage::price::PriceRow>,
}

/// This worker's view of one counter.
#[derive(Default)]
struct Meter {
    /// The window the slice belongs to.
    window: i64,
    /// The limit, as last met (for the concurrency share and the alerts).
    limit: u64,
    /// Granted to this worker and not yet used (negative: used beyond, settled later).
    lease: i64,
    last_grant: u64,
    last_grant_at: i64,
    /// The store's counter after the last grant, and what this worker used since.
    seen: u64,
    since: u64,
    refilling: bool,
    /// Admitted on this worker's own share while the store was down, this window.
    local: u64,
    /// Of that, what the store has not been told yet.
    unsynced: u64,
    /// Settled and not yet reported: what was used (the counter's `:u`), and what was used
    /// beyond reservations (added to the granted counter).
    used: u64,
    debt: u64,
    /// A budget's alert, when the check has one.
    alert: Option<Alert>,
    /// Concurrency: slots held from the store, and in use; when a slot was last taken.
    held: u64,
    in_use: u64,
    last_taken_ms: i64,
    /// When a request last counted on this meter.
    last_used_ms: i64,
}

impl Meter {
    /// Starts window `window`; what is still to report of the last one goes to `pending`.
    fn roll(&mut self, id: &CounterId, window: i64, prefix: &str, pending: &mut Vec<Pending>) {
        // Forward only: a request whose clock reading is older than the meter's window counts in
        // the meter's (never in a window that has ended).
        if window <= self.window || id.metric == Metric::Concurrent {
            return;
        }
        self.report(id, prefix, pending);
        *self = Meter {
            window,
            limit: self.limit,
            alert: self.alert.take(),
            ..Default::default()
        };
    }

    /// Moves what is to report into `out`, as store additions.
    fn report(&mut self, id: &CounterId, prefix: &str, out: &mut Vec<Pending>) {
        if self.used == 0 && self.debt == 0 && self.unsynced == 0 {
            return;
        }
        let key = id.key(prefix, self.window);
        let ttl = id.ttl_secs();
        let granted = self.debt + std::mem::take(&mut self.unsynced);
        if granted > 0 {
            out.push(Pending {
                add: Add {
                    key: key.clone(),
                    delta: granted as i64,
                    ttl_secs: ttl,
                },
                alert: None,
            });
        }
        if self.used > 0 {
            out.push(Pending {
                add: Add {
                    key: format!("{key}:u"),
                    delta: self.used as i64,
                    ttl_secs: ttl,
                },
                alert: self.alert.clone(),
            });
        }
        self.used = 0;
        self.debt = 0;
    }
}

struct Pending {
    add: Add,
    /// For a budget's used counter: what to report when this addition crosses a threshold.
    alert: Option<Alert>,
}

#[derive(Clone)]
struct Alert {
    project: Uuid,
    counter: CounterId,
    limit: u64,
    at: u64,
}

impl WorkerLimits {
    /// The cost of `usage` on `kind`'s `model` at the repository's prices; `None` when unpriced.
    pub fn cost(&self, kind: &str, model: &str, usage: &Usage) -> Option<u64> {
        self.0.cost(kind, model, usage)
    }

    /// Output tokens a request that sets no maximum reserves.
    pub fn default_output_tokens(&self) -> u64 {
        self.0.shared.default_output_tokens
    }

    /// Admits a request meeting `checks` (from `to11_shared::limits::checks`), or refuses it
    /// with the first limit it would pass. Waits on the store only for a slice that ran out.
    #[cfg(test)]
    pub async fn admit(
        &self,
        project: Uuid,
        checks: Vec<Check>,
        now_ms: i64,
    ) -> Result<Ticket, Refused> {
        let items = checks.into_iter().map(|c| (c, None)).collect();
        self.admit_with(project, items, now_ms).await
    }

    /// `admit` for a request of `plan`'s key, model and end user: the checks and the meters they
    /// count on are found once per (key, configuration version, model, user) and kept by the
    /// worker (`make` gives the checks the first time); each request only sets what it reserves.
    pub async fn admit_planned(
        &self,
        project: Uuid,
        plan: PlanKey<'_>,
        make: impl FnOnce() -> Vec<Check>,
        need: &to11_shared::limits::Reservation,
        now_ms: i64,
    ) -> Result<Ticket, Refused> {
        let plan = self.0.plan(project, plan, make, now_ms);
        let items = plan
            .items
            .iter()
            .map(|(c, meter)| {
                let check = Check {
                    counter: c.counter.clone(),
                    limit: c.limit,
                    reserve: need.of(c.counter.metric),
                    alert_at: c.alert_at,
                };
                (check, Some(meter.clone()))
            })
            .collect();
        self.admit_with(project, items, now_ms).await
    }

    async fn admit_with(
        &self,
        project: Uuid,
        items: Vec<(Check, Option<Rc<RefCell<Meter>>>)>,
        now_ms: i64,
    ) -> Result<Ticket, Refused> {
        let inner = &self.0;
        inner.start_ticking();
        let mut ticket = Ticket {
            worker: inner.clone(),
            taken: Vec::with_capacity(items.len()),
            headers: RateHeaders::default(),
        };
        for (check, meter) in items {
            let asked = check.counter.window.index(now_ms);
            let meter = match meter {
                Some(m) => {
                    inner.ready(&m, &check, project, asked);
                    m
                }
                None => inner.meter(&check, project, asked),
            };
            let window = {
                let mut m = meter.borrow_mut();
                m.last_used_ms = now_ms;
                asked.max(m.window)
            };
            match inner
                .take(&check, &meter, window, now_ms, &mut ticket.headers)
                .await
            {
                Ok(leased) => ticket.taken.push(Taken {
                    meter,
                    counter: check.counter.clone(),
                    metric: check.counter.metric,
                    reserve: check.reserve,
                    window,
                    leased,
                }),
                Err(error) => {
                    ticket.headers.note(&check, check.limit, window);
                    let stats = &inner.shared.stats;
                    match error.code {
                        ErrorCode::BudgetExceeded => &stats.budget_exceeded,
                        ErrorCode::ConcurrencyLimited => &stats.concurrency_limited,
                        _ => &stats.rate_limited,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                    let headers = ticket.headers.clone();
                    // The checks already taken are given back whole.
                    ticket.give_back();
                    return Err(Refused { error, headers });
                }
            }
        }
        Ok(ticket)
    }
}

impl Inner {
    fn cost(&self, kind: &str, model: &str, usage: &Usage) -> Option<u64> {
        use std::hash::BuildHasher;
        let hash = foldhash::fast::FixedState::default().hash_one((kind, model));
        let mut prices = self.prices.borrow_mut();
        let found = match prices.get(&hash) {
            Some(m) if &*m.kind == kind && &*m.model == model => m.row,
            _ => {
                if prices.len() >= 10_000 {
                    prices.clear();
                }
                let row = to11_shared::usage::price::PriceTable::builtin_ref().find(kind, model);
                prices.insert(
                    hash,
                    PriceMemo {
                        kind: kind.into(),
                        model: model.into(),
                        row,
                    },
                );
                row
            }
        };
        found.map(|row| to11_shared::usage::price::cost(usage, &row.price))
    }

    fn start_ticking(self: &Rc<Self>) {
        if self.ticking.replace(true) {
            return;
        }
        let weak: Weak<Inner> = Rc::downgrade(self);
        actix_rt::spawn(async move {
            loop {
                actix_rt::time::sleep(TICK).await;
                let Some(inner) = weak.upgrade() else { break };
                inner.tick().await;
            }
        });
    }

    /// The checks of `key` (made by `make` the first time), each with its meter.
    fn plan(
        &self,
        project: Uuid,
        key: PlanKey<'_>,
        make: impl FnOnce() -> Vec<Check>,
        now_ms: i64,
    ) -> Rc<Plan> {
        use std::hash::BuildHasher;
        let hash = foldhash::fast::FixedState::default().hash_one((
            key.key,
            key.version,
            key.model,
            key.user,
        ));
        if let Some(p) = self.plans.borrow().get(&hash).filter(|p| p.is(&key)) {
            return p.clone();
        }
        let items = make()
            .into_iter()
            .map(|c| {
                let meter = self.meter(&c, project, c.counter.window.index(now_ms));
                (c, meter)
            })
            .collect();
        let plan = Rc::new(Plan {
            key: key.key,
            version: key.version,
            model: key.model.into(),
            user: key.user.map(Into::into),
            items,
        });
        let mut plans = self.plans.borrow_mut();
        if plans.len() >= 10_000 {
            plans.clear();
        }
        plans.insert(hash, plan.clone());
        plan
    }

    /// The meter of `check`'s counter, in `window` (one lookup; made on first use).
    fn meter(&self, check: &Check, project: Uuid, window: i64) -> Rc<RefCell<Meter>> {
        let found = self.meters.borrow().get(&*check.counter).cloned();
        let meter = found.unwrap_or_else(|| {
            let m = Rc::new(RefCell::new(Meter {
                window,
                ..Default::default()
            }));
            self.meters
                .borrow_mut()
                .insert((*check.counter).clone(), m.clone());
            m
        });
        self.ready(&meter, check, project, window);
        meter
    }

    /// Brings `meter` to `window` and to what `check` says of its limit.
    fn ready(&self, meter: &Rc<RefCell<Meter>>, check: &Check, project: Uuid, window: i64) {
        {
            let mut m = meter.borrow_mut();
            m.roll(
                &check.counter,
                window,
                &self.shared.prefix,
                &mut self.pending.borrow_mut(),
            );
            m.limit = check.limit;
            let changed = m
                .alert
                .as_ref()
                .is_none_or(|a| a.limit != check.limit || Some(a.at) != check.alert_at);
            if changed {
                m.alert = check.alert_at.map(|at| Alert {
                    project,
                    counter: (*check.counter).clone(),
                    limit: check.limit,
                    at,
                });
            }
        }
    }

    fn store_down(&self, now_ms: i64) -> bool {
        now_ms < self.down_until.get()
    }

    fn failed(&self, now_ms: i64, e: &to11_io::counters::CounterError) {
        self.shared
            .stats
            .store_failures
            .fetch_add(1, Ordering::Relaxed);
        if !self.store_down(now_ms) {
            tracing::warn!(error = %e, "limits store unreachable; counting on this worker's share");
        }
        self.down_until.set(now_ms + DOWN_FOR_MS);
    }

    /// Takes one check's reservation; `Ok(true)` from a store slice, `Ok(false)` from the
    /// worker's own share (store down).
    async fn take(
        self: &Rc<Self>,
        check: &Check,
        meter: &Rc<RefCell<Meter>>,
        window: i64,
        now_ms: i64,
        headers: &mut RateHeaders,
    ) -> Result<bool, GatewayError> {
        if check.counter.metric == Metric::Concurrent {
            return self.take_slot(check, meter, now_ms).await;
        }
        if check.reserve == 0 {
            return Ok(true);
        }
        if take_leased(meter, check, window, headers) {
            self.prefetch(check, meter, window, now_ms);
            return Ok(true);
        }
        if self.store_down(now_ms) {
            return self.take_local(check, meter, window, now_ms);
        }
        let (need, want) = wanted(&meter.borrow(), check, now_ms);
        let key = check.counter.key(&self.shared.prefix, window);
        let ttl = check.counter.ttl_secs();
        match self
            .shared
            .store
            .grant(&key, check.limit, need, want, ttl)
            .await
        {
            Ok(g) => {
                granted(&mut meter.borrow_mut(), window, now_ms, g.granted, g.used);
                if g.granted > 0 && take_leased(meter, check, window, headers) {
                    Ok(true)
                } else {
                    // Nothing left (or another request of this worker took the slice meanwhile).
                    Err(refusal(check, window, now_ms, false))
                }
            }
            Err(e) => {
                self.failed(now_ms, &e);
                self.take_local(check, meter, window, now_ms)
            }
        }
    }

    /// Fetches the next slice in the background when a quarter of the last is left.
    fn prefetch(
        self: &Rc<Self>,
        check: &Check,
        meter: &Rc<RefCell<Meter>>,
        window: i64,
        now_ms: i64,
    ) {
        let want = {
            let mut m = meter.borrow_mut();
            let low = m.lease < (m.last_grant / 4).max(check.reserve) as i64;
            if !low || m.refilling || self.store_down(now_ms) {
                return;
            }
            m.refilling = true;
            wanted(&m, check, now_ms).1
        };
        let (me, meter, limit) = (self.clone(), meter.clone(), check.limit);
        let key = check.counter.key(&self.shared.prefix, window);
        let ttl = check.counter.ttl_secs();
        actix_rt::spawn(async move {
            let got = me.shared.store.grant(&key, limit, 1, want, ttl).await;
            let mut m = meter.borrow_mut();
            match got {
                Ok(g) => granted(&mut m, window, now_ms, g.granted, g.used),
                Err(e) => me.failed(now_ms, &e),
            }
            m.refilling = false;
        });
    }

    /// This worker's share of a limit while the store is down.
    fn share(&self, limit: u64) -> u64 {
        limit / self.holders()
    }

    /// Half of this worker's share of a limit, 0 until the workers alive are known.
    fn half_share(&self, limit: u64) -> u64 {
        match self.live_holders.get() {
            0 => 0,
            _ => limit / (2 * self.holders()),
        }
    }

    /// The workers sharing limits: those alive at the last heartbeat, at least this replica's.
    fn holders(&self) -> u64 {
        let here = self.shared.workers.load(Ordering::Relaxed) as u64;
        self.live_holders.get().max(here).max(1)
    }

    fn take_local(
        &self,
        check: &Check,
        meter: &Rc<RefCell<Meter>>,
        window: i64,
        now_ms: i64,
    ) -> Result<bool, GatewayError> {
        if self.shared.when_down == WhenDown::Refuse {
            return Err(GatewayError::new(
                ErrorCode::Overloaded,
                "usage limits cannot be checked now (the limits store is unreachable)",
            )
            .with_retry_after(1));
        }
        let ok = {
            let mut m = meter.borrow_mut();
            // The share of what the store last said was left; what is left of a slice first.
            let share = self.share(check.limit.saturating_sub(m.seen + m.since));
            let from_lease = m.lease.max(0) as u64;
            if m.local + check.reserve > share + from_lease {
                false
            } else {
                m.local += check.reserve;
                m.unsynced += check.reserve;
                true
            }
        };
        self.locally(ok, check, window, now_ms)
    }

    /// The outcome of an admission on the worker's own share.
    fn locally(
        &self,
        admitted: bool,
        check: &Check,
        window: i64,
        now_ms: i64,
    ) -> Result<bool, GatewayError> {
        if !admitted {
            return Err(refusal(check, window, now_ms, true));
        }
        self.shared
            .stats
            .admitted_locally
            .fetch_add(1, Ordering::Relaxed);
        Ok(false)
    }

    async fn take_slot(
        self: &Rc<Self>,
        check: &Check,
        meter: &Rc<RefCell<Meter>>,
        now_ms: i64,
    ) -> Result<bool, GatewayError> {
        {
            let mut m = meter.borrow_mut();
            m.last_taken_ms = now_ms;
            if m.held > m.in_use {
                m.in_use += 1;
                return Ok(true);
            }
        }
        if !self.store_down(now_ms) {
            let key = check.counter.key(&self.shared.prefix, 0);
            // A quarter more than in use, for the next requests (none while few are in flight,
            // so a small limit is not held idle by one worker).
            let spare = meter.borrow().in_use / 4;
            let got = self
                .shared
                .store
                .acquire(&key, &self.holder, check.limit, 1, 1 + spare, now_ms)
                .await;
            match got {
                Ok(g) if g.granted > 0 => {
                    let mut m = meter.borrow_mut();
                    m.held += g.granted;
                    m.in_use += 1;
                    return Ok(true);
                }
                Ok(_) => return Err(refusal(check, 0, now_ms, false)),
                Err(e) => self.failed(now_ms, &e),
            }
        }
        if self.shared.when_down == WhenDown::Refuse {
            return self.take_local(check, meter, 0, now_ms);
        }
        let share = self.share(check.limit);
        let ok = {
            let mut m = meter.borrow_mut();
            if m.in_use < share.max(m.held) {
                m.in_use += 1;
                true
            } else {
                false
            }
        };
        self.locally(ok, check, 0, now_ms)
    }

    /// A request's concurrency slot is free. A worker keeps a few idle slots for its next
    /// requests (a quarter more than in use, and while it holds less than half its share of the
    /// limit among the workers last seen alive; none before it knows them) until no slot was
    /// taken for a second; the rest go back to the store at once, so another worker or replica
    /// can take them.
    fn free_slot(self: &Rc<Self>, meter: &Rc<RefCell<Meter>>, counter: &CounterId) {
        let excess = {
            let mut m = meter.borrow_mut();
            m.in_use = m.in_use.saturating_sub(1);
            let keep = (m.in_use + m.in_use / 4).max(m.held.min(self.half_share(m.limit)));
            let excess = m.held.saturating_sub(keep);
            m.held -= excess;
            excess
        };
        if excess == 0 {
            return;
        }
        let (me, key) = (self.clone(), counter.key(&self.shared.prefix, 0));
        actix_rt::spawn(async move {
            if let Err(e) = me.shared.store.release(&key, &me.holder, excess).await {
                me.failed(chrono::Utc::now().timestamp_millis(), &e);
            }
        });
    }
}

fn take_leased(
    meter: &Rc<RefCell<Meter>>,
    check: &Check,
    window: i64,
    headers: &mut RateHeaders,
) -> bool {
    let mut m = meter.borrow_mut();
    if m.window != window || m.lease < check.reserve as i64 {
        return false;
    }
    m.lease -= check.reserve as i64;
    m.since += check.reserve;
    headers.note(check, m.seen + m.since, window);
    true
}

/// The least a grant must give (what the reservation lacks) and what to ask for: a sixty-fourth
/// of the limit, doubled while slices run out within a second, at most an eighth.
fn wanted(m: &Meter, check: &Check, now_ms: i64) -> (u64, u64) {
    // A slice used beyond (negative) must be made good first.
    let need = (check.reserve as i64 - m.lease).max(1) as u64;
    let base = (check.limit / 64).max(1);
    let want = if m.last_grant > 0 && now_ms - m.last_grant_at < 1_000 {
        (m.last_grant * 2).min((check.limit / 8).max(1))
    } else {
        base
    };
    (need, want.max(need))
}

fn granted(m: &mut Meter, window: i64, now_ms: i64, granted: u64, used: u64) {
    if m.window != window {
        return; // a slice of a window that has ended
    }
    m.lease += granted as i64;
    m.last_grant = granted.max(m.last_grant / 2);
    m.last_grant_at = now_ms;
    m.seen = used;
    m.since = 0;
}

mod answer;
mod report;
mod ticket;

use answer::refusal;
pub use answer::{RateHeaders, Refused, Remaining};
use ticket::Taken;
pub use ticket::Ticket;

#[cfg(test)]
mod tests;
