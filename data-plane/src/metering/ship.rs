//! Shipping records: batches taken from the recorder's queue (up to `MAX_BATCH`, or what arrived
//! within `GATHER`), each shipped until its sink takes it, backing off while the sink is down.
//! Meanwhile new records wait in the bounded queue (overflow is counted as dropped there).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use to11_io::sink::RecordSink;
use to11_shared::record::RequestRecord;
use tokio::sync::mpsc;

use super::MeterStats;

/// Most records in one batch.
pub const MAX_BATCH: usize = 200;
/// How long a batch gathers records after its first one.
const GATHER: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Ships until the queue's senders are gone (the gateway stopped), then ships what is left.
pub async fn run(
    mut rx: mpsc::Receiver<RequestRecord>,
    sink: Arc<dyn RecordSink>,
    stats: Arc<MeterStats>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(first);
        let until = tokio::time::Instant::now() + GATHER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        ship(&*sink, &batch, &stats).await;
        batch.clear();
    }
}

/// Ships one batch, retrying with backoff until the sink takes it.
async fn ship(sink: &dyn RecordSink, batch: &[RequestRecord], stats: &MeterStats) {
    let mut wait = Duration::from_millis(100);
    loop {
        match sink.ship(batch).await {
            Ok(()) => {
                stats
                    .shipped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                if stats
                    .ship_failures
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(20)
                {
                    tracing::warn!(error = %e, records = batch.len(), "shipping request records failed; retrying");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF_MAX);
            }
        }
    }
}
