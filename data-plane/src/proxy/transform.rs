//! Answers that change form on the way, chunk by chunk as they arrive: the upstream's body fed
//! to a `to11_shared::translate::Converter` (its framing decoded, translated step by step, written
//! as the client's SSE). A broken frame or a transport failure ends the stream with an error,
//! which `Guarded` turns into the terminal error event of the client's API.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use to11_shared::translate::{Converter, StreamError};

use crate::metering::{Draft, Outcome};

/// Why a converted stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError<E> {
    #[error("{0}")]
    Upstream(E),
    #[error("{0}")]
    Stream(#[from] StreamError),
}

pub struct Converted<S> {
    inner: S,
    converter: Converter,
    done: bool,
    /// The request's record and the answer's status, finished from the converter's meter when
    /// the stream ends or is dropped.
    draft: Option<(Draft, u16)>,
    answer_bytes: u64,
}

impl<S> Converted<S> {
    pub fn new(inner: S, converter: Converter, draft: Option<(Draft, u16)>) -> Self {
        Converted {
            inner,
            converter,
            done: false,
            draft,
            answer_bytes: 0,
        }
    }

    fn finish(&mut self, cut: bool) {
        if let Some((draft, status)) = self.draft.take() {
            let meter = self.converter.meter();
            draft.finish(
                status,
                Outcome {
                    reported: meter.and_then(|m| m.usage()),
                    chunks: meter.map(|m| m.chunks()).unwrap_or(0),
                    answer_bytes: self.answer_bytes,
                    cut,
                    finish: meter
                        .map(|m| m.finish_reasons().to_vec())
                        .unwrap_or_default(),
                },
            );
        }
    }
}

impl<S> Drop for Converted<S> {
    fn drop(&mut self) {
        self.finish(true);
    }
}

impl<S, E> Stream for Converted<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, ConvertError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let out = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.answer_bytes += chunk.len() as u64;
                    self.converter.push(&chunk)
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.finish(true);
                    return Poll::Ready(Some(Err(ConvertError::Upstream(e))));
                }
                // An incomplete answer gets no close from the converter: `Guarded` reports the
                // truncation.
                Poll::Ready(None) => {
                    self.done = true;
                    let rest = self.converter.finish();
                    if !self.converter.ended() {
                        // Ended before its close: `Guarded` reports the truncation.
                        self.finish(true);
                    }
                    rest
                }
                Poll::Pending => return Poll::Pending,
            };
            if self.converter.ended() {
                self.done = true;
                // The client got the stream's end: complete, whatever else the upstream sends.
                self.finish(false);
            }
            match out {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Poll::Ready(Some(Ok(Bytes::from(bytes)))),
                Err(e) => {
                    self.done = true;
                    self.finish(true);
                    return Poll::Ready(Some(Err(e.into())));
                }
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
    use to11_shared::translate::Framing;

    fn chunk(event: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(event);
        encode(
            &[(":event-type", "chunk"), (":message-type", "event")],
            format!(r#"{{"bytes":"{b}"}}"#).as_bytes(),
        )
    }

    async fn run(parts: Vec<Vec<u8>>) -> Vec<Result<String, String>> {
        let inner = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from(p))),
        );
        Converted::new(inner, Converter::new(Framing::AnthropicChunks, None), None)
            .map(|r| {
                r.map(|b| String::from_utf8(b.to_vec()).expect("utf8"))
                    .map_err(|e| e.to_string())
            })
            .collect()
            .await
    }

    #[actix_rt::test]
    async fn frames_split_across_reads_become_sse_events() {
        let bytes = [
            chunk(r#"{"type":"message_start"}"#),
            chunk(r#"{"type":"message_stop"}"#),
        ]
        .concat();
        let (a, b) = bytes.split_at(17);
        let out: Vec<String> = run(vec![a.to_vec(), b.to_vec()])
            .await
            .into_iter()
            .map(|r| r.expect("ok"))
            .collect();
        assert_eq!(
            out.concat(),
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[actix_rt::test]
    async fn a_cut_frame_ends_with_an_error() {
        let bytes = chunk(r#"{"type":"message_start"}"#);
        let out = run(vec![bytes[..bytes.len() - 3].to_vec()]).await;
        assert_eq!(
            out,
            vec![Err(
                "the upstream ended the stream in the middle of a frame".to_string()
            )]
        );
    }
}
