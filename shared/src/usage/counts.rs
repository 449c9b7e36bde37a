//! A usage object's counts, read straight from its JSON text into fixed fields: every count any
//! provider's usage object carries (OpenAI's, Anthropic's, Gemini's, Converse's and Nova's,
//! Bedrock's invocation metrics), each remembered as absent, present without a usable count, or a
//! count. Reading into this instead of a `serde_json::Value` allocates nothing per key, which
//! matters: the meter reads one for every answer on the hot path. Unknown keys are skipped, and
//! a known key holding something that is not a count (a string, `null`, an object) is present
//! but not a count — never an error that would lose the rest.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One count field: absent, present without a usable count, or a count (a non-negative
/// integer, or an integral float as some servers write them). Eight bytes: the two largest
/// values stand for the first two.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Field(u64);

impl Default for Field {
    fn default() -> Self {
        Field::ABSENT
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Field::ABSENT => f.write_str("Absent"),
            n => write!(f, "Present({:?})", n.get()),
        }
    }
}

impl Field {
    const ABSENT: Field = Field(u64::MAX);
    const NOT_A_COUNT: u64 = u64::MAX - 1;

    pub(super) fn present(n: Option<u64>) -> Field {
        Field(
            n.filter(|&n| n < Field::NOT_A_COUNT)
                .unwrap_or(Field::NOT_A_COUNT),
        )
    }

    pub fn get(self) -> Option<u64> {
        (self.0 < Field::NOT_A_COUNT).then_some(self.0)
    }

    pub fn is_present(self) -> bool {
        self != Field::ABSENT
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Option<u64>, E> {
                Ok(Some(n))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Option<u64>, E> {
                Ok(u64::try_from(n).ok())
            }
            fn visit_f64<E>(self, f: f64) -> Result<Option<u64>, E> {
                Ok((f.is_finite() && f >= 0.0 && f.fract() == 0.0).then_some(f as u64))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Option<u64>, E> {
                Ok(None)
            }
            fn visit_str<E>(self, _: &str) -> Result<Option<u64>, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Option<u64>, E> {
                Ok(None)
            }
            fn visit_none<E>(self) -> Result<Option<u64>, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Option<u64>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Option<u64>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(V).map(Field::present)
    }
}

/// An object nested in a usage object, read when it is one and skipped otherwise.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Nested<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Option<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(Some)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Option<T>, A::Error> {
                T::deserialize(de::value::SeqAccessDeserializer::new(s)).map(Some)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_none<E>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_str<E>(self, _: &str) -> Result<Option<T>, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData)).map(Nested)
    }
}

/// `*_tokens_details` of OpenAI's usage (chat: prompt/completion; Responses API: input/output).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(super) struct Details {
    pub cached_tokens: Field,
    pub cache_write_tokens: Field,
    pub cache_creation_tokens: Field,
    pub reasoning_tokens: Field,
}

/// Anthropic's `cache_creation` split by TTL.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(super) struct CacheCreation {
    pub ephemeral_5m_input_tokens: Field,
    pub ephemeral_1h_input_tokens: Field,
}

/// One of Converse's `cacheDetails`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(super) struct CacheDetail {
    pub ttl: Ttl,
    #[serde(rename = "inputTokens")]
    pub input_tokens: Field,
}

/// A cache TTL (`5m`, `1h`): a string, anything else is no TTL.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Ttl(pub Option<String>);

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Ttl(match Value::deserialize(d)? {
            Value::String(s) => Some(s),
            _ => None,
        }))
    }
}

/// Every count a usage object (or Bedrock's metrics) may carry, by the name its provider gives it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(super) struct Counts {
    // OpenAI chat and completions, DeepSeek's cache fields.
    pub prompt_tokens: Field,
    pub completion_tokens: Field,
    pub total_tokens: Field,
    pub prompt_cache_hit_tokens: Field,
    pub prompt_cache_miss_tokens: Field,
    pub prompt_tokens_details: Nested<Details>,
    pub completion_tokens_details: Nested<Details>,
    // The Responses API and Anthropic.
    pub input_tokens: Field,
    pub output_tokens: Field,
    pub input_tokens_details: Nested<Details>,
    pub output_tokens_details: Nested<Details>,
    pub cache_read_input_tokens: Field,
    pub cache_creation_input_tokens: Field,
    pub cache_creation: Nested<CacheCreation>,
    // Gemini.
    #[serde(rename = "promptTokenCount")]
    pub prompt_token_count: Field,
    #[serde(rename = "candidatesTokenCount")]
    pub candidates_token_count: Field,
    #[serde(rename = "thoughtsTokenCount")]
    pub thoughts_token_count: Field,
    #[serde(rename = "cachedContentTokenCount")]
    pub cached_content_token_count: Field,
    #[serde(rename = "toolUsePromptTokenCount")]
    pub tool_use_prompt_token_count: Field,
    // Converse, and Nova's InvokeModel answers.
    #[serde(rename = "inputTokens")]
    pub input_tokens_camel: Field,
    #[serde(rename = "outputTokens")]
    pub output_tokens_camel: Field,
    #[serde(rename = "cacheReadInputTokens")]
    pub cache_read_input_tokens_camel: Field,
    #[serde(rename = "cacheWriteInputTokens")]
    pub cache_write_input_tokens_camel: Field,
    #[serde(rename = "cacheDetails")]
    pub cache_details: Nested<Vec<Nested<CacheDetail>>>,
    // Bedrock's invocation metrics (and Nova's cache fields).
    #[serde(rename = "inputTokenCount")]
    pub input_token_count: Field,
    #[serde(rename = "outputTokenCount")]
    pub output_token_count: Field,
    #[serde(rename = "cacheReadInputTokenCount")]
    pub cache_read_input_token_count: Field,
    #[serde(rename = "cacheWriteInputTokenCount")]
    pub cache_write_input_token_count: Field,
}

impl Counts {
    /// The counts of an already parsed object; `None` when it is not an object.
    pub fn of(v: &Value) -> Option<Counts> {
        v.is_object().then(|| Counts::deserialize(v).ok()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_lenient_and_remember_presence() {
        let c: Counts = serde_json::from_str(
            r#"{"prompt_tokens": 5, "completion_tokens": 2.0, "total_tokens": null,
                "input_tokens": "x", "output_tokens": -1, "prompt_tokens_details": 3,
                "completion_tokens_details": {"reasoning_tokens": 1, "other": [1, {"a": 2}]},
                "cacheDetails": [{"ttl": "1h", "inputTokens": 4}, 7, {"ttl": 5}],
                "unknown": {"deep": [null, true]}}"#,
        )
        .expect("lenient");
        assert_eq!(c.prompt_tokens.get(), Some(5));
        assert_eq!(c.completion_tokens.get(), Some(2));
        assert!(c.total_tokens.is_present() && c.total_tokens.get().is_none());
        assert!(c.input_tokens.is_present() && c.input_tokens.get().is_none());
        assert_eq!(c.output_tokens.get(), None);
        assert_eq!(c.prompt_tokens_details, Nested(None));
        let reasoning = c.completion_tokens_details.0.map(|d| d.reasoning_tokens);
        assert_eq!(reasoning.and_then(Field::get), Some(1));
        let details = c.cache_details.0.expect("details");
        assert_eq!(details.len(), 3);
        assert_eq!(
            details[0].0.as_ref().map(|d| d.ttl.0.as_deref()),
            Some(Some("1h"))
        );
        assert_eq!(details[1], Nested(None));
        assert!(!c.cache_read_input_tokens.is_present());
        assert_eq!(Counts::of(&serde_json::json!([1])), None);
    }
}
