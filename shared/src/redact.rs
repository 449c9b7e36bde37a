//! Keeping credentials out of what callers, logs, the store and the dashboard see. An upstream
//! may quote the credential it received in its error answer (whole, cut short, JSON-escaped,
//! percent-encoded or inside base64, as a `Basic` header would carry it); a `Scrubber` built from
//! the secrets that were presented finds any run of `RUN` or more of a secret's characters, in any
//! of those forms, and replaces it. Redaction comes before any truncation, so a message cut short
//! never keeps the part of a secret the cut would have hidden from the search.

use std::borrow::Cow;

use base64::Engine;

/// What an echoed secret is replaced by.
pub const REDACTED: &str = "[redacted]";

/// The shortest run of a secret's characters that counts as an echo of it: long enough that
/// ordinary text never matches by chance, short enough that a secret cut to a prefix or a suffix
/// is still found.
const RUN: usize = 8;

/// Secrets shorter than this are not looked for: they would match ordinary words.
const MIN_SECRET: usize = 6;

/// The secrets presented on a call, in every form an echo of them may take.
#[derive(Debug, Default)]
pub struct Scrubber {
    /// Every `RUN`-byte window of every form, as a big-endian integer, sorted.
    windows: Vec<u64>,
    /// Secrets shorter than `RUN`, matched whole as they are.
    short: Vec<Vec<u8>>,
}

fn window(b: &[u8]) -> u64 {
    let mut w = [0u8; RUN];
    w.copy_from_slice(&b[..RUN]);
    u64::from_be_bytes(w)
}

/// The forms a secret may be echoed in: as is, JSON-escaped, percent-encoded, and the stable
/// middle of its base64 encodings at each of the three alignments it may sit at.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let raw = secret.as_bytes();
    let mut out = vec![raw.to_vec()];
    if raw.contains(&b'/') {
        out.push(secret.replace('/', "\\/").into_bytes());
    }
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    if !raw.iter().all(|&b| unreserved(b)) {
        for upper in [true, false] {
            let mut enc = Vec::with_capacity(raw.len() * 3);
            for &b in raw {
                if unreserved(b) {
                    enc.push(b);
                } else if upper {
                    enc.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    enc.extend_from_slice(format!("%{b:02x}").as_bytes());
                }
            }
            out.push(enc);
        }
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    for engine in engines {
        for align in 0..3usize {
            let mut bytes = vec![0u8; align];
            bytes.extend_from_slice(raw);
            let enc = engine.encode(&bytes).into_bytes();
            let enc: Vec<u8> = enc.into_iter().filter(|&b| b != b'=').collect();
            // Characters that mix in the bytes before or after the secret depend on them.
            let lead = [0, 2, 3][align];
            if enc.len() > lead + 2 {
                out.push(enc[lead..enc.len() - 2].to_vec());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Scrubber {
    /// A scrubber for `secrets` (empty and very short ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let mut s = Scrubber::default();
        for secret in secrets {
            let secret = secret.trim();
            if secret.len() < MIN_SECRET {
                continue;
            }
            if secret.len() < RUN {
                s.short.push(secret.as_bytes().to_vec());
                continue;
            }
            for form in forms(secret).iter().filter(|f| f.len() >= RUN) {
                s.windows.extend(form.windows(RUN).map(window));
            }
        }
        s.windows.sort_unstable();
        s.windows.dedup();
        s
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.short.is_empty()
    }

    /// The byte ranges of `text` that echo a secret, merged, in order.
    fn echoes(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut marks: Vec<(usize, usize)> = Vec::new();
        let mut mark = |start: usize, end: usize| match marks.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => marks.push((start, end)),
        };
        if !self.windows.is_empty() && text.len() >= RUN {
            for i in 0..=text.len() - RUN {
                if self.windows.binary_search(&window(&text[i..])).is_ok() {
                    mark(i, i + RUN);
                }
            }
        }
        for form in &self.short {
            for (i, _) in text
                .windows(form.len())
                .enumerate()
                .filter(|(_, w)| *w == &form[..])
            {
                mark(i, i + form.len());
            }
        }
        marks.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(marks.len());
        for (s, e) in marks {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// `text` with every echo of a secret replaced by `REDACTED`.
    pub fn scrub<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        let echoes = self.echoes(text);
        if echoes.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in echoes {
            out.extend_from_slice(&text[at..s]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = e;
        }
        out.extend_from_slice(&text[at..]);
        Cow::Owned(out)
    }

    /// `scrub` for text (a secret's characters are ASCII, so no character is cut in two; any
    /// that would be is replaced).
    pub fn scrub_str<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.scrub(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// Whether `text` echoes a secret.
    pub fn finds(&self, text: &[u8]) -> bool {
        !self.echoes(text).is_empty()
    }
}

/// The secret part of a credential header's value: the token after a `Bearer`/`Basic` scheme,
/// else the whole value.
pub fn header_secret(value: &str) -> &str {
    let v = value.trim();
    match v.split_once(char::is_whitespace) {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic") =>
        {
            rest.trim()
        }
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-Abc123/def+GHI456jkl789MNO";

    fn scrubbed(text: &str) -> String {
        Scrubber::new([KEY]).scrub_str(text).into_owned()
    }

    #[test]
    fn finds_a_secret_in_every_form_it_may_be_echoed_in() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let cut = &KEY[..KEY.len() - 1];
        let tail = &KEY[12..];
        let cases = [
            format!("Incorrect API key provided: {KEY}."),
            format!(
                "{{\"error\":{{\"message\":\"bad key {}\"}}}}",
                KEY.replace('/', "\\/")
            ),
            format!("key={}", KEY.replace('/', "%2F").replace('+', "%2B")),
            format!("key={}", KEY.replace('/', "%2f").replace('+', "%2b")),
            format!("got Basic {}", STANDARD.encode(format!("{KEY}:"))),
            format!("got {}", STANDARD.encode(format!("Bearer {KEY}"))),
            format!("got {}", URL_SAFE.encode(format!("x{KEY}"))),
            format!("truncated: {cut}"),
            format!("suffix only: ...{tail}"),
            format!("twice {KEY} and {KEY}!"),
        ];
        for text in cases {
            let out = scrubbed(&text);
            assert!(out.contains(REDACTED), "{text} → {out}");
            assert!(
                !Scrubber::new([KEY]).finds(out.as_bytes()),
                "{text} → {out}"
            );
            for run in KEY.as_bytes().windows(RUN) {
                let run = std::str::from_utf8(run).unwrap();
                assert!(!out.contains(run), "{text} → {out} still has {run}");
            }
        }
    }

    #[test]
    fn leaves_other_text_alone() {
        for text in [
            "",
            "short",
            "{\"error\":{\"message\":\"The model `gpt-4o` does not exist\",\"type\":\"invalid_request_error\"}}",
            "sk-proj",
        ] {
            assert_eq!(scrubbed(text), text);
        }
        assert!(matches!(
            Scrubber::new([KEY]).scrub(b"nothing here"),
            Cow::Borrowed(_)
        ));
        assert!(Scrubber::new(["", "abc"]).is_empty());
    }

    #[test]
    fn keeps_the_text_around_an_echo() {
        assert_eq!(
            scrubbed(&format!("before {KEY} after")),
            format!("before {REDACTED} after")
        );
        let short = Scrubber::new(["sk-mock"]);
        assert_eq!(short.scrub_str("key sk-mock!"), "key [redacted]!");
    }

    #[test]
    fn the_secret_part_of_a_header() {
        assert_eq!(header_secret("Bearer  abc "), "abc");
        assert_eq!(header_secret("basic Zm9v"), "Zm9v");
        assert_eq!(header_secret("plain-key"), "plain-key");
    }
}
