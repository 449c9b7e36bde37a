//! Answers that change form on the way, chunk by chunk as they arrive:
//! - `EventStreamToSse`: Bedrock's binary event stream of Anthropic events becomes the Anthropic
//!   SSE a `/v1/messages` client expects (checksums verified, frames reassembled across reads). A
//!   broken or truncated frame, or an exception frame, ends it with Anthropic's `error` event.
//! - `Translated`: a provider's SSE becomes the client's, through a `translate::StreamTranslator`:
//!   Anthropic's or Gemini's into OpenAI `chat.completion.chunk`s ending with `[DONE]`, OpenAI's
//!   into Anthropic's events; the provider's error event becomes the client's terminal error.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use to11_shared::eventstream::{anthropic_sse, error_event, Decoder};
use to11_shared::translate::bedrock::Stream as ConverseStream;
use to11_shared::translate::sse::Parser;
use to11_shared::translate::StreamTranslator;

/// A provider's SSE translated event by event by `T` (into OpenAI chunks, or Anthropic events).
pub struct Translated<S, T> {
    inner: S,
    parser: Parser,
    translator: T,
    done: bool,
}

impl<S, T> Translated<S, T> {
    pub fn new(inner: S, translator: T) -> Self {
        Translated {
            inner,
            parser: Parser::default(),
            translator,
            done: false,
        }
    }
}

impl<S, E, T> Stream for Translated<S, T>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    T: StreamTranslator + Unpin,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let events = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.parser.push(&chunk),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string()))),
                // An incomplete answer gets no `[DONE]` from `end`: `Guarded` reports the
                // truncation.
                Poll::Ready(None) => {
                    self.done = true;
                    let last: Vec<_> = self.parser.finish().into_iter().collect();
                    let mut out = String::new();
                    for e in &last {
                        out.push_str(&self.translator.event(e));
                    }
                    if !self.translator.ended() {
                        out.push_str(&self.translator.end());
                    }
                    return Poll::Ready((!out.is_empty()).then(|| Ok(Bytes::from(out))));
                }
                Poll::Pending => return Poll::Pending,
            };
            let mut out = String::new();
            for e in &events {
                out.push_str(&self.translator.event(e));
                if self.translator.ended() {
                    self.done = true;
                    break;
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Bytes::from(out))));
            }
        }
    }
}

pub struct EventStreamToSse<S> {
    inner: S,
    decoder: Decoder,
    done: bool,
}

impl<S> EventStreamToSse<S> {
    pub fn new(inner: S) -> Self {
        EventStreamToSse {
            inner,
            decoder: Decoder::default(),
            done: false,
        }
    }

    fn finish_with(&mut self, event: String) -> Poll<Option<Result<Bytes, String>>> {
        self.done = true;
        Poll::Ready(Some(Ok(Bytes::from(event))))
    }
}

impl<S, E> Stream for EventStreamToSse<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => match self.decoder.push(&chunk) {
                    Ok(frames) => {
                        let mut out = String::new();
                        for f in &frames {
                            match anthropic_sse(f) {
                                Ok(event) => out.push_str(&event),
                                Err(error) => {
                                    out.push_str(&error);
                                    self.done = true;
                                    break;
                                }
                            }
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Bytes::from(out))));
                        }
                    }
                    Err(e) => {
                        return self.finish_with(error_event(
                            "api_error",
                            &format!("the upstream's event stream broke: {e}"),
                        ))
                    }
                },
                // `Guarded` turns a transport failure into the terminal error event.
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string()))),
                Poll::Ready(None) if self.decoder.has_partial() => {
                    return self.finish_with(error_event(
                        "api_error",
                        "the upstream ended the stream in the middle of a frame",
                    ))
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Bedrock's ConverseStream frames translated into OpenAI chunks.
pub struct ConverseToOpenAi<S> {
    inner: S,
    decoder: Decoder,
    translator: ConverseStream,
    done: bool,
}

impl<S> ConverseToOpenAi<S> {
    pub fn new(inner: S, translator: ConverseStream) -> Self {
        ConverseToOpenAi {
            inner,
            decoder: Decoder::default(),
            translator,
            done: false,
        }
    }
}

impl<S, E> Stream for ConverseToOpenAi<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let frames = match self.decoder.push(&chunk) {
                        Ok(f) => f,
                        // `Guarded` ends the stream with a terminal error event.
                        Err(e) => {
                            self.done = true;
                            return Poll::Ready(Some(Err(format!(
                                "the upstream's event stream broke: {e}"
                            ))));
                        }
                    };
                    let mut out = String::new();
                    for f in &frames {
                        out.push_str(&self.translator.frame(f));
                        if self.translator.ended() {
                            self.done = true;
                            break;
                        }
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string()))),
                Poll::Ready(None) => {
                    self.done = true;
                    let out = self.translator.end();
                    return Poll::Ready((!out.is_empty()).then(|| Ok(Bytes::from(out))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use futures_util::StreamExt;
    use to11_shared::eventstream::encode;

    fn chunk(event: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(event);
        encode(
            &[(":event-type", "chunk"), (":message-type", "event")],
            format!(r#"{{"bytes":"{b}"}}"#).as_bytes(),
        )
    }

    async fn run(parts: Vec<Vec<u8>>) -> String {
        let inner = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from(p))),
        );
        let out: Vec<Result<Bytes, String>> = EventStreamToSse::new(inner).collect().await;
        out.into_iter()
            .map(|r| String::from_utf8(r.expect("ok").to_vec()).expect("utf8"))
            .collect()
    }

    #[actix_rt::test]
    async fn frames_split_across_reads_become_sse_events() {
        let bytes = [
            chunk(r#"{"type":"message_start"}"#),
            chunk(r#"{"type":"message_stop"}"#),
        ]
        .concat();
        let (a, b) = bytes.split_at(17);
        assert_eq!(
            run(vec![a.to_vec(), b.to_vec()]).await,
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[actix_rt::test]
    async fn a_cut_frame_ends_with_an_error_event() {
        let bytes = chunk(r#"{"type":"message_start"}"#);
        let text = run(vec![bytes[..bytes.len() - 3].to_vec()]).await;
        assert!(text.starts_with("event: error\ndata: "), "{text}");
    }
}
