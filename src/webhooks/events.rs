//! The events loy sends (SPEC §4.10) and their JSON bodies: `{id, type, created_at, data}`.
//!
//! Events are built where the change is stored (the store calls [`new_card`] and
//! [`ledger_entries`] inside the write that commits the change) so that they share its fate.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::{Card, LedgerEntry};
use crate::store::WebhookEvent;

pub const CARD_CREATED: &str = "card.created";
pub const CARD_INSTALLED: &str = "card.installed";
pub const CARD_REMOVED: &str = "card.removed";
pub const BALANCE_CHANGED: &str = "balance.changed";
pub const CARD_BLOCKED: &str = "card.blocked";
pub const CUSTOMER_DELETED: &str = "customer.deleted";

/// Every event type, in the order the console and the CLI list them.
pub const ALL: [&str; 6] =
    [CARD_CREATED, CARD_INSTALLED, CARD_REMOVED, BALANCE_CHANGED, CARD_BLOCKED, CUSTOMER_DELETED];

/// The wallet a card was added to or removed from.
pub use crate::store::Wallet;

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    data: T,
}

/// The card as events show it. `holder` is absent once the customer was deleted.
#[derive(Debug, Serialize)]
pub struct CardData {
    pub serial: String,
    pub card_number: String,
    pub program_id: String,
    pub status: &'static str,
    pub balance: i64,
    pub lifetime_earned: i64,
    pub tier: String,
    pub holder: Option<HolderData>,
}

#[derive(Debug, Serialize)]
pub struct HolderData {
    pub first_name: String,
    pub last_name: Option<String>,
    pub phone: String,
    pub email: Option<String>,
}

/// A ledger entry as `balance.changed` shows it: the POS API's `Entry`.
#[derive(Debug, Serialize)]
pub struct EntryData {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub points: i64,
    pub balance_after: i64,
    pub tier_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<String>,
    pub created_at: String,
}

#[derive(Serialize)]
struct CardOnly {
    card: CardData,
}

#[derive(Serialize)]
struct BalanceData {
    card: CardData,
    entry: EntryData,
}

#[derive(Serialize)]
struct WalletData {
    card: CardData,
    wallet: &'static str,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn card_data(card: &Card) -> CardData {
    CardData {
        serial: card.serial.to_string(),
        card_number: card.card_number.as_str().to_owned(),
        program_id: card.program_id.clone(),
        status: card.status.as_str(),
        balance: card.balance,
        lifetime_earned: card.lifetime_earned,
        tier: card.tier.clone(),
        holder: card.holder.as_ref().map(|h| HolderData {
            first_name: h.first_name.to_string(),
            last_name: h.last_name.as_ref().map(ToString::to_string),
            phone: h.phone.as_str().to_owned(),
            email: h.email.as_ref().map(|e| e.as_str().to_owned()),
        }),
    }
}

fn entry_data(e: &LedgerEntry) -> EntryData {
    EntryData {
        id: e.id.clone(),
        kind: e.kind.as_str(),
        points: e.points,
        balance_after: e.balance_after,
        tier_after: e.tier_after.clone(),
        purchase_amount: e.purchase_amount,
        order_id: e.order_id.clone(),
        description: e.description.clone(),
        source: e.source.as_str(),
        reverses: e.reverses.clone(),
        created_at: time(e.created_at),
    }
}

/// A fresh event id.
pub fn new_id() -> String {
    format!("ev_{}", crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 20))
}

/// Orders a card's events: the time in milliseconds, then `step` (the card version the change
/// produced, so the entries of one write keep their order; a negative step comes first).
fn position(at: DateTime<Utc>, step: i64) -> i64 {
    let step = if step < 0 { 0 } else { step.rem_euclid(999) + 1 };
    at.timestamp_millis().saturating_mul(1000).saturating_add(step)
}

fn event<T: Serialize>(card: &Card, kind: &'static str, at: DateTime<Utc>, step: i64, data: T) -> WebhookEvent {
    let id = new_id();
    let body = serde_json::to_string(&Body { id: &id, kind, created_at: time(at), data })
        .expect("event bodies are plain data and always serialise");
    WebhookEvent {
        id,
        serial: card.serial.clone(),
        kind: kind.to_owned(),
        position: position(at, step),
        created_at: at,
        body,
    }
}

/// `balance.changed` for each entry of a ledger write, in order; `card` is the card after it.
pub fn ledger_entries(card: &Card, entries: &[LedgerEntry]) -> Vec<WebhookEvent> {
    entries
        .iter()
        .map(|e| {
            let mut data = BalanceData { card: card_data(card), entry: entry_data(e) };
            // The card as it was right after this entry, when the write had several.
            data.card.balance = e.balance_after;
            data.card.lifetime_earned = e.lifetime_after;
            data.card.tier = e.tier_after.clone();
            event(card, BALANCE_CHANGED, e.created_at, e.seq, data)
        })
        .collect()
}

/// `card.created`, then `balance.changed` for the card's first entry.
pub fn new_card(card: &Card, first_entry: &LedgerEntry) -> Vec<WebhookEvent> {
    let mut events = vec![event(card, CARD_CREATED, card.created_at, -1, CardOnly { card: card_data(card) })];
    events.extend(ledger_entries(card, std::slice::from_ref(first_entry)));
    events
}

/// `card.blocked`; `card` is the card after blocking.
pub fn card_blocked(card: &Card, at: DateTime<Utc>) -> WebhookEvent {
    event(card, CARD_BLOCKED, at, card.version, CardOnly { card: card_data(card) })
}

/// The events of a status change from `before` to `after`: `card.blocked` when it blocks.
pub fn status_change(before: &Card, after: &Card, at: DateTime<Utc>) -> Vec<WebhookEvent> {
    use crate::domain::CardStatus;
    if after.status == CardStatus::Blocked && before.status != CardStatus::Blocked {
        vec![card_blocked(after, at)]
    } else {
        Vec::new()
    }
}

/// `customer.deleted`; `card` is the anonymous card left after the deletion.
pub fn customer_deleted(card: &Card, at: DateTime<Utc>) -> WebhookEvent {
    event(card, CUSTOMER_DELETED, at, card.version, CardOnly { card: card_data(card) })
}

/// `card.installed` or `card.removed` for a wallet.
pub fn wallet_change(card: &Card, installed: bool, wallet: Wallet, at: DateTime<Utc>) -> WebhookEvent {
    let kind = if installed { CARD_INSTALLED } else { CARD_REMOVED };
    event(card, kind, at, card.version, WalletData { card: card_data(card), wallet: wallet.as_str() })
}

/// Parses `card.created,balance.changed` (empty or `all` = every type).
pub fn parse_list(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "all" || part == "*" {
            return Ok(Vec::new());
        }
        match ALL.iter().find(|k| **k == part) {
            Some(k) if !out.iter().any(|o| o == k) => out.push((*k).to_owned()),
            Some(_) => {}
            None => return Err(format!("`{part}` is not an event type (known: {})", ALL.join(", "))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_parse_and_refuse_unknown_types() {
        assert_eq!(parse_list("card.created, balance.changed").unwrap(), vec!["card.created", "balance.changed"]);
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("all").unwrap().is_empty());
        assert!(parse_list("card.exploded").is_err());
    }

    #[test]
    fn positions_follow_time_then_the_version() {
        let t = Utc::now();
        assert!(position(t, -1) < position(t, 1));
        assert!(position(t, 1) < position(t, 2));
        assert!(position(t, 998) < position(t + chrono::Duration::milliseconds(1), 0));
    }
}
