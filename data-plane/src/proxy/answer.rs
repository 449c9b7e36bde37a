//! The answer on its way to the client: the SPEC §4 headers saying how it was served, streaming
//! it as it arrives (guarded, and converted chunk by chunk where the target speaks another
//! format), translated answers read whole, and failures delivered in the client's shape.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::dev::ResponseHead;
use actix_web::http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;
use to11_shared::resolve::Layer;
use to11_shared::translate::{Answer, Translation};
use to11_shared::ErrorCode;

use super::attempt::{Answered, Failure};
use super::guard::Guarded;
use super::prepare::Prepared;
use super::transform::Converted;
use crate::error::{Dialect, GatewayError};
use crate::metering::{Draft, Metered, Outcome};
use crate::metrics::Tally;
use to11_shared::translate::Framing;
use to11_shared::usage::meter::Body;
use to11_shared::usage::{from_bedrock_headers, Meter, Usage, UsageFormat, UsageStrip};

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
pub struct Served<'a> {
    pub request_id: &'a str,
    pub layer: Layer,
    pub function: Option<&'a str>,
    pub route: Option<&'a str>,
    /// Who served it: its slug, its catalog kind (for records; not a header), its trace
    /// attributes.
    pub provider: &'a to11_shared::resolve::CompiledProvider,
    pub model: &'a str,
    pub version: u64,
    pub attempts: u32,
}

impl Served<'_> {
    /// Writes the SPEC §4 headers into `head`: request id, layer, route or function, provider,
    /// upstream model, attempts and the configuration version, as header lines the encoder
    /// copies after the map's headers (actix-http's eighth patch), into the head's own buffer
    /// (a pooled head's keeps its room: no allocation). This runs on every answer; as a map
    /// insert, a `HeaderValue` and an encode per header it cost some 2,700 instructions per
    /// request (callgrind). A name from the configuration or the catalog that is not visible
    /// ASCII (a model or route name can be anything) leaves its header out, as a `HeaderValue`
    /// refuses it; the request id (the gateway's, hexadecimal and hyphens), the layer and the
    /// numbers always are. The head's map must hold no `x-to11-` header (`headers_into` drops an
    /// upstream's). Written again, the lines are replaced.
    pub fn put(&self, head: &mut ResponseHead) {
        let named = [
            ("x-to11-function: ", self.function.unwrap_or_default()),
            ("x-to11-route: ", self.route.unwrap_or_default()),
            ("x-to11-provider: ", self.provider.slug.as_str()),
            ("x-to11-upstream-model: ", self.model),
        ];
        let out = head.header_lines_mut();
        out.clear();
        out.reserve(
            200 + self.request_id.len() + named.iter().map(|(_, v)| v.len()).sum::<usize>(),
        );
        let mut line = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line("x-to11-request-id: ", self.request_id);
        line("x-to11-layer: ", self.layer.as_str());
        for (name, value) in named {
            if !value.is_empty() && visible(value.as_bytes()) {
                line(name, value);
            }
        }
        line(
            "x-to11-attempts: ",
            itoa::Buffer::new().format(self.attempts),
        );
        line(
            "x-to11-config-version: ",
            itoa::Buffer::new().format(self.version),
        );
    }

    /// `response` with the SPEC §4 headers.
    pub fn on(&self, mut response: HttpResponse) -> HttpResponse {
        self.put(response.head_mut());
        response
    }
}

/// Whether `v` is what `HeaderValue::from_str` takes: visible ASCII and tabs. Eight bytes at a
/// time: a word with no byte below 0x20 and none at or above 0x7f passes at once (the tests
/// can flag a good byte after a bad one, never miss a bad one); a flagged word is checked byte
/// by byte.
fn visible(v: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let ok = |b: &u8| (0x20..0x7f).contains(b) || *b == b'\t';
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let low = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let high = (x | x.wrapping_add(ONES)) & HIGH;
        if low | high != 0 && !w.iter().all(ok) {
            return false;
        }
    }
    words.remainder().iter().all(ok)
}

#[cfg(test)]
impl<'a> Served<'a> {
    /// An OpenAI provider `main` for tests (`example`).
    pub(crate) fn example_provider() -> to11_shared::resolve::CompiledProvider {
        to11_shared::resolve::CompiledProvider::new(
            "main",
            "openai",
            "https://api.openai.com/v1",
            vec![],
        )
    }

    /// `gpt-4o` served by `provider` at the first attempt, passed through, configuration 7.
    pub(crate) fn example(provider: &'a to11_shared::resolve::CompiledProvider) -> Served<'a> {
        Served {
            request_id: "req-1",
            layer: Layer::Passthrough,
            function: None,
            route: None,
            provider,
            model: "gpt-4o",
            version: 7,
            attempts: 1,
        }
    }
}

/// How an answer reaches the client, whatever target it came from.
pub(super) struct Answering {
    /// Longest gap between chunks of a streamed answer.
    pub idle: Duration,
    /// The called API's error shape, for terminal events and gateway errors.
    pub dialect: Dialect,
    /// Events one of which must end a stream in the called API (none expected: `None`).
    pub end: Option<&'static super::guard::EndMarkers>,
    pub streaming: bool,
    /// The replica's drain: an answer still open at its timeout is ended.
    pub drain: Option<std::sync::Arc<crate::drain::Drain>>,
}

/// The upstream's answer on its way to the client: read whole and translated, converted chunk by
/// chunk, or streamed as it comes.
pub(super) async fn deliver<B>(
    upstream: Answered<B>,
    prepared: &Prepared,
    served: &Served<'_>,
    how: &Answering,
    draft: Option<Draft>,
    tally: Option<Tally>,
) -> HttpResponse
where
    B: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    // Error answers never come here: the attempt loop reads them whole and scrubs them
    // (`failed` delivers them). Only a translated answer is written by the gateway, and only it
    // reads the clock for its `created`.
    let answer = || Answer {
        model: served.model,
        created: chrono::Utc::now().timestamp(),
        asked: prepared.asked,
    };
    match &prepared.translation {
        Some(t) if !t.answers_pass() && !how.streaming => {
            let r = whole(upstream, t, &answer(), prepared, served, how, draft).await;
            if let Some(t) = tally {
                t.end(r.status().as_u16());
            }
            r
        }
        Some(t) if t.converts_streams() => {
            let mut out = HttpResponse::build(upstream.status);
            dropped(&mut out, prepared);
            out.insert_header((CONTENT_TYPE, "text/event-stream"));
            let mut converter = t.stream(&answer());
            if let Some(d) = &draft {
                converter = converter.with_meter(meter(prepared, Body::Stream(t.framing), d));
            }
            let status = upstream.status.as_u16();
            let mut r = out.streaming(
                Guarded::new(
                    Converted::new(upstream.body, converter, draft.map(|d| (d, status))),
                    how.idle,
                    true,
                )
                .expect_end(how.end)
                .dialect(how.dialect)
                .drain(how.drain.as_ref().map(|d| d.watch()))
                .tally(tally),
            );
            headers_into(r.head_mut(), upstream.headers, served, true);
            r
        }
        _ => pass(upstream, prepared, served, how, draft, tally),
    }
}

/// How a passed-through answer's body is laid out, for its meter.
fn body_kind<B>(upstream: &Answered<B>, prepared: &Prepared) -> Body {
    let content_type = upstream
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("text/event-stream") {
        Body::Stream(Framing::Sse)
    } else if content_type.starts_with("application/vnd.amazon.eventstream") {
        Body::Stream(match prepared.usage {
            UsageFormat::Converse => Framing::ConverseEvents,
            _ => Framing::AnthropicChunks,
        })
    } else {
        Body::Json
    }
}

/// Bedrock InvokeModel's usage headers (only a model that is not Claude needs them: Claude's
/// answers carry their usage).
fn header_usage<B>(upstream: &Answered<B>, prepared: &Prepared) -> Option<Usage> {
    const INPUT: HeaderName = HeaderName::from_static("x-amzn-bedrock-input-token-count");
    const OUTPUT: HeaderName = HeaderName::from_static("x-amzn-bedrock-output-token-count");
    if prepared.usage != UsageFormat::BedrockInvoke {
        return None;
    }
    let h = |n: &HeaderName| upstream.headers.get(n).and_then(|v| v.to_str().ok());
    from_bedrock_headers(h(&INPUT), h(&OUTPUT))
}

/// The meter of an answer: its usage, and its finish reasons when the request is traced.
fn meter(prepared: &Prepared, body: Body, draft: &Draft) -> Meter {
    let m = Meter::new(prepared.usage, body);
    if draft.traced() {
        m.with_finish()
    } else {
        m
    }
}

/// `x-to11-dropped`: the request hints the translation dropped (the target has no equivalent).
fn dropped(out: &mut HttpResponseBuilder, prepared: &Prepared) {
    const DROPPED: HeaderName = HeaderName::from_static("x-to11-dropped");
    let d = prepared.asked.dropped;
    if !d.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&d.names()) {
            out.insert_header((DROPPED, v));
        }
    }
}

/// The answer's headers, set once its body is: the upstream's own map, moved rather than copied
/// header by header (a provider's answer carries 10–20), without the hop-by-hop ones and, when
/// `replaced`, its type and length; what the builder put in `h` (`streaming`'s default
/// `application/octet-stream`, a converted stream's type, `x-to11-dropped`) stays where the
/// upstream has no header of its name; then the served-by headers.
fn headers_into(
    head: &mut ResponseHead,
    mut upstream: HeaderMap,
    served: &Served<'_>,
    replaced: bool,
) {
    upstream.retain(|name, _| {
        let replaced = replaced && (name == CONTENT_TYPE || name == CONTENT_LENGTH);
        // The upstream's own served-by headers (another to11 in front of it) give way to ours.
        let ours = name.as_str().starts_with("x-to11-");
        !(skip_response_header(name) || replaced || ours)
    });
    let h = &mut head.headers;
    let mut built = std::mem::replace(h, upstream);
    // A drained name comes with its first value only; `kept` is the name of the values that follow.
    let mut kept: Option<HeaderName> = None;
    for (name, value) in built.drain() {
        if let Some(name) = name {
            kept = (!h.contains_key(&name)).then_some(name);
        }
        if let Some(name) = &kept {
            h.append(name.clone(), value);
        }
    }
    served.put(head);
}

/// Streams an upstream answer to the client as it arrives, guarded (and metered, when there is
/// a record to finish).
fn pass<B>(
    upstream: Answered<B>,
    prepared: &Prepared,
    served: &Served<'_>,
    how: &Answering,
    draft: Option<Draft>,
    tally: Option<Tally>,
) -> HttpResponse
where
    B: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let Some(draft) = draft else {
        return pass_as(upstream, served, how, tally, |b| b);
    };
    let kind = body_kind(&upstream, prepared);
    let strip =
        (prepared.strip_usage && kind == Body::Stream(Framing::Sse)).then(UsageStrip::default);
    let fallback = header_usage(&upstream, prepared);
    let status = upstream.status.as_u16();
    let meter = (prepared.usage, kind, draft.traced());
    pass_as(upstream, served, how, tally, move |b| {
        Metered::new(b, meter, strip, draft, status, fallback)
    })
}

/// `pass` with the body wrapped by `wrap`.
fn pass_as<B, W>(
    upstream: Answered<B>,
    served: &Served<'_>,
    how: &Answering,
    tally: Option<Tally>,
    wrap: impl FnOnce(B) -> W,
) -> HttpResponse
where
    W: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let length = upstream
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let sse = upstream
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = Guarded::new(wrap(upstream.body), how.idle, sse)
        .expect_end(how.end)
        .dialect(how.dialect)
        .drain(how.drain.as_ref().map(|d| d.watch()))
        .tally(tally);
    let mut out = HttpResponse::build(upstream.status);
    let mut r = match length {
        Some(n) => out.body(SizedStream::new(n, body)),
        None => out.streaming(body),
    };
    headers_into(r.head_mut(), upstream.headers, served, false);
    r
}

/// A translated answer that is not a stream: read whole (bounded in size and time), then
/// delivered in the client's format.
async fn whole<B>(
    mut upstream: Answered<B>,
    t: &Translation,
    answer: &Answer<'_>,
    prepared: &Prepared,
    served: &Served<'_>,
    how: &Answering,
    draft: Option<Draft>,
) -> HttpResponse
where
    B: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let fail = |message: String| {
        GatewayError::new(ErrorCode::UpstreamFailure, message).render(how.dialect)
    };
    if let Some(coding) = upstream
        .headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.eq_ignore_ascii_case("identity"))
    {
        return fail(format!(
            "provider '{}' answered with content-encoding '{coding}', though the gateway asked for none",
            served.provider.slug
        ));
    }
    let Ok(Some(body)) = tokio::time::timeout(
        how.idle,
        read_limited(&mut upstream.body, MAX_TRANSLATED_BODY),
    )
    .await
    else {
        return fail(format!(
            "provider '{}' did not deliver its answer",
            served.provider.slug
        ));
    };
    let out = {
        if let Some(d) = draft {
            let mut meter = meter(prepared, Body::Json, &d);
            meter.push(&body);
            d.finish(
                upstream.status.as_u16(),
                Outcome {
                    reported: meter.usage().or_else(|| header_usage(&upstream, prepared)),
                    chunks: 0,
                    answer_bytes: body.len() as u64,
                    cut: false,
                    finish: meter.take_finish_reasons(),
                },
            );
        }
        match t.answer(&body, answer) {
            Ok(b) => b,
            Err(e) => return fail(e.to_string()),
        }
    };
    let mut r = HttpResponse::build(upstream.status);
    dropped(&mut r, prepared);
    served.on(r.content_type("application/json").body(out))
}

/// A body read whole; `None` if it fails or passes `limit`.
async fn read_limited<B>(body: &mut B, limit: usize) -> Option<Bytes>
where
    B: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    use futures_util::StreamExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf.freeze())
}

/// Largest answer translated whole.
const MAX_TRANSLATED_BODY: usize = 32 * 1024 * 1024;

/// A failure delivered as the answer: an upstream error body in the client's shape (translated
/// when the target speaks another API), or a gateway error.
pub(super) fn failed(
    failure: Failure,
    served: &Served<'_>,
    prepared: Option<&Prepared>,
    draft: Option<Draft>,
) -> Result<HttpResponse, GatewayError> {
    let (status, headers, body) = match failure {
        Failure::Error(e) => {
            if let Some(d) = draft {
                d.fail(e.code.status(), e.code.name());
            }
            return Err(e);
        }
        Failure::Answered {
            status,
            headers,
            body,
        } => (status, headers, body),
    };
    if let Some(d) = draft {
        d.fail(status, "upstream_error");
    }
    let translation = prepared.and_then(Prepared::answer_translation);
    let mut out =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    let body: Bytes = match translation {
        Some(t) => {
            out.insert_header((CONTENT_TYPE, "application/json"));
            t.error(status, &body).into()
        }
        None => body,
    };
    let mut r = out.body(body);
    headers_into(r.head_mut(), headers, served, translation.is_some());
    Ok(r)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn upstream_headers_replace_the_builders_defaults_keep_all_their_values_and_skip_hop_by_hop() {
        let mut upstream = HeaderMap::new();
        upstream.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        let multi = HeaderName::from_static("x-multi");
        upstream.append(multi.clone(), HeaderValue::from_static("a"));
        upstream.append(multi.clone(), HeaderValue::from_static("b"));
        upstream.insert(
            HeaderName::from_static("connection"),
            HeaderValue::from_static("close"),
        );
        upstream.insert(
            HeaderName::from_static("x-to11-provider"),
            HeaderValue::from_static("an-upstream-gateway"),
        );
        let mut head = ResponseHead::new(StatusCode::OK);
        head.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let compiled = Served::example_provider();
        let served = Served::example(&compiled);
        headers_into(&mut head, upstream.clone(), &served, false);
        let h = &head.headers;
        let all =
            |n: &str| -> Vec<&str> { h.get_all(n).map(|v| v.to_str().expect("ascii")).collect() };
        assert_eq!(all("content-type"), ["text/event-stream"]);
        let mut m = all("x-multi");
        m.sort_unstable();
        assert_eq!(m, ["a", "b"]);
        assert!(all("connection").is_empty());
        assert!(
            all("x-to11-provider").is_empty(),
            "the upstream's gives way"
        );
        let lines = served_lines(&head);
        assert_eq!(
            lines.get("x-to11-provider").map(String::as_str),
            Some("main")
        );
        assert_eq!(
            lines.get("x-to11-config-version").map(String::as_str),
            Some("7")
        );

        let mut converted = ResponseHead::new(StatusCode::OK);
        converted
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers_into(&mut converted, upstream, &served, true);
        assert_eq!(
            converted.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..]),
            "a converted answer keeps its own type"
        );
    }

    #[test]
    fn served_by_lines_are_the_spec_headers_and_leave_out_values_a_header_cannot_carry() {
        let compiled = Served::example_provider();
        let mut served = Served::example(&compiled);
        served.route = Some("fast-chat");
        served.attempts = 3;
        served.version = 1_234_567;
        let mut head = ResponseHead::new(StatusCode::OK);
        served.put(&mut head);
        let raw = head.header_lines().to_vec();
        assert_eq!(
            std::str::from_utf8(&raw).expect("ascii"),
            "x-to11-request-id: req-1\r\nx-to11-layer: passthrough\r\nx-to11-route: fast-chat\r\n\
             x-to11-provider: main\r\nx-to11-upstream-model: gpt-4o\r\nx-to11-attempts: 3\r\n\
             x-to11-config-version: 1234567\r\n"
        );
        // Every line is a header a `HeaderMap` takes as it is.
        for (name, value) in served_lines(&head) {
            HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            HeaderValue::from_str(&value).expect("a header value");
        }
        served.model = "mod\u{e8}le\nx-injected: 1";
        served.route = Some("tab\tok");
        served.put(&mut head);
        let lines = served_lines(&head);
        assert!(!lines.contains_key("x-to11-upstream-model"), "{lines:?}");
        assert!(!lines.contains_key("x-injected"), "{lines:?}");
        assert_eq!(
            lines.get("x-to11-route").map(String::as_str),
            Some("tab\tok")
        );
    }

    #[test]
    fn visible_is_what_a_header_value_takes() {
        for len in [1, 7, 8, 9, 16, 17] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    let want = std::str::from_utf8(&v)
                        .ok()
                        .is_some_and(|s| HeaderValue::from_str(s).is_ok());
                    assert_eq!(visible(&v), want, "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }

    /// The served-by lines of `head`, by name.
    pub(crate) fn served_lines(head: &ResponseHead) -> std::collections::BTreeMap<String, String> {
        let raw = head.header_lines().to_vec();
        let text = String::from_utf8(raw).expect("ascii");
        text.split_terminator("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("name: value");
                (n.to_string(), v.to_string())
            })
            .collect()
    }
}
