//! The standard OpenTelemetry SDK settings this gateway honours, read from the `OTEL_*`
//! variables: tracing is on only when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, to
//! which `/v1/traces` is appended, or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as it is) and
//! `OTEL_SDK_DISABLED` / `OTEL_TRACES_EXPORTER=none` do not turn it off. The only protocol is
//! `http/protobuf`; another is refused at start. Header and resource-attribute values are
//! percent-decoded, as the specification says.

use std::time::Duration;

use super::Sampler;
use crate::config::Reader;

#[derive(Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The full URL batches are POSTed to.
    pub endpoint: String,
    /// Sent with every export (often a collector's credential: never shown).
    pub headers: Vec<(String, String)>,
    pub sampler: Sampler,
    /// `service.name` first, then the other resource attributes.
    pub resource: Vec<(String, String)>,
    /// Spans waiting to be exported, at most; beyond, new ones are dropped (and counted).
    pub max_queue: usize,
    /// Spans in one export, at most.
    pub max_batch: usize,
    /// Longest a span waits for its batch.
    pub delay: Duration,
    /// Longest one export may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for TraceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TraceSettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &names)
            .field("sampler", &self.sampler)
            .field("resource", &self.resource)
            .field("max_queue", &self.max_queue)
            .field("max_batch", &self.max_batch)
            .field("delay", &self.delay)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TraceSettings {
    /// The trace settings, or `None` when tracing is off; problems go to `r`. `service`: the
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor the resource attributes name one.
    pub fn read(r: &mut Reader<'_>, service: &str) -> Option<TraceSettings> {
        let disabled = r.flag("OTEL_SDK_DISABLED", false);
        let exporter = r.string("OTEL_TRACES_EXPORTER", "otlp");
        let endpoint = match (
            r.optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            r.optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(e), _) => e,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return None,
        };
        match exporter.trim() {
            "otlp" | "" => {}
            "none" => return None,
            other => {
                r.problem(format!(
                    "OTEL_TRACES_EXPORTER: {other:?} is not supported (otlp, or none)"
                ));
                return None;
            }
        }
        if disabled {
            return None;
        }
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            r.problem(format!(
                "OTLP traces endpoint: {endpoint:?} is not an http:// or https:// URL"
            ));
        }
        let protocol = r
            .optional("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| r.optional("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        if protocol.trim() != "http/protobuf" {
            r.problem(format!(
                "OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: {protocol:?} is not supported; to11 exports traces over http/protobuf only"
            ));
        }
        let headers = r
            .optional("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| r.optional("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| pairs(r, "OTEL_EXPORTER_OTLP_HEADERS", &h))
            .unwrap_or_default();
        let mut resource = r
            .optional("OTEL_RESOURCE_ATTRIBUTES")
            .map(|a| pairs(r, "OTEL_RESOURCE_ATTRIBUTES", &a))
            .unwrap_or_default();
        let named = resource
            .iter()
            .position(|(k, _)| k == "service.name")
            .map(|i| resource.remove(i).1);
        let service = r
            .optional("OTEL_SERVICE_NAME")
            .or(named)
            .unwrap_or_else(|| service.to_string());
        resource.insert(0, ("service.name".into(), service));
        let sampler = r.string("OTEL_TRACES_SAMPLER", "parentbased_always_on");
        let arg = r.optional("OTEL_TRACES_SAMPLER_ARG");
        let sampler = Sampler::parse(&sampler, arg.as_deref()).unwrap_or_else(|e| {
            r.problem(e);
            Sampler::default()
        });
        let timeout = r
            .optional("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| r.optional("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map(|t| {
                t.trim().parse::<u64>().unwrap_or_else(|_| {
                    r.problem(format!("OTLP timeout: {t:?} is not milliseconds"));
                    10_000
                })
            })
            .unwrap_or(10_000);
        Some(TraceSettings {
            endpoint,
            headers,
            sampler,
            resource,
            max_queue: r.number("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize,
            max_batch: r.number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize,
            delay: r.millis("OTEL_BSP_SCHEDULE_DELAY", 5000),
            timeout: Duration::from_millis(timeout.max(1)),
        })
    }
}

/// `k=v,k2=v2`, each part percent-decoded; a part without `=` is a problem.
fn pairs(r: &mut Reader<'_>, name: &str, list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push((percent_decode(k.trim()), percent_decode(v.trim())))
            }
            _ => r.problem(format!("{name}: {part:?} is not key=value")),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn read(pairs: &[(&str, &str)]) -> (Option<TraceSettings>, Vec<String>) {
        let source = Source::from_pairs(pairs);
        let mut r = source.reader();
        let s = TraceSettings::read(&mut r, "to11-data-plane");
        (s, r.finish(()).err().map(|p| p.0).unwrap_or_default())
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(read(&[]).0, None);
        assert_eq!(read(&[("OTEL_SERVICE_NAME", "x")]).0, None);
        let e = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert_eq!(read(&[e, ("OTEL_SDK_DISABLED", "true")]).0, None);
        assert_eq!(read(&[e, ("OTEL_TRACES_EXPORTER", "none")]).0, None);
    }

    #[test]
    fn the_standard_variables() {
        let (s, problems) = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-team=gw",
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=from-attrs",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let s = s.expect("on");
        assert_eq!(s.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(s.headers[0], ("authorization".into(), "Bearer abc".into()));
        assert_eq!(s.resource[0], ("service.name".into(), "from-attrs".into()));
        assert_eq!(s.resource[1].0, "deployment.environment");
        assert_eq!(
            s.sampler,
            Sampler::parse("parentbased_traceidratio", Some("0.25")).expect("ok")
        );
        assert_eq!(s.delay, Duration::from_millis(100));
        assert!(
            !format!("{s:?}").contains("abc"),
            "header values are not shown"
        );
        let (s, _) = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://c.example/custom",
            ),
            ("OTEL_SERVICE_NAME", "gw-eu"),
        ]);
        let s = s.expect("on");
        assert_eq!(s.endpoint, "https://c.example/custom");
        assert_eq!(s.resource, vec![("service.name".into(), "gw-eu".into())]);
    }

    #[test]
    fn other_protocols_and_bad_values_are_refused_at_start_all_at_once() {
        let (_, problems) = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("grpc"), "{problems:?}");
        let (_, problems) = read(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4318/v1/traces",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]);
        assert_eq!(problems.len(), 1, "the traces protocol wins: {problems:?}");
    }
}
