//! Failure injection for tests: make the store fail on its Nth call.
//!
//! Every backend calls [`Faults::step`] before each round trip to the database (and between
//! the statements of a transaction), so a test can stop the write path at every point a crash
//! could stop it. In production nothing arms it and a step is one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

#[derive(Debug, Default)]
pub struct Faults {
    calls: AtomicU64,
    /// 0 = disarmed; otherwise the call number (counted from arming) that fails.
    fail_at: AtomicU64,
}

impl Faults {
    /// Fails the `n`th step from now (1 = the next one), once.
    pub fn fail_on_call(&self, n: u64) {
        self.calls.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.fail_at.store(0, Ordering::SeqCst);
    }

    /// Steps counted since the last [`Faults::fail_on_call`] or [`Faults::start_counting`].
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn start_counting(&self) {
        self.calls.store(0, Ordering::SeqCst);
    }

    /// Counts one step; fails it when it is the armed one.
    pub fn step(&self) -> Result<(), StoreError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fail_at = self.fail_at.load(Ordering::SeqCst);
        if fail_at != 0 && n == fail_at {
            self.fail_at.store(0, Ordering::SeqCst);
            return Err(StoreError::Injected(n));
        }
        Ok(())
    }
}
