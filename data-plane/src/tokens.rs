//! Access tokens of Google service accounts, shared by all workers: minted on first use, reused
//! until five minutes before they expire, then minted again by the first request that needs one
//! (one exchange per account at a time; the others wait for it). If a refresh fails while the old
//! token is still valid, the old token is used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use to11_shared::google::ServiceAccount;

use to11_io::outbound::{google_token, TokenError};

/// Tokens are refreshed this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

#[derive(Default)]
pub struct GoogleTokens {
    slots: Mutex<HashMap<[u8; 32], Slot>>,
}

impl GoogleTokens {
    fn slot(&self, sa: &ServiceAccount) -> Slot {
        let mut h = Sha256::new();
        h.update(sa.client_email.as_bytes());
        h.update([0]);
        h.update(sa.private_key.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key).or_default().clone()
    }

    /// A valid access token for `sa`.
    pub async fn get(
        &self,
        client: &awc::Client,
        token_url: &str,
        sa: &ServiceAccount,
        timeout: Duration,
    ) -> Result<String, TokenError> {
        let slot = self.slot(sa);
        let mut held = slot.lock().await;
        let now = Instant::now();
        if let Some(t) = held.as_ref() {
            if t.expires > now + REFRESH_BEFORE {
                return Ok(t.value.clone());
            }
        }
        match google_token(client, token_url, sa, timeout).await {
            Ok(t) => {
                let token = Token {
                    value: t.access_token,
                    expires: now + Duration::from_secs(t.expires_in.max(60) as u64),
                };
                let value = token.value.clone();
                *held = Some(token);
                Ok(value)
            }
            Err(e) => match held.as_ref() {
                Some(old) if old.expires > Instant::now() => Ok(old.value.clone()),
                _ => Err(e),
            },
        }
    }
}
