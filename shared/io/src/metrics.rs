//! What both planes' `/metrics` share: values read at scrape time from counters the code keeps
//! anyway (`Pulled`, a counter or gauge over a function), and the exposition of a registry in
//! Prometheus' text format (`render`). Each process (and each plane of embedded mode) has a
//! registry of its own, never the crate's global one.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Read = Arc<dyn Fn() -> f64 + Send + Sync>;

/// A counter or gauge whose value is read from `read` on every scrape.
#[derive(Clone)]
pub struct Pulled {
    desc: Desc,
    kind: MetricType,
    read: Read,
}

impl Pulled {
    pub fn counter(
        name: &str,
        help: &str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> prometheus::Result<Self> {
        Self::new(name, help, MetricType::COUNTER, Arc::new(read))
    }

    pub fn gauge(
        name: &str,
        help: &str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> prometheus::Result<Self> {
        Self::new(name, help, MetricType::GAUGE, Arc::new(read))
    }

    fn new(name: &str, help: &str, kind: MetricType, read: Read) -> prometheus::Result<Self> {
        Ok(Pulled {
            desc: Desc::new(name.into(), help.into(), Vec::new(), HashMap::new())?,
            kind,
            read,
        })
    }

    /// Registers it in `registry`.
    pub fn register(self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self))
    }
}

impl Collector for Pulled {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let value = (self.read)();
        let mut metric = Metric::default();
        if self.kind == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            metric.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            metric.set_gauge(g);
        }
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(self.kind);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

/// The registry's metrics in Prometheus' text format. A failure to encode (which the text
/// encoder only reports for malformed families) leaves the text as far as it got.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn pulled_values_are_read_at_every_scrape_with_their_type() {
        let registry = Registry::new();
        let n = Arc::new(AtomicU64::new(3));
        let read = n.clone();
        Pulled::counter("t_things_total", "Things.", move || {
            read.load(Ordering::Relaxed) as f64
        })
        .and_then(|p| p.register(&registry))
        .expect("registered");
        Pulled::gauge("t_level", "Level.", || 1.5)
            .and_then(|p| p.register(&registry))
            .expect("registered");
        let text = String::from_utf8(render(&registry)).expect("utf-8");
        assert!(
            text.contains("# TYPE t_things_total counter\nt_things_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE t_level gauge\nt_level 1.5\n"),
            "{text}"
        );
        n.store(7, Ordering::Relaxed);
        let text = String::from_utf8(render(&registry)).expect("utf-8");
        assert!(text.contains("t_things_total 7\n"), "{text}");
    }
}
