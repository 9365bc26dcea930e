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
pub mod gateway;
pub mod queue;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::domain::SerialNumber;
use queue::PushQueue;

/// Tells the push pipeline that cards changed. Cheap to clone; never blocks the caller: the
/// serials go through a channel to a task that enqueues them after the coalescing delay. If
/// enqueueing fails the sweeper still finds the card.
#[derive(Clone, Debug)]
pub struct ChangeNotifier {
    tx: mpsc::UnboundedSender<SerialNumber>,
}

impl ChangeNotifier {
    /// Starts the task that feeds `queue`; it ends when every notifier is dropped.
    pub fn start(queue: Arc<dyn PushQueue>, coalesce: Duration) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<SerialNumber>();
        tokio::spawn(async move {
            while let Some(serial) = rx.recv().await {
                if let Err(e) = queue.enqueue(&serial, coalesce).await {
                    tracing::warn!(serial = %serial, error = %crate::telemetry::error_chain(&e), "enqueueing a push failed; the sweeper will pick the card up");
                }
            }
        });
        Self { tx }
    }

    pub fn card_changed(&self, serial: &SerialNumber) {
        let _ = self.tx.send(serial.clone());
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
