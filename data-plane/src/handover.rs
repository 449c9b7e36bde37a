//! How a worker hands batches to a thread of its own, as metering (records to the shipper) and
//! tracing (spans to the exporter) both do: the worker gathers items into a batch and hands it
//! over when it is full, a while after its first item (`flush_later`), and when the worker stops;
//! the channel is unbounded in type and bounded in items (`Backlog`), so a batch that does not
//! fit is refused whole and a worker never waits.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

/// Items handed over and not yet taken by the other thread, and how many there may be.
pub struct Backlog {
    waiting: AtomicUsize,
    capacity: usize,
}

impl Backlog {
    pub fn new(capacity: usize) -> Backlog {
        Backlog {
            waiting: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    /// Sends `batch`, of `n` items, when there is room for them all; `false` when there is not
    /// (or the other end is gone), and nothing was sent.
    pub fn send<T>(&self, tx: &mpsc::UnboundedSender<T>, batch: T, n: usize) -> bool {
        let room = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w + n <= self.capacity).then_some(w + n)
            })
            .is_ok();
        if room && tx.send(batch).is_ok() {
            return true;
        }
        if room {
            self.waiting.fetch_sub(n, Ordering::AcqRel);
        }
        false
    }

    /// The other thread took `n` items off the channel.
    pub fn taken(&self, n: usize) {
        self.waiting.fetch_sub(n, Ordering::AcqRel);
    }

    /// Items handed over, not yet taken.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Items there may be waiting, at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Runs `flush` on `gathering` `delay` from now, unless one is scheduled already (`armed`, which
/// `flush` clears); nothing happens if the gathering is gone by then. Must run inside the
/// worker's runtime.
pub fn flush_later<G: 'static>(
    gathering: &Rc<G>,
    armed: &Cell<bool>,
    delay: Duration,
    flush: fn(&G),
) {
    if armed.replace(true) {
        return;
    }
    let weak = Rc::downgrade(gathering);
    actix_rt::spawn(async move {
        actix_rt::time::sleep(delay).await;
        if let Some(g) = weak.upgrade() {
            flush(&g);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_whole_or_not_at_all_and_room_comes_back_when_taken() {
        let backlog = Backlog::new(5);
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert!(backlog.send(&tx, "a", 3));
        assert!(!backlog.send(&tx, "b", 3), "3 more than 5 would hold");
        assert!(backlog.send(&tx, "c", 2));
        assert_eq!(backlog.waiting(), 5);
        assert_eq!(rx.try_recv(), Ok("a"));
        backlog.taken(3);
        assert!(backlog.send(&tx, "d", 3));
        drop(rx);
        assert!(!backlog.send(&tx, "e", 0), "nobody to take it");
        assert_eq!(
            backlog.waiting(),
            5,
            "a refused batch leaves no count behind"
        );
        assert_eq!(Backlog::new(0).capacity(), 1);
    }
}
