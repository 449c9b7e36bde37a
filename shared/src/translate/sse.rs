//! A server-sent-events parser fed bytes split anywhere (mid-line, mid-`\r\n`, mid-UTF-8): events
//! come out whole, with their `event:` name and joined `data:` lines. Comments (`:`) are skipped.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Default)]
pub struct Parser {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// A `\r` ended the last line: a `\n` right after it belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: Vec<String>,
}

impl Parser {
    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line) {
                        out.push(e);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The end of the input: an event not followed by a blank line is still delivered.
    pub fn finish(&mut self) -> Option<Event> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line);
        }
        self.dispatch()
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        if self.data.is_empty() && self.event.is_none() {
            return None;
        }
        let e = Event {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        };
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = ": keep-alive\r\nevent: message_start\r\ndata: {\"a\":\"é\"}\r\n\r\nevent: ping\ndata: {}\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";

    fn want() -> Vec<Event> {
        vec![
            Event {
                event: Some("message_start".into()),
                data: "{\"a\":\"é\"}".into(),
            },
            Event {
                event: Some("ping".into()),
                data: "{}".into(),
            },
            Event {
                event: None,
                data: "line1\nline2".into(),
            },
            Event {
                event: None,
                data: "[DONE]".into(),
            },
        ]
    }

    #[test]
    fn split_at_every_byte_offset() {
        let bytes = INPUT.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut p = Parser::default();
                let mut got = p.push(&bytes[..i]);
                got.extend(p.push(&bytes[i..j]));
                got.extend(p.push(&bytes[j..]));
                got.extend(p.finish());
                assert_eq!(got, want(), "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn an_unterminated_last_event_is_delivered_at_the_end() {
        let mut p = Parser::default();
        assert!(p.push(b"data: x").is_empty());
        assert_eq!(
            p.finish(),
            Some(Event {
                event: None,
                data: "x".into()
            })
        );
    }
}
