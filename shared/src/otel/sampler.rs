//! The standard samplers (`OTEL_TRACES_SAMPLER`): `always_on`, `always_off`, `traceidratio` and
//! their `parentbased_*` forms, which follow the caller's `sampled` flag when there is a caller
//! and the inner sampler otherwise. A ratio compares the trace id's last 8 bytes with a threshold,
//! so every service with the same ratio makes the same decision for a trace.

use super::TraceId;

/// The root decision (no caller, or not parent-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    /// Sampled when the id's last 8 bytes, shifted right by one, are below this (ratio × 2⁶³).
    Ratio(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    pub root: Root,
    /// Whether a caller's `sampled` flag decides.
    pub parent_based: bool,
}

impl Default for Sampler {
    /// The specification's default: `parentbased_always_on`.
    fn default() -> Self {
        Sampler {
            root: Root::AlwaysOn,
            parent_based: true,
        }
    }
}

impl Sampler {
    /// From `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (the ratio, 1.0 when absent).
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Sampler, String> {
        let ratio = || -> Result<Root, String> {
            let r = match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => 1.0,
                Some(a) => a.parse::<f64>().map_err(|_| {
                    format!("OTEL_TRACES_SAMPLER_ARG: {a:?} is not a ratio between 0 and 1")
                })?,
            };
            if !(0.0..=1.0).contains(&r) {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG: {r} is not a ratio between 0 and 1"
                ));
            }
            Ok(Root::Ratio(ratio_threshold(r)))
        };
        let (root, parent_based) = match name.trim() {
            "always_on" => (Root::AlwaysOn, false),
            "always_off" => (Root::AlwaysOff, false),
            "traceidratio" => (ratio()?, false),
            "parentbased_always_on" | "" => (Root::AlwaysOn, true),
            "parentbased_always_off" => (Root::AlwaysOff, true),
            "parentbased_traceidratio" => (ratio()?, true),
            other => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER: {other:?} is not supported (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
                ))
            }
        };
        Ok(Sampler { root, parent_based })
    }

    /// Whether a span of `trace` is recorded; `parent`: the caller's `sampled` flag, if a valid
    /// `traceparent` came.
    pub fn sample(&self, trace: &TraceId, parent: Option<bool>) -> bool {
        if let (true, Some(sampled)) = (self.parent_based, parent) {
            return sampled;
        }
        match self.root {
            Root::AlwaysOn => true,
            Root::AlwaysOff => false,
            Root::Ratio(threshold) => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace.0[8..]);
                (u64::from_be_bytes(low) >> 1) < threshold
            }
        }
    }
}

fn ratio_threshold(r: f64) -> u64 {
    if r >= 1.0 {
        u64::MAX
    } else {
        (r * (1u64 << 63) as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low: u64) -> TraceId {
        let mut b = [7u8; 16];
        b[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(b)
    }

    #[test]
    fn names_and_arguments() {
        let s = |n: &str, a: Option<&str>| Sampler::parse(n, a);
        assert_eq!(s("", None), Ok(Sampler::default()));
        assert_eq!(
            s("always_off", None).map(|s| (s.root, s.parent_based)),
            Ok((Root::AlwaysOff, false))
        );
        assert_eq!(
            s("parentbased_traceidratio", Some("0.5")).map(|s| s.root),
            Ok(Root::Ratio(1 << 62))
        );
        assert_eq!(
            s("traceidratio", None).map(|s| s.root),
            Ok(Root::Ratio(u64::MAX))
        );
        for bad in [
            ("parentbased_traceidratio", Some("2")),
            ("traceidratio", Some("half")),
            ("jaeger_remote", None),
            ("xray", None),
        ] {
            assert!(s(bad.0, bad.1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parent_based_follows_the_caller_and_decides_roots_by_ratio() {
        let half = Sampler::parse("parentbased_traceidratio", Some("0.5")).expect("valid");
        assert!(
            half.sample(&id(u64::MAX), Some(true)),
            "the caller sampled it"
        );
        assert!(!half.sample(&id(0), Some(false)), "the caller did not");
        assert!(half.sample(&id(0), None));
        assert!(half.sample(&id((1 << 63) - 2), None));
        assert!(!half.sample(&id(1 << 63), None));
        assert!(!half.sample(&id(u64::MAX), None));
        let off = Sampler::parse("parentbased_always_off", None).expect("valid");
        assert!(!off.sample(&id(0), None));
        assert!(off.sample(&id(0), Some(true)));
        let on = Sampler::parse("always_on", None).expect("valid");
        assert!(
            on.sample(&id(5), Some(false)),
            "not parent-based: the caller does not decide"
        );
        let none = Sampler::parse("traceidratio", Some("0")).expect("valid");
        assert!(!none.sample(&id(0), None));
    }

    #[test]
    fn a_ratio_samples_about_its_share() {
        let tenth = Sampler::parse("traceidratio", Some("0.1")).expect("valid");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let sampled = (0..10_000)
            .filter(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                tenth.sample(&id(x), None)
            })
            .count();
        assert!((800..1200).contains(&sampled), "{sampled}");
    }
}
