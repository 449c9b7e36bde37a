//! The names the OpenTelemetry GenAI semantic conventions give to what a gateway request is, and
//! the attributes it writes on its spans: the request span (kind server: `{operation} {model}`,
//! the client's model; usage when the answer ends) and one span per upstream attempt (kind
//! client: `{operation} {target model}`, the target's provider and `server.address`, its HTTP
//! status or error). to11's own facts (layer, route, function, provider slug, project) are
//! `to11.*` attributes.

use super::record::Trace;
use crate::upstream::Surface;
use crate::usage::Usage;

pub const OPERATION: &str = "gen_ai.operation.name";
pub const PROVIDER: &str = "gen_ai.provider.name";
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const CACHE_READ: &str = "gen_ai.usage.cache_read.input_tokens";
pub const CACHE_CREATION: &str = "gen_ai.usage.cache_creation.input_tokens";
pub const REASONING: &str = "gen_ai.usage.reasoning.output_tokens";
pub const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_STATUS: &str = "http.response.status_code";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";

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
    t.name(0, op, r.model);
    t.set_str(0, OPERATION, op);
    t.set_str(0, REQUEST_MODEL, r.model);
    t.set_str(0, "to11.layer", r.layer);
    if let Some(route) = r.route {
        t.set_str(0, "to11.route", route);
    }
    if let Some(f) = r.function {
        t.set_str(0, "to11.function", f);
    }
    if let Some(m) = r.max_tokens {
        t.set_int(0, MAX_TOKENS, m as i64);
    }
    t.set_bool(0, "gen_ai.request.stream", r.stream);
}

/// Who served the request (or failed last): the request span's provider and response model.
pub fn served(t: &mut Trace, kind: &str, slug: &str, model: &str, attempts: u32) {
    t.set_str(0, PROVIDER, provider_name(kind));
    t.set_str(0, "to11.provider", slug);
    t.set_str(0, RESPONSE_MODEL, model);
    t.set_int(0, "to11.attempts", i64::from(attempts));
}

/// The request's token usage (the conventions count cache reads and writes in the input, and
/// reasoning in the output, as `Usage::prompt` and `Usage::output` do).
pub fn usage(t: &mut Trace, u: &Usage, estimated: bool) {
    t.set_int(0, INPUT_TOKENS, u.prompt() as i64);
    t.set_int(0, OUTPUT_TOKENS, u.output as i64);
    if u.cache_read > 0 {
        t.set_int(0, CACHE_READ, u.cache_read as i64);
    }
    let created = u.cache_write + u.cache_write_1h;
    if created > 0 {
        t.set_int(0, CACHE_CREATION, created as i64);
    }
    if u.reasoning > 0 {
        t.set_int(0, REASONING, u.reasoning as i64);
    }
    if estimated {
        t.set_bool(0, "to11.usage.estimated", true);
    }
}

/// One upstream attempt's target.
pub struct Target<'a> {
    pub surface: Surface,
    pub kind: &'a str,
    pub slug: &'a str,
    pub model: &'a str,
    /// The upstream URL's host and port.
    pub host: &'a str,
    pub port: Option<u16>,
}

/// `server.address` and `server.port` of an upstream URL (`scheme://[userinfo@]host[:port]/…`);
/// the port is the scheme's when the URL names none. Runs per traced attempt: the authority's end
/// is found with one vectorised search, and only the authority (a few bytes) is looked at after.
pub fn host_port(url: &str) -> (&str, Option<u16>) {
    let b = url.as_bytes();
    let (scheme_port, from) = if b.starts_with(b"https://") {
        (Some(443), 8)
    } else if b.starts_with(b"http://") {
        (Some(80), 7)
    } else {
        (None, url.find("://").map_or(0, |i| i + 3))
    };
    let rest = &b[from..];
    let end = from + memchr::memchr3(b'/', b'?', b'#', rest).unwrap_or(rest.len());
    // After the last `@` (userinfo may hold `:`).
    let at = from + memchr::memrchr(b'@', &b[from..end]).map_or(0, |i| i + 1);
    let authority = &b[at..end];
    // A port is after the last `:`, unless that `:` is inside an IPv6 literal's brackets.
    let colon = memchr::memrchr(b':', authority)
        .filter(|&i| !authority[i..].contains(&b']'))
        .filter(|&i| authority[0] != b'[' || authority[..i].ends_with(b"]"));
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

/// An attempt span's name and attributes, before it is sent.
pub fn attempt(t: &mut Trace, span: usize, a: &Target<'_>) {
    let op = operation(a.surface);
    t.name(span, op, a.model);
    t.set_str(span, OPERATION, op);
    t.set_str(span, PROVIDER, provider_name(a.kind));
    t.set_str(span, REQUEST_MODEL, a.model);
    t.set_str(span, "to11.provider", a.slug);
    t.set_str(span, SERVER_ADDRESS, a.host);
    if let Some(p) = a.port {
        t.set_int(span, SERVER_PORT, i64::from(p));
    }
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
        t.set_int(span, HTTP_STATUS, i64::from(s));
    }
    let failed = match (status, error) {
        (_, Some(e)) => Some(e),
        (Some(s), None) if s >= 400 => Some(status_text(s)),
        _ => None,
    };
    if let Some(e) = failed {
        t.set_str(span, ERROR_TYPE, e);
    }
    t.end(span, end_ns, failed);
}

/// The request's end: its status, and `error` (to11's error code) when it failed. The span's
/// status is an error for a 5xx, or when `fault` (an answer cut short); a client's 4xx only sets
/// `error.type`, as the HTTP server conventions say.
pub fn request_end(t: &mut Trace, end_ns: u64, status: u16, error: Option<&str>, fault: bool) {
    t.set_int(0, HTTP_STATUS, i64::from(status));
    let failed = error.or((status >= 400).then(|| status_text(status)));
    if let Some(e) = failed {
        t.set_str(0, ERROR_TYPE, e);
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
    use super::super::{Kind, SpanId, TraceId};
    use super::*;
    use crate::upstream::Surface;

    fn attrs(t: &Trace, span: usize) -> Vec<(String, String)> {
        use super::super::record::Value;
        t.attrs_of(span)
            .map(|a| {
                let v = match a.value {
                    Value::Text(x) | Value::TextList(x) => t.str(x).to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::Bool(b) => b.to_string(),
                };
                (a.key.to_string(), v)
            })
            .collect()
    }

    fn has(t: &Trace, span: usize, k: &str, v: &str) -> bool {
        attrs(t, span).contains(&(k.to_string(), v.to_string()))
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
            let span = t
                .child(SpanId([3 + i as u8; 8]), Kind::Client, 20)
                .expect("room");
            attempt(
                &mut t,
                span,
                &Target {
                    surface: Surface::Chat,
                    kind,
                    slug: "main",
                    model: "m",
                    host: "127.0.0.1",
                    port: Some(8080),
                },
            );
            attempt_end(&mut t, span, 30, Some(status), None);
        }
        served(&mut t, "anthropic", "claude", "claude-x", 2);
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
        assert_eq!(t.str(t.spans[0].name), "chat smart");
        for (k, v) in [
            (OPERATION, "chat"),
            (REQUEST_MODEL, "smart"),
            (RESPONSE_MODEL, "claude-x"),
            (PROVIDER, "anthropic"),
            ("to11.route", "smart"),
            ("to11.layer", "route"),
            (MAX_TOKENS, "64"),
            (INPUT_TOKENS, "18"),
            (OUTPUT_TOKENS, "7"),
            (CACHE_READ, "5"),
            (CACHE_CREATION, "3"),
            (REASONING, "3"),
            (HTTP_STATUS, "200"),
        ] {
            assert!(has(&t, 0, k, v), "{k}={v}: {:?}", attrs(&t, 0));
        }
        assert_eq!(t.spans[0].error, None);
        assert!(has(&t, 1, ERROR_TYPE, "503"));
        assert_eq!(t.spans[1].error.map(|e| t.str(e)), Some("503"));
        assert!(has(&t, 1, PROVIDER, "openai"));
        assert!(has(&t, 1, SERVER_ADDRESS, "127.0.0.1"));
        assert!(has(&t, 2, PROVIDER, "anthropic"));
        assert_eq!(t.spans[2].error, None);
        assert!(!attrs(&t, 2).iter().any(|(k, _)| k == ERROR_TYPE));
    }

    #[test]
    fn failures_set_the_error_status() {
        let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 10);
        request_end(&mut t, 20, 404, Some("not_found"), false);
        assert!(has(&t, 0, ERROR_TYPE, "not_found"));
        assert_eq!(
            t.spans[0].error, None,
            "a client's error is not the server span's"
        );
        let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 10);
        request_end(&mut t, 20, 502, Some("upstream_failure"), true);
        let mut cut = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 10);
        request_end(&mut cut, 20, 200, Some("incomplete"), true);
        assert_eq!(cut.spans[0].error.map(|e| cut.str(e)), Some("incomplete"));
        assert_eq!(t.spans[0].error.map(|e| t.str(e)), Some("upstream_failure"));
        let s = t.child(SpanId([5; 8]), Kind::Client, 11).expect("room");
        attempt_end(&mut t, s, 12, None, Some("timeout"));
        assert_eq!(t.spans[s].error.map(|e| t.str(e)), Some("timeout"));
        assert_eq!(status_text(418), "4xx");
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
