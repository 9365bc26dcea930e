//! The push pipeline (SPEC §4.5): when a card's version moves, every device registered for its
//! pass is told through APNs, and then fetches the new pass from the PassKit web service.
//!
//! The store is the source of truth: a card with `pushed_version < version` is owed a push,
//! and each registration remembers the version it was last told about. The queue only carries
//! "card X changed" ([`queue`]); workers ([`worker`]) read what is owed when they run, send
//! through a [`gateway::PushGateway`] (a2 in production, [`apns`]), retry with backoff, and
//! give up into dead letters. A sweeper re-enqueues cards owed a push for too long, so a lost
//! queue message, a crash or a restart delays a push but never loses it.

pub mod apns;
pub mod apns_test;
pub mod gateway;
pub mod google_lane;
pub mod queue;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::SerialNumber;
use queue::PushQueue;

/// Tells the push pipeline that cards changed. Cheap to clone; never blocks the caller: the
/// serial joins a set of pending cards that a task enqueues after the coalescing delay. A card
/// already pending is not added twice, so however slow the queue (Redis) is, the set holds at
/// most one entry per card and nothing is dropped. If enqueueing fails the sweeper still finds
/// the card.
#[derive(Clone, Debug)]
pub struct ChangeNotifier {
    handle: Arc<NotifierHandle>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Serials in the order they changed, each once.
    order: std::collections::VecDeque<SerialNumber>,
    set: std::collections::HashSet<SerialNumber>,
    /// Serials taken out of `order` and not yet handed to the queue.
    sending: usize,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
    /// Woken after each batch reached the queue.
    flushed: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every update is a push or a drain that cannot be left half done.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Dropped with the last notifier: tells the task to finish what is pending and end.
#[derive(Debug)]
struct NotifierHandle {
    shared: Arc<Shared>,
}

impl Drop for NotifierHandle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// How many pending serials the task takes at a time.
const BATCH: usize = 256;

impl ChangeNotifier {
    /// Starts the task that feeds `queue`; it ends when every notifier is dropped.
    pub fn start(queue: Arc<dyn PushQueue>, coalesce: Duration) -> Self {
        let shared = Arc::new(Shared::default());
        let task = shared.clone();
        tokio::spawn(async move {
            loop {
                let (batch, closed) = {
                    let mut pending = task.lock();
                    let n = pending.order.len().min(BATCH);
                    let batch: Vec<SerialNumber> = pending.order.drain(..n).collect();
                    for serial in &batch {
                        pending.set.remove(serial);
                    }
                    pending.sending = batch.len();
                    (batch, pending.closed)
                };
                if batch.is_empty() {
                    if closed {
                        break;
                    }
                    task.wake.notified().await;
                    continue;
                }
                for serial in batch {
                    if let Err(e) = queue.enqueue(&serial, coalesce).await {
                        tracing::warn!(serial = %serial, error = %crate::telemetry::error_chain(&e), "enqueueing a push failed; the sweeper will pick the card up");
                    }
                }
                task.lock().sending = 0;
                task.flushed.notify_waiters();
            }
        });
        Self { handle: Arc::new(NotifierHandle { shared }) }
    }

    pub fn card_changed(&self, serial: &SerialNumber) {
        let shared = &self.handle.shared;
        {
            let mut pending = shared.lock();
            if !pending.set.insert(serial.clone()) {
                return;
            }
            pending.order.push_back(serial.clone());
        }
        shared.wake.notify_one();
    }

    /// Cards changed but not handed to the queue yet (each counted once).
    pub fn pending(&self) -> usize {
        self.handle.shared.lock().order.len()
    }

    /// Waits, at most `within`, until every change so far is in the queue (a stopping node
    /// hands its changes over instead of leaving them to the sweeper); true when it is.
    pub async fn flush(&self, within: Duration) -> bool {
        let shared = &self.handle.shared;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let flushed = shared.flushed.notified();
            {
                let pending = shared.lock();
                if pending.order.is_empty() && pending.sending == 0 {
                    return true;
                }
            }
            // A batch may end between the check and the wait: look again every 50 ms anyway.
            let step = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
            if tokio::time::timeout_at(step, flushed).await.is_err() && tokio::time::Instant::now() >= deadline {
                return false;
            }
        }
    }
}

/// The state of APNs as the workers last saw it, for `/readyz`.
#[derive(Debug, Default)]
pub struct PushHealth {
    /// Set while APNs refuses the credentials or topic; cleared by the next delivery.
    config_error: Mutex<Option<String>>,
    /// Whether APNs is configured at all.
    pub apns_configured: std::sync::atomic::AtomicBool,
}

impl PushHealth {
    /// Records a configuration error, logging it loudly the first time it appears.
    pub fn config_error(&self, reason: &str) {
        let mut current = self.config_error.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() != Some(reason) {
            tracing::error!(
                reason,
                "APNs refuses our pushes: check the certificate or key, the team and the pass type identifier; \
                 no device gets updates until this is fixed"
            );
            *current = Some(reason.to_owned());
        }
    }

    pub fn delivered(&self) {
        let mut current = self.config_error.lock().unwrap_or_else(|p| p.into_inner());
        if current.take().is_some() {
            tracing::info!("APNs accepts our pushes again");
        }
    }

    pub fn current_error(&self) -> Option<String> {
        self.config_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Running push workers and their sweeper.
pub struct PushRuntime {
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PushRuntime {
    /// Starts `workers` worker loops and one sweeper.
    pub fn start(worker: Arc<worker::Worker>, workers: usize) -> Self {
        let (shutdown, watcher) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..workers {
            tasks.push(tokio::spawn(worker.clone().run(watcher.clone())));
        }
        if workers > 0 {
            tasks.extend(google_lane::start(&worker, watcher.clone()));
            tasks.push(tokio::spawn(worker::run_sweeper(
                worker.store.clone(),
                worker.queue.clone(),
                worker.settings.clone(),
                worker.clock.clone(),
                watcher,
            )));
        }
        Self { shutdown, tasks }
    }

    /// Stops taking jobs, finishes the jobs in hand, and returns when all is done.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Stops everything at once, jobs in hand included (as a crash would).
    pub fn abort(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use queue::memory::MemoryQueue;
    use queue::{Lease, QueueDepth, QueueError};

    /// A queue whose `enqueue` waits until the test opens the gate: a Redis that stalls.
    struct StalledQueue {
        inner: MemoryQueue,
        gate: tokio::sync::Semaphore,
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl PushQueue for StalledQueue {
        fn backend(&self) -> &'static str {
            "stalled"
        }
        async fn ping(&self) -> Result<(), QueueError> {
            Ok(())
        }
        async fn enqueue(&self, serial: &SerialNumber, delay: Duration) -> Result<(), QueueError> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.gate.acquire().await.expect("the gate stays open").forget();
            self.inner.enqueue(serial, delay).await
        }
        async fn ensure_queued(&self, serial: &SerialNumber) -> Result<(), QueueError> {
            self.inner.ensure_queued(serial).await
        }
        async fn take(&self, lease: Duration) -> Result<Option<Lease>, QueueError> {
            self.inner.take(lease).await
        }
        async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
            self.inner.ack(lease).await
        }
        async fn retry(&self, l: &Lease, d: Duration, a: u32, f: DateTime<Utc>) -> Result<(), QueueError> {
            self.inner.retry(l, d, a, f).await
        }
        async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
            self.inner.release(lease).await
        }
        async fn reap(&self) -> Result<u64, QueueError> {
            self.inner.reap().await
        }
        async fn depth(&self) -> Result<QueueDepth, QueueError> {
            self.inner.depth().await
        }
    }

    #[tokio::test]
    async fn a_stalled_queue_holds_each_pending_card_once_and_loses_none() {
        let queue = Arc::new(StalledQueue {
            inner: MemoryQueue::new(),
            gate: tokio::sync::Semaphore::new(0),
            calls: Default::default(),
        });
        let notifier = ChangeNotifier::start(queue.clone(), Duration::ZERO);
        let serials: Vec<SerialNumber> = (0..10).map(|_| SerialNumber::generate()).collect();
        for _ in 0..10_000 {
            for serial in &serials {
                notifier.card_changed(serial);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The task holds the first serial (stuck in enqueue); the other nine wait, once each.
        assert!(notifier.pending() <= 10, "pending grew to {}", notifier.pending());
        assert_eq!(queue.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!notifier.flush(Duration::from_millis(100)).await, "the stalled queue holds the changes");
        queue.gate.add_permits(1_000);
        assert!(notifier.flush(Duration::from_secs(5)).await, "flushed once the queue answers");
        assert_eq!(notifier.pending(), 0);
        assert_eq!(queue.inner.depth().await.unwrap().waiting, 10, "every card reached the queue");
        assert!(queue.calls.load(std::sync::atomic::Ordering::SeqCst) <= 20, "not one enqueue per change");
    }
}
