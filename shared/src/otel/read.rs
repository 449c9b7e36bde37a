//! A reader of the spans `record::Trace` writes (a run of `ScopeSpans.spans` fields), for tests
//! and for looking at what would be exported. It reads only what this crate writes; a collector
//! reads the same bytes with the official definitions (the integration test does).

/// One decoded span. Attribute values are shown as text: strings as they are, numbers in decimal,
/// booleans as `true`/`false`, arrays as `[a,b]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Read {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub state: Option<String>,
    pub name: String,
    pub kind: u64,
    pub start: u64,
    pub end: u64,
    pub attrs: Vec<(String, String)>,
    /// The status message, when the status is an error.
    pub error: Option<String>,
    pub flags: u32,
}

impl Read {
    /// The value of attribute `key` (the first one set).
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A field: its number, and its value (a varint, a fixed value's bytes, or a length-delimited
/// content).
enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
}

fn varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("a varint runs past the end")?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("a varint longer than 10 bytes".into())
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err(format!("a field of {n} bytes runs past the end"));
    }
    let (v, rest) = b.split_at(n);
    *b = rest;
    Ok(v)
}

fn fields(mut b: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = (key >> 3) as u32;
        out.push(match key & 7 {
            0 => Field::Varint(field, varint(&mut b)?),
            1 => Field::Bytes(field, take(&mut b, 8)?),
            2 => {
                let n = varint(&mut b)? as usize;
                Field::Bytes(field, take(&mut b, n)?)
            }
            5 => Field::Bytes(field, take(&mut b, 4)?),
            w => return Err(format!("wire type {w} is not one this crate writes")),
        });
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string that is not UTF-8".to_string())
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{} bytes where {N} were expected", b.len()))
}

fn any_value(b: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    for f in fields(b)? {
        match f {
            Field::Bytes(1, s) => out = text(s)?,
            Field::Varint(2, v) => out = (v != 0).to_string(),
            Field::Varint(3, v) => out = (v as i64).to_string(),
            Field::Bytes(5, array) => {
                let mut items = Vec::new();
                for item in fields(array)? {
                    if let Field::Bytes(1, v) = item {
                        items.push(any_value(v)?);
                    }
                }
                out = format!("[{}]", items.join(","));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn span(b: &[u8]) -> Result<Read, String> {
    let mut s = Read::default();
    for f in fields(b)? {
        match f {
            Field::Bytes(1, v) => s.trace_id = fixed(v)?,
            Field::Bytes(2, v) => s.span_id = fixed(v)?,
            Field::Bytes(3, v) => s.state = Some(text(v)?),
            Field::Bytes(4, v) => s.parent = Some(fixed(v)?),
            Field::Bytes(5, v) => s.name = text(v)?,
            Field::Varint(6, v) => s.kind = v,
            Field::Bytes(7, v) => s.start = u64::from_le_bytes(fixed(v)?),
            Field::Bytes(8, v) => s.end = u64::from_le_bytes(fixed(v)?),
            Field::Bytes(9, kv) => {
                let (mut key, mut value) = (String::new(), String::new());
                for f in fields(kv)? {
                    match f {
                        Field::Bytes(1, k) => key = text(k)?,
                        Field::Bytes(2, v) => value = any_value(v)?,
                        _ => {}
                    }
                }
                s.attrs.push((key, value));
            }
            Field::Bytes(15, status) => {
                let (mut message, mut code) = (String::new(), 0);
                for f in fields(status)? {
                    match f {
                        Field::Bytes(2, m) => message = text(m)?,
                        Field::Varint(3, c) => code = c,
                        _ => {}
                    }
                }
                if code == 2 {
                    s.error = Some(message);
                }
            }
            Field::Bytes(16, v) => s.flags = u32::from_le_bytes(fixed(v)?),
            _ => {}
        }
    }
    Ok(s)
}

/// The contents of `b`'s length-delimited fields numbered `n`, in order (for tests that walk the
/// messages around the spans).
pub fn contents(b: &[u8], n: u32) -> Result<Vec<&[u8]>, String> {
    Ok(fields(b)?
        .into_iter()
        .filter_map(|f| match f {
            Field::Bytes(number, v) if number == n => Some(v),
            _ => None,
        })
        .collect())
}

/// How many fields `b` holds.
pub fn count(b: &[u8]) -> Result<usize, String> {
    fields(b).map(|f| f.len())
}

/// The spans of a run of `ScopeSpans.spans` fields (an ended `Trace::bytes`, or several joined).
pub fn spans(b: &[u8]) -> Result<Vec<Read>, String> {
    fields(b)?
        .into_iter()
        .map(|f| match f {
            Field::Bytes(2, s) => span(s),
            _ => Err("not a run of ScopeSpans.spans fields".into()),
        })
        .collect()
}

/// The spans of a whole `ExportTraceServiceRequest` (every resource and scope).
pub fn batch(b: &[u8]) -> Result<Vec<Read>, String> {
    let mut out = Vec::new();
    for rs in fields(b)? {
        let Field::Bytes(1, rs) = rs else { continue };
        for ss in fields(rs)? {
            let Field::Bytes(2, ss) = ss else { continue };
            for s in fields(ss)? {
                if let Field::Bytes(2, s) = s {
                    out.push(span(s)?);
                }
            }
        }
    }
    Ok(out)
}
