//! Shipping records: the workers' batches taken off the queue (joined while more are waiting,
//! up to `MAX_BATCH` records), each shipped until its sink takes it, backing off while the sink is
//! down. Meanwhile new batches wait in the bounded queue (overflow is counted as dropped there).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use to11_io::sink::RecordSink;
use to11_shared::record::Batch;
use tokio::sync::mpsc;

use super::{MeterStats, Recorder, MAX_BATCH};

const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Ships until the queue's senders are gone (the gateway stopped), then ships what is left.
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Batch>,
    sink: Arc<dyn RecordSink>,
    recorder: Arc<Recorder>,
) {
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.append(&more),
                Err(_) => break,
            }
        }
        recorder.taken(batch.len());
        batch.seal();
        ship(&*sink, &batch, &recorder.stats).await;
    }
}

/// Ships one batch, retrying with backoff until the sink takes it.
async fn ship(sink: &dyn RecordSink, batch: &Batch, stats: &MeterStats) {
    let mut wait = Duration::from_millis(100);
    loop {
        match sink.ship(batch).await {
            Ok(()) => {
                if let Some(first) = batch.first_time() {
                    let age = chrono::Utc::now() - first;
                    let ms = u64::try_from(age.num_milliseconds()).unwrap_or(0);
                    stats.lag_ms.store(ms, Ordering::Relaxed);
                }
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
