//! Request-body helpers for the hot path: peek at `model`/`stream` without building a DOM, and
//! replace the top-level `model` while keeping every other byte of the body as the client sent it.

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// What the gateway needs from a JSON request body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Peek<'a> {
    pub model: Option<Cow<'a, str>>,
    pub stream: bool,
    /// Byte range of the top-level `model` value (including its quotes) in the body.
    pub model_span: Option<(usize, usize)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body must be a JSON object")]
    NotObject,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Parses just enough of a body to route it. The whole body is validated as JSON.
pub fn peek(body: &[u8]) -> Result<Peek<'_>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Still report invalid JSON as such.
        serde_json::from_slice::<IgnoredAny>(body).map_err(|e| BodyError::Json(e.to_string()))?;
        return Err(BodyError::NotObject);
    }
    let f: Fields<'_> = serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
    let model_span = match f.model {
        Some(_) => model_span(body),
        None => None,
    };
    Ok(Peek {
        model: f.model,
        stream: f.stream.unwrap_or(false),
        model_span,
    })
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

/// Adds each `(key, value)` of `defaults` the body's top-level object does not already have,
/// keeping every existing byte; the request's own values always win. `body` must be a JSON object
/// (as `peek` checked).
pub fn apply_defaults(
    body: &[u8],
    defaults: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, BodyError> {
    let top: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
    let missing: Vec<(&String, &serde_json::Value)> = defaults
        .iter()
        .filter(|(k, _)| !top.contains_key(*k))
        .collect();
    let close = body
        .iter()
        .rposition(|b| *b == b'}')
        .ok_or(BodyError::NotObject)?;
    let mut out = Vec::with_capacity(body.len() + 64 * missing.len());
    out.extend_from_slice(&body[..close]);
    let mut need_comma = !top.is_empty();
    for (k, v) in missing {
        if need_comma {
            out.push(b',');
        }
        need_comma = true;
        out.extend_from_slice(serde_json::to_string(k).unwrap_or_default().as_bytes());
        out.push(b':');
        out.extend_from_slice(serde_json::to_string(v).unwrap_or_default().as_bytes());
    }
    out.extend_from_slice(&body[close..]);
    Ok(out)
}

/// Finds the byte span of the top-level `"model"` string value with serde_json's own tokenizer:
/// the top-level object is walked with each value deserialized as a `RawValue`, whose position in
/// the input gives the span.
fn model_span(body: &[u8]) -> Option<(usize, usize)> {
    struct SpanVisitor<'a> {
        base: usize,
        _body: &'a [u8],
    }
    impl<'de, 'a> Visitor<'de> for SpanVisitor<'a> {
        type Value = Option<(usize, usize)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                let raw: &'de serde_json::value::RawValue = map.next_value()?;
                if key == "model" {
                    let start = raw.get().as_ptr() as usize - self.base;
                    found = Some((start, start + raw.get().len()));
                }
            }
            Ok(found)
        }
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let base = text.as_ptr() as usize;
    de.deserialize_map(SpanVisitor { base, _body: body })
        .ok()
        .flatten()
        .filter(|(s, e)| body.get(*s) == Some(&b'"') && *e <= body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_model_and_stream() {
        let b = br#"{"messages":[{"role":"user","content":"hi \"model\": x"}],"model":"gpt-4o","stream":true}"#;
        let p = peek(b).expect("ok");
        assert_eq!(p.model.as_deref(), Some("gpt-4o"));
        assert!(p.stream);
        let (s, e) = p.model_span.expect("span");
        assert_eq!(&b[s..e], br#""gpt-4o""#);
    }

    #[test]
    fn escaped_model_names() {
        let b = br#"{ "model" : "a\/b\u0041" }"#;
        let p = peek(b).expect("ok");
        assert_eq!(p.model.as_deref(), Some("a/bA"));
        let (s, e) = p.model_span.expect("span");
        let out = replace_model(b, (s, e), "x\"y");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid");
        assert_eq!(v["model"], "x\"y");
    }

    #[test]
    fn replace_keeps_other_bytes() {
        let b = br#"{"model":"openai/gpt-4o",  "n":1.50,"z":{"model":"inner"}}"#;
        let p = peek(b).expect("ok");
        let out = replace_model(b, p.model_span.expect("span"), "gpt-4o");
        assert_eq!(
            out,
            br#"{"model":"gpt-4o",  "n":1.50,"z":{"model":"inner"}}"#.to_vec()
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(peek(b"{"), Err(BodyError::Json(_))));
        assert!(matches!(peek(b"[1]"), Err(BodyError::NotObject)));
        assert!(matches!(peek(b"nope"), Err(BodyError::Json(_))));
        assert!(matches!(peek(br#"{"model":3}"#), Err(BodyError::Json(_))));
        assert_eq!(peek(b"{}").map(|p| p.model), Ok(None));
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut d = serde_json::Map::new();
        d.insert("temperature".into(), serde_json::json!(0.2));
        d.insert("max_tokens".into(), serde_json::json!(100));
        let out = apply_defaults(br#"{"model":"m", "temperature":1}"#, &d).expect("ok");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["temperature"], 1, "the request's own value wins");
        assert_eq!(v["max_tokens"], 100);
        assert!(
            out.starts_with(br#"{"model":"m", "temperature":1"#),
            "existing bytes kept"
        );
        let out = apply_defaults(b"{ }", &d).expect("ok");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            (v["temperature"].clone(), v["max_tokens"].clone()),
            (serde_json::json!(0.2), serde_json::json!(100))
        );
        assert_eq!(
            apply_defaults(br#"{"a":1}"#, &serde_json::Map::new()).expect("ok"),
            br#"{"a":1}"#.to_vec()
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
            let out = apply_defaults(&raw, &d).expect("ok");
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
            let p = peek(body.as_bytes()).expect("valid");
            let out = replace_model(body.as_bytes(), p.model_span.expect("span"), &name);
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
            proptest::prop_assert_eq!(v["model"].as_str(), Some(name.as_str()));
            proptest::prop_assert_eq!(&v["b"][1]["model"], "x");
            proptest::prop_assert_eq!(v["a"].as_str(), Some(other.as_str()));
        }
    }
}
