//! Presenting a credential on an attempt, in its provider's form.

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use to11_shared::redact::{header_secret, Scrubber};
use to11_shared::sigv4;
use to11_shared::ErrorCode;

use crate::error::GatewayError;
use crate::state::UpstreamAuth;
use crate::Ctx;

/// Puts the credential on an attempt in its provider's form: the client's own key, or the stored
/// credential (a header, a SigV4 signature over this exact request, or a Google access token).
pub(super) async fn present(
    h: &mut awc::http::header::HeaderMap,
    byok: Option<&(HeaderName, HeaderValue)>,
    stored: Option<&UpstreamAuth>,
    url: &str,
    body: &[u8],
    ctx: &Ctx,
    client: &awc::Client,
) -> Result<(), GatewayError> {
    if let Some((name, value)) = byok {
        h.insert(name.clone(), value.clone());
        return Ok(());
    }
    match stored {
        None | Some(UpstreamAuth::None) => {}
        Some(UpstreamAuth::Header(name, value)) => {
            h.insert(name.clone(), value.clone());
        }
        Some(UpstreamAuth::SigV4 { creds, region }) => {
            let content_type = h
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let signed = sigv4::sign_url(
                "POST",
                url,
                content_type.as_deref(),
                body,
                creds,
                region,
                "bedrock",
                chrono::Utc::now().timestamp(),
            );
            for (name, value) in signed.headers() {
                if let Ok(mut v) = HeaderValue::from_str(&value) {
                    v.set_sensitive(true);
                    h.insert(HeaderName::from_static(name), v);
                }
            }
        }
        Some(UpstreamAuth::Google(slot)) => {
            let header = slot
                .authorization(
                    client,
                    &ctx.settings.google_token_url,
                    ctx.settings.upstream_connect_timeout,
                )
                .await
                .map_err(|e| {
                    let m = match e {
                        to11_io::outbound::TokenError::Refused(m)
                        | to11_io::outbound::TokenError::Failed(m) => m,
                    };
                    GatewayError::new(
                        ErrorCode::UpstreamAuth,
                        format!("could not get a Google access token: {m}"),
                    )
                })?;
            h.insert(actix_web::http::header::AUTHORIZATION, header);
        }
    }
    Ok(())
}

/// A scrubber for what an attempt presented: the client's own key, or the stored credential in
/// every part an upstream could echo (the key, AWS's key id and session token — and its secret,
/// though it is never sent — or the Google access token). Built only for error answers.
pub(super) fn scrubber(
    byok: Option<&(HeaderName, HeaderValue)>,
    stored: Option<&UpstreamAuth>,
) -> Scrubber {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(v) = byok.and_then(|(_, v)| v.to_str().ok()) {
        secrets.push(header_secret(v).to_string());
    }
    match stored {
        Some(UpstreamAuth::Header(_, v)) => {
            if let Ok(v) = v.to_str() {
                secrets.push(header_secret(v).to_string());
            }
        }
        Some(UpstreamAuth::SigV4 { creds, .. }) => {
            secrets.extend(creds.secrets().map(str::to_string))
        }
        Some(UpstreamAuth::Google(slot)) => secrets.extend(slot.last_token()),
        None | Some(UpstreamAuth::None) => {}
    }
    Scrubber::new(secrets.iter().map(String::as_str))
}
