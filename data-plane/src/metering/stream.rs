//! `Metered`: an answer's body on its way to the client, read by a `Meter` as it passes (and,
//! where the gateway asked for a stream's usage on the client's behalf, with that usage removed
//! by a `UsageStrip`). Its record is finished when the body ends, fails, or is dropped before its
//! end (the client went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use to11_shared::usage::meter::Body;
use to11_shared::usage::{Meter, Usage, UsageFormat, UsageStrip};

use super::{Draft, Outcome};

pub struct Metered<S> {
    inner: S,
    /// Boxed: the body wrappers around it are moved several times on their way to the client.
    state: Box<State>,
}

struct State {
    meter: Meter,
    strip: Option<UsageStrip>,
    /// The record, until it is finished.
    draft: Option<(Draft, u16)>,
    answer_bytes: u64,
    ended: bool,
    /// Usage known from elsewhere (Bedrock's headers), used when the body reports none.
    fallback: Option<Usage>,
}

impl<S> Metered<S> {
    /// `inner` metered by a `Meter` of `format` and `body` (reading finish reasons too when
    /// `finish`), built where it stays: in the state's box, written in place (a meter built
    /// first was moved there through several calls, ~450 bytes each time).
    pub fn new(
        inner: S,
        (format, body, finish): (UsageFormat, Body, bool),
        strip: Option<UsageStrip>,
        draft: Draft,
        status: u16,
        fallback: Option<Usage>,
    ) -> Self {
        let mut state = Box::write(
            Box::new_uninit(),
            State {
                meter: Meter::new(format, body),
                strip,
                draft: Some((draft, status)),
                answer_bytes: 0,
                ended: false,
                fallback,
            },
        );
        if finish {
            state.meter.read_finish();
        }
        Metered { inner, state }
    }
}

impl State {
    fn finish(&mut self, cut: bool) {
        if let Some((draft, status)) = self.draft.take() {
            draft.finish(
                status,
                Outcome {
                    reported: self.meter.usage().or(self.fallback),
                    chunks: self.meter.chunks(),
                    answer_bytes: self.answer_bytes,
                    cut,
                    finish: self.meter.take_finish_reasons(),
                },
            );
        }
    }
}

impl<S> Drop for Metered<S> {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (or the stream was ended for it).
        self.state.finish(true);
    }
}

impl<S, E> Stream for Metered<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let st = &mut *this.state;
        loop {
            if st.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    st.answer_bytes += chunk.len() as u64;
                    st.meter.push(&chunk);
                    let Some(strip) = st.strip.as_mut() else {
                        return Poll::Ready(Some(Ok(chunk)));
                    };
                    let out = strip.push(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    st.finish(true);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    st.ended = true;
                    let rest = st.strip.as_mut().map(UsageStrip::finish);
                    st.finish(false);
                    if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                        return Poll::Ready(Some(Ok(Bytes::from(rest))));
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
