//! The push queue: it only says "card X changed"; what to push is read from the store when the
//! job runs, so a lost message delays a push but never loses it (the sweeper re-enqueues).
//!
//! Semantics shared by both implementations:
//! - One entry per card. Enqueueing a card already waiting keeps the earlier due time, so a
//!   burst of changes within the coalescing window becomes one job (carrying the latest state).
//! - A taken job is leased to its worker until acknowledged; a worker that dies leaves the
//!   lease to expire, and the reaper returns the job to the queue for another worker.
//! - A card is leased to at most one worker at a time; a change arriving meanwhile waits for
//!   that job to end, so two workers never push the same card at once.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

use crate::domain::SerialNumber;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the queue holds an unreadable entry: {0}")]
    Corrupt(String),
}

impl From<::redis::RedisError> for QueueError {
    fn from(e: ::redis::RedisError) -> Self {
        QueueError::Unavailable(e.into())
    }
}

/// A job taken by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub serial: SerialNumber,
    /// Identifies this lease: acknowledging with a stale token (after the lease expired and the
    /// job went to another worker) does nothing.
    pub token: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the first failed attempt happened.
    pub first_failure: Option<DateTime<Utc>>,
}

/// How many jobs wait and how many are being worked on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub waiting: u64,
    pub leased: u64,
}

#[async_trait]
pub trait PushQueue: Send + Sync + 'static {
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> Result<(), QueueError>;

    /// Schedules a job for `serial` in `delay`; an earlier schedule of the same card wins.
    async fn enqueue(&self, serial: &SerialNumber, delay: Duration) -> Result<(), QueueError>;

    /// Queues `serial` to run now unless it is already waiting (whatever its due time): the
    /// sweeper's call, which must not cut short a retry's backoff.
    async fn ensure_queued(&self, serial: &SerialNumber) -> Result<(), QueueError>;

    /// Takes a due job if there is one, leased for `lease`.
    async fn take(&self, lease: Duration) -> Result<Option<Lease>, QueueError>;

    /// Finishes a job.
    async fn ack(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Gives a job back to run again in `delay`, remembering its failed attempts.
    async fn retry(
        &self,
        lease: &Lease,
        delay: Duration,
        attempts: u32,
        first_failure: DateTime<Utc>,
    ) -> Result<(), QueueError>;

    /// Gives a job back, due now, without counting an attempt: a worker that stops before it
    /// finished the job lets another take it at once instead of after the lease.
    async fn release(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Returns jobs whose lease expired to the queue; returns how many.
    async fn reap(&self) -> Result<u64, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}

/// A fresh lease token.
pub fn lease_token() -> String {
    crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 16)
}

/// Milliseconds since the epoch, the queues' time unit.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
