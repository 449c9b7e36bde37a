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

/// A batch's timed hand-over: whether one is scheduled for the batch being gathered, and which
/// batch that is (a count of batches handed over), so that a timer set for a batch that was
/// handed over full does not cut the next one short.
#[derive(Default)]
pub struct Timer {
    armed: Cell<bool>,
    handed: Cell<u64>,
}

impl Timer {
    /// The batch being gathered was handed over (full, timed or at the end): a flush scheduled
    /// for it no longer applies.
    pub fn handed_over(&self) {
        self.armed.set(false);
        self.handed.set(self.handed.get().wrapping_add(1));
    }
}

/// Runs `flush` on `gathering` `delay` from now, unless one is scheduled already for the batch
/// being gathered (`timer`, of the gathering, which `flush` must tell `handed_over`); nothing
/// happens if the gathering is gone by then, or if that batch was handed over before. Must run
/// inside the worker's runtime.
pub fn flush_later<G: 'static>(
    gathering: &Rc<G>,
    timer: fn(&G) -> &Timer,
    delay: Duration,
    flush: fn(&G),
) {
    let t = timer(gathering);
    if t.armed.replace(true) {
        return;
    }
    let batch = t.handed.get();
    let weak = Rc::downgrade(gathering);
    actix_rt::spawn(async move {
        actix_rt::time::sleep(delay).await;
        if let Some(g) = weak.upgrade() {
            if timer(&g).handed.get() == batch {
                flush(&g);
            }
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

    struct Gathered {
        timer: Timer,
        flushes: Cell<u32>,
    }

    impl Gathered {
        fn flush(&self) {
            self.timer.handed_over();
            self.flushes.set(self.flushes.get() + 1);
        }
    }

    #[actix_rt::test]
    async fn a_timer_set_for_a_batch_handed_over_full_leaves_the_next_batch_alone() {
        let g = Rc::new(Gathered {
            timer: Timer::default(),
            flushes: Cell::new(0),
        });
        let timer: fn(&Gathered) -> &Timer = |g| &g.timer;
        flush_later(&g, timer, Duration::from_millis(20), Gathered::flush);
        flush_later(&g, timer, Duration::from_millis(20), Gathered::flush);
        // The first batch fills up and is handed over; the next one is given its own time.
        g.flush();
        flush_later(&g, timer, Duration::from_secs(60), Gathered::flush);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(g.flushes.get(), 1, "only the full batch's hand-over");
        // A batch gathering alone is handed over on time.
        g.flush();
        flush_later(&g, timer, Duration::from_millis(20), Gathered::flush);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(g.flushes.get(), 3);
    }
}
