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

    proptest::proptest! {
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
