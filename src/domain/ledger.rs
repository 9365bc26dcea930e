//! Ledger entries: the immutable record of every balance change (SPEC §4.4).

use chrono::{DateTime, Utc};

use super::SerialNumber;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Welcome,
    Earn,
    Redeem,
    Adjust,
    Reverse,
    Expire,
    Referral,
    /// The opening balance of a card brought in from another system (CSV import); like
    /// `welcome`, only ever a card's first entry.
    Import,
    /// Stamps for a purchase (stamps programs; `points` holds the stamps).
    Stamp,
    /// A round of stamps completed: its stamps leave the balance and a reward is added.
    RewardIssued,
    /// A waiting reward given to the customer.
    RewardRedeemed,
}

impl EntryKind {
    pub const ALL: [EntryKind; 11] = [
        Self::Welcome,
        Self::Earn,
        Self::Redeem,
        Self::Adjust,
        Self::Reverse,
        Self::Expire,
        Self::Referral,
        Self::Import,
        Self::Stamp,
        Self::RewardIssued,
        Self::RewardRedeemed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::Earn => "earn",
            Self::Redeem => "redeem",
            Self::Adjust => "adjust",
            Self::Reverse => "reverse",
            Self::Expire => "expire",
            Self::Referral => "referral",
            Self::Import => "import",
            Self::Stamp => "stamp",
            Self::RewardIssued => "reward_issued",
            Self::RewardRedeemed => "reward_redeemed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a purchase made this entry (what a refund reverses).
    pub fn is_purchase(self) -> bool {
        matches!(self, Self::Earn | Self::Stamp)
    }
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntrySource {
    Pos,
    Admin,
    Webhook,
    System,
}

impl EntrySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pos => "pos",
            Self::Admin => "admin",
            Self::Webhook => "webhook",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pos, Self::Admin, Self::Webhook, Self::System].into_iter().find(|k| k.as_str() == s)
    }
}

/// One balance change. Entries are never updated or deleted; a refund is a new `reverse` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// `tx_…`, random; also the transaction id the API returns.
    pub id: String,
    pub serial: SerialNumber,
    pub program_id: String,
    /// The card version this entry produced: orders a card's entries and pages them.
    pub seq: i64,
    pub kind: EntryKind,
    /// Signed: positive credits, negative debits. Stamps in a stamps program.
    pub points: i64,
    /// Rewards added (issued) or taken (redeemed, expired, reversed) by this entry; stamps
    /// programs only, 0 otherwise.
    pub rewards: i64,
    /// Rewards waiting on the card after this entry.
    pub rewards_after: i64,
    /// The purchase in minor currency units, for earn and redeem.
    pub purchase_amount: Option<i64>,
    pub balance_after: i64,
    /// Lifetime earned points after this entry (tiers follow it).
    pub lifetime_after: i64,
    pub tier_after: String,
    pub order_id: Option<String>,
    pub description: Option<String>,
    pub source: EntrySource,
    /// The API key id or staff id that made the change.
    pub actor: Option<String>,
    pub idempotency_key: Option<String>,
    /// For `reverse` entries: the entry undone.
    pub reverses: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl LedgerEntry {
    pub fn new_id() -> String {
        format!("tx_{}", super::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 20))
    }
}
