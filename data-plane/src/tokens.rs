//! Access tokens of Google service accounts. Each credential has a `GoogleSlot`, made when its
//! snapshot is prepared and carried over when the project's next snapshot is applied (so tokens
//! survive configuration changes). A request reads the slot's token without a lock; only a
//! refresh takes one, so that one exchange per account runs at a time (the others wait for it).
//! Tokens are refreshed five minutes before they expire; if a refresh fails while the old token
//! is still valid, the old token is used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwapOption;
use sha2::{Digest, Sha256};
use to11_io::outbound::{google_token, TokenError};
use to11_shared::google::ServiceAccount;

/// Tokens are refreshed this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

struct Token {
    /// `Bearer …`, marked sensitive.
    header: HeaderValue,
    expires: Instant,
}

pub struct GoogleSlot {
    /// Which service account (its email and key hashed): slots carry over by it.
    key: [u8; 32],
    account: ServiceAccount,
    token: ArcSwapOption<Token>,
    refresh: tokio::sync::Mutex<()>,
}

impl GoogleSlot {
    pub fn new(account: ServiceAccount) -> Self {
        let mut h = Sha256::new();
        h.update(account.client_email.as_bytes());
        h.update([0]);
        h.update(account.private_key.as_bytes());
        GoogleSlot {
            key: h.finalize().into(),
            account,
            token: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether two slots are for the same service account.
    pub fn same_account(&self, other: &GoogleSlot) -> bool {
        self.key == other.key
    }

    /// The token's header value if it is valid beyond `margin` from now.
    fn current(&self, margin: Duration) -> Option<HeaderValue> {
        let t = self.token.load();
        let t = t.as_ref()?;
        (t.expires > Instant::now() + margin).then(|| t.header.clone())
    }

    /// The access token last presented, whether or not it is still valid (to redact its echoes).
    pub fn last_token(&self) -> Option<String> {
        let t = self.token.load();
        let v = t.as_ref()?.header.to_str().ok()?;
        Some(to11_shared::redact::header_secret(v).to_string())
    }

    /// `Bearer <access token>` for this account: the cached token, or a new one.
    pub async fn authorization(
        &self,
        client: &awc::Client,
        token_url: &str,
        timeout: Duration,
    ) -> Result<HeaderValue, TokenError> {
        if let Some(h) = self.current(REFRESH_BEFORE) {
            return Ok(h);
        }
        let _one = self.refresh.lock().await;
        // Another request may have refreshed it while this one waited.
        if let Some(h) = self.current(REFRESH_BEFORE) {
            return Ok(h);
        }
        let now = Instant::now();
        match google_token(client, token_url, &self.account, timeout).await {
            Ok(t) => {
                let mut header = HeaderValue::from_str(&format!("Bearer {}", t.access_token))
                    .map_err(|_| {
                        TokenError::Failed("the access token is not a header value".into())
                    })?;
                header.set_sensitive(true);
                self.token.store(Some(Arc::new(Token {
                    header: header.clone(),
                    expires: now + Duration::from_secs(t.expires_in.max(60) as u64),
                })));
                Ok(header)
            }
            Err(e) => self.current(Duration::ZERO).ok_or(e),
        }
    }
}
