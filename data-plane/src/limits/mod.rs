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
use to11_shared::limits::{format_amount, Check, CounterId, Metric, Owner, Window};
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

/// What a request took, given back or settled when it ends (`settle`, or dropped: settled with
/// no usage).
pub struct Ticket {
    worker: Rc<Inner>,
    taken: Vec<Taken>,
    /// The values of the `x-ratelimit-*` headers.
    pub headers: RateHeaders,
}

struct Taken {
    meter: Rc<RefCell<Meter>>,
    counter: Arc<CounterId>,
    metric: Metric,
    reserve: u64,
    window: i64,
    /// From the store's slices (false: on the worker's own share while the store was down).
    leased: bool,
}
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
    /// When the window ends (ms since the epoch).
    pub reset_ms: i64,
}

impl RateHeaders {
    fn note(&mut self, check: &Check, used: u64, window: i64) {
        let slot = match check.counter.metric {
            Metric::Requests => &mut self.requests,
            Metric::Tokens => &mut self.tokens,
            _ => return,
        };
        let r = Remaining {
            limit: check.limit,
            remaining: check.limit.saturating_sub(used),
            reset_ms: check.counter.window.end_ms(window).unwrap_or(0),
        };
        if slot.is_none_or(|s| r.remaining < s.remaining) {
            *slot = Some(r);
        }
    }

    /// Writes the headers onto an answer.
    pub fn apply(&self, headers: &mut actix_web::http::header::HeaderMap, now_ms: i64) {
        use actix_web::http::header::{HeaderName, HeaderValue};
        const NAMES: [[HeaderName; 3]; 2] = [
            [
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderName::from_static("x-ratelimit-remaining-requests"),
                HeaderName::from_static("x-ratelimit-reset-requests"),
            ],
            [
                HeaderName::from_static("x-ratelimit-limit-tokens"),
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderName::from_static("x-ratelimit-reset-tokens"),
            ],
        ];
        for (names, r) in NAMES.iter().zip([&self.requests, &self.tokens]) {
            let Some(r) = r else { continue };
            let [limit, remaining, reset] = names;
            headers.insert(limit.clone(), HeaderValue::from(r.limit));
            headers.insert(remaining.clone(), HeaderValue::from(r.remaining));
            let after = to11_shared::limits::reset_after(now_ms, r.reset_ms);
            if let Ok(v) = HeaderValue::try_from(after) {
                headers.insert(reset.clone(), v);
            }
        }
    }
}

/// A request refused by a limit, with the headers its answer carries.
pub struct Refused {
    pub error: GatewayError,
    pub headers: RateHeaders,
}

fn refusal(check: &Check, window: i64, now_ms: i64, store_down: bool) -> GatewayError {
    let c = &check.counter;
    let whose = match (c.owner, &c.user) {
        (Owner::Key, None) => "this key".to_string(),
        (Owner::Key, Some(_)) => "this end user of this key".to_string(),
        (Owner::Project, None) => "this project".to_string(),
        (Owner::Project, Some(_)) => "this end user of this project".to_string(),
        (Owner::Plan, None) => "this project's plan".to_string(),
        (Owner::Plan, Some(_)) => "this end user under this project's plan".to_string(),
    };
    let end = c.window.end_ms(window);
    let retry = end.map_or(3_600, |e| to11_shared::limits::retry_after_secs(now_ms, e));
    let (code, message) = match c.metric {
        Metric::Requests => (
            ErrorCode::RateLimited,
            format!("{whose} may make {} requests per minute", check.limit),
        ),
        Metric::Tokens | Metric::InputTokens | Metric::OutputTokens => (
            ErrorCode::RateLimited,
            format!(
                "{whose} may use {} {} per minute; this request reserves {} (its input estimated, its output up to max_tokens)",
                check.limit,
                match c.metric {
                    Metric::InputTokens => "input tokens",
                    Metric::OutputTokens => "output tokens",
                    _ => "tokens",
                },
                check.reserve
            ),
        ),
        Metric::Spend => (
            ErrorCode::BudgetExceeded,
            format!(
                "{whose} has spent its budget of {} per {}",
                format_amount(check.limit),
                match c.window {
                    Window::Day => "day",
                    Window::Week => "week",
                    Window::Month => "month",
                    _ => "all time",
                }
            ),
        ),
        Metric::Concurrent => (
            ErrorCode::ConcurrencyLimited,
            format!("{whose} may have {} requests in flight", check.limit),
        ),
    };
    let message = if store_down {
        format!("{message} (counted on this replica's share while the limits store is unreachable)")
    } else {
        message
    };
    let retry = if c.metric == Metric::Concurrent {
        1
    } else {
        retry
    };
    GatewayError::new(code, message).with_retry_after(retry)
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

    /// Reports settled usage (and what was admitted locally) to the store, gives back idle
    /// slots, and sends the worker's heartbeat every fourth tick.
    async fn tick(self: &Rc<Self>) {
        let now = chrono::Utc::now().timestamp_millis();
        let n = self.ticks.get();
        self.ticks.set(n + 1);
        let store = self.shared.store.clone();
        if n.is_multiple_of(4) {
            match store.heartbeat(&self.holder, now).await {
                Ok(live) => self.live_holders.set(live),
                Err(e) => self.failed(now, &e),
            }
        }
        if self.store_down(now) {
            return;
        }
        if n.is_multiple_of(4) {
            self.assert_held(now).await;
        }
        self.collect();
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if !batch.is_empty() {
            let batch = merge(batch);
            let adds: Vec<Add> = batch.iter().map(|p| p.add.clone()).collect();
            match store.add(&adds).await {
                Ok(after) => self.alerts(&batch, &after, now).await,
                Err(e) => {
                    self.failed(now, &e);
                    self.keep(batch);
                }
            }
        }
        self.release_idle(now).await;
        self.forget_past(now);
    }

    /// Concurrency slots kept for the next requests go back to the store once no slot was
    /// taken for a second.
    async fn release_idle(&self, now: i64) {
        let mut give = Vec::new();
        for (id, m) in self.meters.borrow().iter() {
            let mut m = m.borrow_mut();
            let busy = now - m.last_taken_ms < 1_000;
            let spare = if busy {
                m.held.min(self.half_share(m.limit))
            } else {
                0
            };
            let keep = (m.in_use + m.in_use / 4).max(spare);
            if id.metric == Metric::Concurrent && m.held > keep {
                give.push((id.key(&self.shared.prefix, 0), m.held - keep));
                m.held = keep;
            }
        }
        for (key, n) in give {
            if let Err(e) = self.shared.store.release(&key, &self.holder, n).await {
                self.failed(now, &e);
            }
        }
    }

    /// Tells the store the concurrency slots this worker holds (or uses, if more: admitted while
    /// the store was down), so what it recorded follows the worker's own count every second.
    async fn assert_held(&self, now: i64) {
        let held: Vec<(String, u64)> = self
            .meters
            .borrow()
            .iter()
            .filter(|(id, _)| id.metric == Metric::Concurrent)
            .map(|(id, m)| {
                let mut m = m.borrow_mut();
                m.held = m.held.max(m.in_use);
                (id.key(&self.shared.prefix, 0), m.held)
            })
            .collect();
        if let Err(e) = self.shared.store.set_held(&self.holder, &held).await {
            self.failed(now, &e);
        }
    }

    /// What the meters settled (and admitted locally) since the last tick, as store additions.
    fn collect(&self) {
        let mut out = Vec::new();
        for (id, m) in self.meters.borrow().iter() {
            m.borrow_mut().report(id, &self.shared.prefix, &mut out);
        }
        self.pending.borrow_mut().extend(out);
    }

    fn keep(&self, batch: Vec<Pending>) {
        let mut p = self.pending.borrow_mut();
        let mut kept = batch;
        kept.append(&mut p);
        if kept.len() > MAX_PENDING {
            let over = kept.len() - MAX_PENDING;
            kept.drain(..over);
            self.shared
                .stats
                .dropped
                .fetch_add(over as u64, Ordering::Relaxed);
        }
        *p = kept;
    }

    async fn alerts(&self, batch: &[Pending], after: &[i64], now: i64) {
        for (p, &value) in batch.iter().zip(after) {
            let Some(a) = &p.alert else { continue };
            let before = value - p.add.delta;
            for (threshold, kind) in [(a.at, "budget_alert"), (a.limit, "budget_exhausted")] {
                if before < threshold as i64 && value >= threshold as i64 {
                    let event = alert_event(a, kind, threshold, value);
                    match self.shared.store.push_event(event.to_string()).await {
                        Ok(()) => {
                            self.shared.stats.alerts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => self.failed(now, &e),
                    }
                }
            }
        }
    }

    /// Once a minute the plans are dropped (they are made again on the next request), and meters
    /// that nothing holds (no request in flight) and with nothing left to report are forgotten:
    /// those of past minutes, and those of longer windows (budgets, concurrency) unused for
    /// `IDLE_MS`, whose unused slice goes back to the store first (so many end users' budgets
    /// do not hold memory, nor leave slices unusable by other workers).
    fn forget_past(&self, now: i64) {
        let minute = Window::Minute.index(now);
        if self.forgot.replace(minute) == minute {
            return;
        }
        self.plans.borrow_mut().clear();
        let mut returned = Vec::new();
        self.meters.borrow_mut().retain(|id, m| {
            let held = Rc::strong_count(m) > 1;
            let m = m.borrow();
            let busy = m.held > 0 || m.in_use > 0 || m.used > 0 || m.debt > 0 || m.unsynced > 0;
            if held || busy {
                return true;
            }
            if id.window == Window::Minute && id.metric != Metric::Concurrent {
                return m.window >= minute;
            }
            if now - m.last_used_ms < IDLE_MS {
                return true;
            }
            if m.lease > 0 && id.metric != Metric::Concurrent && m.window == id.window.index(now) {
                returned.push(Pending {
                    add: Add {
                        key: id.key(&self.shared.prefix, m.window),
                        delta: -m.lease,
                        ttl_secs: id.ttl_secs(),
                    },
                    alert: None,
                });
            }
            false
        });
        self.pending.borrow_mut().extend(returned);
    }
}

fn alert_event(a: &Alert, kind: &str, threshold: u64, value: i64) -> serde_json::Value {
    serde_json::json!({
        // Receivers drop a repeat by it (an alert may be posted twice when a delivery outlasts
        // the time after which another control plane takes it over).
        "event_id": Uuid::new_v4(),
        "type": kind,
        "project": a.project,
        "owner": match a.counter.owner {
            Owner::Key => "key",
            Owner::Project => "project",
            Owner::Plan => "plan",
        },
        "id": a.counter.id,
        "user": a.counter.user,
        "period": match a.counter.window {
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
            _ => "total",
        },
        "budget": format_amount(a.limit),
        "threshold": format_amount(threshold),
        "spent": format_amount(value.max(0) as u64),
        "at": chrono::Utc::now(),
    })
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

/// Additions to one key merged (a batch adds each key once).
fn merge(batch: Vec<Pending>) -> Vec<Pending> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Pending> = Vec::with_capacity(batch.len());
    for p in batch {
        match at.get(&p.add.key) {
            Some(&i) => out[i].add.delta += p.add.delta,
            None => {
                at.insert(p.add.key.clone(), out.len());
                out.push(p);
            }
        }
    }
    out
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
    fn give_back(&mut self) {
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

#[cfg(test)]
mod tests;
