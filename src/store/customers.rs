//! Finding customers for the staff console: search by each key a customer can be told by, and
//! a sorted list paged by keyset (never by offset), so every page is one index range read
//! whatever the number of cards.
//!
//! Which index serves which query (both backends have the same ones):
//! - phone: the unique `(program_id, phone)` index, through [`super::CardLookup::Phone`];
//! - card number: the unique `card_number` index, through [`super::CardLookup::Number`];
//! - e-mail: `(program_id, email, created_at)`;
//! - name prefix: `(program_id, name_key, serial)` for "first last" and
//!   `(program_id, surname_key, serial)` for "last first" (both lowercased when written);
//! - the list sorted by registration date, balance or last activity: `(program_id, created_at,
//!   serial)`, `(program_id, balance, serial)` and `(program_id, activity_at, serial)`, read
//!   forwards or backwards from the cursor.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::{Card, Email};

/// The orders of the customer list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerSort {
    /// By registration date.
    Registered,
    Balance,
    /// By the time of the last ledger entry (registration for a card without one).
    Activity,
}

impl CustomerSort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Balance => "balance",
            Self::Activity => "activity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(Self::Registered),
            "balance" => Some(Self::Balance),
            "activity" => Some(Self::Activity),
            _ => None,
        }
    }

    /// The value of `card` this order sorts by (milliseconds for times).
    pub fn key(self, card: &Card) -> i64 {
        match self {
            Self::Registered => card.created_at.timestamp_millis(),
            Self::Balance => card.balance,
            Self::Activity => card.last_entry.as_ref().map_or(card.created_at, |e| e.at).timestamp_millis(),
        }
    }
}

/// Where a page of the list starts: after the card with this sort value and serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCursor {
    pub value: i64,
    pub serial: String,
}

impl CustomerCursor {
    /// The cursor just after `card` in `sort` order.
    pub fn after(card: &Card, sort: CustomerSort) -> Self {
        Self { value: sort.key(card), serial: card.serial.as_str().to_owned() }
    }

    /// `value.serial`, as it travels in a link.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.value, self.serial)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (value, serial) = s.split_once('.')?;
        let serial_ok = !serial.is_empty()
            && serial.len() <= 64
            && serial.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        serial_ok.then(|| Some(Self { value: value.parse().ok()?, serial: serial.to_owned() }))?
    }
}

/// One page of the customer list.
#[derive(Debug, Clone)]
pub struct CustomerListQuery<'a> {
    pub program_id: &'a str,
    pub sort: CustomerSort,
    pub descending: bool,
    pub after: Option<CustomerCursor>,
    pub limit: usize,
}

#[async_trait]
pub trait CustomerStore: Send + Sync + 'static {
    /// The cards whose holder has this e-mail (it is not unique), newest first, at most `limit`.
    async fn cards_by_email(&self, program_id: &str, email: &Email, limit: usize) -> StoreResult<Vec<Card>>;

    /// The cards whose holder's "first last" or "last first" name starts with `prefix`
    /// (compared lowercased), in name order, at most `limit`.
    async fn cards_by_name_prefix(&self, program_id: &str, prefix: &str, limit: usize) -> StoreResult<Vec<Card>>;

    /// One page of the program's cards in the query's order, deleted customers included.
    async fn list_cards(&self, query: &CustomerListQuery<'_>) -> StoreResult<Vec<Card>>;

    /// How many Apple devices are registered for a card.
    async fn count_card_devices(&self, serial: &str) -> StoreResult<u64>;
}

/// The exclusive upper bound of the strings starting with `prefix` (in UTF-8 byte order, which
/// both backends compare strings by).
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The name keys of the cards two prefix reads found, merged: no card twice, in name order.
pub fn merge_by_name(mut first: Vec<Card>, second: Vec<Card>, limit: usize) -> Vec<Card> {
    for card in second {
        if !first.iter().any(|c| c.serial == card.serial) {
            first.push(card);
        }
    }
    first.sort_by_key(|c| c.holder.as_ref().map(|h| h.full_name().to_lowercase()));
    first.truncate(limit);
    first
}
