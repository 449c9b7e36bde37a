//! One record per request: what the gateway knows of a request when it ends, shipped from the
//! replicas to the usage store. Prompts and answers are never part of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::usage::{Usage, UsageSource};

/// A request, as metered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request id (`x-to11-request-id`); records are stored once per id.
    pub id: Uuid,
    /// When the request arrived.
    pub time: DateTime<Utc>,
    pub project: Uuid,
    pub key: Uuid,
    /// The API called: `chat`, `completions`, `embeddings`, `responses`, `messages`,
    /// `generate-content`, `converse`, `invoke`.
    pub surface: String,
    /// The model name the client asked for.
    pub requested_model: String,
    /// How it resolved: `function`, `route` or `provider`.
    pub layer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The provider (slug) and its catalog kind that gave the answer (the last one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_kind: Option<String>,
    /// The upstream model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub stream: bool,
    /// The status the client got.
    pub status: u16,
    /// to11's error code when the request failed (`upstream_error` for an upstream's own error
    /// answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    /// The targets that failed before the answer (or before giving up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedAttempt>,
    /// From arrival to the end of the answer (the last byte, or the client going away).
    pub latency_us: u64,
    /// From arrival to the answer's first byte from the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_us: Option<u64>,
    /// `None` when no upstream answer was metered (the request failed before or upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_source: Option<UsageSource>,
    /// Whether the client went away before the answer ended.
    #[serde(default)]
    pub cancelled: bool,
    /// Micro-units of currency, priced at ingestion; `None` when the model has no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
    /// The end user (`user` in the body, or `x-to11-user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The client's tags (`x-to11-tags`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A target that failed before the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub provider: String,
    pub model: String,
    /// The upstream's status, or `None` when it did not answer (then `error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

    #[test]
    fn records_round_trip_and_tolerate_new_fields() {
        let r = RequestRecord {
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
        };
        let mut v = serde_json::to_value(&r).expect("json");
        v["added_later"] = serde_json::json!(true);
        let back: RequestRecord = serde_json::from_value(v).expect("tolerant");
        assert_eq!(back, r);
    }
}
