//! One record per request: what the gateway knows of a request when it ends, shipped from the
//! replicas to the usage store. Prompts and answers are never part of it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::usage::{Usage, UsageSource};

mod wire;

pub use wire::Batch;

/// A name from a fixed set (`surface`, `layer`): the data plane's records borrow its constants
/// instead of allocating a copy per request; read back from the store, it is owned. Serialised as
/// a string either way.
pub type Name = Cow<'static, str>;

/// A request, as metered. In JSON (the API) every field is present, `null` when unknown; on the
/// usage stream records travel as `encode_batch` writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request id (`x-to11-request-id`); records are stored once per id.
    pub id: Uuid,
    /// When the request arrived.
    #[serde(with = "time_format")]
    pub time: DateTime<Utc>,
    pub project: Uuid,
    pub key: Uuid,
    /// The API called: `chat`, `completions`, `embeddings`, `responses`, `messages`,
    /// `generate-content`, `converse`, `invoke`.
    pub surface: Name,
    /// The model name the client asked for.
    pub requested_model: String,
    /// How it resolved: `function`, `route` or `provider`.
    pub layer: Name,
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub route: Option<String>,
    /// The provider (slug) and its catalog kind that gave the answer (the last one tried).
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub provider_kind: Option<String>,
    /// The upstream model that answered.
    #[serde(default)]
    pub model: Option<String>,
    pub stream: bool,
    /// The status the client got.
    pub status: u16,
    /// to11's error code when the request failed (`upstream_error` for an upstream's own error
    /// answer).
    #[serde(default)]
    pub error: Option<String>,
    pub attempts: u32,
    /// The targets that failed before the answer (or before giving up).
    #[serde(default)]
    pub failed: Vec<FailedAttempt>,
    /// From arrival to the end of the answer (the last byte, or the client going away).
    pub latency_us: u64,
    /// From arrival to the answer's first byte from the upstream.
    #[serde(default)]
    pub ttfb_us: Option<u64>,
    /// `None` when no upstream answer was metered (the request failed before or upstream).
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub usage_source: Option<UsageSource>,
    /// Whether the client went away before the answer ended.
    #[serde(default)]
    pub cancelled: bool,
    /// Micro-units of currency, priced at ingestion; `None` when the model has no price.
    #[serde(default)]
    pub cost: Option<u64>,
    /// The end user (`user` in the body, or `x-to11-user`).
    #[serde(default)]
    pub user: Option<String>,
    /// The client's tags (`x-to11-tags`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A target that failed before the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub provider: String,
    pub model: String,
    /// The upstream's status, or `None` when it did not answer (then `error` says why).
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The wire format of a batch on the usage stream: a version byte, then the records in postcard
/// (compact binary serde: fields in declaration order, no names). Serialising a record costs a
/// tenth of what JSON costs, which matters on a replica's hot core. A change to `RequestRecord`
/// bumps the version and keeps decoding the previous ones; the control plane is upgraded first.
pub const BATCH_FORMAT: u8 = 1;

/// A batch of records as the usage stream carries it.
/// Written by `wire` (the bytes postcard's serde serializer writes, at 60 % of its cost);
/// read back with postcard.
pub fn encode_batch(records: &[RequestRecord]) -> Vec<u8> {
    wire::encode(records)
}

/// Why a stream entry is not a batch this build can read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Written by a newer replica: a newer control plane reads it.
    #[error("batch format {0} is newer than this build reads ({BATCH_FORMAT})")]
    Newer(u8),
    #[error("not a batch of records: {0}")]
    Malformed(String),
}

/// Reads a batch written by `encode_batch`.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<RequestRecord>, BatchError> {
    match bytes.split_first() {
        Some((&BATCH_FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|e| BatchError::Malformed(e.to_string()))
        }
        Some((&v, _)) if v > BATCH_FORMAT && v != b'[' => Err(BatchError::Newer(v)),
        _ => Err(BatchError::Malformed("unknown format".into())),
    }
}

/// A record's time: RFC 3339 text in JSON, microseconds since the epoch in binary formats
/// (chrono's own serialisation formats text, even for a binary format).
mod time_format {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            s.serialize_i64(t.timestamp_micros())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::<Utc>::deserialize(d)
        } else {
            let micros = i64::deserialize(d)?;
            DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| serde::de::Error::custom("time out of range"))
        }
    }
}

/// Bounds of `x-to11-tags`.
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_NAME: usize = 64;
pub const MAX_TAG_VALUE: usize = 256;
/// Longest end-user id kept.
pub const MAX_USER: usize = 256;

/// Parses `x-to11-tags`: a JSON object of at most `MAX_TAGS` string values, names of 1 to
/// `MAX_TAG_NAME` letters, digits, `_`, `-`, `.` or `:`, values up to `MAX_TAG_VALUE`
/// characters without control characters.
pub fn parse_tags(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)
        .map_err(|_| "x-to11-tags must be a JSON object of string values".to_string())?;
    if v.len() > MAX_TAGS {
        return Err(format!(
            "x-to11-tags has {} tags; at most {MAX_TAGS}",
            v.len()
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in v {
        let name_ok = !name.is_empty()
            && name.len() <= MAX_TAG_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !name_ok {
            return Err(format!(
                "x-to11-tags: tag name {name:?} must be 1 to {MAX_TAG_NAME} letters, digits, '_', '-', '.' or ':'"
            ));
        }
        let serde_json::Value::String(value) = value else {
            return Err(format!("x-to11-tags: tag '{name}' must be a string"));
        };
        if value.chars().count() > MAX_TAG_VALUE || value.chars().any(char::is_control) {
            return Err(format!(
                "x-to11-tags: tag '{name}' must be at most {MAX_TAG_VALUE} characters, without control characters"
            ));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// An end-user id as kept: trimmed, without control characters, at most `MAX_USER` characters;
/// `None` when empty.
pub fn clean_user(raw: &str) -> Option<String> {
    let u: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER)
        .collect();
    (!u.is_empty()).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_bounded_and_strings() {
        assert_eq!(
            parse_tags(r#"{"team":"search","env":"prod"}"#).expect("ok"),
            BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "search".to_string())
            ])
        );
        for bad in [
            "[]",
            "nope",
            r#"{"a":1}"#,
            r#"{"":"x"}"#,
            r#"{"a b":"x"}"#,
            r#"{"a":"x\ny"}"#,
        ] {
            assert!(parse_tags(bad).is_err(), "{bad}");
        }
        let many: serde_json::Map<String, serde_json::Value> = (0..11)
            .map(|i| (format!("t{i}"), serde_json::json!("v")))
            .collect();
        assert!(parse_tags(&serde_json::Value::Object(many).to_string()).is_err());
        let long = serde_json::json!({"a": "x".repeat(257)}).to_string();
        assert!(parse_tags(&long).is_err());
    }

    #[test]
    fn users_are_cleaned() {
        assert_eq!(clean_user("  u-1\u{7}  "), Some("u-1".into()));
        assert_eq!(clean_user("   "), None);
        assert_eq!(clean_user(&"x".repeat(300)).map(|u| u.len()), Some(256));
    }

    fn sample() -> RequestRecord {
        RequestRecord {
            id: Uuid::from_u128(7),
            time: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            project: Uuid::from_u128(1),
            key: Uuid::from_u128(2),
            surface: "chat".into(),
            requested_model: "gpt-4o".into(),
            layer: "provider".into(),
            function: None,
            route: None,
            provider: Some("openai".into()),
            provider_kind: Some("openai".into()),
            model: Some("gpt-4o".into()),
            stream: false,
            status: 200,
            error: None,
            attempts: 1,
            failed: vec![],
            latency_us: 1500,
            ttfb_us: Some(900),
            usage: Some(Usage {
                input: 5,
                output: 3,
                ..Usage::default()
            }),
            usage_source: Some(UsageSource::Reported),
            cancelled: false,
            cost: None,
            user: None,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn records_round_trip_and_tolerate_new_fields() {
        let r = sample();
        let mut v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert!(v["function"].is_null(), "every field is present in JSON");
        v["added_later"] = serde_json::json!(true);
        let back: RequestRecord = serde_json::from_value(v).expect("tolerant");
        assert_eq!(back, r);
    }

    /// What serde's postcard serializer writes for a batch: `encode_batch`'s bytes must be these.
    fn postcard_bytes(records: &[RequestRecord]) -> Vec<u8> {
        postcard::to_extend(records, vec![BATCH_FORMAT]).expect("serialisable")
    }

    #[test]
    fn batches_are_exactly_postcards_bytes() {
        let mut records = vec![sample()];
        let mut rich = sample();
        rich.id = Uuid::from_u128(u128::MAX - 3);
        rich.time = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        rich.surface = "generate-content".into();
        rich.requested_model = "m".repeat(300);
        rich.layer = "function".into();
        rich.function = Some("f".into());
        rich.route = Some("r".into());
        rich.provider = Some("p".repeat(128));
        rich.provider_kind = Some("anthropic".into());
        rich.model = Some(String::new());
        rich.stream = true;
        rich.status = 65_535;
        rich.error = Some("incomplete".into());
        rich.attempts = u32::MAX;
        rich.failed = vec![
            FailedAttempt {
                provider: "a".into(),
                model: "m".into(),
                status: Some(503),
                error: None,
            },
            FailedAttempt {
                provider: "b".into(),
                model: "ü".into(),
                status: None,
                error: Some("timeout".into()),
            },
        ];
        rich.latency_us = u64::MAX;
        rich.ttfb_us = None;
        rich.usage = Some(Usage {
            input: 127,
            output: 128,
            cache_read: 16_383,
            cache_write: 16_384,
            cache_write_1h: 1 << 35,
            reasoning: u64::MAX,
        });
        rich.usage_source = Some(UsageSource::Estimated);
        rich.cancelled = true;
        rich.cost = Some(0);
        rich.user = Some("ü".repeat(200));
        rich.tags = BTreeMap::from([
            ("team".into(), "search".into()),
            ("a".into(), String::new()),
        ]);
        records.push(rich.clone());
        for micros in [0, -1, 1, i64::MIN / 2, -1_700_000_000_123_456] {
            let mut r = rich.clone();
            r.time = DateTime::from_timestamp_micros(micros).expect("time");
            r.usage = None;
            r.usage_source = None;
            r.cost = None;
            r.stream = false;
            records.push(r);
        }
        for i in 0..records.len() {
            assert_eq!(
                encode_batch(&records[i..=i]),
                postcard_bytes(&records[i..=i]),
                "record {i}"
            );
        }
        assert_eq!(encode_batch(&records), postcard_bytes(&records));
        assert_eq!(encode_batch(&[]), postcard_bytes(&[]));
        let many = vec![sample(); 200];
        assert_eq!(encode_batch(&many), postcard_bytes(&many));
    }

    #[test]
    fn batches_built_a_record_at_a_time_join_into_the_same_bytes() {
        let mut later = sample();
        later.id = Uuid::from_u128(8);
        later.time = DateTime::from_timestamp(1_700_000_100, 0).expect("time");
        later.user = Some("u".into());
        let all: Vec<RequestRecord> = (0..150)
            .map(|i| if i % 2 == 0 { sample() } else { later.clone() })
            .collect();
        let (mut first, mut second) = (Batch::default(), Batch::with_capacity(10));
        for r in &all[..100] {
            first.push(r);
        }
        for r in &all[100..] {
            second.push(r);
        }
        assert_eq!((first.len(), second.len()), (100, 50));
        first.append(&second);
        first.seal();
        // 150 records: a two-byte count in the head.
        assert_eq!(first.bytes(), encode_batch(&all));
        assert_eq!(first.len(), 150);
        assert_eq!(first.first_time(), Some(sample().time));
        assert_eq!(first.records(), Ok(all));
        let mut empty = Batch::default();
        assert!(empty.is_empty() && empty.first_time().is_none());
        empty.append(&second);
        assert_eq!(empty.first_time(), Some(sample().time));
    }

    #[test]
    fn batches_round_trip_exactly_and_refuse_what_they_cannot_read() {
        let mut rich = sample();
        rich.time = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        rich.function = Some("f".into());
        rich.failed = vec![FailedAttempt {
            provider: "a".into(),
            model: "m".into(),
            status: Some(503),
            error: None,
        }];
        rich.usage_source = Some(UsageSource::Estimated);
        rich.cost = Some(12);
        rich.user = Some("ü".into());
        rich.tags = BTreeMap::from([("team".into(), "search".into())]);
        let batch = vec![sample(), rich];
        let bytes = encode_batch(&batch);
        assert_eq!(bytes[0], BATCH_FORMAT);
        assert_eq!(decode_batch(&bytes), Ok(batch));
        assert_eq!(decode_batch(&encode_batch(&[])), Ok(vec![]));
        let mut newer = bytes.clone();
        newer[0] = BATCH_FORMAT + 1;
        assert_eq!(
            decode_batch(&newer),
            Err(BatchError::Newer(BATCH_FORMAT + 1))
        );
        for bad in [&b""[..], &b"[{}]"[..], &bytes[..bytes.len() - 3]] {
            assert!(
                matches!(decode_batch(bad), Err(BatchError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
