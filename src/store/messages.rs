//! Messages staff send to the cards on the phones (`crate::messages`): the message with its
//! audience and fan-out progress, and one send record per card it reached.
//!
//! A message is taken with a lease like an import job: taking it counts an attempt and holds it
//! until `lease_until`; the attempt count is the lease's token, so only the taker saves it. A
//! cancelled message cannot be saved by its runner any more, which is how the runner learns of
//! the cancellation. The send records are what makes the fan-out exactly once: a card gets a
//! message only after its record is written, and each wallet's state in it moves from `queued`
//! once, to `delivered` or `failed`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::messages::{Message, Wallet};

/// Where one wallet of one card is with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// The card has no pass in this wallet.
    None,
    /// Owed to the wallet; the push pipeline delivers it.
    Queued,
    Delivered,
    Failed,
    /// Sent once for every card of the program, on the Google class.
    Class,
}

impl SendState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Class => "class",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::Queued, Self::Delivered, Self::Failed, Self::Class].into_iter().find(|v| v.as_str() == s)
    }
}

/// A message's send to one card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSend {
    pub message_id: String,
    pub serial: String,
    pub apple: SendState,
    pub google: SendState,
    pub at: DateTime<Utc>,
}

/// Cards of a message per wallet and state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCounts {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
}

impl WalletCounts {
    pub fn total(&self) -> u64 {
        self.queued + self.delivered + self.failed
    }

    /// Whole percent settled (100 when nothing was owed).
    pub fn percent(&self) -> u64 {
        ((self.delivered + self.failed) * 100).checked_div(self.total()).unwrap_or(100)
    }
}

/// The progress of a message: cards it reached, and each wallet's sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCounts {
    pub cards: u64,
    pub apple: WalletCounts,
    pub google: WalletCounts,
    /// Cards whose Google pass got the message through the class.
    pub google_class: u64,
}

impl SendCounts {
    pub fn add(&mut self, wallet: Wallet, state: SendState, n: u64) {
        if wallet == Wallet::Google && state == SendState::Class {
            self.google_class += n;
            return;
        }
        let counts = match wallet {
            Wallet::Apple => &mut self.apple,
            Wallet::Google => &mut self.google,
        };
        match state {
            SendState::Queued => counts.queued += n,
            SendState::Delivered => counts.delivered += n,
            SendState::Failed => counts.failed += n,
            SendState::None | SendState::Class => {}
        }
    }
}

#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    async fn insert_message(&self, message: &Message) -> StoreResult<()>;

    async fn message(&self, id: &str) -> StoreResult<Option<Message>>;

    /// The latest messages of a program (of all when `None`), newest first, at most `limit`.
    async fn messages(&self, program_id: Option<&str>, limit: usize) -> StoreResult<Vec<Message>>;

    /// Takes the due message (scheduled for `now` or earlier, or sending) whose lease ended
    /// longest ago, atomically: its attempts go up by one and it is held until `lease_until`.
    async fn take_message(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Message>>;

    /// Replaces the message if its attempts are still `message.attempts` and it was not
    /// cancelled; `false` and nothing changed otherwise.
    async fn save_message(&self, message: &Message) -> StoreResult<bool>;

    /// Cancels a message that is scheduled or going out; `false` when it already finished.
    async fn cancel_message(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Writes the send records that do not exist yet (a record already written stays as it is).
    async fn record_sends(&self, sends: &[MessageSend]) -> StoreResult<()>;

    async fn message_send(&self, message_id: &str, serial: &str) -> StoreResult<Option<MessageSend>>;

    /// Moves one wallet of a send from `queued` to `state`; `false` when it was not queued.
    async fn settle_send(&self, message_id: &str, serial: &str, wallet: Wallet, state: SendState) -> StoreResult<bool>;

    async fn send_counts(&self, message_id: &str) -> StoreResult<SendCounts>;

    /// Where a message can reach each of `serials`, in one read: the devices registered for
    /// the card's pass, whether Google holds its object and whether the pass is saved in
    /// Google Wallet. A card with none of these is left out.
    async fn reach(&self, serials: &[&str]) -> StoreResult<HashMap<String, Reach>>;
}

/// Where a message can reach one card (see [`MessageStore::reach`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Devices registered for the card's pass.
    pub devices: u64,
    /// Google holds an object for the card (its sync version is above 0).
    pub google_object: bool,
    /// Google last said the pass is saved in a wallet (a save callback, or the reconciliation
    /// reading `hasUsers`), and no removal came after.
    pub google_saved: bool,
}
