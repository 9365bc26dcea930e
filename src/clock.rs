//! Time, behind a seam so tests can move it (points expiry, idempotency windows).

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Times are at millisecond precision, the precision both stores keep.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        crate::domain::card::stored_precision(Utc::now())
    }
}

/// The real clock shifted by an offset that tests can advance.
#[derive(Debug, Default)]
pub struct TestClock {
    offset: Mutex<Duration>,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        crate::domain::card::stored_precision(Utc::now() + *self.offset.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
