//! The AWS event-stream binary framing (Bedrock's `converse-stream` and
//! `invoke-with-response-stream`): a frame is `total length (4) | headers length (4) | prelude
//! CRC32 (4) | headers | payload | message CRC32 (4)`, big-endian, both checksums verified.
//! `Decoder` takes bytes as they arrive, split anywhere, and returns whole frames (what they carry
//! is read by `translate::stream`).

/// Larger frames are refused (Bedrock's are a few kilobytes).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// CRC-32 (IEEE 802.3), as event-stream frames carry it.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for b in bytes {
        crc = TABLE[((crc ^ *b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// String-valued headers (`:event-type`, `:message-type`, `:exception-type`, …); other value
    /// types are skipped.
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("event-stream frame checksum mismatch")]
    Checksum,
    #[error("malformed event-stream frame: {0}")]
    Malformed(&'static str),
}

/// Reassembles frames from bytes split anywhere.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes and returns every frame now complete. After an error the stream is unusable.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 12 {
                break;
            }
            let be = |i: usize| {
                u32::from_be_bytes([
                    self.buf[i],
                    self.buf[i + 1],
                    self.buf[i + 2],
                    self.buf[i + 3],
                ])
            };
            let total = be(0) as usize;
            let headers_len = be(4) as usize;
            if crc32(&self.buf[..8]) != be(8) {
                return Err(FrameError::Checksum);
            }
            if total > MAX_FRAME || total < 16 + headers_len {
                return Err(FrameError::Malformed("bad lengths"));
            }
            if self.buf.len() < total {
                break;
            }
            let frame: Vec<u8> = self.buf.drain(..total).collect();
            let crc = u32::from_be_bytes([
                frame[total - 4],
                frame[total - 3],
                frame[total - 2],
                frame[total - 1],
            ]);
            if crc32(&frame[..total - 4]) != crc {
                return Err(FrameError::Checksum);
            }
            out.push(Frame {
                headers: parse_headers(&frame[12..12 + headers_len])?,
                payload: frame[12 + headers_len..total - 4].to_vec(),
            });
        }
        Ok(out)
    }

    /// Whether bytes of an unfinished frame are left over.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    let short = FrameError::Malformed("truncated header");
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = b[0] as usize;
        let name = b.get(1..1 + name_len).ok_or(short.clone())?;
        let name = String::from_utf8_lossy(name).into_owned();
        b = &b[1 + name_len..];
        let kind = *b.first().ok_or(short.clone())?;
        b = &b[1..];
        let fixed = |n: usize, b: &mut &[u8]| -> Result<(), FrameError> {
            if b.len() < n {
                return Err(FrameError::Malformed("truncated header"));
            }
            *b = &b[n..];
            Ok(())
        };
        match kind {
            0 | 1 => {}
            2 => fixed(1, &mut b)?,
            3 => fixed(2, &mut b)?,
            4 => fixed(4, &mut b)?,
            5 | 8 => fixed(8, &mut b)?,
            9 => fixed(16, &mut b)?,
            6 | 7 => {
                let len = b
                    .get(..2)
                    .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
                    .ok_or(short.clone())?;
                let value = b.get(2..2 + len).ok_or(short.clone())?;
                if kind == 7 {
                    out.push((name, String::from_utf8_lossy(value).into_owned()));
                }
                b = &b[2 + len..];
            }
            _ => return Err(FrameError::Malformed("unknown header type")),
        }
    }
    Ok(out)
}

/// Encodes a frame with string headers (for tests and mocks).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (k, v) in headers {
        h.push(k.len() as u8);
        h.extend_from_slice(k.as_bytes());
        h.push(7);
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v.as_bytes());
    }
    let total = 16 + h.len() + payload.len();
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&(total as u32).to_be_bytes());
    f.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude = crc32(&f);
    f.extend_from_slice(&prelude.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    let crc = crc32(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use proptest::prelude::*;

    fn chunk(event: &serde_json::Value) -> Vec<u8> {
        let payload = serde_json::json!({"bytes": STANDARD.encode(event.to_string())}).to_string();
        encode(
            &[
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn decodes_and_checks_every_frame() {
        let a = chunk(&serde_json::json!({"type": "message_start"}));
        let b = chunk(&serde_json::json!({"type": "message_stop"}));
        let mut d = Decoder::default();
        let frames = d.push(&[a.clone(), b].concat()).expect("ok");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].header(":event-type"), Some("chunk"));
        assert_eq!(frames[1].header(":message-type"), Some("event"));
        // A flipped payload bit fails the message checksum; a flipped length the prelude's.
        let mut bad = a.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert_eq!(Decoder::default().push(&bad), Err(FrameError::Checksum));
        let mut bad = a;
        bad[3] ^= 1;
        assert_eq!(Decoder::default().push(&bad), Err(FrameError::Checksum));
    }

    #[test]
    fn split_at_every_byte_offset() {
        let bytes: Vec<u8> = ["message_start", "message_stop"]
            .iter()
            .flat_map(|t| chunk(&serde_json::json!({"type": t})))
            .collect();
        let whole = Decoder::default().push(&bytes).expect("whole");
        for i in 0..=bytes.len() {
            let mut d = Decoder::default();
            let mut got = d.push(&bytes[..i]).expect("head");
            got.extend(d.push(&bytes[i..]).expect("tail"));
            assert_eq!(got, whole, "split at {i}");
        }
    }

    proptest! {
        /// The same frames come out however the bytes are split.
        #[test]
        fn any_split_gives_the_same_frames(cuts in proptest::collection::vec(0usize..400, 0..6)) {
            let bytes: Vec<u8> = ["message_start", "content_block_delta", "message_stop"]
                .iter()
                .flat_map(|t| chunk(&serde_json::json!({"type": t, "pad": "x".repeat(40)})))
                .collect();
            let whole = Decoder::default().push(&bytes).expect("whole");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort();
            let mut d = Decoder::default();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                got.extend(d.push(&bytes[at..c]).expect("part"));
                at = c;
            }
            prop_assert_eq!(got, whole);
            prop_assert!(!d.has_partial());
        }
    }
}
