//! Where usage limits are counted across replicas (`CounterStore`): Redis in a multi-replica
//! deployment (`RedisCounters`), an in-process table in embedded mode (`LocalCounters`, kept in
//! a file of the data directory). Replicas do not count each request here: they lease slices of
//! a limit (`grant`, `acquire`) and report what was used in batches (`add`); the control plane
//! reads the counters to show them.
//!
//! Keys are `to11_shared::limits::CounterId::key`s. A windowed limit has two counters: what was
//! granted (the key itself; admission is checked against it, atomically) and what was used (the
//! key with `:u`, settled after answers; what the API shows). A concurrency limit is a hash of
//! slots held per holder (a gateway worker), where holders that stopped sending heartbeats no
//! longer count.

use std::time::Duration;

use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
#[error("counter store: {0}")]
pub struct CounterError(pub String);

/// What a grant gave, and the counter after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub granted: u64,
    /// Everything granted in the window (or slots held by every live holder), this grant
    /// included.
    pub used: u64,
}

/// One settled amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub key: String,
    pub delta: i64,
    pub ttl_secs: Option<u64>,
}

/// A holder not heard from for this long holds nothing.
pub const HOLDER_STALE: Duration = Duration::from_secs(10);
/// Events kept (budget alerts), oldest dropped first.
pub const MAX_EVENTS: usize = 10_000;

pub trait CounterStore: Send + Sync + 'static {
    /// What every key of this store starts with (`CounterId::key`'s prefix).
    fn prefix(&self) -> &str;

    /// Grants at most `want` of what `limit` leaves on `key` this window, and at least `min` or
    /// nothing. Near the limit a grant is at most a quarter of what is left (but never less
    /// than `min`), so slices held by many replicas shrink as a limit runs out.
    fn grant<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        ttl_secs: Option<u64>,
    ) -> BoxFuture<'a, Result<Grant, CounterError>>;

    /// Takes slots of a concurrency limit for `holder`: at most `want`, at least `min` or none.
    /// (`now_ms`, here and in `heartbeat` and `held`, is the caller's clock; Redis judges which
    /// holders are alive by its own, so the gateways' clocks need not agree.)
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Grant, CounterError>>;

    /// Gives back `n` slots `holder` held.
    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        n: u64,
    ) -> BoxFuture<'a, Result<(), CounterError>>;

    /// Sets the slots `holder` holds on each concurrency key (0 removes its entry): what the
    /// holder knows it holds wins over what the store recorded (a release that failed, an
    /// acquisition whose answer was lost, slots admitted while the store was down).
    fn set_held<'a>(
        &'a self,
        holder: &'a str,
        held: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<(), CounterError>>;

    /// Adds each amount; answers each counter after its addition, in order.
    fn add<'a>(&'a self, adds: &'a [Add]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>>;

    /// `holder` is alive at `now_ms`; answers how many holders are.
    fn heartbeat<'a>(
        &'a self,
        holder: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<u64, CounterError>>;

    /// The counters' values (0 for a missing one).
    fn read<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>>;

    /// The slots held on each concurrency key by live holders.
    fn held<'a>(
        &'a self,
        keys: &'a [String],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<u64>, CounterError>>;

    /// Records an event (a JSON object).
    fn push_event<'a>(&'a self, event: String) -> BoxFuture<'a, Result<(), CounterError>>;

    /// The newest events first, at most `limit`.
    fn events(&self, limit: usize) -> BoxFuture<'_, Result<Vec<String>, CounterError>>;

    /// Events not yet delivered, oldest first, at most `count`, each with its id, for
    /// `consumer` (one of the control planes delivering them): new ones, and those another
    /// consumer took over two minutes ago without acknowledging them. Waits up to `wait` for one.
    fn claim_events<'a>(
        &'a self,
        consumer: &'a str,
        count: usize,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, CounterError>>;

    /// Marks events delivered (or given up on).
    fn ack_events<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), CounterError>>;
}

/// What a grant gives, as pure arithmetic (both stores use it; Redis runs the same rule in Lua).
pub fn grant_size(limit: u64, used: u64, min: u64, want: u64) -> u64 {
    let free = limit.saturating_sub(used);
    if free < min || free == 0 {
        return 0;
    }
    want.min(min.max(free / 4)).min(free).max(min)
}

mod local;
mod redis_store;

pub use local::LocalCounters;
pub use redis_store::RedisCounters;

#[cfg(test)]
mod tests {
    use super::local::now_ms;
    use super::*;

    #[test]
    fn grants_shrink_near_the_limit_and_never_pass_it() {
        assert_eq!(grant_size(600, 0, 1, 20), 20);
        assert_eq!(grant_size(600, 560, 1, 20), 10, "a quarter of the 40 left");
        assert_eq!(grant_size(600, 598, 1, 20), 1);
        assert_eq!(grant_size(600, 600, 1, 20), 0);
        assert_eq!(grant_size(600, 590, 30, 40), 0, "all of min or nothing");
        assert_eq!(grant_size(600, 500, 30, 40), 30, "min even above a quarter");
        for used in 0..=600 {
            for min in 1..5 {
                let g = grant_size(600, used, min, 50);
                assert!(used + g <= 600);
                assert!(g == 0 || g >= min);
            }
        }
    }

    #[actix_rt::test]
    async fn local_counters_grant_slots_expire_holders_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("to11-counters-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("limits.json");
        let c = LocalCounters::open(file.clone()).unwrap();
        let mut total = 0;
        loop {
            let g = c.grant("k", 100, 1, 30, Some(60)).await.unwrap();
            if g.granted == 0 {
                break;
            }
            total += g.granted;
            assert_eq!(g.used, total);
        }
        assert_eq!(total, 100);
        c.add(&[Add {
            key: "k:u".into(),
            delta: 42,
            ttl_secs: Some(60),
        }])
        .await
        .unwrap();
        let now = now_ms();
        assert_eq!(c.acquire("c", "a", 3, 1, 2, now).await.unwrap().granted, 2);
        assert_eq!(c.acquire("c", "b", 3, 1, 2, now).await.unwrap().granted, 1);
        assert_eq!(c.acquire("c", "b", 3, 1, 1, now).await.unwrap().granted, 0);
        let later = now + HOLDER_STALE.as_millis() as i64 + 1;
        c.heartbeat("b", later).await.unwrap();
        assert_eq!(
            c.acquire("c", "b", 3, 1, 2, later).await.unwrap().granted,
            2,
            "a's slots no longer count once a stopped"
        );
        c.release("c", "b", 3).await.unwrap();
        assert_eq!(c.held(&["c".into()], later).await.unwrap(), vec![0]);
        c.persist().unwrap();
        let again = LocalCounters::open(file).unwrap();
        assert_eq!(
            again.read(&["k".into(), "k:u".into()]).await.unwrap(),
            vec![100, 42]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
