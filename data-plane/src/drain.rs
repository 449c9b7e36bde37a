//! Graceful drain of a replica told to stop (SIGTERM, or SIGINT): first `/readyz` answers 503 for
//! `TO11_DRAIN_GRACE_MS` while everything is still served, so a load balancer takes the replica
//! out before anything is refused; then the listener closes and requests and streams in flight
//! get up to `TO11_DRAIN_TIMEOUT_MS` to finish; the answers still open then are ended by
//! `proxy::guard::Guarded` with a terminal error event in their API's shape (never a silent cut),
//! after which the server stops. actix-web's own shutdown timeout is set beyond the drain timeout
//! (`SHUTDOWN_MARGIN`), so it is never what ends a stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::sync::watch;

/// How long after the drain timeout actix-web may still take to close what is left (the terminal
/// events written, the connections closed).
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

/// A replica's drain state, shared by `/readyz`, the reports and every answer being streamed.
pub struct Drain {
    draining: AtomicBool,
    /// Set at the drain timeout: read by answers on every chunk (one relaxed load) ...
    cut_flag: AtomicBool,
    /// ... and waited on while they wait for the upstream.
    cut: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: AtomicBool::new(false),
            cut_flag: AtomicBool::new(false),
            cut: watch::channel(false).0,
        }
    }
}

/// What an answer being streamed watches: it ends when the drain timeout passes, whether it is
/// waiting for the upstream (`wait`) or passing chunks (`is_cut`).
pub struct Cut {
    drain: Arc<Drain>,
    rx: watch::Receiver<bool>,
}

impl Cut {
    pub fn is_cut(&self) -> bool {
        self.drain.is_cut()
    }

    /// The drain itself, for a check on every chunk.
    pub fn flag(&self) -> Arc<Drain> {
        self.drain.clone()
    }

    /// Ready at the cut (or when the drain is gone). `changed` compares versions (an atomic
    /// load), without reading the value under the channel's lock; only `Drain::cut` sends.
    pub async fn wait(mut self) {
        if self.is_cut() {
            return;
        }
        let _ = self.rx.changed().await;
    }
}

impl Drain {
    /// Whether the replica is draining (`/readyz` answers 503).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Whether the drain timeout passed.
    pub fn is_cut(&self) -> bool {
        self.cut_flag.load(Ordering::Relaxed)
    }

    /// The grace period starts: not ready any more, still serving.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The drain timeout passed: every answer still streaming ends now.
    pub fn cut(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.cut_flag.store(true, Ordering::Relaxed);
        self.cut.send_replace(true);
    }

    /// What one answer watches (an `Arc` clone and a receiver of the channel).
    pub fn watch(self: &Arc<Self>) -> Cut {
        Cut {
            drain: self.clone(),
            rx: self.cut.subscribe(),
        }
    }
}

/// actix-web's shutdown timeout for a gateway draining for `drain_timeout`: beyond it, so the
/// gateway's own terminal events end the streams, not actix-web's cut.
pub fn shutdown_timeout(drain_timeout: Duration) -> u64 {
    (drain_timeout + SHUTDOWN_MARGIN).as_secs().max(1)
}

/// Runs the drain when the process receives SIGTERM or SIGINT: for the `to11-data-plane` binary
/// and embedded `to11`'s gateway (the test sandbox stops servers directly).
pub async fn on_signal(
    server: ServerHandle,
    drain: Arc<Drain>,
    grace: Duration,
    timeout: Duration,
) {
    wait_for_signal().await;
    run(server, &drain, grace, timeout).await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                return;
            }
            _ => tracing::warn!("cannot listen for SIGTERM; draining on Ctrl-C only"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The drain itself: grace, stop accepting, wait for what is in flight up to `timeout`, end the
/// rest.
pub async fn run(server: ServerHandle, drain: &Drain, grace: Duration, timeout: Duration) {
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        timeout_ms = timeout.as_millis() as u64,
        "draining: /readyz answers 503 while requests are still served"
    );
    drain.begin();
    tokio::time::sleep(grace).await;
    tracing::info!("draining: no new connections; waiting for requests in flight");
    let stopped = server.stop(true);
    tokio::pin!(stopped);
    tokio::select! {
        _ = &mut stopped => return,
        _ = tokio::time::sleep(timeout) => {}
    }
    tracing::warn!("drain timeout: ending the answers still open with a terminal error event");
    drain.cut();
    stopped.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_cut_reaches_every_watcher_even_one_made_after_it() {
        let d = Arc::new(Drain::default());
        let early = d.watch();
        assert!(!d.draining());
        d.begin();
        assert!(d.draining() && !early.is_cut());
        d.cut();
        assert!(early.is_cut());
        early.wait().await;
        let late = d.watch();
        assert!(late.is_cut());
        late.wait().await;
        assert_eq!(shutdown_timeout(Duration::from_secs(30)), 35);
    }
}
