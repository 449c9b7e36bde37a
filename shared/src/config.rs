//! Settings as strings, read into typed configuration with every problem reported at once.
//!
//! Each binary builds its configuration from one `Source`: the environment's `TO11_*` variables,
//! and command-line flags that mirror them (`--gateway-listen 127.0.0.1:9000`, or
//! `--gateway-listen=…`, is `TO11_GATEWAY_LISTEN=127.0.0.1:9000`; a flag wins over the
//! environment). Pure: the binaries pass `std::env::vars()` and `std::env::args()` in, tests pass
//! a map.

use std::collections::BTreeMap;
use std::time::Duration;

/// The strings a configuration is read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    values: BTreeMap<String, String>,
}

impl Source {
    /// Variables (every `TO11_*`, plus the standard `OTEL_*` ones) and command-line flags after
    /// the program name. A flag that is not `--name value` or `--name=value` is a problem.
    pub fn new(
        vars: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, Problems> {
        let mut values: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("TO11_") || k.starts_with("OTEL_"))
            .collect();
        let mut problems = vec![];
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").filter(|f| !f.is_empty()) else {
                problems.push(format!(
                    "unexpected argument {arg:?}: settings are flags like --gateway-listen 127.0.0.1:8080 (or TO11_* variables)"
                ));
                continue;
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (flag.to_string(), args.next()),
            };
            let var = format!("TO11_{}", name.replace('-', "_").to_ascii_uppercase());
            match value {
                Some(v) => {
                    values.insert(var, v);
                }
                None => problems.push(format!("flag --{name} needs a value")),
            }
        }
        if problems.is_empty() {
            Ok(Source { values })
        } else {
            Err(Problems(problems))
        }
    }

    /// A source from pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Source {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// This source with `name` set (tests).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.values.insert(name.into(), value.into());
        self
    }

    pub fn reader(&self) -> Reader<'_> {
        Reader {
            source: self,
            problems: vec![],
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Every problem found reading a configuration, one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid settings:\n{}", .0.join("\n"))]
pub struct Problems(pub Vec<String>);

/// Reads typed values from a `Source`, collecting problems instead of stopping at the first.
pub struct Reader<'a> {
    source: &'a Source,
    problems: Vec<String>,
}

impl Reader<'_> {
    pub fn string(&mut self, name: &str, default: &str) -> String {
        self.source.get(name).unwrap_or(default).to_string()
    }

    /// A value that may be absent (an empty value counts as absent).
    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.source
            .get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// A value the binary cannot start without; `why` says what it is.
    pub fn required(&mut self, name: &str, why: &str) -> Option<String> {
        let v = self.optional(name);
        if v.is_none() {
            self.problems.push(format!("{name} is required ({why})"));
        }
        v
    }

    pub fn number(&mut self, name: &str, default: u64) -> u64 {
        match self.source.get(name) {
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                self.problems
                    .push(format!("{name} must be a whole number, got {v:?}"));
                default
            }),
            None => default,
        }
    }

    pub fn millis(&mut self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.number(name, default_ms))
    }

    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.source.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" | "" => false,
                _ => {
                    self.problems
                        .push(format!("{name} must be true or false, got {v:?}"));
                    default
                }
            },
        }
    }

    /// Records a problem found while checking a value that was read.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// `value`, or every problem found.
    pub fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(Problems(self.problems))
        }
    }
}

/// A secret setting: compared and cloned like a string, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Where Redis is, for the planes that use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: String,
    /// Every key and channel starts with it.
    pub prefix: String,
}

impl RedisSettings {
    pub fn read(r: &mut Reader<'_>) -> Self {
        RedisSettings {
            url: r.string("TO11_REDIS_URL", "redis://127.0.0.1:6379"),
            prefix: r.string("TO11_REDIS_PREFIX", "to11:"),
        }
    }
}

/// The `tracing` filter (`TO11_LOG`).
pub fn log_filter(r: &mut Reader<'_>) -> String {
    r.string("TO11_LOG", "info")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_mirror_variables_and_win() {
        let s = Source::new(
            vec![
                ("TO11_GATEWAY_LISTEN".into(), "a".into()),
                ("HOME".into(), "/root".into()),
            ],
            args(&["--gateway-listen", "b", "--api-workers=3"]),
        )
        .expect("ok");
        assert_eq!(
            s,
            Source::from_pairs(&[("TO11_GATEWAY_LISTEN", "b"), ("TO11_API_WORKERS", "3")])
        );
        let e = Source::new(vec![], args(&["stray", "--gateway-listen"])).expect_err("bad");
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let s = Source::from_pairs(&[("TO11_A", "x"), ("TO11_B", "maybe"), ("TO11_C", " 7 ")]);
        let mut r = s.reader();
        assert_eq!(r.number("TO11_A", 1), 1);
        assert!(r.flag("TO11_B", true));
        assert_eq!(r.number("TO11_C", 1), 7);
        assert_eq!(r.required("TO11_D", "the thing"), None);
        assert_eq!(r.millis("TO11_E", 5), Duration::from_millis(5));
        let e = r.finish(()).expect_err("problems");
        assert_eq!(e.0.len(), 3, "{e}");
        assert!(e.to_string().contains("TO11_D is required (the thing)"));
    }

    #[test]
    fn secrets_are_not_shown() {
        let s = Secret::new("to11_op_abc");
        assert_eq!(format!("{s:?}"), "Secret(…)");
        assert_eq!(s.expose(), "to11_op_abc");
    }
}
