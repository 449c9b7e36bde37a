//! The answer on its way to the client: the SPEC §4 headers saying how it was served, streaming
//! it as it arrives (guarded, and translated chunk by chunk where the target speaks another
//! format), and translated answers read whole.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use to11_shared::resolve::Layer;
use to11_shared::translate::{anthropic, bedrock, gemini, messages_in};
use to11_shared::upstream::ResponseEdit;
use to11_shared::ErrorCode;

use crate::error::GatewayError;

pub(super) fn skip_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-connection"
            | "set-cookie"
    )
}

/// What a response says about how it was served.
pub(super) struct Served<'a> {
    pub request_id: &'a str,
    pub layer: Layer,
    pub function: Option<&'a str>,
    pub route: Option<&'a str>,
    pub provider: &'a str,
    pub model: &'a str,
    pub version: u64,
    pub attempts: u32,
}

impl Served<'_> {
    /// The SPEC §4 headers: request id, layer, route or function, provider, upstream model,
    /// attempts and the configuration version.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(8);
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        put("x-to11-request-id", self.request_id);
        put("x-to11-layer", self.layer.as_str());
        if let Some(f) = self.function {
            put("x-to11-function", f);
        }
        if let Some(r) = self.route {
            put("x-to11-route", r);
        }
        put("x-to11-provider", self.provider);
        put("x-to11-upstream-model", self.model);
        put("x-to11-attempts", &self.attempts.to_string());
        put("x-to11-config-version", &self.version.to_string());
        h
    }
}

/// Turns a target's error body (with its status) into the client's error shape.
pub(super) type ErrorTranslation = fn(u16, &[u8]) -> Vec<u8>;

/// How a translated answer's errors reach the client; `None` for answers that are not translated.
pub(super) fn error_translation(response: ResponseEdit) -> Option<ErrorTranslation> {
    Some(match response {
        ResponseEdit::AnthropicToOpenAi | ResponseEdit::EventStreamToOpenAi => {
            |_, b| anthropic::error(b)
        }
        ResponseEdit::GeminiToOpenAi => |_, b| gemini::error(b),
        ResponseEdit::ConverseToOpenAi => |_, b| bedrock::error(b),
        ResponseEdit::OpenAiToMessages => messages_in::error,
        ResponseEdit::GeminiToMessages => |s, b| messages_in::error(s, &gemini::error(b)),
        ResponseEdit::ConverseToMessages => |s, b| messages_in::error(s, &bedrock::error(b)),
        ResponseEdit::Pass | ResponseEdit::EventStreamToAnthropicSse => return None,
    })
}

/// Streams an upstream response to the client as it arrives.
pub(super) fn stream<S>(
    upstream: awc::ClientResponse<S>,
    meta: &Served<'_>,
    idle: Duration,
    end_markers: &'static [&'static [u8]],
    dialect: crate::error::Dialect,
    response: ResponseEdit,
    asked: anthropic::Asked,
) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>>
        + Unpin
        + 'static,
{
    let mut out = HttpResponse::build(
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    let length = upstream
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let converted = response != ResponseEdit::Pass && upstream.status().is_success();
    for (name, value) in upstream.headers() {
        let replaced = converted && name == CONTENT_TYPE;
        if !skip_response_header(name) && !replaced {
            out.append_header((name.clone(), value.clone()));
        }
    }
    for (name, value) in meta.headers() {
        out.insert_header((name, value));
    }
    if converted {
        use super::guard::{Guarded, ANTHROPIC_END, OPENAI_END};
        use super::transform::{EventStreamToSse, Translated};
        use crate::error::Dialect;
        let now = chrono::Utc::now().timestamp();
        out.insert_header((CONTENT_TYPE, "text/event-stream"));
        return match response {
            ResponseEdit::EventStreamToAnthropicSse => out.streaming(
                Guarded::new(EventStreamToSse::new(upstream), idle, true)
                    .expect_end(ANTHROPIC_END)
                    .dialect(Dialect::Anthropic),
            ),
            ResponseEdit::AnthropicToOpenAi => out.streaming(
                Guarded::new(
                    Translated::new(upstream, anthropic::Stream::new(asked, now)),
                    idle,
                    true,
                )
                .expect_end(OPENAI_END),
            ),
            ResponseEdit::OpenAiToMessages => out.streaming(
                Guarded::new(
                    Translated::new(upstream, messages_in::Stream::default()),
                    idle,
                    true,
                )
                .expect_end(ANTHROPIC_END)
                .dialect(Dialect::Anthropic),
            ),
            ResponseEdit::GeminiToMessages => out.streaming(
                Guarded::new(
                    Translated::new(
                        Translated::new(upstream, gemini::Stream::new(asked, meta.model, now)),
                        messages_in::Stream::default(),
                    ),
                    idle,
                    true,
                )
                .expect_end(ANTHROPIC_END)
                .dialect(Dialect::Anthropic),
            ),
            ResponseEdit::ConverseToMessages => out.streaming(
                Guarded::new(
                    Translated::new(
                        super::transform::ConverseToOpenAi::new(
                            upstream,
                            bedrock::Stream::new(asked, meta.model, now),
                        ),
                        messages_in::Stream::default(),
                    ),
                    idle,
                    true,
                )
                .expect_end(ANTHROPIC_END)
                .dialect(Dialect::Anthropic),
            ),
            ResponseEdit::ConverseToOpenAi => out.streaming(
                Guarded::new(
                    super::transform::ConverseToOpenAi::new(
                        upstream,
                        bedrock::Stream::new(asked, meta.model, now),
                    ),
                    idle,
                    true,
                )
                .expect_end(OPENAI_END),
            ),
            ResponseEdit::GeminiToOpenAi => out.streaming(
                Guarded::new(
                    Translated::new(upstream, gemini::Stream::new(asked, meta.model, now)),
                    idle,
                    true,
                )
                .expect_end(OPENAI_END),
            ),
            _ => out.streaming(
                Guarded::new(
                    Translated::new(
                        EventStreamToSse::new(upstream),
                        anthropic::Stream::new(asked, now),
                    ),
                    idle,
                    true,
                )
                .expect_end(OPENAI_END),
            ),
        };
    }
    let sse = upstream
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = super::guard::Guarded::new(upstream, idle, sse)
        .expect_end(end_markers)
        .dialect(dialect);
    match length {
        Some(n) => out.body(SizedStream::new(n, body)),
        None => out.streaming(body),
    }
}

/// A translated answer that is not a stream (or an error): read whole (bounded in size and time),
/// then delivered in OpenAI's format.
pub(super) async fn translate_whole<S>(
    mut upstream: awc::ClientResponse<S>,
    meta: &Served<'_>,
    idle: Duration,
    response: ResponseEdit,
    dialect: crate::error::Dialect,
    asked: anthropic::Asked,
) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = upstream.status();
    if let Some(coding) = upstream
        .headers()
        .get(actix_web::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.eq_ignore_ascii_case("identity"))
    {
        return GatewayError::new(
            ErrorCode::UpstreamFailure,
            format!(
                "provider '{}' answered with content-encoding '{coding}', though the gateway asked for none",
                meta.provider
            ),
        )
        .render(dialect);
    }
    let body = match tokio::time::timeout(idle, upstream.body().limit(MAX_TRANSLATED_BODY)).await {
        Ok(Ok(b)) => b,
        _ => {
            return GatewayError::new(
                ErrorCode::UpstreamFailure,
                format!("provider '{}' did not deliver its answer", meta.provider),
            )
            .render(dialect)
        }
    };
    let now = chrono::Utc::now().timestamp();
    let out = if status.is_success() {
        let translated = match response {
            ResponseEdit::GeminiToOpenAi => gemini::response(&body, meta.model, now),
            ResponseEdit::ConverseToOpenAi => bedrock::response(&body, meta.model, now, asked),
            ResponseEdit::OpenAiToMessages => messages_in::response(&body),
            ResponseEdit::GeminiToMessages => gemini::response(&body, meta.model, now)
                .and_then(|chat| messages_in::response(&chat)),
            ResponseEdit::ConverseToMessages => bedrock::response(&body, meta.model, now, asked)
                .and_then(|chat| messages_in::response(&chat)),
            _ => anthropic::response(&body, now, asked),
        };
        match translated {
            Ok(b) => b,
            Err(m) => return GatewayError::new(ErrorCode::UpstreamFailure, m).render(dialect),
        }
    } else {
        match error_translation(response) {
            Some(to_client) => to_client(status.as_u16(), &body),
            None => body.to_vec(),
        }
    };
    let mut r = HttpResponse::build(
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    for (name, value) in meta.headers() {
        r.insert_header((name, value));
    }
    r.content_type("application/json").body(out)
}

/// Largest answer translated whole.
const MAX_TRANSLATED_BODY: usize = 32 * 1024 * 1024;
