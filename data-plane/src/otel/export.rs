//! The exporter: a thread of its own with its own actix system (awc is not `Send`, and nothing
//! here may run on a worker). Every `OTEL_BSP_SCHEDULE_DELAY`, or as soon as the queue is half
//! full, it takes the finished traces off the bounded queue in batches (up to
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans), encoding each as OTLP/protobuf and POSTing it with the configured headers
//! and timeout. One export at a time: while the collector is slow the queue fills and what
//! overflows is dropped and counted; a failed export is counted and its batch dropped (never
//! retried: a dead collector must not make the gateway hold spans).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use to11_shared::otel::encode::{encode_batch, Scope};
use to11_shared::otel::TraceSettings;
use tokio::sync::mpsc;

use super::{TraceStats, Traced};

/// Starts the thread; it ends once every sender is gone, after exporting what is left.
pub fn spawn(
    settings: TraceSettings,
    rx: mpsc::Receiver<Box<Traced>>,
    wake: Wake,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("to11-otlp".into())
        .spawn(move || {
            actix_rt::System::new().block_on(run(settings, rx, wake));
        })
        .map(|_| ())
}

/// What the exporter shares with the tracer: its counters, and the signal that the queue is half
/// full.
#[derive(Clone)]
pub struct Wake {
    pub stats: Arc<TraceStats>,
    pub half_full: Arc<tokio::sync::Notify>,
}

async fn run(settings: TraceSettings, mut rx: mpsc::Receiver<Box<Traced>>, wake: Wake) {
    let client = to11_io::outbound::client(&to11_io::outbound::ClientOptions {
        connect_timeout: settings.timeout,
        timeout: settings.timeout,
        max_connections: 4,
        // The collector is the operator's own address (often local), not a tenant's URL.
        allow_private: true,
    });
    let scope = Scope {
        name: "to11-data-plane",
        version: env!("CARGO_PKG_VERSION"),
    };
    let stats = &wake.stats;
    let mut batch: Vec<Box<Traced>> = Vec::new();
    let mut open = true;
    while open {
        // No waker is registered on the queue while this sleeps, so a request's hand-over
        // wakes nothing; a queue half full (`Tracer::offer`) ends the wait early.
        tokio::select! {
            _ = tokio::time::sleep(settings.delay) => {}
            _ = wake.half_full.notified() => {}
        }
        loop {
            let mut spans = 0;
            while spans < settings.max_batch {
                match rx.try_recv() {
                    Ok(t) => {
                        spans += t.trace.spans.len();
                        batch.push(t);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if batch.is_empty() {
                break;
            }
            let encoded = encode_batch(&settings.resource, &scope, batch.iter().map(|t| &t.trace));
            batch.clear();
            // The encoded bytes become the body as they are (no copy).
            let body = bytes::Bytes::from(encoded.buf).slice(encoded.start..);
            export(&client, &settings, body, spans as u64, stats).await;
            if spans < settings.max_batch {
                break;
            }
        }
    }
}

/// Sends one encoded batch of `n` spans and counts the outcome.
async fn export(
    client: &awc::Client,
    settings: &TraceSettings,
    body: bytes::Bytes,
    n: u64,
    stats: &TraceStats,
) {
    match send(client, settings, body).await {
        Ok(()) => {
            stats.exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(why) => {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
            if stats
                .export_failures
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(20)
            {
                tracing::warn!(endpoint = %settings.endpoint, error = %why, spans = n, "exporting traces failed; the batch is dropped");
            }
        }
    }
}

async fn send(client: &awc::Client, s: &TraceSettings, body: bytes::Bytes) -> Result<(), String> {
    let mut req = client
        .post(s.endpoint.as_str())
        .timeout(s.timeout)
        .insert_header(("content-type", "application/x-protobuf"));
    for (k, v) in &s.headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = req.send_body(body).await.map_err(|e| e.to_string())?;
    // The answer (an ExportTraceServiceResponse, perhaps a partial success) is read and dropped,
    // so the connection can be reused.
    let _ = resp.body().limit(64 * 1024).await;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "the collector answered HTTP {}",
            resp.status().as_u16()
        ))
    }
}
