//! The fast path of reading a usage object: the shape nearly every answer has — keys without
//! escapes, non-negative integer counts, nested objects of counts, and other values (strings
//! without escapes, booleans, `null`, arrays and objects of those) skipped — read in one pass
//! over the bytes. It reads exactly what the lenient serde path (`Counts`'s `Deserialize`) reads
//! for such an object; anything else (a float, a negative or huge number, an escape, a repeated
//! key, Converse's `cacheDetails`, an object cut short) returns `None`, and the caller takes the
//! serde path. On the hot path this is a fifth of serde_json's cost per answer.

use super::counts::{CacheCreation, Counts, Details, Field, Nested};

/// The object at the start of `buf` (after blanks): its counts and the offset just past it.
#[cfg(test)]
pub(super) fn read(buf: &[u8]) -> Option<(usize, Counts)> {
    let mut c = Counts::default();
    read_into(buf, &mut c).map(|end| (end, c))
}

/// `read` into `c`, which must be `Counts::default()` (left partly written when `None`): the
/// caller's box, so that the counts (some 400 bytes) are not moved on their way to it.
pub(super) fn read_into(buf: &[u8], c: &mut Counts) -> Option<usize> {
    let mut p = Plain { b: buf, i: 0 };
    let mut seen = 0u64;
    p.object(|p, key| {
        let (bit, slot) = c.slot(key)?;
        if bit != 0 {
            if seen & bit != 0 {
                return None; // serde refuses a repeated field: so do we, by leaving it to serde
            }
            seen |= bit;
        }
        match slot {
            Slot::Count(f) => p.count(f),
            Slot::Details(d) => p.nested(d, |p, d, key| p.details_key(d, key)),
            Slot::CacheCreation(d) => p.nested(d, |p, d, key| p.cache_creation_key(d, key)),
            Slot::Other => p.skip(),
        }
    })?;
    Some(p.i)
}

/// Where a key's value goes.
pub(super) enum Slot<'c> {
    Count(&'c mut Field),
    Details(&'c mut Nested<Details>),
    CacheCreation(&'c mut Nested<CacheCreation>),
    /// Not a count: skipped.
    Other,
}

impl Counts {
    /// The field a key names (with a bit to tell repeats), by the names providers give them;
    /// `None` for a key the fast path leaves to serde.
    fn slot(&mut self, key: &[u8]) -> Option<(u64, Slot<'_>)> {
        use Slot::*;
        Some(match key {
            b"prompt_tokens" => (1, Count(&mut self.prompt_tokens)),
            b"completion_tokens" => (1 << 1, Count(&mut self.completion_tokens)),
            b"total_tokens" => (1 << 2, Count(&mut self.total_tokens)),
            b"prompt_cache_hit_tokens" => (1 << 3, Count(&mut self.prompt_cache_hit_tokens)),
            b"prompt_cache_miss_tokens" => (1 << 4, Count(&mut self.prompt_cache_miss_tokens)),
            b"prompt_tokens_details" => (1 << 5, Details(&mut self.prompt_tokens_details)),
            b"completion_tokens_details" => (1 << 6, Details(&mut self.completion_tokens_details)),
            b"input_tokens" => (1 << 7, Count(&mut self.input_tokens)),
            b"output_tokens" => (1 << 8, Count(&mut self.output_tokens)),
            b"input_tokens_details" => (1 << 9, Details(&mut self.input_tokens_details)),
            b"output_tokens_details" => (1 << 10, Details(&mut self.output_tokens_details)),
            b"cache_read_input_tokens" => (1 << 11, Count(&mut self.cache_read_input_tokens)),
            b"cache_creation_input_tokens" => {
                (1 << 12, Count(&mut self.cache_creation_input_tokens))
            }
            b"cache_creation" => (1 << 13, CacheCreation(&mut self.cache_creation)),
            b"promptTokenCount" => (1 << 14, Count(&mut self.prompt_token_count)),
            b"candidatesTokenCount" => (1 << 15, Count(&mut self.candidates_token_count)),
            b"thoughtsTokenCount" => (1 << 16, Count(&mut self.thoughts_token_count)),
            b"cachedContentTokenCount" => (1 << 17, Count(&mut self.cached_content_token_count)),
            b"toolUsePromptTokenCount" => (1 << 18, Count(&mut self.tool_use_prompt_token_count)),
            b"inputTokens" => (1 << 19, Count(&mut self.input_tokens_camel)),
            b"outputTokens" => (1 << 20, Count(&mut self.output_tokens_camel)),
            b"cacheReadInputTokens" => (1 << 21, Count(&mut self.cache_read_input_tokens_camel)),
            b"cacheWriteInputTokens" => (1 << 22, Count(&mut self.cache_write_input_tokens_camel)),
            b"cacheDetails" => return None,
            b"inputTokenCount" => (1 << 23, Count(&mut self.input_token_count)),
            b"outputTokenCount" => (1 << 24, Count(&mut self.output_token_count)),
            b"cacheReadInputTokenCount" => (1 << 25, Count(&mut self.cache_read_input_token_count)),
            b"cacheWriteInputTokenCount" => {
                (1 << 26, Count(&mut self.cache_write_input_token_count))
            }
            _ => (0, Other),
        })
    }
}

struct Plain<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Plain<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// The next byte after blanks, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes (the quote already seen is at `self.i`): its content.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i + 1;
        let len = memchr::memchr2(b'"', b'\\', self.b.get(start..)?)?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.b[start..start + len])
    }

    /// `{ "key": value, … }`, `f` reading each key's value.
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.eat(b':')?;
            f(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A non-negative integer that serde reads as a `u64` (no sign, fraction, exponent or
    /// leading zero, at most 19 digits), followed by something that ends a value.
    fn integer(&mut self) -> Option<u64> {
        // One pass: the value and the digits' count together (19 digits cannot overflow).
        let start = self.i;
        let mut n = 0u64;
        let mut end = start;
        while let Some(&c) = self.b.get(end) {
            if !c.is_ascii_digit() {
                break;
            }
            if end - start == 19 {
                return None;
            }
            n = n * 10 + u64::from(c - b'0');
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        if !matches!(
            self.b.get(end),
            Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
        ) {
            return None;
        }
        self.i = end;
        Some(n)
    }

    /// A count's value: an integer is the count; a string, boolean, `null`, array or object is
    /// present without a count (as serde's lenient `Field` reads them).
    fn count(&mut self, f: &mut Field) -> Option<()> {
        *f = match self.peek()? {
            b'0'..=b'9' => Field::present(Some(self.integer()?)),
            _ => {
                self.skip()?;
                Field::present(None)
            }
        };
        Some(())
    }

    /// A nested object read into `T` by `key`; any other value (but an array, which serde would
    /// read positionally) leaves it absent.
    fn nested<T: Default>(
        &mut self,
        slot: &mut Nested<T>,
        mut key: impl FnMut(&mut Self, &mut T, &'a [u8]) -> Option<bool>,
    ) -> Option<()> {
        match self.peek()? {
            b'{' => {
                let mut t = T::default();
                // `key` refuses a repeated field (serde refuses it too).
                self.object(|p, k| key(p, &mut t, k).map(|_| ()))?;
                slot.0 = Some(t);
                Some(())
            }
            b'[' => None,
            _ => {
                slot.0 = None;
                self.skip()
            }
        }
    }

    /// A key of `*_tokens_details`; `Some(true)` when it named a field, `None` for a repeat.
    fn details_key(&mut self, d: &mut Details, key: &[u8]) -> Option<bool> {
        let f = match key {
            b"cached_tokens" => &mut d.cached_tokens,
            b"cache_write_tokens" => &mut d.cache_write_tokens,
            b"cache_creation_tokens" => &mut d.cache_creation_tokens,
            b"reasoning_tokens" => &mut d.reasoning_tokens,
            _ => return self.skip().map(|_| false),
        };
        if f.is_present() {
            return None;
        }
        self.count(f).map(|_| true)
    }

    /// A key of Anthropic's `cache_creation`.
    fn cache_creation_key(&mut self, d: &mut CacheCreation, key: &[u8]) -> Option<bool> {
        let f = match key {
            b"ephemeral_5m_input_tokens" => &mut d.ephemeral_5m_input_tokens,
            b"ephemeral_1h_input_tokens" => &mut d.ephemeral_1h_input_tokens,
            _ => return self.skip().map(|_| false),
        };
        if f.is_present() {
            return None;
        }
        self.count(f).map(|_| true)
    }

    /// Any value of the shapes this path reads, skipped.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'0'..=b'9' => self.integer().map(|_| ()),
            b'{' => self.object(|p, _| p.skip()),
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip()?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => {
                for word in [&b"true"[..], b"false", b"null"] {
                    if self.b[self.i..].starts_with(word) {
                        self.i += word.len();
                        return Some(());
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_read(text: &str) -> Option<Counts> {
        let mut it = serde_json::Deserializer::from_str(text).into_iter::<Counts>();
        it.next()?.ok()
    }

    #[test]
    fn reads_the_common_shapes_as_serde_does() {
        for text in [
            r#"{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
            r#"{ "input_tokens" : 12 , "cache_creation_input_tokens": 3, "cache_read_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 0}, "output_tokens": 7, "service_tier": "standard" }"#,
            r#"{"promptTokenCount": 8, "candidatesTokenCount": 2, "totalTokenCount": 10, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}], "thoughtsTokenCount": 1}"#,
            r#"{"prompt_tokens": null, "completion_tokens": "x", "total_tokens": true, "input_tokens": {"a": [1, 2]}, "prompt_tokens_details": 3, "x_groq": {"id": "q"}}"#,
            r#"{}"#,
            r#"{"inputTokens":1,"outputTokens":2,"totalTokens":3,"cacheReadInputTokens":0,"cacheWriteInputTokens":0}"#,
        ] {
            let (end, fast) = read(text.as_bytes()).unwrap_or_else(|| panic!("fast: {text}"));
            assert_eq!(end, text.len(), "{text}");
            assert_eq!(Some(fast), serde_read(text), "{text}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for text in [
            r#"{"prompt_tokens": 5.0}"#,
            r#"{"prompt_tokens": -1}"#,
            r#"{"prompt_tokens": 05}"#,
            r#"{"prompt_tokens": 99999999999999999999}"#,
            r#"{"prompt\u005ftokens": 5}"#,
            r#"{"a": "q\"uote"}"#,
            r#"{"prompt_tokens": 1, "prompt_tokens": 2}"#,
            r#"{"prompt_tokens_details": {"cached_tokens": 1, "cached_tokens": 2}}"#,
            r#"{"cacheDetails": [{"ttl": "1h", "inputTokens": 4}]}"#,
            r#"{"prompt_tokens_details": [1, 2]}"#,
            r#"{"prompt_tokens": 5"#,
            r#"{"prompt_tokens": 5,"#,
            r#"[1]"#,
        ] {
            assert!(read(text.as_bytes()).is_none(), "{text}");
        }
    }

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (0u64..100_000).prop_map(|n| n.to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
            "[a-z]{0,6}".prop_map(|s| format!("\"{s}\"")),
            Just("1.5".to_string()),
            Just("-3".to_string()),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|v| {
                    let kv: Vec<String> = v.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                    format!("{{{}}}", kv.join(", "))
                }),
            ]
        })
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
            "input_tokens",
            "output_tokens",
            "cache_creation",
            "cached_tokens",
            "reasoning_tokens",
            "ephemeral_5m_input_tokens",
            "promptTokenCount",
            "inputTokens",
            "cacheDetails",
            "other",
        ])
    }

    proptest! {
        /// Whatever object it is given, the fast path reads what serde reads, or stands aside.
        #[test]
        fn agrees_with_serde_or_stands_aside(
            fields in prop::collection::vec((key(), value()), 0..8),
            spaced in any::<bool>(),
        ) {
            let sep = if spaced { " , " } else { "," };
            let kv: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let text = format!("{{{}}} tail", kv.join(sep));
            if let Some((end, fast)) = read(text.as_bytes()) {
                prop_assert_eq!(&text[end..], " tail");
                prop_assert_eq!(Some(fast), serde_read(&text));
            }
        }
    }
}
