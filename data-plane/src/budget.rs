//! The replica's memory budget for what clients make it hold: request bodies and the images it
//! fetches for them. Every byte read is charged before it is kept; a request that would pass the
//! budget waits briefly for others to finish, then gets 503 `overloaded` with `retry-after`, so a
//! burst of large bodies slows the replica down instead of taking it out of memory. A charge is
//! returned when the request ends (its `Charge` dropped). Charging is one atomic operation on a
//! semaphore: nothing is locked on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use to11_shared::ErrorCode;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::GatewayError;

/// The budget is counted in units of this many bytes.
const UNIT: usize = 1024;

pub struct MemoryBudget {
    units: Semaphore,
    capacity: u32,
    wait: Duration,
    /// Requests refused for want of memory.
    pub refused: AtomicU64,
}

/// Bytes held for a request, returned on drop.
#[derive(Debug, Default)]
pub struct Charge<'a> {
    permit: Option<SemaphorePermit<'a>>,
}

impl Charge<'_> {
    /// Bytes charged so far.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits() * UNIT)
    }
}

impl MemoryBudget {
    pub fn new(bytes: usize, wait: Duration) -> Self {
        let capacity =
            (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        MemoryBudget {
            units: Semaphore::new(capacity as usize),
            capacity,
            wait,
            refused: AtomicU64::new(0),
        }
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// Adds `bytes` to `charge`: at once when the budget has room, after a wait of at most
    /// `wait` when it has not, else `overloaded`.
    pub async fn charge<'a>(
        &'a self,
        charge: &mut Charge<'a>,
        bytes: usize,
    ) -> Result<(), GatewayError> {
        let units = bytes.div_ceil(UNIT).max(1);
        let overloaded = || {
            self.refused.fetch_add(1, Ordering::Relaxed);
            GatewayError::new(
                ErrorCode::Overloaded,
                "the gateway is holding as many request bytes as it may; try again shortly",
            )
            .with_retry_after(1)
        };
        if units + charge.bytes() / UNIT > self.capacity as usize {
            return Err(overloaded());
        }
        let units = units as u32;
        let permit = match self.units.try_acquire_many(units) {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(self.wait, self.units.acquire_many(units))
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(overloaded)?,
        };
        match &mut charge.permit {
            Some(p) => p.merge(permit),
            None => charge.permit = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn charges_wait_for_room_then_refuse_and_are_returned_on_drop() {
        let b = MemoryBudget::new(10 * UNIT, Duration::from_millis(30));
        let mut first = Charge::default();
        b.charge(&mut first, 6 * UNIT).await.expect("room");
        b.charge(&mut first, 3 * UNIT).await.expect("room");
        assert_eq!(first.bytes(), 9 * UNIT);
        assert_eq!(b.available(), UNIT);
        let mut second = Charge::default();
        let e = b.charge(&mut second, 2 * UNIT).await.expect_err("full");
        assert_eq!((e.code, e.retry_after), (ErrorCode::Overloaded, Some(1)));
        // Room made while a charge waits lets it through.
        let waiting = async {
            let mut c = Charge::default();
            b.charge(&mut c, 5 * UNIT).await.map(|_| c.bytes())
        };
        let freeing = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(first);
        };
        let (got, ()) = tokio::join!(waiting, freeing);
        assert_eq!(got.expect("waited for room"), 5 * UNIT);
        assert_eq!(b.available(), 10 * UNIT);
        // More than the whole budget is refused at once.
        let mut big = Charge::default();
        assert!(b.charge(&mut big, 11 * UNIT).await.is_err());
        assert_eq!(b.refused.load(Ordering::Relaxed), 2);
    }
}
