//! Presenting a credential on an attempt, in its provider's form.

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
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
