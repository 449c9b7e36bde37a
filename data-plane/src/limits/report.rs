//! A worker's tick: settled usage and what was admitted locally reported to the store in
//! batches, budget alerts found, concurrency slots stated and idle ones given back, heartbeats,
//! and meters nothing needs forgotten.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use to11_io::counters::Add;
use to11_shared::limits::{format_amount, Metric, Owner, Window};
use uuid::Uuid;

use super::{Alert, Inner, Pending, IDLE_MS, MAX_PENDING};

impl Inner {
    /// Reports settled usage (and what was admitted locally) to the store, gives back idle
    /// slots, and sends the worker's heartbeat every fourth tick.
    pub(super) async fn tick(self: &Rc<Self>) {
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
    pub(super) fn forget_past(&self, now: i64) {
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
