//! Request-body helpers for the hot path: one scan of the top level that yields the model, the
//! stream flag, where `model` sits and which keys are present (the rest is validated, never
//! built into a DOM); the model replaced and a function's defaults added while every other byte
//! stays as the client sent it.

mod skim;

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// What the gateway needs from a JSON request body, from one pass over it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan<'a> {
    pub model: Option<Cow<'a, str>>,
    pub stream: bool,
    /// Byte range of the top-level `model` value (including its quotes) in the body.
    pub model_span: Option<(usize, usize)>,
    /// The top-level keys, in order.
    pub keys: Vec<Cow<'a, str>>,
    /// The top-level `user` (OpenAI's end-user id), when it is a string.
    pub user: Option<Cow<'a, str>>,
    /// Whether `stream_options.include_usage` is true.
    pub include_usage: bool,
    /// The most output tokens the request allows (`max_tokens`, `max_completion_tokens` or
    /// `max_output_tokens` at the top level), when it is a whole number: what limits reserve.
    pub max_output: Option<u64>,
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body must be a JSON object")]
    NotObject,
}

/// A string borrowed from the body when it has no escapes, owned otherwise. serde's own
/// `Cow<str>` always deserializes owned (one allocation per key of every body).
struct CowStr<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(CowStr)
    }
}

struct ScanVisitor<'a> {
    base: usize,
    _body: std::marker::PhantomData<&'a ()>,
}

impl<'de> Visitor<'de> for ScanVisitor<'de> {
    type Value = Scan<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut scan = Scan::default();
        let mut stream_seen = false;
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            match key.as_ref() {
                "model" => {
                    if scan.model.is_some() {
                        return Err(A::Error::duplicate_field("model"));
                    }
                    let raw: &'de RawValue = map.next_value()?;
                    let text = raw.get();
                    if text == "null" {
                        // As if absent.
                        scan.keys.push(key);
                        continue;
                    }
                    let model: Cow<'de, str> = match serde_json::from_str::<&'de str>(text) {
                        Ok(s) => Cow::Borrowed(s),
                        Err(_) => Cow::Owned(
                            serde_json::from_str::<String>(text).map_err(A::Error::custom)?,
                        ),
                    };
                    let start = text.as_ptr() as usize - self.base;
                    scan.model_span = Some((start, start + text.len()));
                    scan.model = Some(model);
                }
                "stream" => {
                    if stream_seen {
                        return Err(A::Error::duplicate_field("stream"));
                    }
                    stream_seen = true;
                    scan.stream = map.next_value::<Option<bool>>()?.unwrap_or(false);
                }
                "user" => {
                    let raw: &'de RawValue = map.next_value()?;
                    if let Ok(CowStr(u)) = serde_json::from_str::<CowStr<'de>>(raw.get()) {
                        scan.user = Some(u);
                    }
                }
                "max_tokens" | "max_completion_tokens" | "max_output_tokens" => {
                    let raw: &'de RawValue = map.next_value()?;
                    if let Ok(n) = raw.get().parse::<u64>() {
                        scan.max_output = Some(scan.max_output.map_or(n, |m| m.min(n)));
                    }
                }
                "stream_options" => {
                    let raw: &'de RawValue = map.next_value()?;
                    scan.include_usage = include_usage(raw.get());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            scan.keys.push(key);
        }
        Ok(scan)
    }
}

/// Whether `stream_options` (its JSON text) asks for usage.
fn include_usage(raw: &str) -> bool {
    serde_json::from_str::<StreamOptions>(raw)
        .ok()
        .and_then(|o| o.include_usage)
        .unwrap_or(false)
}

/// Reads just enough of a body to route it, in one pass; the whole body is validated as JSON.
/// A plain body is read by hand (`skim`); serde_json reads the rest, and words every error.
pub fn scan(body: &[u8]) -> Result<Scan<'_>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Still report invalid JSON as such.
        serde_json::from_slice::<IgnoredAny>(body).map_err(|e| BodyError::Json(e.to_string()))?;
        return Err(BodyError::NotObject);
    }
    let text = std::str::from_utf8(body).map_err(|e| BodyError::Json(e.to_string()))?;
    match skim::skim(text) {
        Some(scan) => Ok(scan),
        None => scan_with_serde(text),
    }
}

/// `scan` by serde_json: the reference `skim` answers as, and the reader of what it leaves.
fn scan_with_serde(text: &str) -> Result<Scan<'_>, BodyError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let scan = de
        .deserialize_map(ScanVisitor {
            base: text.as_ptr() as usize,
            _body: std::marker::PhantomData,
        })
        .map_err(|e| BodyError::Json(e.to_string()))?;
    de.end().map_err(|e| BodyError::Json(e.to_string()))?;
    Ok(scan)
}

/// Returns a copy of `body` whose top-level `model` is `new_model`; every other byte is kept.
pub fn replace_model(body: &[u8], span: (usize, usize), new_model: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(new_model).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.0]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.1..]);
    out
}

/// Adds each `(key, value)` of `defaults` the body's top level does not already have (`scan`
/// says which it has), keeping every existing byte; the request's own values always win.
pub fn apply_defaults(
    body: &[u8],
    scan: &Scan<'_>,
    defaults: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, BodyError> {
    let close = body
        .iter()
        .rposition(|b| *b == b'}')
        .ok_or(BodyError::NotObject)?;
    let mut out = Vec::with_capacity(body.len() + 64 * defaults.len());
    out.extend_from_slice(&body[..close]);
    let mut need_comma = !scan.keys.is_empty();
    for (k, v) in defaults {
        if scan.keys.iter().any(|have| have == k) {
            continue;
        }
        if need_comma {
            out.push(b',');
        }
        need_comma = true;
        // Serialising a string key and a JSON value into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, v);
    }
    out.extend_from_slice(&body[close..]);
    Ok(out)
}

/// Adds each default the request object does not already have (translated requests, which are
/// built into a DOM anyway).
pub fn apply_defaults_to(
    body: &mut serde_json::Map<String, serde_json::Value>,
    defaults: &serde_json::Map<String, serde_json::Value>,
) {
    for (k, v) in defaults {
        if !body.contains_key(k) {
            body.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_model_stream_and_keys() {
        let b = br#"{"messages":[{"role":"user","content":"hi \"model\": x"}],"model":"gpt-4o","stream":true}"#;
        let p = scan(b).expect("ok");
        assert_eq!(p.model.as_deref(), Some("gpt-4o"));
        assert!(p.stream);
        assert_eq!(p.keys, ["messages", "model", "stream"]);
        assert!(p.user.is_none() && !p.include_usage);
        let (s, e) = p.model_span.expect("span");
        assert_eq!(&b[s..e], br#""gpt-4o""#);
    }

    #[test]
    fn scans_user_and_include_usage() {
        let b = br#"{"user":"u-7","stream_options":{"include_usage":true},"model":"m"}"#;
        let p = scan(b).expect("ok");
        assert_eq!((p.user.as_deref(), p.include_usage), (Some("u-7"), true));
        let p = scan(br#"{"user":5,"stream_options":"x","model":"m"}"#).expect("ok");
        assert_eq!(
            (p.user, p.include_usage, p.model.as_deref()),
            (None, false, Some("m"))
        );
    }

    #[test]
    fn keys_and_users_are_borrowed_from_the_body_unless_escaped() {
        let b = br#"{"mo\u0064el":"m","user":"plain","stream":false}"#;
        let p = scan(b).expect("ok");
        assert_eq!(
            p.model.as_deref(),
            Some("m"),
            "an escaped key is still read"
        );
        assert!(matches!(p.keys[0], Cow::Owned(_)));
        assert!(matches!(p.keys[1], Cow::Borrowed("user")));
        assert!(matches!(p.user, Some(Cow::Borrowed("plain"))));
        let p = scan(br#"{"user":"a\nb"}"#).expect("ok");
        assert!(matches!(p.user.as_deref(), Some("a\nb")));
        assert!(matches!(p.user, Some(Cow::Owned(_))));
    }

    #[test]
    fn escaped_model_names() {
        let b = br#"{ "model" : "a\/b\u0041" }"#;
        let p = scan(b).expect("ok");
        assert_eq!(p.model.as_deref(), Some("a/bA"));
        let (s, e) = p.model_span.expect("span");
        let out = replace_model(b, (s, e), "x\"y");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid");
        assert_eq!(v["model"], "x\"y");
    }

    #[test]
    fn replace_keeps_other_bytes() {
        let b = br#"{"model":"openai/gpt-4o",  "n":1.50,"z":{"model":"inner"}}"#;
        let p = scan(b).expect("ok");
        let out = replace_model(b, p.model_span.expect("span"), "gpt-4o");
        assert_eq!(
            out,
            br#"{"model":"gpt-4o",  "n":1.50,"z":{"model":"inner"}}"#.to_vec()
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(scan(b"{"), Err(BodyError::Json(_))));
        assert!(matches!(scan(b"[1]"), Err(BodyError::NotObject)));
        assert!(matches!(scan(b"nope"), Err(BodyError::Json(_))));
        assert!(matches!(scan(br#"{"model":3}"#), Err(BodyError::Json(_))));
        assert_eq!(scan(b"{}").map(|p| p.model), Ok(None));
        assert!(matches!(
            scan(br#"{"stream":"yes"}"#),
            Err(BodyError::Json(_))
        ));
        assert!(matches!(
            scan(br#"{"model":"a","model":"b"}"#),
            Err(BodyError::Json(_))
        ));
        assert!(matches!(scan(br#"{"a":1} x"#), Err(BodyError::Json(_))));
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut d = serde_json::Map::new();
        d.insert("temperature".into(), serde_json::json!(0.2));
        d.insert("max_tokens".into(), serde_json::json!(100));
        let body = br#"{"model":"m", "temperature":1}"#;
        let out = apply_defaults(body, &scan(body).expect("scan"), &d).expect("ok");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["temperature"], 1, "the request's own value wins");
        assert_eq!(v["max_tokens"], 100);
        assert!(
            out.starts_with(br#"{"model":"m", "temperature":1"#),
            "existing bytes kept"
        );
        let out = apply_defaults(b"{ }", &scan(b"{ }").expect("scan"), &d).expect("ok");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            (v["temperature"].clone(), v["max_tokens"].clone()),
            (serde_json::json!(0.2), serde_json::json!(100))
        );
        let body = br#"{"a":1}"#;
        assert_eq!(
            apply_defaults(body, &scan(body).expect("scan"), &serde_json::Map::new()).expect("ok"),
            body.to_vec()
        );
    }

    proptest::proptest! {
        #[test]
        fn defaults_keep_the_body_valid(keys in proptest::collection::vec("[a-z\\\"]{1,6}", 0..4), present in proptest::collection::vec("[a-z]{1,6}", 0..4)) {
            let mut body = serde_json::Map::new();
            for k in &present {
                body.insert(k.clone(), serde_json::json!(k));
            }
            let raw = serde_json::to_vec(&body).expect("json");
            let mut d = serde_json::Map::new();
            for k in &keys {
                d.insert(k.clone(), serde_json::json!([1, {"x": k}]));
            }
            let out = apply_defaults(&raw, &scan(&raw).expect("scan"), &d).expect("ok");
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).expect("valid json");
            for k in &present {
                proptest::prop_assert_eq!(&v[k], &serde_json::json!(k));
            }
            for k in &keys {
                if !present.contains(k) {
                    proptest::prop_assert_eq!(&v[k], &serde_json::json!([1, {"x": k}]));
                }
            }
        }

        #[test]
        fn replace_model_roundtrips(name in ".{0,20}", other in "[a-z]{0,8}") {
            let body = serde_json::json!({"a": other, "model": "m", "b": [1, {"model": "x"}]}).to_string();
            let p = scan(body.as_bytes()).expect("valid");
            let out = replace_model(body.as_bytes(), p.model_span.expect("span"), &name);
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
            proptest::prop_assert_eq!(v["model"].as_str(), Some(name.as_str()));
            proptest::prop_assert_eq!(&v["b"][1]["model"], "x");
            proptest::prop_assert_eq!(v["a"].as_str(), Some(other.as_str()));
        }
    }
}
