//! Verifying a migrated store: every card on the target read back as the MongoDB store reads
//! it, and checked against its ledger by the same rules as `loy check ledger`
//! ([`crate::ledger::check::card_problems`]). The cards and the ledger are read as two sorted
//! streams side by side, so a large store costs two scans, not four round trips per card.

use anyhow::Context;
use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::Database;

use crate::domain::LedgerEntry;
use crate::ledger::check::{Mismatch, card_problems};
use crate::store::mongo::card_from_doc;
use crate::store::records::EntryRecord;

/// What the ledger verification found on the target.
#[derive(Debug, Default)]
pub struct LedgerCheck {
    pub cards: u64,
    pub entries: u64,
    pub balance_sum: i64,
    pub mismatches: Vec<Mismatch>,
}

pub async fn ledger(db: &Database, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<LedgerCheck> {
    let mut cards = db
        .collection::<Document>("cards")
        .find(doc! {})
        .projection(doc! { "recent": 0, "reversed": 0 })
        .sort(doc! { "_id": 1 })
        .batch_size(2000)
        .await
        .context("while reading the migrated cards")?;
    // The ledger's unique index is (serial, seq descending): read in its order, each card's
    // entries come newest first.
    let mut entries = db
        .collection::<EntryRecord>("ledger")
        .find(doc! {})
        .sort(doc! { "serial": 1, "seq": -1 })
        .batch_size(2000)
        .await
        .context("while reading the migrated ledger")?;
    let mut check = LedgerCheck::default();
    let mut next_entry = entries.try_next().await?;
    while let Some(mut document) = cards.try_next().await? {
        let pending = document.get_array("pending").map(Vec::len).unwrap_or(0);
        document.remove("pending");
        let card = card_from_doc(document)?;
        let serial = card.serial.as_str().to_owned();
        let mut own = Vec::new();
        while let Some(entry) = next_entry.take() {
            if entry.serial > serial {
                next_entry = Some(entry);
                break;
            }
            if entry.serial < serial {
                check.mismatches.push(orphan(&entry)?);
            } else {
                own.push(LedgerEntry::try_from(entry)?);
            }
            next_entry = entries.try_next().await?;
        }
        own.reverse();
        check.cards += 1;
        check.entries += own.len() as u64;
        check.balance_sum += card.balance;
        let mut problems = card_problems(&card, &own);
        if pending > 0 {
            problems.push(format!("{pending} entries are pending on the card"));
        }
        check.mismatches.extend(problems.into_iter().map(|problem| Mismatch { serial: card.serial.clone(), problem }));
        if check.cards % 20_000 == 0 {
            progress(&format!("verified {} cards", check.cards));
        }
    }
    while let Some(entry) = next_entry {
        check.mismatches.push(orphan(&entry)?);
        next_entry = entries.try_next().await?;
    }
    Ok(check)
}

fn orphan(entry: &EntryRecord) -> anyhow::Result<Mismatch> {
    Ok(Mismatch {
        serial: crate::domain::SerialNumber::parse(&entry.serial)
            .map_err(|e| anyhow::anyhow!("ledger entry {} has a bad serial: {e}", entry.id))?,
        problem: format!("ledger entry {} belongs to no card", entry.id),
    })
}

/// Outgoing events waiting on the cards' `events` lists.
pub async fn card_events(db: &Database) -> anyhow::Result<u64> {
    let mut cards = db
        .collection::<Document>("cards")
        .find(doc! { "events": { "$exists": true } })
        .projection(doc! { "events": 1 })
        .batch_size(2000)
        .await
        .context("while counting the migrated outgoing events")?;
    let mut total = 0;
    while let Some(card) = cards.try_next().await? {
        total += card.get_array("events").map_or(0, Vec::len) as u64;
    }
    Ok(total)
}
