//! `UsageStrip`: an OpenAI chat or completions SSE stream as the client would have received it
//! without the `stream_options.include_usage` the gateway added.
//!
//! It works event by event: an event is held until its blank line arrives (a client cannot use
//! part of an event anyway, and until it ends it may still turn out to be the usage-only chunk),
//! then released unchanged, without its `"usage":null` member, or not at all. An event without a
//! `"usage"` key is copied as it is. The byte search is exact for the reason given in `scan`.

use memchr::memmem;

/// An event larger than this is released as it is and the rest of it passes unread: usage chunks
/// are small, and the strip must not hold a large event (a big tool-call delta) in memory.
const MAX_EVENT: usize = 256 * 1024;

/// Removes, from an OpenAI chat or completions SSE stream, what `stream_options.include_usage`
/// added when the gateway (not the client) asked for it: the `"usage":null` member of every
/// chunk and the final usage chunk (`"choices":[]`). Fed bytes split anywhere; returns the bytes
/// the client would have received without the option, byte for byte. Events end with a blank
/// line (`\n\n` or `\r\n\r\n`).
#[derive(Default)]
pub struct UsageStrip {
    pending: Vec<u8>,
    /// Where the search for the end of the pending event resumes.
    scanned: usize,
    /// The rest of an oversized event passes as it comes, up to its end.
    passing: bool,
}

impl UsageStrip {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut bytes = bytes;
        if self.passing {
            // The tail of an oversized event: the first `\n` followed by a blank line ends it.
            match event_end(bytes, 0) {
                Some(end) => {
                    out.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end..];
                    self.passing = false;
                }
                None => {
                    out.extend_from_slice(bytes);
                    return out;
                }
            }
        }
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = event_end(&self.pending, self.scanned.max(start)) {
            strip_event(&self.pending[start..end], &mut out);
            start = end;
        }
        self.pending.drain(..start);
        // A `\n`, or `\n\r`, at the end may begin the blank line the next bytes complete.
        self.scanned = self.pending.len().saturating_sub(2);
        if self.pending.len() > MAX_EVENT {
            out.append(&mut self.pending);
            self.scanned = 0;
            self.passing = true;
        }
        out
    }

    /// The end of the stream: what is still held back (an event without its blank line, read
    /// like any other).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            strip_event(&self.pending, &mut out);
        }
        self.pending.clear();
        self.scanned = 0;
        out
    }
}

/// The end (after its blank line) of the first event whose end is at or after `from`.
fn event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let nl = at + i;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => at = nl + 1,
        }
    }
    None
}

const USAGE: &[u8] = b"\"usage\"";

/// Appends the event as the client would have had it.
fn strip_event(ev: &[u8], out: &mut Vec<u8>) {
    if memmem::find(ev, USAGE).is_none() {
        out.extend_from_slice(ev);
        return;
    }
    if usage_only(ev) {
        return;
    }
    let mut copied = 0;
    for at in memmem::find_iter(ev, USAGE) {
        let Some((from, to)) = null_member(ev, at) else {
            continue;
        };
        if from < copied {
            continue;
        }
        out.extend_from_slice(&ev[copied..from]);
        copied = to;
    }
    out.extend_from_slice(&ev[copied..]);
}

fn skip_ws(ev: &[u8], mut i: usize) -> usize {
    while matches!(ev.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// Where the value of the key whose quoted name starts at `at` starts, if it is a key.
fn value_of(ev: &[u8], at: usize, key_len: usize) -> Option<usize> {
    if at > 0 && ev[at - 1] == b'\\' {
        return None;
    }
    let colon = skip_ws(ev, at + key_len);
    (ev.get(colon) == Some(&b':')).then(|| skip_ws(ev, colon + 1))
}

/// The span to remove for a `"usage":null` member whose key starts at `at`: with the comma
/// before it, or, for a first member, with the comma (and spaces) after it.
fn null_member(ev: &[u8], at: usize) -> Option<(usize, usize)> {
    let v = value_of(ev, at, USAGE.len())?;
    if !ev[v..].starts_with(b"null") {
        return None;
    }
    let end = v + 4;
    if ev.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut before = at;
    while before > 0 && matches!(ev[before - 1], b' ' | b'\t' | b'\r' | b'\n') {
        before -= 1;
    }
    match ev.get(before.wrapping_sub(1)) {
        Some(b',') => Some((before - 1, end)),
        Some(b'{') => {
            let next = skip_ws(ev, end);
            match ev.get(next) {
                Some(b',') => Some((at, skip_ws(ev, next + 1))),
                _ => Some((at, end)),
            }
        }
        _ => None,
    }
}

/// Whether the event is the usage-only chunk: `"choices":[]` and a usage object.
fn usage_only(ev: &[u8]) -> bool {
    const CHOICES: &[u8] = b"\"choices\"";
    let empty_choices = memmem::find_iter(ev, CHOICES).any(|at| {
        value_of(ev, at, CHOICES.len())
            .is_some_and(|v| ev.get(v) == Some(&b'[') && ev.get(skip_ws(ev, v + 1)) == Some(&b']'))
    });
    empty_choices
        && memmem::find_iter(ev, USAGE)
            .any(|at| value_of(ev, at, USAGE.len()).is_some_and(|v| ev.get(v) == Some(&b'{')))
}
