//! One checked call to a provider's admin surface: the credential presented in the provider's own
//! form, and every failure mapped to the one `ProbeError` a user can act on, from whichever shape
//! the provider answers with (OpenAI/Anthropic `error.message`, a bare `error` string, a top-level
//! `message`, Mistral's `detail`, Google's `error.status`/`details[].reason`, AWS's
//! `x-amzn-ErrorType`).

use awc::error::SendRequestError;
use awc::http::StatusCode;
use bytes::Bytes;
use to11_shared::catalog::AuthForm;
use to11_shared::model::CredentialSecret;
use to11_shared::redact::{header_secret, Scrubber};
use to11_shared::sigv4::{self, AwsCredentials};

use super::{ProbeError, ProbeTimeouts};

/// A credential ready to present on a probe.
pub enum Auth {
    None,
    /// One header (bearer, `x-goog-api-key`, `api-key`).
    Header(&'static str, String),
    /// Anthropic: `x-api-key` and `anthropic-version`.
    Anthropic(String),
    SigV4 {
        creds: AwsCredentials,
        region: String,
    },
}

impl Auth {
    /// The presentation of `secret` in `form`. Google service accounts are first exchanged for a
    /// token (see `google`), then presented as a bearer.
    pub fn new(form: AuthForm, secret: &CredentialSecret, region: &str) -> Auth {
        match secret {
            CredentialSecret::ApiKey { api_key } if api_key.is_empty() => Auth::None,
            CredentialSecret::ApiKey { api_key } if form == AuthForm::AnthropicKey => {
                Auth::Anthropic(api_key.clone())
            }
            CredentialSecret::ApiKey { api_key } => {
                let (name, value) = form.key_header(api_key);
                Auth::Header(name, value)
            }
            CredentialSecret::Aws {
                access_key_id,
                secret_access_key,
                session_token,
            } => Auth::SigV4 {
                creds: AwsCredentials {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    session_token: session_token.clone(),
                },
                region: region.to_string(),
            },
            CredentialSecret::GoogleServiceAccount { .. } => Auth::None,
        }
    }
}

/// Every secret presented on a call (and the stored key it came from), to redact echoes of. The
/// presentation is made from the stored secret (`Auth::new`), so AWS keys are found in it.
fn scrubber(auth: &Auth, secret: &CredentialSecret) -> Scrubber {
    let mut secrets: Vec<&str> = secret.api_key().into_iter().collect();
    match auth {
        Auth::None => {}
        Auth::Header(_, v) => secrets.push(header_secret(v)),
        Auth::Anthropic(k) => secrets.push(k),
        Auth::SigV4 { creds, .. } => secrets.extend(creds.secrets()),
    }
    Scrubber::new(secrets)
}

/// The provider's own error message, from whichever shape it uses; secrets redacted first, then
/// cut short (so a cut never keeps part of a secret the redaction would have found whole).
fn upstream_message(body: &[u8], scrubber: &Scrubber) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v
        .get("error")
        .and_then(|e| e.get("message").and_then(|m| m.as_str()).or(e.as_str()))
        .or_else(|| v.get("message").and_then(|m| m.as_str()))
        .or_else(|| v.get("Message").and_then(|m| m.as_str()))
        .or_else(|| v.get("detail").and_then(|m| m.as_str()))?;
    Some(scrubber.scrub_str(m).chars().take(300).collect())
}

/// AWS's error type (`x-amzn-ErrorType: UnrecognizedClientException:http://…`, or the body's
/// `__type`), or Google's `details[].reason`.
fn error_kind(headers: &awc::http::header::HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
    {
        return t.split(':').next().unwrap_or("").to_string();
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(t) = v.get("__type").and_then(|t| t.as_str()) {
        return t.rsplit('#').next().unwrap_or("").to_string();
    }
    v.pointer("/error/details")
        .and_then(|d| d.as_array())
        .and_then(|d| {
            d.iter()
                .find_map(|x| x.get("reason").and_then(|r| r.as_str()))
        })
        .unwrap_or("")
        .to_string()
}

/// What is sent: method, URL, an optional JSON body and the credential.
pub struct Call<'a> {
    pub method: &'static str,
    pub url: &'a str,
    pub body: Option<serde_json::Value>,
    pub auth: &'a Auth,
    /// Redacted from echoed messages.
    pub secret: &'a CredentialSecret,
}

/// Sends a call and maps every failure to the one `ProbeError` a user can act on, with every echo
/// of the credential (in the provider's message, or a URL that carries a key) redacted.
pub async fn checked(
    client: &awc::Client,
    c: Call<'_>,
    t: &ProbeTimeouts,
) -> Result<Bytes, ProbeError> {
    let scrubber = scrubber(c.auth, c.secret);
    sent(client, c, t, &scrubber)
        .await
        .map_err(|e| e.map_message(|m| scrubber.scrub_str(&m).into_owned()))
}

async fn sent(
    client: &awc::Client,
    c: Call<'_>,
    t: &ProbeTimeouts,
    scrubber: &Scrubber,
) -> Result<Bytes, ProbeError> {
    let url = c.url;
    let method =
        awc::http::Method::from_bytes(c.method.as_bytes()).unwrap_or(awc::http::Method::GET);
    let mut req = client
        .request(method, url)
        .timeout(t.total)
        .insert_header(("accept", "application/json"));
    let body: Vec<u8> = match &c.body {
        Some(b) => {
            req = req.insert_header(("content-type", "application/json"));
            serde_json::to_vec(b).unwrap_or_default()
        }
        None => Vec::new(),
    };
    match c.auth {
        Auth::None => {}
        Auth::Header(name, value) => req = req.insert_header((*name, value.as_str())),
        Auth::Anthropic(key) => {
            req = req
                .insert_header(("x-api-key", key.as_str()))
                .insert_header((
                    "anthropic-version",
                    to11_shared::upstream::ANTHROPIC_VERSION,
                ));
        }
        Auth::SigV4 { creds, region } => {
            let signed = sigv4::sign_url(
                c.method,
                url,
                c.body.is_some().then_some("application/json"),
                &body,
                creds,
                region,
                "bedrock",
                chrono::Utc::now().timestamp(),
            );
            for header in signed.headers() {
                req = req.insert_header(header);
            }
        }
    }
    let sent = if c.body.is_some() {
        req.send_body(body).await
    } else {
        req.send().await
    };
    let mut resp = sent.map_err(|e| match e {
        SendRequestError::Timeout => {
            ProbeError::Timeout(format!("{url} did not answer within {:?}", t.total))
        }
        SendRequestError::Connect(c) => ProbeError::Unreachable(format!("cannot reach {url}: {c}")),
        other => ProbeError::Unreachable(format!("request to {url} failed: {other}")),
    })?;
    let status = resp.status();
    let body = resp
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .map_err(|e| ProbeError::Unexpected(format!("reading the answer of {url}: {e}")))?;
    if status.is_success() {
        return Ok(body);
    }
    let message = upstream_message(&body, scrubber);
    let detail = message
        .as_deref()
        .map(|m| format!(" (provider says: {m})"))
        .unwrap_or_default();
    let lower = message.as_deref().unwrap_or("").to_ascii_lowercase();
    let kind = error_kind(resp.headers(), &body);
    let invalid =
        || ProbeError::InvalidCredential(format!("the provider rejected the credential{detail}"));
    Err(match status {
        StatusCode::UNAUTHORIZED => invalid(),
        // Gemini answers a bad key with 400 API_KEY_INVALID; xAI with 400 "Incorrect API key".
        StatusCode::BAD_REQUEST
            if kind == "API_KEY_INVALID" || lower.contains("api key") || lower.contains("api_key") =>
        {
            invalid()
        }
        // AWS: an unknown access key, a wrong secret or an expired session token.
        StatusCode::FORBIDDEN
            if matches!(
                kind.as_str(),
                "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" | "IncompleteSignatureException"
            ) =>
        {
            ProbeError::InvalidCredential(format!("AWS rejected the credentials ({kind}){detail}"))
        }
        StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => ProbeError::Permission(format!(
            "the credential is not allowed to do this (permission, region, enabled API or credits){detail}"
        )),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ProbeError::BadBaseUrl(format!(
            "{url} answered {status}: is the base URL (or project, region, resource) right?{detail}"
        )),
        StatusCode::TOO_MANY_REQUESTS => {
            ProbeError::RateLimited(format!("the provider is rate limiting this credential; try again shortly{detail}"))
        }
        s if s.is_redirection() => ProbeError::BadBaseUrl(format!(
            "{url} answered with a redirect ({s}); redirects are not followed, give the final base URL"
        )),
        s => ProbeError::Unexpected(format!("{url} answered {s}{detail}")),
    })
}

/// A probe body that is not the expected listing: most often a base URL that points elsewhere.
pub fn bad_shape(url: &str, what: &str) -> ProbeError {
    ProbeError::BadBaseUrl(format!(
        "{url} did not answer with {what}; is the base URL right?"
    ))
}

/// The query-string form of a value (page tokens and cursors).
pub fn q(v: &str) -> String {
    sigv4::uri_encode(v, false)
}
