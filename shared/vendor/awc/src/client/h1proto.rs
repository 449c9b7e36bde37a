use std::{
    cell::RefCell,
    io::Write,
    pin::{pin, Pin},
    task::{Context, Poll},
};

use actix_codec::{Framed, FramedParts};
use actix_http::{
    body::{BodySize, MessageBody},
    error::PayloadError,
    h1,
    header::{HeaderMap, TryIntoHeaderValue, EXPECT, HOST},
    Payload, RequestHeadType, ResponseHead, StatusCode,
};
use actix_utils::future::poll_fn;
use bytes::{buf::BufMut, Bytes, BytesMut};
use futures_core::{ready, Stream};
use futures_util::SinkExt as _;

use super::{
    connection::{ConnectionIo, H1Connection},
    error::{ConnectError, SendRequestError},
};
use crate::BoxError;

pub(crate) async fn send_request<Io, B>(
    io: H1Connection<Io>,
    mut head: RequestHeadType,
    body: B,
) -> Result<(ResponseHead, Payload), SendRequestError>
where
    Io: ConnectionIo,
    B: MessageBody,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);

    let orig_length = body.size();
    let mut length = orig_length;
    let mut first_chunk = None;

    // This avoids sending `Transfer-Encoding: chunked` for requests with an empty body stream.
    // https://github.com/actix/actix-web/issues/2320
    if matches!(orig_length, BodySize::Stream) {
        enum Peek<E> {
            Pending,
            Item(Result<Bytes, E>),
            Eof,
        }

        match poll_fn(|cx| match body.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Ready(Peek::Pending),
            Poll::Ready(Some(res)) => Poll::Ready(Peek::Item(res)),
            Poll::Ready(None) => Poll::Ready(Peek::Eof),
        })
        .await
        {
            Peek::Pending => {}
            Peek::Eof => length = BodySize::Sized(0),
            Peek::Item(Ok(chunk)) => first_chunk = Some(chunk),
            Peek::Item(Err(err)) => return Err(SendRequestError::Body(err.into())),
        }
    }

    // set request host header
    if !head.as_ref().headers.contains_key(HOST)
        && !head.extra_headers().iter().any(|h| h.contains_key(HOST))
    {
        if let Some(host) = head.as_ref().uri.host() {
            let mut wrt = BytesMut::with_capacity(host.len() + 5).writer();

            match head.as_ref().uri.port_u16() {
                None | Some(80) | Some(443) => write!(wrt, "{}", host)?,
                Some(port) => write!(wrt, "{}:{}", host, port)?,
            };

            match wrt.get_mut().split().freeze().try_into_value() {
                Ok(value) => match head {
                    RequestHeadType::Owned(ref mut head) => {
                        head.headers.insert(HOST, value);
                    }
                    RequestHeadType::Rc(_, ref mut extra_headers) => {
                        let headers = extra_headers.get_or_insert(HeaderMap::new());
                        headers.insert(HOST, value);
                    }
                },
                Err(err) => log::error!("Can not set HOST header {err}"),
            }
        }
    }

    // create Framed and prepare sending request
    // to11: one codec configuration per thread, not one per exchange, and the framing buffers
    // of an earlier exchange (PATCHES.md).
    let mut framed = framed_reusing(io);

    // Check EXPECT header and enable expect handle flag accordingly.
    // See https://datatracker.ietf.org/doc/html/rfc7231#section-5.1.1
    let is_expect = if head.as_ref().headers.contains_key(EXPECT) {
        match orig_length {
            BodySize::None | BodySize::Sized(0) => {
                let keep_alive = framed.codec_ref().keep_alive();
                framed.io_mut().on_release(keep_alive);

                // TODO: use a new variant or a new type better describing error violate
                // `Requirements for clients` session of above RFC
                return Err(SendRequestError::Connect(ConnectError::Disconnected));
            }
            _ => true,
        }
    } else {
        false
    };

    let mut pin_framed = Pin::new(&mut framed);

    // special handle for EXPECT request.
    let (do_send, mut res_head) = if is_expect {
        pin_framed.send((head, length).into()).await?;

        let head = poll_fn(|cx| pin_framed.as_mut().poll_next(cx))
            .await
            .ok_or(ConnectError::Disconnected)??;

        // return response head in case status code is not continue
        // and current head would be used as final response head.
        (head.status == StatusCode::CONTINUE, Some(head))
    } else {
        pin_framed.feed((head, length).into()).await?;

        (true, None)
    };

    if do_send {
        // send request body
        match length {
            BodySize::None | BodySize::Sized(0) => {
                poll_fn(|cx| pin_framed.as_mut().flush(cx)).await?;
            }
            _ => send_body(body.as_mut(), pin_framed.as_mut(), first_chunk).await?,
        };

        // read response and init read body
        let head = poll_fn(|cx| pin_framed.as_mut().poll_next(cx))
            .await
            .ok_or(ConnectError::Disconnected)??;

        res_head = Some(head);
    }

    let head = res_head.unwrap();

    match pin_framed.codec_ref().message_type() {
        h1::MessageType::None => {
            let keep_alive = pin_framed.codec_ref().keep_alive();
            pin_framed.io_mut().on_release(keep_alive);
            keep_buffers(framed);

            Ok((head, Payload::None))
        }
        _ => Ok((
            head,
            Payload::Stream {
                payload: Box::pin(PlStream::new(framed)),
            },
        )),
    }
}

pub(crate) async fn open_tunnel<Io>(
    io: Io,
    head: RequestHeadType,
) -> Result<(ResponseHead, Framed<Io, h1::ClientCodec>), SendRequestError>
where
    Io: ConnectionIo,
{
    // create Framed and send request.
    let mut framed = Framed::new(io, h1::ClientCodec::new(codec_config()));
    framed.send((head, BodySize::None).into()).await?;

    // read response head.
    let head = poll_fn(|cx| Pin::new(&mut framed).poll_next(cx))
        .await
        .ok_or(ConnectError::Disconnected)??;

    Ok((head, framed))
}

/// send request body to the peer
pub(crate) async fn send_body<Io, B>(
    mut body: Pin<&mut B>,
    mut framed: Pin<&mut Framed<Io, h1::ClientCodec>>,
    first_chunk: Option<Bytes>,
) -> Result<(), SendRequestError>
where
    Io: ConnectionIo,
    B: MessageBody,
    B::Error: Into<BoxError>,
{
    if let Some(chunk) = first_chunk {
        framed.as_mut().write(h1::Message::Chunk(Some(chunk)))?;
    }

    let mut eof = false;
    while !eof {
        while !eof && !framed.as_ref().is_write_buf_full() {
            match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
                Some(Ok(chunk)) => {
                    framed.as_mut().write(h1::Message::Chunk(Some(chunk)))?;
                }
                Some(Err(err)) => return Err(SendRequestError::Body(err.into())),
                None => {
                    eof = true;
                    framed.as_mut().write(h1::Message::Chunk(None))?;
                }
            }
        }

        if !framed.as_ref().is_write_buf_empty() {
            poll_fn(|cx| match framed.as_mut().flush(cx) {
                Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => {
                    if !framed.as_ref().is_write_buf_full() {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    }
                }
            })
            .await?;
        }
    }

    framed.get_mut().flush().await?;
    Ok(())
}

// to11 (PATCHES.md): the framed transport is held in an `Option` (it is `Unpin`), so that the
// end of the body can take it back and keep its buffers for the next exchange.
pub(crate) struct PlStream<Io: ConnectionIo> {
    framed: Option<Framed<H1Connection<Io>, h1::ClientPayloadCodec>>,
    /// to11 (PATCHES.md): what the read after a joined chunk gave that could not join it.
    held: Option<Held>,
}

/// to11: an outcome read while joining chunks, given on the next poll.
enum Held {
    Chunk(Bytes),
    Failed(PayloadError),
    Ended,
}

/// to11: chunks already received are joined up to this many bytes.
const JOIN_MAX: usize = 16 * 1024;

impl<Io: ConnectionIo> PlStream<Io> {
    fn new(framed: Framed<H1Connection<Io>, h1::ClientCodec>) -> Self {
        let framed = framed.into_map_codec(|codec| codec.into_payload_codec());

        PlStream {
            framed: Some(framed),
            held: None,
        }
    }

    /// The body's end: the connection goes back to the pool, the buffers to the thread.
    fn release(&mut self) {
        if let Some(mut framed) = self.framed.take() {
            let keep_alive = framed.codec_ref().keep_alive();
            framed.io_mut().on_release(keep_alive);
            keep_buffers(framed);
        }
    }

    /// to11 (PATCHES.md): `first`, with the chunks after it that are already in the read buffer
    /// (a chunked answer whose chunks came in one read, as a burst of SSE events does), as one
    /// chunk, up to `JOIN_MAX` bytes. Each chunk passed on costs every layer above a poll, and
    /// the server an encoding and a write; nothing is waited for. What cannot join (a chunk too
    /// large, an error, the end) is held for the next poll; the end releases the connection now.
    fn join(&mut self, first: Bytes, cx: &mut Context<'_>) -> Bytes {
        let mut joined: Option<BytesMut> = None;
        while let Some(framed) = self.framed.as_mut() {
            let len = joined.as_ref().map_or(first.len(), BytesMut::len);
            if framed.is_read_buf_empty() || len >= JOIN_MAX {
                break;
            }
            match Pin::new(&mut *framed).next_item(cx) {
                Poll::Ready(Some(Ok(Some(chunk)))) if len + chunk.len() <= JOIN_MAX => {
                    joined
                        .get_or_insert_with(|| {
                            let mut b = BytesMut::with_capacity(JOIN_MAX.min(4 * len + chunk.len()));
                            b.extend_from_slice(&first);
                            b
                        })
                        .extend_from_slice(&chunk);
                }
                Poll::Ready(Some(Ok(Some(chunk)))) => {
                    self.held = Some(Held::Chunk(chunk));
                    break;
                }
                Poll::Ready(Some(Ok(None))) => {
                    self.release();
                    break;
                }
                Poll::Ready(Some(Err(e))) => {
                    self.held = Some(Held::Failed(e));
                    break;
                }
                Poll::Ready(None) => {
                    self.held = Some(Held::Ended);
                    break;
                }
                Poll::Pending => break,
            }
        }
        joined.map_or(first, BytesMut::freeze)
    }
}

impl<Io: ConnectionIo> Stream for PlStream<Io> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.held.take() {
            Some(Held::Chunk(chunk)) => return Poll::Ready(Some(Ok(this.join(chunk, cx)))),
            Some(Held::Failed(e)) => return Poll::Ready(Some(Err(e))),
            Some(Held::Ended) => return Poll::Ready(None),
            None => {}
        }
        let Some(framed) = this.framed.as_mut() else {
            return Poll::Ready(None);
        };

        match ready!(Pin::new(&mut *framed).next_item(cx)?) {
            Some(Some(chunk)) => Poll::Ready(Some(Ok(this.join(chunk, cx)))),
            Some(None) => {
                this.release();
                Poll::Ready(None)
            }
            None => Poll::Ready(None),
        }
    }
}

// to11 (PATCHES.md): `Framed::new` allocates an 8 KiB read buffer and an 8 KiB write buffer for
// every exchange, freed when the exchange ends. An exchange that ended cleanly (its connection
// already handed back, both buffers drained) leaves them here instead, and the next exchange of
// the thread frames its connection with them. A buffer whose bytes were split off into the body's
// chunks stays valid: `BytesMut` reclaims or reallocates its storage when it needs room, as
// within one exchange.
thread_local! {
    static SPARE_BUFFERS: RefCell<Vec<(BytesMut, BytesMut)>> = const { RefCell::new(Vec::new()) };
}

/// Most pairs of buffers a thread keeps: at most 2 MiB held idle per thread.
const SPARE_MAX: usize = 64;
/// Buffers larger than this (grown by a large request or head) are not kept.
const SPARE_LARGEST: usize = 16 * 1024;

/// `io` framed for an exchange, with a kept pair of buffers when the thread has one.
fn framed_reusing<Io: ConnectionIo>(
    io: H1Connection<Io>,
) -> Framed<H1Connection<Io>, h1::ClientCodec> {
    let codec = h1::ClientCodec::new(codec_config());
    match SPARE_BUFFERS.with(|s| s.borrow_mut().pop()) {
        Some((read_buf, write_buf)) => {
            let mut parts = FramedParts::with_read_buf(io, codec, read_buf);
            parts.write_buf = write_buf;
            Framed::from_parts(parts)
        }
        None => Framed::new(io, codec),
    }
}

/// Keeps the buffers of an exchange that ended, when both are empty (nothing unread, nothing
/// unwritten) and not grown large; drops the rest of `framed` (its connection already released).
fn keep_buffers<T, U>(framed: Framed<T, U>) {
    let FramedParts {
        read_buf,
        write_buf,
        ..
    } = framed.into_parts();
    let fits = |b: &BytesMut| b.is_empty() && b.capacity() <= SPARE_LARGEST;
    if fits(&read_buf) && fits(&write_buf) {
        SPARE_BUFFERS.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARE_MAX {
                s.push((read_buf, write_buf));
            }
        });
    }
}

// to11 (PATCHES.md): `ClientCodec::default()` makes a `ServiceConfig`, whose `DateService`
// spawns a task with a 500 ms interval (and formats the date) on every exchange, to be aborted
// when the exchange ends; a client never writes a `Date` header. One configuration per thread,
// made on first use inside the runtime, serves every exchange of that thread the same way.
thread_local! {
    static CODEC_CONFIG: actix_http::ServiceConfig = actix_http::ServiceConfig::default();
}

fn codec_config() -> actix_http::ServiceConfig {
    CODEC_CONFIG.with(Clone::clone)
}
