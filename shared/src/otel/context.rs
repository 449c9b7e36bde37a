//! W3C Trace Context: the `traceparent` header (`{version}-{trace-id}-{parent-id}-{flags}`, lower
//! case hex), read leniently where the recommendation allows (a higher version may append fields)
//! and strictly otherwise (an all-zero id, upper case, a wrong length or version `ff` are invalid,
//! and the header is then ignored: a new trace starts).

/// 16 bytes; never all zero when valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// 8 bytes; never all zero when valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random id from 16 random bytes (all zero is replaced: it is not a valid id).
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        if bytes == [0; 16] {
            bytes[15] = 1;
        }
        TraceId(bytes)
    }
}

impl SpanId {
    pub fn from_random(mut bytes: [u8; 8]) -> Self {
        if bytes == [0; 8] {
            bytes[7] = 1;
        }
        SpanId(bytes)
    }
}

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The caller's span: the parent of ours.
    pub span_id: SpanId,
    /// The `sampled` flag (bit 0 of trace-flags).
    pub sampled: bool,
}

/// Length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// Reads a `traceparent` value; `None` when it is not valid.
    pub fn parse(v: &[u8]) -> Option<TraceParent> {
        if v.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = hex_byte(&v[0..2])?;
        if version == 0xff || (version == 0 && v.len() != TRACEPARENT_LEN) {
            return None;
        }
        // A later version may append fields after a `-`; only what version 00 defines is read.
        if version > 0 && v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' {
            return None;
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let mut trace = [0u8; 16];
        for (i, b) in trace.iter_mut().enumerate() {
            *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span = [0u8; 8];
        for (i, b) in span.iter_mut().enumerate() {
            *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&v[53..55])?;
        if trace == [0; 16] || span == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id: TraceId(trace),
            span_id: SpanId(span),
            sampled: flags & 1 == 1,
        })
    }

    /// Writes it as a version-00 `traceparent` (no allocation).
    pub fn format(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        write_hex(&self.trace_id.0, &mut out[3..35]);
        write_hex(&self.span_id.0, &mut out[36..52]);
        out[53] = b'0';
        out[54] = if self.sampled { b'1' } else { b'0' };
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

/// Lower-case hex only (the recommendation's form).
fn hex_byte(two: &[u8]) -> Option<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(d(two[0])? << 4 | d(two[1])?)
}

/// Hex of any id (tests, logs).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_example_reads_and_writes_back() {
        let p = TraceParent::parse(GOOD.as_bytes()).expect("valid");
        assert_eq!(hex(&p.trace_id.0), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id.0), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert_eq!(&p.format()[..], GOOD.as_bytes());
        let unsampled = GOOD.replace("-01", "-00");
        assert!(
            !TraceParent::parse(unsampled.as_bytes())
                .expect("valid")
                .sampled
        );
        // Other flag bits do not make it unsampled.
        assert!(
            TraceParent::parse(GOOD.replace("-01", "-03").as_bytes())
                .expect("valid")
                .sampled
        );
    }

    #[test]
    fn invalid_values_are_ignored() {
        let cases = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for c in cases {
            assert_eq!(TraceParent::parse(c.as_bytes()), None, "{c:?}");
        }
    }

    #[test]
    fn a_later_version_with_more_fields_is_read_for_what_version_00_defines() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        let p = TraceParent::parse(v.as_bytes()).expect("valid");
        assert!(p.sampled);
        assert_eq!(&p.format()[..], GOOD.as_bytes());
    }

    #[test]
    fn random_ids_are_never_all_zero() {
        assert_ne!(TraceId::from_random([0; 16]).0, [0; 16]);
        assert_ne!(SpanId::from_random([0; 8]).0, [0; 8]);
    }
}
