//! The e-mail outbox: mails waiting to be sent, sent, or failed for good (SPEC §4.10).
//!
//! A mail is taken with a lease: taking it moves its next attempt time to the end of the lease
//! and counts an attempt, so another node does not take it meanwhile, and a sender that dies
//! leaves it to be taken again once the lease expires. The attempt count is the lease's token:
//! only the taker of that attempt can record its outcome.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::SerialNumber;

/// Where a mail is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    /// Waiting for its next attempt (or being sent under a lease).
    Pending,
    Sent,
    /// Failed for good: a permanent SMTP refusal or too many attempts.
    Failed,
}

impl MailState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One mail of the outbox. Its content is rendered when it is sent, from the card as it is
/// then; only what is needed to address it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: String,
    /// `welcome` or `card_link` (see `crate::mail::MailKind`).
    pub kind: String,
    pub serial: SerialNumber,
    pub recipient: String,
    /// `ru` or `en`.
    pub locale: String,
    pub state: MailState,
    /// Attempts made so far (taking a mail counts one).
    pub attempts: u32,
    /// When the mail is next due (while leased: when the lease ends).
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure, without the address or the content (an SMTP code and text).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Adds a mail to the outbox.
    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()>;

    /// Takes the pending mail due the longest at `now`, atomically: its attempts go up by one and
    /// it is not due again before `lease_until`. `None` when nothing is due.
    async fn take_due_mail(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<OutboxMail>>;

    /// Records the outcome of attempt `attempts` of a mail: its new state, next attempt time and
    /// last error. `false` (and nothing changed) when that attempt's lease was taken over.
    async fn finish_mail(
        &self,
        id: &str,
        attempts: u32,
        state: MailState,
        next_attempt_at: DateTime<Utc>,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// One mail by id.
    async fn mail(&self, id: &str) -> StoreResult<Option<OutboxMail>>;

    /// Mails in `state`, most recently changed first, at most `limit`.
    async fn mails_in_state(&self, state: MailState, limit: usize) -> StoreResult<Vec<OutboxMail>>;

    /// Puts a failed mail back in the outbox, due at `now` with its attempts reset; `false` when
    /// there is no such failed mail.
    async fn retry_mail(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}
