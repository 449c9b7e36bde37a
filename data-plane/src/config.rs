//! The gateway's settings (`Settings`, shared by the `to11-data-plane` and `to11` binaries) and a
//! replica's whole configuration (`ReplicaConfig`), read from one `Source` with every problem
//! reported at once.

use std::time::Duration;

use to11_shared::config::{log_filter, Problems, Reader, RedisSettings, Secret, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Whether images given by http(s) URL are fetched (for targets that take only bytes); when
    /// off, such a request is refused with a 400 asking for data URLs.
    pub image_urls: bool,
    /// Largest image fetched, and most bytes of images fetched for one request.
    pub image_max_bytes: usize,
    pub image_max_total_bytes: usize,
    /// Longest wait for a request's head, then between two chunks of its body, and for the whole
    /// body.
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Bytes of request bodies (and fetched images) held at once by the whole replica; a request
    /// that would pass it waits up to `body_memory_wait`, then gets 503 `overloaded`.
    pub body_memory_bytes: usize,
    pub body_memory_wait: Duration,
    /// Most upstream attempts for one request, retries and fallbacks included.
    pub max_attempts: u32,
    /// Failed to11 keys allowed from one source per minute; beyond, the source gets 429 before
    /// its key is even looked at, for a back-off that doubles with each block (0: no limit).
    pub failed_auth_per_minute: u32,
    /// A header holding the client's address, set by a proxy in front (the last value is used:
    /// the one the proxy appended); otherwise the peer address is the source.
    pub client_ip_header: Option<String>,
    /// Whether browsers on other origins may call the gateway (`cors`).
    pub cors: bool,
    /// Whether every request is metered into a record (`metering`).
    pub usage: bool,
    /// Records waiting to be shipped, at most; beyond, new records are dropped (and counted).
    pub usage_buffer: usize,
    /// How long each worker gathers request records into a batch.
    pub usage_flush: Duration,
    /// Per-request metrics (`metrics`): requests, latencies, tokens, attempts. Off, `/metrics`
    /// keeps the configuration and usage pipeline figures.
    pub metrics: bool,
    /// Whether per-request metrics carry a `project` label (the project's slug).
    pub metrics_project_label: bool,
    /// What a replica does with limited requests while the limits store is unreachable.
    pub limits_when_store_down: crate::limits::WhenDown,
    /// Output tokens a request that sets no maximum reserves against token limits and budgets.
    pub limits_default_output_tokens: u64,
    /// Longest wait for the limits store (a grant, a report) before counting on the worker's
    /// own share.
    pub limits_store_timeout: Duration,
    /// The retry budget: extra upstream attempts (retries and fallbacks) allowed, as a percentage
    /// of the requests of the last 10 s (per replica and per route target) ...
    pub retry_budget_percent: u32,
    /// ... or this many per second, whichever is larger (so retries stay possible at low traffic).
    pub retry_budget_min_per_second: u32,
    /// On SIGTERM, how long `/readyz` answers 503 while everything is still served (for load
    /// balancers to take the replica out) before it stops accepting connections.
    pub drain_grace: std::time::Duration,
    /// Then how long requests and streams in flight may take to finish; those still open are
    /// ended with a terminal error event in their API's shape.
    pub drain_timeout: std::time::Duration,
    /// How often the configuration subscription is checked (a PING on it), apart from the
    /// reconcile interval: a dead or hung connection is noticed within this plus
    /// `source_timeout`.
    pub subscription_check_interval: std::time::Duration,
    /// How often the replica reports its state to the control plane (through its source); a
    /// report expires after three intervals.
    pub report_interval: std::time::Duration,
    /// The replica's name in its reports; empty: the host name and process id.
    pub replica_id: String,
    /// OpenTelemetry traces: `None` (off) unless an OTLP endpoint is set in the standard
    /// `OTEL_*` variables.
    pub tracing: Option<to11_shared::otel::TraceSettings>,
}

impl Settings {
    pub fn read(env: &mut Reader<'_>) -> Self {
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
            allow_private_upstreams: env.flag("TO11_ALLOW_PRIVATE_UPSTREAMS", false),
            google_token_url: env.string(
                "TO11_GOOGLE_TOKEN_URL",
                to11_shared::google::DEFAULT_TOKEN_URL,
            ),
            allow_private_image_urls: env.flag("TO11_ALLOW_PRIVATE_IMAGE_URLS", false),
            image_fetch_timeout: env.millis("TO11_IMAGE_FETCH_TIMEOUT_MS", 10_000),
            image_urls: env.flag("TO11_IMAGE_URLS", true),
            image_max_bytes: env.number("TO11_IMAGE_MAX_BYTES", 10 * 1024 * 1024) as usize,
            image_max_total_bytes: env.number("TO11_IMAGE_MAX_TOTAL_BYTES", 20 * 1024 * 1024)
                as usize,
            header_read_timeout: env.millis("TO11_HEADER_READ_TIMEOUT_MS", 5_000),
            body_idle_timeout: env.millis("TO11_BODY_IDLE_TIMEOUT_MS", 10_000),
            body_read_timeout: env.millis("TO11_BODY_READ_TIMEOUT_MS", 60_000),
            body_memory_bytes: env.number("TO11_BODY_MEMORY_BYTES", 512 * 1024 * 1024) as usize,
            body_memory_wait: env.millis("TO11_BODY_MEMORY_WAIT_MS", 1_000),
            max_attempts: env.number("TO11_MAX_ATTEMPTS", 10).max(1) as u32,
            failed_auth_per_minute: env.number("TO11_FAILED_AUTH_PER_MINUTE", 60) as u32,
            client_ip_header: Some(env.string("TO11_CLIENT_IP_HEADER", ""))
                .filter(|h| !h.is_empty())
                .map(|h| h.to_ascii_lowercase()),
            cors: env.flag("TO11_CORS", true),
            usage: env.flag("TO11_USAGE", true),
            usage_buffer: env.number("TO11_USAGE_BUFFER", 100_000) as usize,
            usage_flush: env.millis(
                "TO11_USAGE_FLUSH_MS",
                crate::metering::GATHER.as_millis() as u64,
            ),
            metrics: env.flag("TO11_METRICS", true),
            metrics_project_label: env.flag("TO11_METRICS_PROJECT_LABEL", false),
            limits_when_store_down: match env
                .string("TO11_LIMITS_WHEN_STORE_DOWN", "local")
                .as_str()
            {
                "local" => crate::limits::WhenDown::Local,
                "refuse" => crate::limits::WhenDown::Refuse,
                other => {
                    env.problem(format!(
                        "TO11_LIMITS_WHEN_STORE_DOWN: '{other}' is neither 'local' nor 'refuse'"
                    ));
                    crate::limits::WhenDown::Local
                }
            },
            limits_default_output_tokens: env.number("TO11_LIMITS_DEFAULT_OUTPUT_TOKENS", 4096),
            limits_store_timeout: env.millis("TO11_LIMITS_STORE_TIMEOUT_MS", 200),
            retry_budget_percent: env.number("TO11_RETRY_BUDGET_PERCENT", 20).min(1000) as u32,
            retry_budget_min_per_second: env.number("TO11_RETRY_BUDGET_MIN_PER_SECOND", 3) as u32,
            drain_grace: env.millis("TO11_DRAIN_GRACE_MS", 5_000),
            drain_timeout: env.millis("TO11_DRAIN_TIMEOUT_MS", 60_000),
            subscription_check_interval: env
                .millis("TO11_SUBSCRIPTION_CHECK_INTERVAL_MS", 1_000)
                .max(std::time::Duration::from_millis(10)),
            report_interval: env
                .millis("TO11_REPORT_INTERVAL_MS", 2_000)
                .max(std::time::Duration::from_millis(10)),
            replica_id: env.string("TO11_REPLICA_ID", ""),
            tracing: to11_shared::otel::TraceSettings::read(env, "to11-data-plane"),
        }
    }

    /// Defaults with a given listen address (tests).
    pub fn with_listen(listen: &str) -> Self {
        let source = Source::default();
        let mut s = Self::read(&mut source.reader());
        s.listen = listen.to_string();
        s
    }
}

/// Everything `to11-data-plane` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub gateway: Settings,
    pub redis: RedisSettings,
    /// The control plane's master key (base64 of 32 bytes).
    pub master_key: Secret,
    /// The usage stream's length cap, in entries (batches of up to `MAX_BATCH` records).
    pub usage_stream_max: u64,
    pub log: String,
}

impl ReplicaConfig {
    pub fn from_source(source: &Source) -> Result<Self, Problems> {
        let mut r = source.reader();
        let gateway = Settings::read(&mut r);
        let redis = RedisSettings::read(&mut r);
        let master_key = r.required(
            "TO11_MASTER_KEY",
            "the control plane's master key, base64 of 32 bytes",
        );
        if let Some(Err(e)) = master_key
            .as_deref()
            .map(to11_shared::crypto::Keyring::from_base64)
        {
            r.problem(format!("TO11_MASTER_KEY: {e}"));
        }
        let log = log_filter(&mut r);
        let master_key = Secret::new(master_key.unwrap_or_default());
        let usage_stream_max = r.number("TO11_USAGE_STREAM_MAX", 20_000);
        r.finish(ReplicaConfig {
            gateway,
            redis,
            master_key,
            usage_stream_max,
            log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_needs_its_master_key_and_reports_every_problem() {
        let e = ReplicaConfig::from_source(&Source::from_pairs(&[
            ("TO11_GATEWAY_WORKERS", "many"),
            ("TO11_CORS", "perhaps"),
        ]))
        .expect_err("problems");
        assert_eq!(e.0.len(), 3, "{e}");
        let key = to11_shared::crypto::Keyring::generate_master_base64();
        let c = ReplicaConfig::from_source(&Source::from_pairs(&[
            ("TO11_MASTER_KEY", &key),
            ("TO11_CORS", "false"),
            ("TO11_UPSTREAM_IDLE_TIMEOUT_MS", "1500"),
        ]))
        .expect("valid");
        assert!(!c.gateway.cors);
        assert_eq!(c.gateway.upstream_idle_timeout, Duration::from_millis(1500));
        assert_eq!(c.redis.prefix, "to11:");
    }
}
