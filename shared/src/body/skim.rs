//! The request body's top level read in one pass by hand: the fast path of `body::scan`.
//!
//! serde_json's deserializer cost about 2,300 instructions for the benchmark's 110-byte chat
//! request (callgrind: a visitor per key, a `RawValue` and a second parse for `model`, the skipping
//! of every nested value through its generic machinery), a seventh of what to11 adds to a hop.
//! This reader answers only when it is sure: it accepts a body only when serde_json would, and
//! reads from it exactly what `ScanVisitor` would. Anything else (an error of any kind, a key or a
//! value of interest with escapes, `stream_options`' unusual shapes, deep nesting) is `None`,
//! and `scan` asks serde_json, which has the last word and writes the error message.

use std::borrow::Cow;

use super::Scan;

/// Deeper than this, serde_json's own limit (128) is near: left to it.
const MAX_DEPTH: usize = 100;

/// The body's `Scan`, or `None`: serde_json decides.
pub(super) fn skim(text: &str) -> Option<Scan<'_>> {
    let mut r = Reader { text, at: 0 };
    let mut scan = Scan::default();
    let mut stream_seen = false;
    r.ws();
    r.eat(b'{')?;
    r.members(b'}', |r| {
        let key = r.plain_string()?;
        r.ws();
        r.eat(b':')?;
        r.ws();
        let start = r.at;
        match key {
            "model" => {
                if scan.model.is_some() {
                    return None;
                }
                if r.literal(b"null").is_none() {
                    let model = r.plain_string()?;
                    scan.model_span = Some((start, r.at));
                    scan.model = Some(Cow::Borrowed(model));
                }
            }
            "stream" => {
                if std::mem::replace(&mut stream_seen, true) {
                    return None;
                }
                scan.stream = if r.literal(b"true").is_some() {
                    true
                } else if r.literal(b"false").is_some() || r.literal(b"null").is_some() {
                    false
                } else {
                    return None;
                };
            }
            "user" => {
                if r.peek() == Some(b'"') {
                    scan.user = Some(Cow::Borrowed(r.plain_string()?));
                } else {
                    r.value(0)?;
                }
            }
            "max_tokens" | "max_completion_tokens" | "max_output_tokens" => {
                r.value(0)?;
                if let Ok(n) = text[start..r.at].parse::<u64>() {
                    scan.max_output = Some(scan.max_output.map_or(n, |m| m.min(n)));
                }
            }
            "stream_options" => {
                r.value(0)?;
                scan.include_usage = super::include_usage(&text[start..r.at]);
            }
            _ => r.value(0)?,
        }
        scan.keys.push(Cow::Borrowed(key));
        Some(())
    })?;
    r.ws();
    (r.at == text.len()).then_some(scan)
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

/// Bytes that end a run of plain string content: the quote, the backslash, control characters.
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

impl<'a> Reader<'a> {
    fn b(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.b().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.at += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// How many bytes from here are plain string content (no `STOPS`), eight at a time while
    /// eight remain: each word is tested for a quote, a backslash and a control character at
    /// once (the lowest byte flagged by each test is a true one, so the first flagged byte of
    /// the three is the first stop).
    fn run(&self) -> usize {
        const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let rest = &self.b()[self.at..];
        let mut words = rest.chunks_exact(8);
        let mut i = 0;
        for w in &mut words {
            let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            let stops = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if stops != 0 {
                return i + (stops.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        i + words
            .remainder()
            .iter()
            .position(|c| STOPS[usize::from(*c)])
            .unwrap_or(words.remainder().len())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b()[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A string without escapes, borrowed from the text.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        self.at += self.run();
        let end = self.at;
        self.eat(b'"')?;
        self.text.get(start..end)
    }

    /// Any string, escapes checked as serde_json checks a string it skips (`\u` and four hex
    /// digits, whatever code point they name).
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.at += self.run();
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b().get(self.at..self.at + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.at += 4;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.digit()?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digit()?;
            self.digits();
        }
        Some(())
    }

    fn digit(&mut self) -> Option<()> {
        self.next().filter(u8::is_ascii_digit).map(|_| ())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// Any JSON value, `depth` levels down.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// An object (`keyed`) or an array, from its opening bracket to `close`.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.members(close, |r| {
            if keyed {
                r.string()?;
                r.ws();
                r.eat(b':')?;
                r.ws();
            }
            r.value(depth + 1)
        })
    }

    /// A container's members, each read by `member`, separated by commas, up to `close`
    /// (the opening bracket already read).
    fn members(
        &mut self,
        close: u8,
        mut member: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            member(self)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{scan, scan_with_serde};
    use super::skim;
    use proptest::prelude::*;

    const PLAIN: &[&str] = &[
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5}"#,
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}"#,
        " {\n \"model\" : \"claude-3-5-sonnet\" ,\r\n\t\"system\":\"be \\\"brief\\\" \\u00e9\\n\", \"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"caf\u{e9} \\ud83d\\ude00\"}]}],\"max_tokens\":1024,\"temperature\":0.7,\"top_p\":1e-3,\"stop\":null,\"stream\":false} ",
        r#"{"model":null,"user":"u-1","max_completion_tokens":300,"max_output_tokens":20,"n":-0,"x":[[],{},[{}],-1.5E+2,true,false,null,""]}"#,
        r#"{"user":7,"max_tokens":5.0,"stream_options":[true],"stream":null,"":{"":""}}"#,
        r#"{"stream_options":{"include_usage":true,"include_usage":false},"model":"m"}"#,
        "{}",
        " { } ",
    ];

    #[test]
    fn plain_bodies_are_read_by_hand_as_serde_reads_them() {
        for body in PLAIN {
            let by_hand = skim(body).unwrap_or_else(|| panic!("left to serde: {body}"));
            assert_eq!(Ok(&by_hand), scan_with_serde(body).as_ref(), "{body}");
        }
        let p = skim(PLAIN[1]).expect("plain");
        assert!(p.stream && p.include_usage);
        assert_eq!(p.max_output, Some(5));
        let p = skim(PLAIN[3]).expect("plain");
        assert_eq!((p.model, p.max_output), (None, Some(20)));
    }

    #[test]
    fn what_it_is_unsure_of_is_left_to_serde() {
        let unsure = [
            r#"{"mo\u0064el":"m"}"#,
            r#"{"model":"a\/b"}"#,
            r#"{"user":"a\nb"}"#,
            r#"{"model":3}"#,
            r#"{"stream":"yes"}"#,
            r#"{"model":"a","model":"b"}"#,
            r#"{"stream":true,"stream":null}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":nullx}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":{"b":1]}"#,
            "{",
        ];
        for body in unsure {
            assert!(skim(body).is_none(), "read by hand: {body}");
            assert_eq!(scan(body.as_bytes()), scan_with_serde(body), "{body}");
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(101), "]".repeat(101));
        assert!(skim(&deep).is_none());
        assert!(scan(deep.as_bytes()).is_ok());
        let shallow = format!(r#"{{"a":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(skim(&shallow).is_some());
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "\\PC{0,12}".prop_map(serde_json::Value::from),
            "[\"\\\\\\n\\t\\u{1}a-z]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..4)
                    .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
            ]
        })
    }

    /// A top level of interesting keys (each maybe twice) and random values, serialised with
    /// whitespace between the tokens.
    fn body() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("model"),
            Just("stream"),
            Just("user"),
            Just("max_tokens"),
            Just("max_output_tokens"),
            Just("stream_options"),
            Just("messages"),
            Just("x"),
        ];
        let plain = prop_oneof![
            "[a-z0-9./-]{0,10}".prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<u32>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        let number = "-?(0|[1-9][0-9]?)(\\.[0-9]{1,2})?([eE][+-]?[0-9]{1,2})?";
        let raw = prop_oneof![
            prop_oneof![plain, value()].prop_map(|v| v.to_string()),
            number.prop_map(String::from),
        ];
        let entry = (key, raw, "[ \n]{0,2}");
        proptest::collection::vec(entry, 0..7).prop_map(|entries| {
            let mut out = String::from("{");
            for (i, (k, v, ws)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"));
            }
            out.push('}');
            out
        })
    }

    proptest! {
        /// Whenever it answers, it answers as serde_json: over bodies of interesting keys, and
        /// over the same bodies with a byte cut out or put in.
        #[test]
        fn it_answers_only_as_serde_would(
            body in body(),
            at in any::<prop::sample::Index>(),
            edit in proptest::option::of("[{}\\[\\],:\" \\\\0-9eE.+\n\tuabf-]?"),
            cut in any::<bool>(),
        ) {
            let mut text = body.clone();
            if let Some(edit) = edit {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                if cut && i < text.len() {
                    let mut j = i + 1;
                    while !text.is_char_boundary(j) {
                        j += 1;
                    }
                    text.replace_range(i..j, &edit);
                } else {
                    text.insert_str(i, &edit);
                }
            }
            if let Some(by_hand) = skim(&text) {
                prop_assert_eq!(Ok(by_hand), scan_with_serde(&text), "{}", text);
            }
        }

        /// The word-at-a-time run finds the first quote, backslash or control character, as a
        /// byte-by-byte search does, from any offset.
        #[test]
        fn runs_end_at_the_first_stop(
            chars in proptest::collection::vec(
                prop_oneof![
                    any::<char>(),
                    Just('"'),
                    Just('\\'),
                    proptest::char::range('\0', '\u{1f}'),
                    proptest::char::range(' ', '~'),
                ],
                0..40,
            ),
            at in any::<prop::sample::Index>(),
        ) {
            let text: String = chars.into_iter().collect();
            let bytes = text.as_bytes();
            let at = at.index(bytes.len() + 1);
            let r = super::Reader { text: &text, at };
            let want = bytes[at..]
                .iter()
                .position(|c| *c == b'"' || *c == b'\\' || *c < 0x20)
                .unwrap_or(bytes.len() - at);
            prop_assert_eq!(r.run(), want);
        }

        /// Bodies whose keys and values of interest are plain are read by hand.
        #[test]
        fn plain_bodies_are_read_by_hand(
            model in "[a-z0-9./-]{1,20}",
            messages in value(),
            stream in any::<bool>(),
            max in any::<u32>(),
        ) {
            let body = serde_json::json!({
                "model": model, "messages": messages, "stream": stream, "max_tokens": max,
            })
            .to_string();
            let by_hand = skim(&body);
            prop_assert!(by_hand.is_some(), "{}", body);
            prop_assert_eq!(by_hand.map(Ok), Some(scan_with_serde(&body)));
        }
    }
}
