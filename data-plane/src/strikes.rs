//! Back-off for sources that present bad to11 keys. Each worker counts, per source address, the
//! requests refused for an invalid or expired key in a one-minute window; a source past the
//! allowance (`TO11_FAILED_AUTH_PER_MINUTE`) gets 429 `rate_limited` with `retry-after` before
//! its key is even looked at, for 1 s, then 2, 4, … up to 15 minutes as it keeps failing. The
//! table is the worker's own (no lock, no cross-thread traffic); a request from a source with no
//! failures costs one emptiness check. It holds at most `MAX_SOURCES` sources: when full,
//! expired entries are dropped, and a new source beyond that is not tracked (counted in
//! `untracked`) rather than evicting one that is.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::dev::RequestHead;

const WINDOW: Duration = Duration::from_secs(60);
const LONGEST_BLOCK: Duration = Duration::from_secs(15 * 60);
pub const MAX_SOURCES: usize = 10_000;

struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    /// Blocks so far: each one doubles the next.
    blocks: u32,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        self.blocked_until.is_none_or(|t| t <= now) && now >= self.window_start + WINDOW
    }
}

pub struct Strikes {
    per_minute: u32,
    table: RefCell<HashMap<IpAddr, Entry>>,
    /// Sources not tracked because the table was full.
    pub untracked: Cell<u64>,
}

impl Strikes {
    /// `per_minute` 0: no limit.
    pub fn new(per_minute: u32) -> Self {
        Strikes {
            per_minute,
            table: RefCell::new(HashMap::new()),
            untracked: Cell::new(0),
        }
    }

    /// Whether `source` must wait, and how long.
    pub fn blocked(
        &self,
        source: impl FnOnce() -> Option<IpAddr>,
        now: Instant,
    ) -> Option<Duration> {
        let table = self.table.borrow();
        if table.is_empty() {
            return None;
        }
        let until = table.get(&source()?)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// A request from `source` was refused for its key.
    pub fn failed(&self, source: Option<IpAddr>, now: Instant) {
        let Some(source) = source.filter(|_| self.per_minute > 0) else {
            return;
        };
        let mut table = self.table.borrow_mut();
        if table.len() >= MAX_SOURCES && !table.contains_key(&source) {
            table.retain(|_, e| !e.expired(now));
            if table.len() >= MAX_SOURCES {
                self.untracked.set(self.untracked.get() + 1);
                return;
            }
        }
        let e = table.entry(source).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
            blocks: 0,
        });
        if now >= e.window_start + WINDOW {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures > self.per_minute {
            let block = Duration::from_secs(1 << e.blocks.min(10)).min(LONGEST_BLOCK);
            e.blocked_until = Some(now + block);
            e.blocks += 1;
            e.failures = 0;
            e.window_start = now;
        }
    }
}

/// The address a request came from: the last value of `header` (the one the proxy in front
/// appended) when one is configured, else the peer.
pub fn source(req: &RequestHead, header: Option<&str>) -> Option<IpAddr> {
    match header {
        Some(h) => req
            .headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok()),
        None => req.peer_addr.map(|a| a.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn a_source_past_its_allowance_waits_longer_each_time() {
        let s = Strikes::new(3);
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        for _ in 0..3 {
            s.failed(a, t0);
        }
        assert_eq!(s.blocked(|| a, t0), None, "within the allowance");
        s.failed(a, t0);
        assert_eq!(s.blocked(|| a, t0), Some(Duration::from_secs(1)));
        assert_eq!(s.blocked(|| ip("203.0.113.8"), t0), None, "another source");
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(s.blocked(|| a, t1), None, "the block ended");
        for _ in 0..4 {
            s.failed(a, t1);
        }
        assert_eq!(s.blocked(|| a, t1), Some(Duration::from_secs(2)), "doubled");
        // A quiet minute starts the count again.
        let t2 = t1 + Duration::from_secs(120);
        for _ in 0..3 {
            s.failed(a, t2);
        }
        assert_eq!(s.blocked(|| a, t2), None);
    }

    #[test]
    fn the_table_is_bounded_and_never_evicts_a_live_entry() {
        let s = Strikes::new(1);
        let now = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            s.failed(Some(IpAddr::from(i.to_be_bytes())), now);
        }
        s.failed(ip("198.51.100.1"), now);
        assert_eq!(s.untracked.get(), 1);
        assert_eq!(s.table.borrow().len(), MAX_SOURCES);
        // Once the window passed, old entries make room.
        s.failed(ip("198.51.100.1"), now + WINDOW);
        assert_eq!(s.table.borrow().len(), 1);
        let off = Strikes::new(0);
        for _ in 0..100 {
            off.failed(ip("198.51.100.2"), now);
        }
        assert_eq!(off.blocked(|| ip("198.51.100.2"), now), None);
    }
}
