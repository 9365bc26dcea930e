//! Points expiry (SPEC §4.8): when the program sets `expiry_days`, points credited more than
//! that many days ago and not spent since expire, oldest first; an `expire` entry records it.
//! A stamps program's rewards expire the same way after `reward_expiry_days`.

use chrono::{DateTime, Utc};

use crate::domain::{EntryKind, EntrySource, LastEntry, LedgerEntry, Program, SerialNumber};
use crate::ledger::{LedgerError, rules};
use crate::store::{CardLookup, LedgerWrite, Store};

/// What expires: points, or a stamps program's waiting rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    Points,
    Rewards,
}

/// Expires what is due on every card; returns how many points (or, in a stamps program,
/// rewards) expired in total.
pub async fn run(
    store: &dyn Store,
    program: &Program,
    now: DateTime<Utc>,
    notify: Option<&crate::push::ChangeNotifier>,
) -> Result<i64, LedgerError> {
    let (days, what) = match program.rules.stamp_rules() {
        Some(stamps) => (stamps.reward_expiry_days, Expiring::Rewards),
        None => (program.rules.expiry_days, Expiring::Points),
    };
    let Some(days) = days else { return Ok(0) };
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let mut total = 0;
    let mut after: Option<SerialNumber> = None;
    loop {
        let page = store.cards_after(after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        let due = |c: &&crate::domain::Card| match what {
            Expiring::Points => c.balance > 0,
            Expiring::Rewards => c.rewards > 0,
        };
        for card in page.iter().filter(due).filter(|c| c.program_id == program.id) {
            let expired = expire_card(store, &card.serial, what, cutoff, now).await?;
            if expired > 0 {
                if let Some(notify) = notify {
                    notify.card_changed(&card.serial);
                }
            }
            total += expired;
        }
    }
    Ok(total)
}

/// Expires the points (or rewards) of one card credited up to `cutoff` and still unspent.
pub async fn expire_card(
    store: &dyn Store,
    serial: &SerialNumber,
    what: Expiring,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<i64, LedgerError> {
    loop {
        let card = store.find_card(CardLookup::Serial(serial)).await?.ok_or(LedgerError::CardNotFound)?;
        let entries = store.card_entries(serial, None, usize::MAX).await?;
        let (points, rewards) = match what {
            Expiring::Points => (rules::points_to_expire(&entries, cutoff, card.balance), 0),
            Expiring::Rewards => (0, rules::rewards_to_expire(&entries, cutoff, card.rewards)),
        };
        if points == 0 && rewards == 0 {
            return Ok(0);
        }
        let description = match what {
            Expiring::Points => format!("Points credited before {} expired", cutoff.format("%Y-%m-%d")),
            Expiring::Rewards => format!("Rewards issued before {} expired", cutoff.format("%Y-%m-%d")),
        };
        let now = crate::domain::card::stored_precision(now);
        let entry = LedgerEntry {
            id: LedgerEntry::new_id(),
            serial: card.serial.clone(),
            program_id: card.program_id.clone(),
            seq: card.version + 1,
            kind: EntryKind::Expire,
            points: -points,
            rewards: -rewards,
            rewards_after: card.rewards - rewards,
            purchase_amount: None,
            balance_after: card.balance - points,
            lifetime_after: card.lifetime_earned,
            tier_after: card.tier.clone(),
            order_id: None,
            description: Some(description),
            source: EntrySource::System,
            actor: None,
            idempotency_key: None,
            reverses: None,
            created_at: now,
        };
        let mut next = card.bumped(now);
        next.balance = entry.balance_after;
        next.rewards = entry.rewards_after;
        next.last_entry = Some(LastEntry { kind: EntryKind::Expire, points: entry.points, at: now });
        let write = LedgerWrite { card: next, expected_version: card.version, entries: vec![entry], completes: None };
        if store.commit_ledger(&write).await? {
            tracing::info!(serial = %serial, points, rewards, "expired");
            return Ok(points + rewards);
        }
    }
}
