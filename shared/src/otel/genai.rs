//! The names the OpenTelemetry GenAI semantic conventions give to what a gateway request is, and
//! the attributes it writes on its spans: the request span (kind server: `{operation} {model}`,
//! the client's model; usage when the answer ends) and one span per upstream attempt (kind
//! client: `{operation} {target model}`, the target's provider and `server.address`, its HTTP
//! status or error). to11's own facts (layer, route, function, provider slug, project) are
//! `to11.*` attributes.

use super::record::{encode_attribute, Key, Kind, Trace, Value};
use super::SpanId;
use crate::upstream::Surface;
use crate::usage::Usage;

pub const OPERATION: Key = Key::new("gen_ai.operation.name");
pub const PROVIDER: Key = Key::new("gen_ai.provider.name");
pub const REQUEST_MODEL: Key = Key::new("gen_ai.request.model");
pub const RESPONSE_MODEL: Key = Key::new("gen_ai.response.model");
pub const MAX_TOKENS: Key = Key::new("gen_ai.request.max_tokens");
pub const INPUT_TOKENS: Key = Key::new("gen_ai.usage.input_tokens");
pub const OUTPUT_TOKENS: Key = Key::new("gen_ai.usage.output_tokens");
pub const CACHE_READ: Key = Key::new("gen_ai.usage.cache_read.input_tokens");
pub const CACHE_CREATION: Key = Key::new("gen_ai.usage.cache_creation.input_tokens");
pub const REASONING: Key = Key::new("gen_ai.usage.reasoning.output_tokens");
pub const FINISH_REASONS: Key = Key::new("gen_ai.response.finish_reasons");
pub const ERROR_TYPE: Key = Key::new("error.type");
pub const HTTP_STATUS: Key = Key::new("http.response.status_code");
pub const SERVER_ADDRESS: Key = Key::new("server.address");
pub const SERVER_PORT: Key = Key::new("server.port");
pub const STREAM: Key = Key::new("gen_ai.request.stream");
pub const TO11_LAYER: Key = Key::new("to11.layer");
pub const TO11_ROUTE: Key = Key::new("to11.route");
pub const TO11_FUNCTION: Key = Key::new("to11.function");
pub const TO11_PROVIDER: Key = Key::new("to11.provider");
pub const TO11_ATTEMPTS: Key = Key::new("to11.attempts");
pub const TO11_USAGE_ESTIMATED: Key = Key::new("to11.usage.estimated");
pub const TO11_PROJECT: Key = Key::new("to11.project");
pub const TO11_REQUEST_ID: Key = Key::new("to11.request_id");

/// `gen_ai.operation.name` of a called API.
pub fn operation(surface: Surface) -> &'static str {
    use crate::catalog::Api;
    if surface == Surface::CountTokens {
        // Not a generation; the conventions name no such operation.
        return "count_tokens";
    }
    match surface.api() {
        Api::Completions => "text_completion",
        Api::Embeddings => "embeddings",
        Api::GenerateContent => "generate_content",
        Api::Chat | Api::Responses | Api::Messages | Api::Converse | Api::Invoke => "chat",
    }
}

/// `gen_ai.provider.name` of a catalog kind: the conventions' well-known value where there is
/// one, the catalog id otherwise.
pub fn provider_name(kind: &str) -> &str {
    match kind {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        "bedrock" => "aws.bedrock",
        "azure-openai" => "azure.ai.openai",
        "cohere" => "cohere",
        "mistral" => "mistral_ai",
        "groq" => "groq",
        "deepseek" => "deepseek",
        "xai" => "x_ai",
        "perplexity" => "perplexity",
        other => other,
    }
}

/// What the request span says of the request once its model resolved.
pub struct Resolved<'a> {
    pub surface: Surface,
    /// The name the client asked for (a model, a route or a function).
    pub model: &'a str,
    pub layer: &'static str,
    pub route: Option<&'a str>,
    pub function: Option<&'a str>,
    pub max_tokens: Option<u64>,
    pub stream: bool,
}

/// The request span's name and attributes once the request resolved.
pub fn resolved(t: &mut Trace, r: &Resolved<'_>) {
    let op = operation(r.surface);
    t.set_str(0, &OPERATION, op);
    let model = t.set_str(0, &REQUEST_MODEL, r.model);
    t.name(op, model);
    t.set_str(0, &TO11_LAYER, r.layer);
    if let Some(route) = r.route {
        t.set_str(0, &TO11_ROUTE, route);
    }
    if let Some(f) = r.function {
        t.set_str(0, &TO11_FUNCTION, f);
    }
    if let Some(m) = r.max_tokens {
        t.set_int(0, &MAX_TOKENS, m as i64);
    }
    t.set_bool(0, &STREAM, r.stream);
}

/// Who served the request (or failed last): the request span's provider and response model.
pub fn served(t: &mut Trace, provider: &ProviderAttrs, model: &str, attempts: u32) {
    t.extend(0, provider.served());
    t.set_str(0, &RESPONSE_MODEL, model);
    t.set_int(0, &TO11_ATTEMPTS, i64::from(attempts));
}

/// A provider's attributes, encoded once per configuration
/// (`resolve::CompiledProvider::trace_attrs`): `gen_ai.provider.name` and `to11.provider` (the
/// request span's once it is served, and every attempt span's), then `server.address` and
/// `server.port` of its base URL (an attempt span's, when its URL is under that base).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderAttrs {
    bytes: Box<[u8]>,
    /// Where the address starts.
    served: usize,
}

impl ProviderAttrs {
    pub fn new(kind: &str, slug: &str, host: &str, port: Option<u16>) -> ProviderAttrs {
        let mut b = Vec::with_capacity(160);
        encode_attribute(&mut b, &PROVIDER, Value::Str(provider_name(kind)));
        encode_attribute(&mut b, &TO11_PROVIDER, Value::Str(slug));
        let served = b.len();
        address(&mut b, host, port);
        ProviderAttrs {
            bytes: b.into_boxed_slice(),
            served,
        }
    }

    /// The provider's name and slug.
    pub fn served(&self) -> &[u8] {
        self.bytes.get(..self.served).unwrap_or_default()
    }

    /// The name, the slug and the base URL's address.
    pub fn all(&self) -> &[u8] {
        &self.bytes
    }
}

/// `server.address` and `server.port`, encoded.
fn address(b: &mut Vec<u8>, host: &str, port: Option<u16>) {
    encode_attribute(b, &SERVER_ADDRESS, Value::Str(host));
    if let Some(p) = port {
        encode_attribute(b, &SERVER_PORT, Value::Int(i64::from(p)));
    }
}

/// The request's token usage (the conventions count cache reads and writes in the input, and
/// reasoning in the output, as `Usage::prompt` and `Usage::output` do).
pub fn usage(t: &mut Trace, u: &Usage, estimated: bool) {
    t.set_int(0, &INPUT_TOKENS, u.prompt() as i64);
    t.set_int(0, &OUTPUT_TOKENS, u.output as i64);
    if u.cache_read > 0 {
        t.set_int(0, &CACHE_READ, u.cache_read as i64);
    }
    let created = u.cache_write + u.cache_write_1h;
    if created > 0 {
        t.set_int(0, &CACHE_CREATION, created as i64);
    }
    if u.reasoning > 0 {
        t.set_int(0, &REASONING, u.reasoning as i64);
    }
    if estimated {
        t.set_bool(0, &TO11_USAGE_ESTIMATED, true);
    }
}

/// Why the model stopped, as the provider said it (`gen_ai.response.finish_reasons`: one per
/// choice or candidate, distinct); nothing when the answer gave none.
pub fn finish_reasons(t: &mut Trace, reasons: &[String]) {
    if !reasons.is_empty() {
        t.set(0, &FINISH_REASONS, Value::List(reasons));
    }
}

/// One upstream attempt's target.
pub struct Target<'a> {
    pub surface: Surface,
    pub provider: &'a ProviderAttrs,
    pub model: &'a str,
    /// The upstream URL's host and port when the URL is not under the provider's base URL
    /// (`None`: the base URL's, in `provider`).
    pub address: Option<(&'a str, Option<u16>)>,
}

/// `server.address` and `server.port` of an upstream URL (`scheme://[userinfo@]host[:port]/…`);
/// the port is the scheme's when the URL names none. Runs per traced attempt: three short scans
/// of the authority (a few bytes; a vectorised search costs more to set up than it saves here).
pub fn host_port(url: &str) -> (&str, Option<u16>) {
    let b = url.as_bytes();
    let (scheme_port, from) = if b.starts_with(b"https://") {
        (Some(443), 8)
    } else if b.starts_with(b"http://") {
        (Some(80), 7)
    } else {
        (None, url.find("://").map_or(0, |i| i + 3))
    };
    let rest = b.get(from..).unwrap_or_default();
    let end = from
        + rest
            .iter()
            .position(|c| matches!(c, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
    // After the last `@` (userinfo may hold `:`); a port is after the last `:`, unless that `:`
    // is inside an IPv6 literal's brackets.
    let at = from
        + b[from..end]
            .iter()
            .rposition(|&c| c == b'@')
            .map_or(0, |i| i + 1);
    let colon = b[at..end]
        .iter()
        .rposition(|&c| c == b':' || c == b']')
        .filter(|&i| b[at + i] == b':');
    let (host_end, port) = match colon {
        Some(i) => (
            at + i,
            url.get(at + i + 1..end).and_then(|p| p.parse().ok()),
        ),
        None => (end, scheme_port),
    };
    let host = url.get(at..host_end).unwrap_or("");
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
}

/// Begins an attempt's span `id` at `start_ns`, before it is sent: its name and attributes, and
/// its index; `None` when the trace has no room.
pub fn attempt(t: &mut Trace, id: SpanId, start_ns: u64, a: &Target<'_>) -> Option<usize> {
    let op = operation(a.surface);
    let span = t.child(id, Kind::Client, start_ns, op, a.model)?;
    t.set_str(span, &OPERATION, op);
    t.set_str(span, &REQUEST_MODEL, a.model);
    match a.address {
        None => t.extend(span, a.provider.all()),
        Some((host, port)) => {
            t.extend(span, a.provider.served());
            let mut b = Vec::new();
            address(&mut b, host, port);
            t.extend(span, &b);
        }
    }
    Some(span)
}

/// How an attempt ended: the upstream's status, or why there was none (`error.type`).
pub fn attempt_end(
    t: &mut Trace,
    span: usize,
    end_ns: u64,
    status: Option<u16>,
    error: Option<&str>,
) {
    if let Some(s) = status {
        t.set_int(span, &HTTP_STATUS, i64::from(s));
    }
    let failed = match (status, error) {
        (_, Some(e)) => Some(e),
        (Some(s), None) if s >= 400 => Some(status_text(s)),
        _ => None,
    };
    if let Some(e) = failed {
        t.set_str(span, &ERROR_TYPE, e);
    }
    t.end(span, end_ns, failed);
}

/// The request's end: its status, and `error` (to11's error code) when it failed. The span's
/// status is an error for a 5xx, or when `fault` (an answer cut short); a client's 4xx only sets
/// `error.type`, as the HTTP server conventions say.
pub fn request_end(t: &mut Trace, end_ns: u64, status: u16, error: Option<&str>, fault: bool) {
    t.set_int(0, &HTTP_STATUS, i64::from(status));
    let failed = error.or((status >= 400).then(|| status_text(status)));
    if let Some(e) = failed {
        t.set_str(0, &ERROR_TYPE, e);
    }
    let fault = fault || status >= 500;
    t.end(
        0,
        end_ns,
        failed.or(fault.then_some("error")).filter(|_| fault),
    );
}

/// A status as `error.type` wants it (the code as text), without allocating.
fn status_text(s: u16) -> &'static str {
    const CODES: [&str; 12] = [
        "400", "401", "403", "404", "408", "409", "413", "422", "429", "500", "502", "503",
    ];
    let i = [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503]
        .iter()
        .position(|c| *c == s);
    match (i, s) {
        (Some(i), _) => CODES[i],
        (None, 504) => "504",
        (None, 500..) => "5xx",
        (None, _) => "4xx",
    }
}

#[cfg(test)]
mod tests {
    use super::super::read::{self, Read};
    use super::super::TraceId;
    use super::*;
    use crate::upstream::Surface;

    fn spans(t: &Trace) -> Vec<Read> {
        read::spans(t.bytes()).expect("decodes")
    }

    #[test]
    fn a_routed_request_with_a_failed_attempt() {
        let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 10);
        resolved(
            &mut t,
            &Resolved {
                surface: Surface::Chat,
                model: "smart",
                layer: "route",
                route: Some("smart"),
                function: None,
                max_tokens: Some(64),
                stream: false,
            },
        );
        for (i, (kind, status)) in [("openai", 503), ("anthropic", 200)]
            .into_iter()
            .enumerate()
        {
            let provider = ProviderAttrs::new(kind, "main", "127.0.0.1", Some(8080));
            let target = Target {
                surface: Surface::Chat,
                provider: &provider,
                model: "m",
                address: None,
            };
            let span = attempt(&mut t, SpanId([3 + i as u8; 8]), 20, &target).expect("room");
            attempt_end(&mut t, span, 30, Some(status), None);
        }
        let claude = ProviderAttrs::new("anthropic", "claude", "api.anthropic.com", Some(443));
        served(&mut t, &claude, "claude-x", 2);
        usage(
            &mut t,
            &Usage {
                input: 10,
                output: 7,
                cache_read: 5,
                cache_write: 1,
                cache_write_1h: 2,
                reasoning: 3,
            },
            false,
        );
        request_end(&mut t, 40, 200, None, false);
        let spans = spans(&t);
        let (failed, ok, root) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(root.name, "chat smart");
        for (k, v) in [
            (OPERATION, "chat"),
            (REQUEST_MODEL, "smart"),
            (RESPONSE_MODEL, "claude-x"),
            (PROVIDER, "anthropic"),
            (TO11_PROVIDER, "claude"),
            (TO11_ROUTE, "smart"),
            (TO11_LAYER, "route"),
            (MAX_TOKENS, "64"),
            (STREAM, "false"),
            (INPUT_TOKENS, "18"),
            (OUTPUT_TOKENS, "7"),
            (CACHE_READ, "5"),
            (CACHE_CREATION, "3"),
            (REASONING, "3"),
            (HTTP_STATUS, "200"),
            (TO11_ATTEMPTS, "2"),
        ] {
            assert_eq!(
                root.attr(k.name()),
                Some(v),
                "{}: {:?}",
                k.name(),
                root.attrs
            );
        }
        assert_eq!(root.attr(TO11_FUNCTION.name()), None);
        assert_eq!(
            root.attr(SERVER_ADDRESS.name()),
            None,
            "the request span has no address"
        );
        assert_eq!(root.error, None);
        assert_eq!(failed.name, "chat m");
        assert_eq!(failed.attr(ERROR_TYPE.name()), Some("503"));
        assert_eq!(failed.error.as_deref(), Some("503"));
        assert_eq!(failed.attr(PROVIDER.name()), Some("openai"));
        assert_eq!(failed.attr(SERVER_ADDRESS.name()), Some("127.0.0.1"));
        assert_eq!(failed.attr(SERVER_PORT.name()), Some("8080"));
        assert_eq!(failed.span_id, [3; 8]);
        assert_eq!(ok.attr(PROVIDER.name()), Some("anthropic"));
        assert_eq!(ok.attr(HTTP_STATUS.name()), Some("200"));
        assert_eq!(ok.error, None);
        assert_eq!(ok.attr(ERROR_TYPE.name()), None);
    }

    #[test]
    fn failures_set_the_error_status() {
        let root = |status, error, fault| {
            let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 10);
            request_end(&mut t, 20, status, error, fault);
            spans(&t).pop().expect("the request span")
        };
        let client = root(404, Some("not_found"), false);
        assert_eq!(client.attr(ERROR_TYPE.name()), Some("not_found"));
        assert_eq!(
            client.error, None,
            "a client's error is not the server span's"
        );
        assert_eq!(root(404, None, false).attr(ERROR_TYPE.name()), Some("404"));
        let failed = root(502, Some("upstream_failure"), true);
        assert_eq!(failed.error.as_deref(), Some("upstream_failure"));
        assert_eq!(root(503, None, false).error.as_deref(), Some("503"));
        let cut = root(200, Some("incomplete"), true);
        assert_eq!(cut.error.as_deref(), Some("incomplete"));
        assert_eq!(root(200, None, true).error.as_deref(), Some("error"));
        let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 10);
        let provider = ProviderAttrs::new("openai", "main", "base", Some(1));
        let target = Target {
            surface: Surface::Embeddings,
            provider: &provider,
            model: "e",
            address: Some(("h", None)),
        };
        let s = attempt(&mut t, SpanId([5; 8]), 11, &target).expect("room");
        attempt_end(&mut t, s, 12, None, Some("timeout"));
        request_end(&mut t, 20, 504, Some("timeout"), false);
        let spans = spans(&t);
        assert_eq!(spans[0].error.as_deref(), Some("timeout"));
        assert_eq!(spans[0].attr(ERROR_TYPE.name()), Some("timeout"));
        assert_eq!(
            spans[0].attr(HTTP_STATUS.name()),
            None,
            "no answer, no status"
        );
        assert_eq!(
            spans[0].attr(SERVER_PORT.name()),
            None,
            "the URL's, not the base's"
        );
        assert_eq!(spans[0].attr(SERVER_ADDRESS.name()), Some("h"));
        assert_eq!(spans[0].attr(TO11_PROVIDER.name()), Some("main"));
        assert_eq!(spans[0].name, "embeddings e");
        assert_eq!(status_text(418), "4xx");
        assert_eq!(status_text(504), "504");
        assert_eq!(status_text(507), "5xx");
    }

    #[test]
    fn hosts_and_ports_of_upstream_urls() {
        assert_eq!(
            host_port("https://api.openai.com/v1/chat/completions"),
            ("api.openai.com", Some(443))
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080/v1?x=1"),
            ("127.0.0.1", Some(8080))
        );
        assert_eq!(host_port("http://[::1]:9000/v1"), ("::1", Some(9000)));
        assert_eq!(
            host_port("https://[2001:db8::1]/v1"),
            ("2001:db8::1", Some(443))
        );
        assert_eq!(
            host_port("https://bedrock-runtime.us-east-1.amazonaws.com"),
            ("bedrock-runtime.us-east-1.amazonaws.com", Some(443))
        );
        assert_eq!(
            host_port("https://user:pw@example.com:8443/v1"),
            ("example.com", Some(8443))
        );
        assert_eq!(host_port("http://u:p@[::1]/x"), ("::1", Some(80)));
        assert_eq!(
            host_port("http://example.com:80#frag"),
            ("example.com", Some(80))
        );
        assert_eq!(host_port("grpc://h:7"), ("h", Some(7)));
        assert_eq!(host_port("https://"), ("", Some(443)));
    }

    #[test]
    fn names_of_operations_and_providers() {
        assert_eq!(operation(Surface::Embeddings), "embeddings");
        assert_eq!(operation(Surface::Completions), "text_completion");
        assert_eq!(operation(Surface::Messages), "chat");
        assert_eq!(provider_name("bedrock"), "aws.bedrock");
        assert_eq!(provider_name("together"), "together");
    }
}
