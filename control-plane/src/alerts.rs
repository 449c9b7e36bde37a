//! Budget alerts to the projects' webhooks. Replicas record an event when settled spend crosses a
//! budget's alert threshold or the budget itself (`to11_io::counters`, once per crossing); each
//! control plane takes events from the store as one consumer of a group, so an event goes to one
//! of them, and posts it to the project's webhook: signed (`x-to11-signature`, see
//! `to11_shared::limits::webhook_signature`), through the SSRF-guarded outbound client, retried
//! with backoff, acknowledged once delivered or given up on. An event a control plane took and
//! never acknowledged (it stopped) is taken over by another two minutes later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use to11_io::counters::CounterStore;
use to11_io::outbound as net;
use to11_shared::crypto::Keyring;
use to11_shared::model::alert_webhook_owner;

use crate::actors::registry::ReadModel;

/// Delivery attempts per event (waits of 1, 2, 4 and 8 s between them).
const ATTEMPTS: u32 = 5;

#[derive(Default)]
pub struct AlertStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Deliverer {
    pub counters: Arc<dyn CounterStore>,
    pub model: ReadModel,
    pub keyring: Keyring,
    pub allow_private: bool,
    pub stats: Arc<AlertStats>,
}

impl Deliverer {
    /// Runs on the actix runtime until the process stops.
    pub async fn run(self) {
        let me = Arc::new(self);
        let consumer = format!("cp-{}-{:08x}", std::process::id(), rand::random::<u32>());
        let client = net::client(&net::ClientOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_connections: 16,
            allow_private: me.allow_private,
        });
        loop {
            let claimed = me
                .counters
                .claim_events(&consumer, 50, Duration::from_secs(5))
                .await;
            match claimed {
                Ok(events) => {
                    for (id, event) in events {
                        let (me, client) = (me.clone(), client.clone());
                        actix_rt::spawn(async move {
                            me.deliver(&client, &event).await;
                            if let Err(e) = me.counters.ack_events(&[id]).await {
                                tracing::warn!(error = %e, "budget alert not acknowledged; it will be sent again");
                            }
                        });
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "budget alerts cannot be read now");
                    actix_rt::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Posts one event to its project's webhook, if it has one.
    async fn deliver(&self, client: &awc::Client, event: &str) {
        let Some(project) = serde_json::from_str::<serde_json::Value>(event)
            .ok()
            .and_then(|v| v["project"].as_str().map(str::to_string))
        else {
            return;
        };
        let Some(state) = self.model.project(&project) else {
            return;
        };
        let Some(hook) = &state.alert_webhook else {
            return;
        };
        let secret = match self
            .keyring
            .open(&alert_webhook_owner(&state.project.id), &hook.secret)
        {
            Ok(s) => String::from_utf8_lossy(&s).to_string(),
            Err(e) => {
                tracing::warn!(error = %e, project = %state.project.slug, "the alert webhook's secret does not open");
                return;
            }
        };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                actix_rt::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            let now = chrono::Utc::now().timestamp();
            let signature = to11_shared::limits::webhook_signature(&secret, now, event.as_bytes());
            let sent = client
                .post(&hook.url)
                .insert_header(("content-type", "application/json"))
                .insert_header(("x-to11-signature", signature))
                .send_body(event.to_string())
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(r) => tracing::info!(
                    status = r.status().as_u16(),
                    attempt,
                    "alert webhook refused the call"
                ),
                Err(e) => tracing::info!(error = %e, attempt, "alert webhook unreachable"),
            }
        }
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(project = %state.project.slug, "budget alert not delivered after {ATTEMPTS} attempts");
    }
}
