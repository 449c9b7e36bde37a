//! The body of an answer already on its way to the client: chunks pass through untouched; a stall
//! longer than the idle timeout, or an upstream failure midway, ends it. For an SSE stream the end
//! is a terminal error event in the called API's shape (OpenAI's `data: {"error":…}` without
//! `[DONE]`, Anthropic's `event: error`, Google's `data: {"error":{"code","status"…}}`), so
//! clients see an error, never a silently truncated answer; other bodies are cut short (the client
//! sees a broken response). A replica whose drain timeout passed (`crate::drain`) ends its open
//! answers the same way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use memchr::memmem::Finder;
use std::sync::OnceLock;

use crate::error::Dialect;
use crate::metrics::Tally;

/// The events that end an OpenAI chat or completions stream: `[DONE]`, or its own error.
pub static OPENAI_END: EndMarkers = EndMarkers::new(&[b"data: [DONE]", b"data: {\"error\""]);
/// The events that end an Anthropic Messages stream: `message_stop`, or its own error.
pub static ANTHROPIC_END: EndMarkers = EndMarkers::new(&[b"event: message_stop", b"event: error"]);
/// The events that end a Responses API stream: its completion, incompletion or failure, or an
/// error event.
pub static RESPONSES_END: EndMarkers = EndMarkers::new(&[
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
    b"event: error",
    b"data: {\"error\"",
]);

/// Lines one of which must end a stream, each found only at a line's start (as an SSE field is
/// written), never inside one: a JSON string that quotes `data: [DONE]` ends no stream.
pub struct EndMarkers {
    markers: &'static [&'static [u8]],
    /// Searchers for each marker after a `\n` and after a `\r`, built once per process (one built
    /// per search cost more than the search: some 1,800 instructions per chunk).
    finders: OnceLock<[Vec<Finder<'static>>; 2]>,
}

impl EndMarkers {
    const fn new(markers: &'static [&'static [u8]]) -> EndMarkers {
        EndMarkers {
            markers,
            finders: OnceLock::new(),
        }
    }

    /// Whether a marker starts a line in `text` (a line starts after `\n` or `\r`; the text's
    /// first byte does not count: callers put the byte before it first).
    fn in_text(&self, text: &[u8]) -> bool {
        let [after_lf, after_cr] = self.finders.get_or_init(|| {
            [b'\n', b'\r'].map(|brk| {
                self.markers
                    .iter()
                    .map(|m| Finder::new(&[&[brk], *m].concat()).into_owned())
                    .collect()
            })
        });
        after_lf.iter().any(|f| f.find(text).is_some())
            || (memchr::memchr(b'\r', text).is_some()
                && after_cr.iter().any(|f| f.find(text).is_some()))
    }
}

pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    /// The idle timer, made when the upstream first has nothing to give (an answer that arrives
    /// with its head, as most whole answers do, never needs one) and moved on when it next has
    /// nothing after a chunk: it measures the upstream's silence, not the client's pace.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A chunk came since the timer was set.
    rearm: bool,
    sse: bool,
    dialect: Dialect,
    done: bool,
    /// Events one of which must end the stream (OpenAI's `[DONE]`, Anthropic's `message_stop`, or
    /// an error event of its own); ending without one is a truncation, even when the connection
    /// closed cleanly — awc reports a chunked body cut short by a clean close as a normal end.
    /// None: no end marker is expected.
    end_markers: Option<&'static EndMarkers>,
    /// Whether an end marker went by; `tail` keeps the last bytes seen (at first a line break:
    /// the stream's start is a line's), so that a marker split across chunks is still seen
    /// (chunks themselves are searched in place, never copied).
    terminal_seen: bool,
    tail: [u8; SEAM],
    tail_len: usize,
    /// The request's metrics, ended with the stream (dropped with it when the client goes away).
    tally: Option<Tally>,
    /// Ready when the replica's drain timeout passes (`crate::drain`), with the flag checked on
    /// every chunk (an upstream that never pauses is ended too).
    cut: Option<(std::sync::Arc<crate::drain::Drain>, CutWait)>,
}

/// The drain's cut, waited on (its future boxed) only from the first time the upstream keeps
/// the answer waiting: an answer that arrives whole with its head never allocates for it.
struct CutWait {
    cut: Option<crate::drain::Cut>,
    wait: Option<futures_util::future::LocalBoxFuture<'static, ()>>,
}

impl CutWait {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(cut) = self.cut.take() {
            self.wait = Some(Box::pin(cut.wait()));
        }
        match &mut self.wait {
            Some(wait) => wait.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// Longest end marker and the line break before it: the bytes of the previous chunk a marker
/// split across two may start in.
const SEAM: usize = 32;

impl<S> Guarded<S> {
    pub fn new(inner: S, idle: Duration, sse: bool) -> Self {
        Guarded {
            inner,
            idle,
            timer: None,
            rearm: false,
            sse,
            dialect: Dialect::OpenAi,
            done: false,
            end_markers: None,
            terminal_seen: false,
            tail: [b'\n'; SEAM],
            tail_len: 1,
            tally: None,
            cut: None,
        }
    }

    /// Ends the answer with a terminal event when `cut` says the drain timeout passed.
    pub fn drain(mut self, cut: Option<crate::drain::Cut>) -> Self {
        self.cut = cut.map(|c| {
            let flag = c.flag();
            (
                flag,
                CutWait {
                    cut: Some(c),
                    wait: None,
                },
            )
        });
        self
    }

    /// Requires the stream to end with `data: [DONE]` (or an error event).
    pub fn expect_done(self) -> Self {
        self.expect_end(&OPENAI_END)
    }

    /// Requires one of `markers` before the stream ends (SSE only).
    pub fn expect_end(mut self, markers: impl Into<Option<&'static EndMarkers>>) -> Self {
        if self.sse {
            self.end_markers = markers.into();
        }
        self
    }

    /// Ends `tally` with the stream.
    pub fn tally(mut self, tally: Option<Tally>) -> Self {
        self.tally = tally;
        self
    }

    /// Terminal events in `dialect`'s shape.
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Looks for an end marker at a line's start in `chunk`, and across the seam with the bytes
    /// before it.
    fn watch(&mut self, chunk: &[u8]) {
        let Some(markers) = self.end_markers else {
            return;
        };
        if self.terminal_seen || chunk.is_empty() {
            return;
        }
        let t = &self.tail[..self.tail_len];
        let c = &chunk[..chunk.len().min(SEAM)];
        let mut seam = [0u8; 2 * SEAM];
        seam[..t.len()].copy_from_slice(t);
        seam[t.len()..t.len() + c.len()].copy_from_slice(c);
        self.terminal_seen = markers.in_text(chunk) || markers.in_text(&seam[..t.len() + c.len()]);
        self.keep_tail(chunk);
    }

    /// Keeps the last `SEAM` bytes seen.
    fn keep_tail(&mut self, chunk: &[u8]) {
        if chunk.len() >= SEAM {
            self.tail.copy_from_slice(&chunk[chunk.len() - SEAM..]);
            self.tail_len = SEAM;
            return;
        }
        let keep = (SEAM - chunk.len()).min(self.tail_len);
        self.tail
            .copy_within(self.tail_len - keep..self.tail_len, 0);
        self.tail[keep..keep + chunk.len()].copy_from_slice(chunk);
        self.tail_len = keep + chunk.len();
    }

    /// Ends the stream: a terminal SSE error event, or an error that aborts the response.
    fn end(&mut self, code: &str, message: String) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.done = true;
        if let Some(t) = self.tally.take() {
            t.end_stream(true);
        }
        if self.sse {
            let timeout = code == "upstream_timeout";
            let event = match self.dialect {
                Dialect::Anthropic => {
                    let kind = if timeout {
                        "timeout_error"
                    } else {
                        "api_error"
                    };
                    let e = serde_json::json!({"type": "error", "error": {"type": kind, "message": message, "code": code}});
                    format!("event: error\ndata: {e}\n\n")
                }
                Dialect::Google => {
                    let (status, rpc) = if timeout {
                        (504, "DEADLINE_EXCEEDED")
                    } else {
                        (502, "UNAVAILABLE")
                    };
                    let e = serde_json::json!({"error": {"code": status, "message": message, "status": rpc,
                        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code, "domain": "to11"}]}});
                    format!("data: {e}\n\n")
                }
                Dialect::OpenAi | Dialect::Aws => {
                    let e = serde_json::json!({"error": {"message": message, "type": "api_error", "param": null, "code": code}});
                    format!("data: {e}\n\n")
                }
            };
            Poll::Ready(Some(Ok(Bytes::from(event))))
        } else {
            Poll::Ready(Some(Err(std::io::Error::other(message))))
        }
    }
}

impl<S, E> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.cut.as_ref().is_some_and(|(d, _)| d.is_cut()) {
            return self.drained();
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.rearm = true;
                self.watch(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = format!("the upstream failed midway through the answer: {e}");
                self.end("upstream_failure", msg)
            }
            Poll::Ready(None) if self.end_markers.is_some() && !self.terminal_seen => self.end(
                "upstream_failure",
                "the upstream ended the stream before it was complete".into(),
            ),
            Poll::Ready(None) => {
                if let Some(t) = self.tally.take() {
                    t.end_stream(false);
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((_, cut)) = self.cut.as_mut() {
                    if cut.poll(cx).is_ready() {
                        return self.drained();
                    }
                }
                self.stalled(cx)
            }
        }
    }
}

impl<S> Guarded<S> {
    /// Ends the answer: the replica's drain timeout passed.
    fn drained(&mut self) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.end(
            "shutting_down",
            "the gateway replica is shutting down and its drain timeout passed; the answer was ended (send the request again)".into(),
        )
    }

    /// The idle timer, polled while the upstream has nothing.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        let idle = self.idle;
        let rearm = std::mem::take(&mut self.rearm);
        let timer = match &mut self.timer {
            Some(t) => {
                if rearm {
                    t.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                t
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep(idle))),
        };
        {
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let msg = format!(
                        "the upstream sent nothing for {} ms; the answer was ended",
                        self.idle.as_millis()
                    );
                    self.end("upstream_timeout", msg)
                }
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn collect(
        g: Guarded<impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin>,
    ) -> String {
        let parts: Vec<_> = g.collect().await;
        parts
            .into_iter()
            .map(|p| String::from_utf8(p.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[actix_rt::test]
    async fn markers_are_seen_split_anywhere() {
        for markers in [&OPENAI_END, &ANTHROPIC_END, &RESPONSES_END] {
            for m in markers.markers {
                assert!(
                    m.len() < SEAM,
                    "a marker and the line break before it fit the seam"
                );
                let text = [b"data: {\"x\":1}\n\n".as_slice(), m, b"\n\n"].concat();
                for a in 0..=text.len() {
                    for b in a..=text.len() {
                        let mut g =
                            Guarded::new((), Duration::from_secs(1), true).expect_end(markers);
                        for part in [&text[..a], &text[a..b], &text[b..]] {
                            g.watch(part);
                        }
                        assert!(g.terminal_seen, "{a} {b} {}", String::from_utf8_lossy(m));
                    }
                }
            }
        }
        let mut g = Guarded::new((), Duration::from_secs(1), true).expect_done();
        for part in [b"data: [DO".as_slice(), b"x", b"NE]"] {
            g.watch(part);
        }
        assert!(!g.terminal_seen, "bytes between the halves");
        // Only at a line's start: a model's text quoting a marker ends nothing, split or not.
        let quoted = b"data: {\"choices\":[{\"delta\":{\"content\":\"data: [DONE] event: message_stop\"}}]}\n\n";
        for markers in [&OPENAI_END, &ANTHROPIC_END] {
            for cut in 0..=quoted.len() {
                let mut g = Guarded::new((), Duration::from_secs(1), true).expect_end(markers);
                g.watch(&quoted[..cut]);
                g.watch(&quoted[cut..]);
                assert!(!g.terminal_seen, "cut at {cut}");
            }
        }
        // Lines ended by CR LF or by CR alone start lines too; a long line is no marker.
        for text in [
            b"data: 1\r\ndata: [DONE]\r\n".as_slice(),
            b"data: 1\rdata: [DONE]\r",
            b"data: [DONE]",
        ] {
            let mut g = Guarded::new((), Duration::from_secs(1), true).expect_done();
            for byte in text.chunks(1) {
                g.watch(byte);
            }
            assert!(g.terminal_seen, "{}", String::from_utf8_lossy(text));
        }
        let long = [b"x".repeat(100).as_slice(), b"data: [DONE]"].concat();
        let mut g = Guarded::new((), Duration::from_secs(1), true).expect_done();
        g.watch(&long);
        assert!(!g.terminal_seen, "in a line's middle");
    }

    #[actix_rt::test]
    async fn a_clean_end_without_done_is_a_truncation() {
        let ok = Guarded::new(
            chunks(&[b"data: 1\n\n", b"data: [DO", b"NE]\n\n"]),
            Duration::from_secs(5),
            true,
        )
        .expect_done();
        assert_eq!(
            collect(ok).await,
            "data: 1\n\ndata: [DONE]\n\n",
            "[DONE] split across chunks is seen"
        );
        let cut =
            Guarded::new(chunks(&[b"data: 1\n\n"]), Duration::from_secs(5), true).expect_done();
        let text = collect(cut).await;
        assert!(
            text.starts_with("data: 1\n\ndata: {\"error\"")
                && text.contains("before it was complete"),
            "{text}"
        );
        let own_error = Guarded::new(
            chunks(&[b"data: {\"error\":{}}\n\n"]),
            Duration::from_secs(5),
            true,
        )
        .expect_done();
        assert_eq!(
            collect(own_error).await,
            "data: {\"error\":{}}\n\n",
            "no second error event"
        );
        let not_expected = Guarded::new(chunks(&[b"event: x\n\n"]), Duration::from_secs(5), true);
        assert_eq!(collect(not_expected).await, "event: x\n\n");
    }

    #[actix_rt::test]
    async fn anthropic_streams_end_with_message_stop_or_an_anthropic_error_event() {
        let cut = Guarded::new(
            chunks(&[
                b"event: message_start\ndata: {}\n\nevent: content_block_delta\ndata: {}\n\n",
            ]),
            Duration::from_secs(5),
            true,
        )
        .expect_end(&ANTHROPIC_END)
        .dialect(Dialect::Anthropic);
        let text = collect(cut).await;
        let (passed, end) = text.split_at(text.find("event: error").expect("an error event"));
        assert_eq!(
            passed,
            "event: message_start\ndata: {}\n\nevent: content_block_delta\ndata: {}\n\n"
        );
        let data: serde_json::Value = serde_json::from_str(
            end.trim_end()
                .strip_prefix("event: error\ndata: ")
                .expect("data"),
        )
        .expect("json");
        assert_eq!(
            (data["type"].as_str(), data["error"]["type"].as_str()),
            (Some("error"), Some("api_error"))
        );
        assert_eq!(data["error"]["code"], "upstream_failure");
        // A marker split across chunks is still seen: nothing is added.
        let whole = Guarded::new(
            chunks(&[
                b"event: message_st",
                b"op\ndata: {\"type\":\"message_stop\"}\n\n",
            ]),
            Duration::from_secs(5),
            true,
        )
        .expect_end(&ANTHROPIC_END)
        .dialect(Dialect::Anthropic);
        assert_eq!(
            collect(whole).await,
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[actix_rt::test]
    async fn passes_chunks_then_ends_a_stall_with_an_sse_error() {
        let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
            b"data: 1\n\n",
        ))])
        .chain(futures_util::stream::pending());
        let mut g = Guarded::new(Box::pin(chunks), Duration::from_millis(20), true);
        assert_eq!(
            g.next().await.unwrap().unwrap(),
            Bytes::from_static(b"data: 1\n\n")
        );
        let end = g.next().await.unwrap().unwrap();
        let text = String::from_utf8(end.to_vec()).unwrap();
        assert!(
            text.starts_with("data: {\"error\"")
                && text.contains("upstream_timeout")
                && text.ends_with("\n\n"),
            "{text}"
        );
        assert!(g.next().await.is_none());
    }

    #[actix_rt::test]
    async fn a_drain_cut_ends_an_open_stream_with_a_terminal_event_in_its_dialect() {
        let open = || {
            Box::pin(
                futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
                    b"event: message_start\ndata: {}\n\n",
                ))])
                .chain(futures_util::stream::pending()),
            )
        };
        let drain = std::sync::Arc::new(crate::drain::Drain::default());
        let mut g = Guarded::new(open(), Duration::from_secs(60), true)
            .expect_end(&ANTHROPIC_END)
            .dialect(Dialect::Anthropic)
            .drain(Some(drain.watch()));
        g.next().await.unwrap().unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(50), g.next()).await;
        assert!(waited.is_err(), "still open before the cut");
        drain.cut();
        let text = String::from_utf8(g.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            text.starts_with("event: error\n") && text.contains("shutting_down"),
            "{text}"
        );
        assert!(g.next().await.is_none());

        // An upstream that never pauses is ended too, at the next chunk.
        let endless = futures_util::stream::repeat_with(|| {
            Ok::<_, std::io::Error>(Bytes::from_static(b"data: {}\n\n"))
        });
        let drain = std::sync::Arc::new(crate::drain::Drain::default());
        let mut g = Guarded::new(endless, Duration::from_secs(60), true)
            .expect_done()
            .drain(Some(drain.watch()));
        g.next().await.unwrap().unwrap();
        drain.cut();
        let text = String::from_utf8(g.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            text.starts_with("data: {\"error\"") && text.contains("shutting_down"),
            "{text}"
        );
        assert!(g.next().await.is_none());
    }

    #[actix_rt::test]
    async fn an_upstream_error_midway_becomes_a_terminal_event_or_an_abort() {
        let broken = || {
            futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"data: 1\n\n")),
                Err(std::io::Error::other("connection reset")),
            ])
        };
        let mut g = Guarded::new(broken(), Duration::from_secs(5), true);
        g.next().await.unwrap().unwrap();
        let text = String::from_utf8(g.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            text.contains("upstream_failure") && text.contains("connection reset"),
            "{text}"
        );
        assert!(g.next().await.is_none());
        let mut g = Guarded::new(broken(), Duration::from_secs(5), false);
        g.next().await.unwrap().unwrap();
        assert!(g.next().await.unwrap().is_err());
    }
}
