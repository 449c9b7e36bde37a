//! Back-off on failed authentication (bad bearer tokens, bad sign-ins, ended sessions): a few
//! failures are free, then each further failure blocks its key for `base`, doubling up to
//! `MAX_BLOCK`. While a key is blocked the API answers 429 with `retry-after` without checking
//! any token, so a guesser gains nothing from going on. Keys are the source address (an IPv6
//! source by its /64, which one host typically owns whole) and the presented token's keyed hash
//! (the same wrong or revoked token from many sources). A success never resets a key: a tenant
//! with one valid key cannot interleave it to keep guessing the operator token.
//!
//! In memory and bounded: at most `MAX_KEYS` keys; a key forgets its failures after `FORGET`
//! without one. Pure over `now`, so the rules are tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest block one key can earn.
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this (with none since) are forgotten.
const FORGET: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at most; beyond, the least recently failing key is forgotten.
pub const MAX_KEYS: usize = 20_000;

/// What failures are counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A source address (IPv6: its /64).
    Source(IpAddr),
    /// A presented token, by the first 16 bytes of its keyed hash.
    Token([u8; 16]),
}

impl Key {
    pub fn source(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let mut o = v6.octets();
                o[8..].fill(0);
                Key::Source(IpAddr::V6(o.into()))
            }
            IpAddr::V6(v6) => Key::Source(v6.to_ipv4_mapped().map_or(ip, IpAddr::V4)),
            IpAddr::V4(_) => Key::Source(ip),
        }
    }

    pub fn token(hash: &[u8; 32]) -> Key {
        let mut k = [0u8; 16];
        k.copy_from_slice(&hash[..16]);
        Key::Token(k)
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// The rules: `free` failures before any block, then `base` doubling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub free: u32,
    pub base: Duration,
}

impl Policy {
    /// How long the `failures`-th failure blocks (none while within the free ones).
    pub fn block_for(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free)?;
        if over == 0 {
            return None;
        }
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(MAX_BLOCK))
    }
}

pub struct Throttle {
    policy: Policy,
    keys: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    pub fn new(policy: Policy) -> Self {
        Throttle {
            policy,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the longest block among `keys` still lasts, if any is blocked.
    pub fn blocked(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let map = self.guard();
        keys.iter()
            .filter_map(|k| map.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failure against each key; returns the block it earned, if any.
    pub fn fail(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let mut map = self.guard();
        let mut longest = None;
        for k in keys {
            if !map.contains_key(k) && map.len() >= MAX_KEYS {
                make_room(&mut map, now);
            }
            let e = map.entry(*k).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(e.last) > FORGET {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            if let Some(d) = self.policy.block_for(e.failures) {
                e.blocked_until = Some(now + d);
                longest = longest.max(Some(d));
            }
        }
        longest
    }

    pub fn len(&self) -> usize {
        self.guard().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops forgotten keys; when none is, the least recently failing one.
fn make_room(map: &mut HashMap<Key, Entry>, now: Instant) {
    map.retain(|_, e| {
        now.duration_since(e.last) <= FORGET || e.blocked_until.is_some_and(|u| u > now)
    });
    if map.len() >= MAX_KEYS {
        if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
}

/// Whole seconds to wait, rounded up (a `retry-after` value).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const POLICY: Policy = Policy {
        free: 3,
        base: Duration::from_secs(1),
    };

    fn ip(last: u8) -> Key {
        Key::source(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn blocks_double_after_the_free_failures_and_stop_at_the_cap() {
        let b = |n| POLICY.block_for(n).map(|d: Duration| d.as_secs());
        assert_eq!([b(0), b(1), b(3)], [None, None, None]);
        assert_eq!(
            [b(4), b(5), b(6), b(7)],
            [Some(1), Some(2), Some(4), Some(8)]
        );
        assert_eq!(b(40), Some(MAX_BLOCK.as_secs()));
        assert_eq!(b(u32::MAX), Some(MAX_BLOCK.as_secs()));
    }

    #[test]
    fn a_blocked_source_is_refused_and_others_are_not() {
        let t = Throttle::new(POLICY);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.fail(&[ip(1)], now), None);
        }
        assert_eq!(t.blocked(&[ip(1)], now), None, "three failures are free");
        assert_eq!(t.fail(&[ip(1)], now), Some(Duration::from_secs(1)));
        assert_eq!(t.blocked(&[ip(1)], now), Some(Duration::from_secs(1)));
        assert_eq!(
            t.blocked(&[ip(2)], now),
            None,
            "another source is unaffected"
        );
        let later = now + Duration::from_millis(1500);
        assert_eq!(t.blocked(&[ip(1)], later), None, "the block ends");
        assert_eq!(
            t.fail(&[ip(1)], later),
            Some(Duration::from_secs(2)),
            "and doubles"
        );
        let much_later = later + FORGET + Duration::from_secs(1);
        assert_eq!(
            t.fail(&[ip(1)], much_later),
            None,
            "old failures are forgotten"
        );
    }

    #[test]
    fn the_longest_block_among_keys_counts() {
        let t = Throttle::new(POLICY);
        let now = Instant::now();
        let token = Key::token(&[7; 32]);
        for last in 1..=5 {
            t.fail(&[ip(last), token], now);
        }
        // Each source failed once; the token five times (blocked 2 s).
        assert_eq!(t.blocked(&[ip(9)], now), None);
        assert_eq!(
            t.blocked(&[ip(9), token], now),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Key::source(a.into()), Key::source(b.into()));
        assert_ne!(Key::source(a.into()), Key::source(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Key::source(mapped.into()), ip(1));
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::new(POLICY);
        let now = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 500) {
            let k = Key::source(IpAddr::V4(Ipv4Addr::from(i)));
            t.fail(&[k], now + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(t.len(), MAX_KEYS);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
