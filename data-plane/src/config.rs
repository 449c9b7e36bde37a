//! Settings from the environment (`TO11_*`), validated with every problem reported at once.

use std::time::Duration;

/// Collects problems while reading `TO11_*` variables.
#[derive(Default)]
pub struct Env {
    pub problems: Vec<String>,
}

impl Env {
    pub fn string(&mut self, name: &str, default: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| default.to_string())
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    pub fn number(&mut self, name: &str, default: u64) -> u64 {
        match std::env::var(name) {
            Ok(v) => v.parse().unwrap_or_else(|_| {
                self.problems
                    .push(format!("{name} must be a whole number, got {v:?}"));
                default
            }),
            Err(_) => default,
        }
    }

    pub fn millis(&mut self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.number(name, default_ms))
    }

    pub fn flag(&mut self, name: &str) -> bool {
        match std::env::var(name).as_deref() {
            Ok("true" | "1" | "yes") => true,
            Ok("false" | "0" | "no" | "") | Err(_) => false,
            Ok(v) => {
                self.problems
                    .push(format!("{name} must be true or false, got {v:?}"));
                false
            }
        }
    }

    pub fn finish(self) -> Result<(), String> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.join("\n"))
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    /// Longest gap between two chunks of a streamed answer before it is ended with an error.
    pub upstream_idle_timeout: Duration,
    pub reconcile_interval: Duration,
    pub source_timeout: Duration,
    pub max_upstream_connections: usize,
    /// Whether upstream host names may resolve to private addresses (self-hosted models on a LAN).
    pub allow_private_upstreams: bool,
    /// Where Google service-account assertions are exchanged for access tokens.
    pub google_token_url: String,
    /// Whether an image URL a client sends (fetched for Gemini and Converse targets) may point at
    /// a private address. Separate from `allow_private_upstreams`: those URLs are the operator's,
    /// these anyone's with a key.
    pub allow_private_image_urls: bool,
    /// Longest an image fetch may take.
    pub image_fetch_timeout: Duration,
    /// Whether browsers on other origins may call the gateway (`cors`).
    pub cors: bool,
}

impl Settings {
    pub fn from_env(env: &mut Env) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Settings {
            listen: env.string("TO11_GATEWAY_LISTEN", "127.0.0.1:8080"),
            workers: env.number("TO11_GATEWAY_WORKERS", cpus as u64).max(1) as usize,
            max_body_bytes: env.number("TO11_MAX_BODY_BYTES", 32 * 1024 * 1024) as usize,
            upstream_connect_timeout: env.millis("TO11_UPSTREAM_CONNECT_TIMEOUT_MS", 10_000),
            upstream_timeout: env.millis("TO11_UPSTREAM_TIMEOUT_MS", 600_000),
            upstream_idle_timeout: env.millis("TO11_UPSTREAM_IDLE_TIMEOUT_MS", 300_000),
            reconcile_interval: env.millis("TO11_RECONCILE_INTERVAL_MS", 5_000),
            source_timeout: env.millis("TO11_SOURCE_TIMEOUT_MS", 2_000),
            max_upstream_connections: env.number("TO11_MAX_UPSTREAM_CONNECTIONS", 1024) as usize,
            allow_private_upstreams: env.flag("TO11_ALLOW_PRIVATE_UPSTREAMS"),
            google_token_url: env.string(
                "TO11_GOOGLE_TOKEN_URL",
                to11_shared::google::DEFAULT_TOKEN_URL,
            ),
            allow_private_image_urls: env.flag("TO11_ALLOW_PRIVATE_IMAGE_URLS"),
            image_fetch_timeout: env.millis("TO11_IMAGE_FETCH_TIMEOUT_MS", 10_000),
            cors: !matches!(
                env.optional("TO11_CORS").as_deref(),
                Some("false" | "0" | "no")
            ),
        }
    }

    /// Defaults with a given listen address (tests, embedded mode).
    pub fn with_listen(listen: &str) -> Self {
        let mut s = Self::from_env(&mut Env::default());
        s.listen = listen.to_string();
        s
    }
}
