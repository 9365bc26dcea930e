//! Failure injection and pause points for tests.
//!
//! Every backend calls [`Faults::step`] before each round trip to the database (and between
//! the statements of a transaction), so a test can stop the write path at every point a crash
//! could stop it. Named points ([`Faults::reached`]) mark the moments where races matter (a
//! ledger write between its read and its commit, a MongoDB settle between its insert and its
//! pull, a reader between its two reads): a test can hold the next task that gets there until
//! it lets it go, or make the store call right after it fail, and so play a race step by step.
//! In production nothing arms them and each costs one atomic load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::StoreError;

/// The named points where the code calls [`Faults::reached`].
pub mod points {
    /// A POS write holds its idempotency key and has not yet read its card.
    pub const CLAIMED: &str = "idempotency.claimed";
    /// A ledger write has read its card and computed its entries, and is about to commit them.
    pub const LEDGER_BEFORE_COMMIT: &str = "ledger.before_commit";
    /// A ledger write passed its commit point (the change exists); what follows is settling and
    /// recording the answer.
    pub const LEDGER_COMMITTED: &str = "ledger.committed";
    /// MongoDB: a settle copied an entry into the `ledger` collection and has not yet removed it
    /// from the card's `pending` list.
    pub const SETTLE_BEFORE_PULL: &str = "settle.before_pull";
    /// MongoDB: a reader of entries read the cards' `pending` lists and has not yet read the
    /// `ledger` collection.
    pub const READ_BETWEEN: &str = "read.between";
    /// A push job wrote a dead letter and has not yet marked its target given up nor the card
    /// pushed (a replay of that letter can come here).
    pub const PUSH_DEAD_LETTERED: &str = "push.dead_lettered";
    /// An import is about to write one line of its file (a checkpoint: see [`Faults::stop_at`]).
    pub const IMPORT_LINE: &str = "import.line";
}

#[derive(Debug, Default)]
pub struct Faults {
    calls: AtomicU64,
    /// 0 = disarmed; otherwise the call number (counted from arming) that fails.
    fail_at: AtomicU64,
    /// Whether any named point is armed (the fast path of [`Faults::reached`]).
    armed: AtomicBool,
    at_points: Mutex<Vec<(&'static str, Action)>>,
    /// Checkpoints armed to fail: the point and how many more passes succeed before it fails.
    stops: Mutex<Vec<(&'static str, u64)>>,
}

#[derive(Debug)]
enum Action {
    Pause { reached: oneshot::Sender<()>, release: oneshot::Receiver<()> },
    FailNextCall,
}

/// A task held at a named point: [`Paused::wait`] until one gets there, then [`Paused::release`].
#[derive(Debug)]
pub struct Paused {
    point: &'static str,
    reached: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
}

impl Paused {
    /// Waits until a task is held at the point (panics after 20 s: the race did not happen).
    pub async fn wait(&mut self) {
        let reached = self.reached.take().expect("wait is called once");
        match tokio::time::timeout(Duration::from_secs(20), reached).await {
            Ok(Ok(())) => {}
            _ => panic!("no task reached {} within 20 s", self.point),
        }
    }

    /// Whether a task is held at the point within `within` (for points a backend may not have).
    pub async fn reached_within(&mut self, within: Duration) -> bool {
        let Some(reached) = self.reached.as_mut() else { return true };
        let got = matches!(tokio::time::timeout(within, reached).await, Ok(Ok(())));
        if got {
            self.reached = None;
        }
        got
    }

    /// Lets the held task go on.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Faults {
    /// Fails the `n`th step from now (1 = the next one), once.
    pub fn fail_on_call(&self, n: u64) {
        self.calls.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.fail_at.store(0, Ordering::SeqCst);
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.lock().clear();
        self.armed.store(false, Ordering::SeqCst);
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

    /// Holds the next task that reaches `point` there until the returned handle releases it.
    pub fn pause_at(&self, point: &'static str) -> Paused {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.arm(point, Action::Pause { reached: reached_tx, release: release_rx });
        Paused { point, reached: Some(reached_rx), release: Some(release_tx) }
    }

    /// Makes the first store call after the next task passes `point` fail, once: a crash there.
    pub fn fail_after(&self, point: &'static str) {
        self.arm(point, Action::FailNextCall);
    }

    /// Marks that a task got to `point`, and does what a test armed there.
    pub async fn reached(&self, point: &'static str) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        let action = {
            let mut armed = self.lock();
            let found = armed.iter().position(|(p, _)| *p == point).map(|i| armed.remove(i).1);
            let stops = !self.stops.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
            self.armed.store(!armed.is_empty() || stops, Ordering::SeqCst);
            found
        };
        match action {
            None => {}
            Some(Action::FailNextCall) => self.fail_on_call(1),
            Some(Action::Pause { reached, release }) => {
                let _ = reached.send(());
                let _ = release.await;
            }
        }
    }

    /// Makes the `nth` pass (1 = the next) through the checkpoint `point` fail, once: the task
    /// that gets there stops as if the process died at that moment, whatever the backend's
    /// round trips around it.
    pub fn stop_at(&self, point: &'static str, nth: u64) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).push((point, nth.max(1)));
        self.armed.store(true, Ordering::SeqCst);
    }

    /// A checkpoint: fails when [`Faults::stop_at`] armed this pass.
    pub fn checkpoint(&self, point: &'static str) -> Result<(), StoreError> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut stops = self.stops.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = stops.iter().position(|(p, _)| *p == point) else { return Ok(()) };
        stops[i].1 -= 1;
        if stops[i].1 > 0 {
            return Ok(());
        }
        stops.remove(i);
        Err(StoreError::Injected(0))
    }

    fn arm(&self, point: &'static str, action: Action) {
        self.lock().push((point, action));
        self.armed.store(true, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, Action)>> {
        self.at_points.lock().unwrap_or_else(|p| p.into_inner())
    }
}
