//! The to11 test sandbox: a real `redis-server` on a free port, mock upstreams on port 0, and both
//! planes started in-process (each in its own thread and actix system, so they can be stopped and
//! restarted) with the same `start` functions the binaries use.

// Test support: panicking on a broken set-up is the point, so `expect` is allowed here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod breaking;
pub mod checker;
pub mod client;
pub mod gzip;
pub mod mock;
pub mod native_mock;
pub mod postgres;
pub mod redis_server;
pub mod sandbox;

/// Polls `check` until it returns `Some`, or panics with `what` after `secs` seconds. Tests wait on
/// signals (a replica's reported version, a recorded request) this way, never on fixed sleeps.
pub async fn wait_until<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
