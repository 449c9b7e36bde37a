//! Finding usage in JSON text as it passes, without parsing the text: a `memmem` search for the
//! keys that hold usage (`"usage"`, `"usageMetadata"`, …), then a parse of only the value that
//! follows one. Bytes arrive split anywhere, so a key cut in two by a push is found across the
//! seam (the last bytes of the previous push are kept), and a value cut in two is buffered from
//! its key to its end, and only that.
//!
//! Why a byte search is exact: in JSON text a `"` inside a string is always escaped (`\"`), so the
//! bytes `"usage"` are either the string token `"usage"` or the end of a longer string whose
//! content ends with `"usage` — in which case the byte before them is a backslash. A match not
//! preceded by `\` and followed (whitespace aside) by `:` is therefore exactly a key `usage`; one
//! followed by anything else (`"type":"usage"`) is a value and is skipped. Text inside string
//! content — a model's answer, a tool call's arguments — can never produce a match. What can is a
//! key of the same name nested in a JSON object the model wrote (a tool call's `input` in
//! Anthropic's or Gemini's whole answers); the answer's own usage comes after it, and the merge
//! rules let the last one win.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::counts::Counts;

/// Bytes of the previous push kept: at least the longest key, and the byte before it.
const TAIL: usize = 40;

/// A value longer than this is not usage; the scan gives it up and goes on with the next push.
const MAX_VALUE: usize = 64 * 1024;

/// A finish reason longer than this is not one (they are short words); it is skipped.
pub(super) const MAX_REASON: usize = 64;

/// Where a found value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// A usage object, read by the format's rules.
    Usage,
    /// Bedrock's `amazon-bedrock-invocationMetrics` object.
    Metrics,
    /// A count of input tokens (Titan's `inputTextTokenCount`, Llama's `prompt_token_count`).
    Input,
    /// A count of output tokens (Llama's `generation_token_count`).
    Output,
    /// A count of output tokens to add up (Titan's `results[].tokenCount`).
    OutputAdd,
    /// Why the model stopped (`finish_reason`, `stop_reason`, `finishReason`): a string.
    Finish,
}

/// The kind of value a slot takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Number,
    Text,
}

impl Slot {
    fn kind(self) -> Kind {
        match self {
            Slot::Input | Slot::Output | Slot::OutputAdd => Kind::Number,
            Slot::Finish => Kind::Text,
            Slot::Usage | Slot::Metrics => Kind::Object,
        }
    }
}

/// A key to look for, quotes included, and where its value goes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Key {
    pub bytes: &'static [u8],
    pub slot: Slot,
}

/// Needles with their searchers, built once per process (a searcher costs more to build than to
/// run over a small answer).
pub(super) struct Needles<T: 'static> {
    pub items: &'static [T],
    pub finders: LazyLock<Vec<Finder<'static>>>,
}

/// `Needles` of a `&'static [Key]` or `&'static [&'static [u8]]` constant.
macro_rules! needles {
    ($items:expr) => {
        $crate::usage::scan::Needles {
            items: $items,
            finders: std::sync::LazyLock::new(|| {
                $items
                    .iter()
                    .map(|n| memchr::memmem::Finder::new($crate::usage::scan::Needle::bytes(n)))
                    .collect()
            }),
        }
    };
}
pub(super) use needles;

/// What a needle searches for.
pub(super) trait Needle {
    fn bytes(&self) -> &'static [u8];
}

impl Needle for Key {
    fn bytes(&self) -> &'static [u8] {
        self.bytes
    }
}

impl Needle for &'static [u8] {
    fn bytes(&self) -> &'static [u8] {
        self
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum Found {
    Object(Box<Counts>),
    Number(u64),
    Text(String),
}

/// The last bytes of the previous pushes, without an allocation per push.
#[derive(Clone, Copy)]
struct Tail {
    buf: [u8; TAIL],
    len: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            buf: [0; TAIL],
            len: 0,
        }
    }
}

impl Tail {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The last `TAIL` bytes of `prev` followed by `data`.
    fn of(prev: &[u8], data: &[u8]) -> Tail {
        let mut t = Tail::default();
        let from_prev = TAIL.saturating_sub(data.len()).min(prev.len());
        let p = &prev[prev.len() - from_prev..];
        let d = &data[data.len().saturating_sub(TAIL)..];
        t.buf[..p.len()].copy_from_slice(p);
        t.buf[p.len()..p.len() + d.len()].copy_from_slice(d);
        t.len = p.len() + d.len();
        t
    }
}

/// The first match of `needle` that starts in `prev` and ends in `data`: (start in `prev`, end
/// in `data`). Compared in place, byte by byte, at each of `prev`'s last `needle.len() - 1`
/// bytes that equals the needle's first (a searcher over a copied seam cost some 100
/// instructions per key and push; these are a few bytes).
fn across(prev: &[u8], data: &[u8], finder: &Finder) -> Option<(usize, usize)> {
    let needle = finder.needle();
    if prev.is_empty() || data.is_empty() || needle.len() < 2 {
        // Nothing to straddle (an answer's first push, most whole answers' only one).
        return None;
    }
    let same = |a: &[u8], b: &[u8]| a.iter().zip(b).all(|(x, y)| x == y);
    let k = (needle.len() - 1).min(TAIL).min(prev.len());
    (1..=k).rev().find_map(|in_prev| {
        let start = prev.len() - in_prev;
        let rest = &needle[in_prev..];
        (prev[start] == needle[0]
            && rest.len() <= data.len()
            && same(&prev[start..], needle)
            && same(rest, data))
        .then_some((start, rest.len()))
    })
}

enum Step {
    /// The search resumes here.
    Resume(usize),
    /// The value goes on past the bytes at hand.
    Pending(Slot),
}

enum Resolve {
    /// More bytes are needed to know.
    Pending,
    /// The value ends at this offset (or the scan resumes there), with what it held, if usable.
    Done(usize, Option<Found>),
}

/// Reads the value after a key, from `buf` (the bytes right after the key).
fn resolve(buf: &[u8], kind: Kind) -> Resolve {
    let ws = |from: usize| {
        from + buf[from..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count()
    };
    let mut i = ws(0);
    if i == buf.len() {
        return Resolve::Pending;
    }
    if buf[i] != b':' {
        // A string value, not a key.
        return Resolve::Done(i, None);
    }
    i = ws(i + 1);
    if i == buf.len() {
        return Resolve::Pending;
    }
    if kind == Kind::Text {
        return text(buf, i);
    }
    if kind == Kind::Number {
        let digits = buf[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Resolve::Done(i, None);
        }
        if i + digits == buf.len() {
            return Resolve::Pending;
        }
        let n = std::str::from_utf8(&buf[i..i + digits])
            .ok()
            .and_then(|s| s.parse().ok());
        return Resolve::Done(i + digits, n.map(Found::Number));
    }
    if buf[i] != b'{' {
        // `null` (OpenAI's chunks) or anything else that is not an object: nothing to read.
        return Resolve::Done(i, None);
    }
    // Read in place into its box (the counts are large to move).
    let mut counts = Box::<Counts>::default();
    if let Some(end) = super::plain::read_into(&buf[i..], &mut counts) {
        return Resolve::Done(i + end, Some(Found::Object(counts)));
    }
    let mut values = serde_json::Deserializer::from_slice(&buf[i..]).into_iter::<Box<Counts>>();
    match values.next() {
        Some(Ok(v)) => Resolve::Done(i + values.byte_offset(), Some(Found::Object(v))),
        Some(Err(e)) if e.is_eof() => Resolve::Pending,
        // Skipping an unknown key's number cut after its `.` or `e` reads as an invalid number,
        // not as the end of the input: an object not closed yet is waited for.
        Some(Err(_)) if !closes(&buf[i..]) => Resolve::Pending,
        // Not JSON after all: resume the search inside it.
        _ => Resolve::Done(i + 1, None),
    }
}

/// A short string value starting at `buf[i]` (anything else, `null` included, reads as nothing).
fn text(buf: &[u8], i: usize) -> Resolve {
    if buf[i] != b'"' {
        return Resolve::Done(i, None);
    }
    let body = &buf[i + 1..];
    match memchr::memchr2(b'"', b'\\', body) {
        Some(n) if body[n] == b'"' && n <= MAX_REASON => {
            let s = std::str::from_utf8(&body[..n]).ok().map(str::to_owned);
            Resolve::Done(i + 1 + n + 1, s.map(Found::Text))
        }
        // Escapes or a long string: not a finish reason; the search resumes inside it.
        Some(_) => Resolve::Done(i + 1, None),
        None if body.len() <= MAX_REASON => Resolve::Pending,
        None => Resolve::Done(i + 1, None),
    }
}

/// Whether the object `buf` starts with closes within it (strings and escapes skipped).
fn closes(buf: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in buf {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The keys of one format, searched in text fed in pieces split anywhere.
pub(super) struct Keys {
    keys: &'static [Key],
    finders: &'static [Finder<'static>],
    tail: Tail,
    /// A value being received: its slot and its bytes so far (from right after its key).
    value: Option<(Slot, Vec<u8>)>,
}

/// Most keys one format searches for (`Keys::next` keeps a match per key).
const MAX_KEYS: usize = 12;
/// `Keys::next`: a key not searched for yet, and one the rest of the text does not hold.
const UNKNOWN: usize = usize::MAX;
const NONE: usize = usize::MAX - 1;

impl Keys {
    /// Panics when `set` holds more than `MAX_KEYS` keys (every set is a constant, and the
    /// meter's tests build each).
    pub fn new(set: &'static Needles<Key>) -> Keys {
        assert!(set.items.len() <= MAX_KEYS, "at most {MAX_KEYS} keys");
        Keys {
            keys: set.items,
            finders: &set.finders,
            tail: Tail::default(),
            value: None,
        }
    }

    /// Scans the next piece of the text; `found` gets every value read.
    pub fn push(&mut self, bytes: &[u8], found: &mut impl FnMut(Slot, Found)) {
        let mut prev = self.tail;
        let mut data = bytes;
        if let Some((slot, mut buf)) = self.value.take() {
            let before = buf.len();
            buf.extend_from_slice(bytes);
            match resolve(&buf, slot.kind()) {
                Resolve::Pending => {
                    if buf.len() <= MAX_VALUE {
                        self.value = Some((slot, buf));
                    } else {
                        self.tail = Tail::default();
                    }
                    return;
                }
                Resolve::Done(end, f) => {
                    if let Some(f) = f {
                        found(slot, f);
                    }
                    prev = Tail::of(&buf[..end], &[]);
                    data = &bytes[end.saturating_sub(before).min(bytes.len())..];
                }
            }
        }
        if let Some((slot, rest)) = self.walk(prev.bytes(), data, found) {
            self.value = Some((slot, data[rest..].to_vec()));
        } else {
            self.tail = Tail::of(prev.bytes(), data);
        }
    }

    /// Whether one of the keys fills `slot`.
    pub fn fills(&self, slot: Slot) -> bool {
        self.keys.iter().any(|k| k.slot == slot)
    }

    /// Scans one whole document (a decoded Bedrock chunk): no seam, and a value cut at its end
    /// is dropped.
    pub fn whole(&self, doc: &[u8], found: &mut impl FnMut(Slot, Found)) {
        self.walk(&[], doc, found);
    }

    /// Finds the keys in `data` (and across the seam with `prev`) and reads their values. A
    /// value that does not end in `data` is returned: its slot and where its bytes start.
    fn walk(
        &self,
        prev: &[u8],
        data: &[u8],
        found: &mut impl FnMut(Slot, Found),
    ) -> Option<(Slot, usize)> {
        let mut pos = 0;
        let seam = self
            .finders
            .iter()
            .enumerate()
            .filter_map(|(i, f)| across(prev, data, f).map(|(s, e)| (i, s, e)))
            .min_by_key(|&(_, s, _)| s);
        if let Some((i, start, end)) = seam {
            let escaped = start > 0 && prev[start - 1] == b'\\';
            pos = end;
            if !escaped {
                match self.read(i, data, end, found) {
                    Step::Resume(p) => pos = p,
                    Step::Pending(slot) => return Some((slot, end)),
                }
            }
        }
        let mut ahead = [UNKNOWN; MAX_KEYS];
        while let Some((i, start)) = self.next(data, pos, &mut ahead) {
            let end = start + self.keys[i].bytes.len();
            let before = match start {
                0 => prev.last(),
                s => data.get(s - 1),
            };
            pos = end;
            if before != Some(&b'\\') {
                match self.read(i, data, end, found) {
                    Step::Resume(p) => pos = p,
                    Step::Pending(slot) => return Some((slot, end)),
                }
            }
        }
        None
    }

    /// The first key at or after `pos`: its index and start. `ahead` keeps each key's first
    /// match found from an earlier position of the same walk: still the first at or after `pos`
    /// when it is not before it, so each key's search runs again only once its match is passed.
    fn next(
        &self,
        data: &[u8],
        pos: usize,
        ahead: &mut [usize; MAX_KEYS],
    ) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for (i, f) in self.finders.iter().enumerate() {
            if ahead[i] == UNKNOWN || (ahead[i] != NONE && ahead[i] < pos) {
                ahead[i] = f.find(&data[pos..]).map_or(NONE, |at| pos + at);
            }
            if ahead[i] != NONE && best.is_none_or(|(_, at)| ahead[i] < at) {
                best = Some((i, ahead[i]));
            }
        }
        best
    }

    /// Reads the value of key `i`, which ends at `end`.
    fn read(&self, i: usize, data: &[u8], end: usize, found: &mut impl FnMut(Slot, Found)) -> Step {
        let slot = self.keys[i].slot;
        match resolve(&data[end..], slot.kind()) {
            Resolve::Pending => Step::Pending(slot),
            Resolve::Done(n, f) => {
                if let Some(f) = f {
                    found(slot, f);
                }
                Step::Resume(end + n)
            }
        }
    }
}

/// Counts occurrences of markers (one per content-carrying event) in text fed in pieces split
/// anywhere.
pub(super) struct Counter {
    finders: &'static [Finder<'static>],
    tail: Tail,
}

impl Counter {
    pub fn new(markers: &'static Needles<&'static [u8]>) -> Counter {
        Counter {
            finders: &markers.finders,
            tail: Tail::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    pub fn push(&mut self, bytes: &[u8]) -> u64 {
        let mut n = 0;
        for f in self.finders {
            n += f.find_iter(bytes).count() as u64;
            n += u64::from(across(self.tail.bytes(), bytes, f).is_some());
        }
        self.tail = Tail::of(self.tail.bytes(), bytes);
        n
    }

    /// Occurrences in one whole document.
    pub fn whole(&self, doc: &[u8]) -> u64 {
        self.finders
            .iter()
            .map(|f| f.find_iter(doc).count() as u64)
            .sum()
    }
}
