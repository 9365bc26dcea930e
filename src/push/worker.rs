//! The push worker: takes "card X changed" jobs, pushes the card's current version to every
//! device still owed it, retries failures with backoff, and gives up into dead letters.
//!
//! [`Worker::try_execute_task`] runs one job and says what happened, so tests drive the worker
//! step by step; [`Worker::run`] is the thin loop around it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::PushHealth;
use super::gateway::{PushGateway, PushOutcome, WalletPush};
use super::queue::{Lease, PushQueue};
use crate::clock::Clock;
use crate::config::PushSettings;
use crate::domain::{Card, Registration, SerialNumber};
use crate::messages;
use crate::metrics::Metrics;
use crate::store::{CardLookup, DeadLetter, DynStore, GoogleSync, Owed, StoreError, WalletChange::Removed};
use crate::telemetry::error_chain;

/// The longest a retry waits.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Every owed device (and the card) got the current version.
    Pushed { version: i64, devices: usize },
    /// Nothing was owed (already pushed, or no such card).
    NothingOwed,
    /// Some devices failed; the job runs again later.
    Retrying { attempts: u32, after: Duration },
    /// Failures went on too long; the failed targets are in the dead letters.
    DeadLettered { letters: usize },
    /// The devices were pushed; the Google update waits in the Google lane, whose job finishes
    /// the card (see [`super::google_lane`]).
    Deferred,
}

/// What [`Worker::try_execute_task`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// No job was due.
    Empty,
    Ran {
        serial: SerialNumber,
        result: JobResult,
    },
    /// The store failed; the job goes back to the queue.
    Failed {
        serial: SerialNumber,
    },
}

/// Where a push goes.
#[derive(Debug, Clone)]
pub enum Target {
    Device(Registration),
    Google,
}

impl Target {
    /// How dead letters name it: `apns:<device library id>` or `google`.
    pub fn label(&self) -> String {
        match self {
            Self::Device(r) => format!("apns:{}", r.device_library_id),
            Self::Google => "google".to_owned(),
        }
    }
}

/// Everything a worker needs.
pub struct Worker {
    pub store: DynStore,
    pub queue: Arc<dyn PushQueue>,
    /// `None` when APNs is not configured: registrations are not pushed.
    pub gateway: Option<Arc<dyn PushGateway>>,
    /// The pass type identifier, the APNs topic.
    pub topic: String,
    pub settings: PushSettings,
    pub metrics: Arc<Metrics>,
    pub health: Arc<PushHealth>,
    pub clock: Arc<dyn Clock>,
    /// Google Wallet, when configured: card changes patch the card's object.
    pub google: Option<Arc<crate::google::GoogleWallet>>,
    /// Where a job hands its card when Google's rate limit would make it wait
    /// ([`super::google_lane`]); `None` in the Google lane's own worker, which waits.
    pub google_lane: Option<Arc<dyn PushQueue>>,
    /// Programs as this node last read them: a Google update needs the card's program.
    pub programs: crate::programs::ProgramCache,
    /// This process's webhook sender, rung when a dead token records a removal; `None` in a
    /// standalone worker (the serving nodes' senders find the event on their next poll).
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
}

/// The delay before retry number `attempts` (1 = the first retry): exponential with full jitter
/// over its upper half, so retries of many cards spread out.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20))).min(BACKOFF_CAP);
    let mut byte = [0u8; 1];
    crate::domain::tokens::fill_random(&mut byte);
    let fraction = 0.5 + f64::from(byte[0]) / 510.0;
    exponential.mul_f64(fraction)
}

impl Worker {
    /// Takes one due job, runs it and settles it with the queue.
    pub async fn try_execute_task(&self) -> Result<TaskOutcome, super::queue::QueueError> {
        let Some(lease) = self.queue.take(self.settings.lease).await? else {
            return Ok(TaskOutcome::Empty);
        };
        Ok(self.handle(lease).await)
    }

    async fn handle(&self, lease: Lease) -> TaskOutcome {
        self.metrics.jobs_in_flight.inc();
        let result = self.run_job(&lease).await;
        self.metrics.jobs_in_flight.dec();
        let settled = match &result {
            Ok(JobResult::Retrying { attempts, after }) => {
                self.metrics.push_retries.inc();
                let first = lease.first_failure.unwrap_or_else(|| self.clock.now());
                self.queue.retry(&lease, *after, *attempts, first).await
            }
            Ok(_) => self.queue.ack(&lease).await,
            Err(e) => {
                tracing::warn!(serial = %lease.serial, error = %error_chain(e), "push job failed on the store; it will run again");
                let first = lease.first_failure.unwrap_or_else(|| self.clock.now());
                self.queue.retry(&lease, Duration::from_secs(1), lease.attempts, first).await
            }
        };
        if let Err(e) = settled {
            // The lease runs out and the reaper returns the job: a delay, not a loss.
            tracing::warn!(serial = %lease.serial, error = %error_chain(&e), "settling a push job with the queue failed");
        }
        match result {
            Ok(result) => TaskOutcome::Ran { serial: lease.serial, result },
            Err(_) => TaskOutcome::Failed { serial: lease.serial },
        }
    }

    /// Pushes what the card is owed now: APNs to every device behind its version, and its
    /// Google Wallet object when that is behind too.
    async fn run_job(&self, lease: &Lease) -> Result<JobResult, StoreError> {
        // Read before anything else: a replay from here on makes the final mark a no-op.
        let generation = self.store.push_generation(&lease.serial).await?;
        let Some(card) = self.store.find_card(CardLookup::Serial(&lease.serial)).await? else {
            return Ok(JobResult::NothingOwed);
        };
        let registrations = self.store.card_registrations(&card.serial).await?;
        let owed: Vec<Registration> = registrations.into_iter().filter(|r| r.pushed_version < card.version).collect();
        let google = match &self.google {
            Some(_) => Some(self.store.google_sync(&card.serial).await?),
            None => None,
        };
        let google_owed = google.as_ref().is_some_and(|sync| sync.version < card.version);
        if !card.needs_push() && owed.is_empty() && !google_owed {
            return Ok(JobResult::NothingOwed);
        }
        let mut failures = match &self.gateway {
            Some(gateway) => self.send_all(gateway.as_ref(), &card, &owed).await?,
            None => {
                if !owed.is_empty() {
                    tracing::debug!(serial = %card.serial, devices = owed.len(), "APNs is not configured; nothing sent");
                    messages::delivery::apple_failed(&self.store, &self.metrics, &card, &owed).await?;
                }
                Vec::new()
            }
        };
        if google_owed && failures.is_empty() && self.defer_google(&card.serial).await {
            return Ok(JobResult::Deferred);
        }
        if let Some(sync) = google.filter(|_| google_owed) {
            if let Some(outcome) = self.sync_google(&card, sync).await? {
                failures.push((Target::Google, outcome));
            }
        }
        // Refusals that no retry can fix become dead letters at once; the rest are retried.
        let (permanent, retryable): (Vec<_>, Vec<_>) =
            failures.into_iter().partition(|(_, outcome)| matches!(outcome, PushOutcome::Rejected(_)));
        let now = self.clock.now();
        let attempts = lease.attempts + 1;
        let first_failure = lease.first_failure.unwrap_or(now);
        let mut letters = self.give_up(&card, &permanent, attempts, first_failure).await?;
        if retryable.is_empty() {
            self.settle(&card, generation, &permanent).await?;
            if letters > 0 {
                return Ok(JobResult::DeadLettered { letters });
            }
            if let Some(since) = card.push_pending_since {
                let waited = (now - since).to_std().unwrap_or_default();
                self.metrics.push_latency.observe(waited.as_secs_f64());
            }
            tracing::info!(serial = %card.serial, version = card.version, devices = owed.len(), "card pushed");
            return Ok(JobResult::Pushed { version: card.version, devices: owed.len() });
        }
        let too_long = (now - first_failure).to_std().unwrap_or_default() >= self.settings.max_age;
        if attempts >= self.settings.max_attempts || too_long {
            letters += self.give_up(&card, &retryable, attempts, first_failure).await?;
            let given_up: Vec<_> = permanent.into_iter().chain(retryable).collect();
            self.settle(&card, generation, &given_up).await?;
            return Ok(JobResult::DeadLettered { letters });
        }
        let after = backoff(self.settings.backoff_base, attempts);
        tracing::info!(serial = %card.serial, failed = retryable.len(), attempts, retry_in_ms = after.as_millis() as u64, "push failed; retrying");
        Ok(JobResult::Retrying { attempts, after })
    }

    /// Marks the card pushed, unless it was made owed a push again since the job read its
    /// `generation`: a dead letter this job wrote may have been replayed before the job marked
    /// its target given up, which overwrote the replay's reset. The targets given up here are
    /// then owed again, and the card stays owed; the replay queued it, so it runs again.
    async fn settle(&self, card: &Card, generation: i64, given_up: &[(Target, PushOutcome)]) -> Result<(), StoreError> {
        if self.store.mark_card_pushed(&card.serial, card.version, generation).await? {
            return Ok(());
        }
        let now = self.clock.now();
        for (target, _) in given_up {
            match target {
                Target::Device(registration) => {
                    self.store.mark_push_owed(&card.serial, Owed::Device(&registration.device_library_id), now).await?;
                }
                Target::Google => self.store.reset_google_sync(&card.serial).await?,
            }
        }
        tracing::info!(serial = %card.serial, version = card.version, given_up = given_up.len(), "the card was made owed a push again while its job ran; it stays owed");
        Ok(())
    }

    /// Updates the card's Google Wallet object (`sync`: what reached it so far, as the job read
    /// it); `None` when it went through.
    async fn sync_google(&self, card: &Card, sync: GoogleSync) -> Result<Option<PushOutcome>, StoreError> {
        let Some(google) = &self.google else { return Ok(None) };
        let Some(program) = self.programs.get(&self.store, &card.program_id).await? else { return Ok(None) };
        if let Err(why) = program.rules.validate() {
            // Retried later: the update goes through once staff correct the rules.
            tracing::error!(program = %program.id, problem = %why, "the loyalty program's rules are invalid");
            return Ok(Some(PushOutcome::Retry(format!("the program's rules are invalid: {why}"))));
        }
        let now = self.clock.now();
        // A version that only put a message on the card leaves its object as Google has it:
        // the message goes alone, one call instead of two at Google's 20 a second.
        let news_only = sync.version > 0
            && sync.version + 1 == card.version
            && card.news.as_ref().is_some_and(|n| n.version == card.version);
        // A balance change notifies the holder while Google's budget (3 a day) allows.
        let notify =
            !news_only && sync.balance != Some(card.balance) && crate::google::notify_allowed(&sync.notified_at, now);
        let synced = if news_only { Ok(()) } else { google.sync_card(&program, card, notify).await };
        match synced {
            Ok(()) => {
                if !news_only {
                    self.metrics.google_updates.with_label_values(&["updated"]).inc();
                }
                // The balance (and its notification) first, still owing this version: the card's
                // news, if Google has not got it yet, comes next with what is left of the budget.
                let sync = if notify {
                    self.store.record_google_sync(&card.serial, sync.version, card.balance, Some(now)).await?;
                    GoogleSync { balance: Some(card.balance), notified_at: sync.with_notification(now), ..sync }
                } else {
                    sync
                };
                let news =
                    messages::delivery::google(&self.store, &self.metrics, google, card, &program.name, &sync, now)
                        .await?;
                if let messages::delivery::GoogleNews::Retry(e) = news {
                    return Ok(Some(PushOutcome::Retry(e.to_string())));
                }
                self.store.record_google_sync(&card.serial, card.version, card.balance, None).await?;
                Ok(None)
            }
            Err(e) if e.is_retryable() => {
                self.metrics.google_updates.with_label_values(&["retry"]).inc();
                Ok(Some(PushOutcome::Retry(e.to_string())))
            }
            Err(e) => {
                self.metrics.google_updates.with_label_values(&["rejected"]).inc();
                Ok(Some(PushOutcome::Rejected(e.to_string())))
            }
        }
    }

    /// Sends to every owed device at once; returns the devices that failed and how.
    async fn send_all(
        &self,
        gateway: &dyn PushGateway,
        card: &Card,
        owed: &[Registration],
    ) -> Result<Vec<(Target, PushOutcome)>, StoreError> {
        let sends = owed.iter().map(|registration| async move {
            let push = WalletPush { device_token: registration.push_token.expose(), topic: &self.topic };
            let outcome = match tokio::time::timeout(self.settings.send_timeout, gateway.send(push)).await {
                Ok(outcome) => outcome,
                Err(_) => PushOutcome::Retry(format!("no answer within {} ms", self.settings.send_timeout.as_millis())),
            };
            (registration, outcome)
        });
        let mut delivered = Vec::new();
        let mut failures = Vec::new();
        for (registration, outcome) in join_all(sends).await {
            self.metrics.pushes.with_label_values(&[outcome.label()]).inc();
            match outcome {
                PushOutcome::Delivered => {
                    self.health.delivered();
                    delivered.push(registration.device_library_id.clone());
                }
                PushOutcome::DeadToken(reason) => {
                    tracing::info!(serial = %card.serial, device = %registration.device_library_id, reason, "device token is dead; registration removed");
                    let removed = self.store.delete_registrations_with_token(&registration.push_token).await?;
                    self.record_removals(card, &removed).await;
                }
                PushOutcome::ConfigError(reason) => {
                    self.health.config_error(&reason);
                    failures.push((Target::Device(registration.clone()), PushOutcome::ConfigError(reason)));
                }
                other => failures.push((Target::Device(registration.clone()), other)),
            }
        }
        self.store.mark_devices_pushed(&card.serial, card.version, &delivered).await?;
        messages::delivery::apple_sent(&self.store, &self.metrics, card, owed, &delivered).await?;
        Ok(failures)
    }

    /// Records the registrations a dead token took away as removals from Apple Wallet: the pass
    /// is gone from a device that did not unregister. Named as the device's own unregistering
    /// would be, so the two never count one removal twice. A failure is logged: the
    /// registrations are gone already, and the push goes on.
    async fn record_removals(&self, card: &Card, removed: &[Registration]) {
        let now = self.clock.now();
        for registration in removed {
            let other;
            let holder = if registration.serial == card.serial {
                card
            } else {
                match self.store.find_card(CardLookup::Serial(&registration.serial)).await {
                    Ok(Some(found)) => {
                        other = found;
                        &other
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(serial = %registration.serial, error = %error_chain(&e), "reading a card for its removal failed");
                        continue;
                    }
                }
            };
            let device = &registration.device_library_id;
            let event = crate::store::WalletEvent {
                source: crate::store::WalletSource::Apns,
                ..crate::wallet_changes::apple_event(holder, device, registration.created_at, Removed, now)
            };
            let webhooks = self.webhooks.as_deref();
            if let Err(e) =
                crate::wallet_changes::record_with(&self.store, &self.metrics, webhooks, holder, &event, now).await
            {
                tracing::warn!(serial = %holder.serial, error = %error_chain(&e), "recording an Apple Wallet removal failed");
            }
        }
    }

    /// Records each failed target as a dead letter and stops owing this version to it; returns
    /// how many letters were written.
    async fn give_up(
        &self,
        card: &Card,
        failures: &[(Target, PushOutcome)],
        attempts: u32,
        first_failure: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut given_up = Vec::new();
        let mut letters = 0;
        for (target, outcome) in failures {
            let reason = match outcome {
                PushOutcome::Retry(r)
                | PushOutcome::ConfigError(r)
                | PushOutcome::Rejected(r)
                | PushOutcome::DeadToken(r) => r.clone(),
                PushOutcome::Delivered => continue,
            };
            let letter = DeadLetter {
                id: format!("dl_{}", crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 16)),
                serial: card.serial.clone(),
                version: card.version,
                target: target.label(),
                reason: reason.clone(),
                attempts,
                first_failure_at: first_failure,
                created_at: now,
            };
            self.store.insert_dead_letter(&letter).await?;
            self.store.reached(crate::store::faults::points::PUSH_DEAD_LETTERED).await;
            self.metrics.dead_letters.inc();
            letters += 1;
            tracing::warn!(serial = %card.serial, target = %letter.target, reason, attempts, dead_letter = %letter.id, "push given up");
            match target {
                Target::Device(registration) => given_up.push(registration.clone()),
                Target::Google => {
                    messages::delivery::google_failed(&self.store, &self.metrics, card).await?;
                    self.store.record_google_sync(&card.serial, card.version, card.balance, None).await?;
                }
            }
        }
        if !given_up.is_empty() {
            messages::delivery::apple_failed(&self.store, &self.metrics, card, &given_up).await?;
        }
        let given_up: Vec<_> = given_up.into_iter().map(|r| r.device_library_id).collect();
        self.store.mark_devices_pushed(&card.serial, card.version, &given_up).await?;
        Ok(letters)
    }

    /// Runs jobs until `shutdown` turns true, then stops taking jobs and finishes those in hand.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut running = JoinSet::new();
        // The lease of every job running, by task, to give back the unfinished ones at shutdown.
        let mut in_hand: HashMap<tokio::task::Id, Lease> = HashMap::new();
        let mut last_reap = tokio::time::Instant::now() - Duration::from_secs(60);
        let reap_every = (self.settings.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_reap.elapsed() >= reap_every {
                last_reap = tokio::time::Instant::now();
                match self.queue.reap().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, "push jobs of a stopped worker returned to the queue"),
                    Err(e) => tracing::warn!(error = %error_chain(&e), "reaping push jobs failed"),
                }
            }
            while let Some(done) = running.try_join_next_with_id() {
                in_hand.remove(&finished_id(&done));
            }
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                _ = shutdown.changed() => break,
            };
            match self.queue.take(self.settings.lease).await {
                Ok(Some(lease)) => {
                    let worker = self.clone();
                    let held = lease.clone();
                    let task = running.spawn(async move {
                        let _slot = slot;
                        worker.handle(lease).await
                    });
                    in_hand.insert(task.id(), held);
                }
                Ok(None) => {
                    drop(slot);
                    tokio::select! {
                        () = tokio::time::sleep(self.settings.poll) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                Err(e) => {
                    drop(slot);
                    tracing::warn!(error = %error_chain(&e), "taking a push job failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        self.finish_or_release(running, in_hand).await;
    }

    /// Lets the jobs in hand finish within the shutdown grace; the ones still running then are
    /// stopped and their jobs given back to the queue, due now, for another worker. What such a
    /// job already sent is recorded or not: a device whose delivery was not yet recorded is
    /// pushed once more by the next worker (at most one duplicate per stop).
    async fn finish_or_release(&self, mut running: JoinSet<TaskOutcome>, mut in_hand: HashMap<tokio::task::Id, Lease>) {
        if running.is_empty() {
            return;
        }
        let grace = self.settings.shutdown_grace;
        tracing::info!(
            jobs = running.len(),
            grace_secs = grace.as_secs(),
            "push worker stopping: finishing the jobs in hand"
        );
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = running.join_next_with_id() => match done {
                    Some(done) => { in_hand.remove(&finished_id(&done)); }
                    None => return,
                },
                () = &mut deadline => break,
            }
        }
        running.abort_all();
        while let Some(done) = running.join_next_with_id().await {
            // A job that ended on its own settled its lease; an aborted one did not.
            if let Ok((id, _)) = done {
                in_hand.remove(&id);
            }
        }
        for lease in in_hand.values() {
            match self.queue.release(lease).await {
                Ok(()) => tracing::info!(serial = %lease.serial, "push job given back to the queue at shutdown"),
                Err(e) => {
                    tracing::warn!(serial = %lease.serial, error = %error_chain(&e), "giving a push job back failed; its lease expires instead")
                }
            }
        }
    }

    /// Pushes one card now, to every registered device, whether or not it is owed a push (the
    /// operator's `loy push card`).
    pub async fn push_card_now(&self, serial: &SerialNumber) -> Result<JobResult, StoreError> {
        if !self.store.mark_push_owed(serial, Owed::AllDevices, self.clock.now()).await? {
            return Ok(JobResult::NothingOwed);
        }
        self.store.reset_google_sync(serial).await?;
        let lease = Lease { serial: serial.clone(), token: String::new(), attempts: 0, first_failure: None };
        self.run_job(&lease).await
    }
}

/// Queues every card owed a push for longer than `grace`; returns how many.
pub async fn sweep_once(
    store: &DynStore,
    queue: &dyn PushQueue,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<usize, anyhow::Error> {
    let since = now - chrono::Duration::from_std(grace).unwrap_or_default();
    let serials = store.cards_pending_push(since, 1000).await?;
    for serial in &serials {
        queue.ensure_queued(serial).await?;
    }
    Ok(serials.len())
}

/// The sweeper loop: every `sweep_interval` until `shutdown`.
pub async fn run_sweeper(
    store: DynStore,
    queue: Arc<dyn PushQueue>,
    settings: PushSettings,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match sweep_once(&store, queue.as_ref(), settings.grace, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cards = n, "sweeper queued cards still owed a push"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "the push sweeper failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(settings.sweep_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The task id of a joined job, whether it finished or was aborted.
fn finished_id(done: &Result<(tokio::task::Id, TaskOutcome), tokio::task::JoinError>) -> tokio::task::Id {
    match done {
        Ok((id, _)) => *id,
        Err(e) => e.id(),
    }
}

/// Replays a dead letter: its device is owed the card's push again, and the card is queued.
pub async fn replay(
    store: &DynStore,
    queue: &dyn PushQueue,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<DeadLetter>, anyhow::Error> {
    let Some(letter) = store.take_dead_letter(id).await? else { return Ok(None) };
    match letter.target.strip_prefix("apns:") {
        Some(device) => {
            let device = crate::domain::DeviceLibraryId::parse(device)
                .map_err(|e| anyhow::anyhow!("dead letter {id} names an invalid device: {e}"))?;
            store.mark_push_owed(&letter.serial, Owed::Device(&device), now).await?;
        }
        None => {
            // The card's generation first, then the reset: a job still finishing either sees the
            // new generation when it marks the card, or has written everything before the reset.
            store.mark_push_owed(&letter.serial, Owed::CardOnly, now).await?;
            store.reset_google_sync(&letter.serial).await?;
        }
    }
    queue.enqueue(&letter.serial, Duration::ZERO).await?;
    Ok(Some(letter))
}
