//! `loy check ledger`: proves that every card's balance equals the sum of its ledger entries,
//! finishing first any write a crash interrupted after its commit point.

use crate::domain::{Card, EntryKind, LedgerEntry, Program, SerialNumber};
use crate::ledger::{
    LedgerError, ensure_referrer_bonus, ensure_referrer_reversal, referral_entry_id, referral_reversal_id,
    referrer_entry_id, referrer_reversal_id,
};
use crate::store::Store;

/// A card whose stored state disagrees with its ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub serial: SerialNumber,
    pub problem: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub cards: u64,
    pub entries: u64,
    pub mismatches: Vec<Mismatch>,
    /// Referral bonuses of inviting cards that a crash had left unpaid (or, for a refunded
    /// purchase, not taken back), now settled.
    pub repaired_referrals: u64,
}

/// Checks every card, page by page.
pub async fn check_all(
    store: &dyn Store,
    program: &Program,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Report, LedgerError> {
    let mut report = Report::default();
    let mut after: Option<SerialNumber> = None;
    loop {
        let page = store.cards_after(after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        for card in page {
            store.repair_card(&card.serial).await?;
            let card = store
                .find_card(crate::store::CardLookup::Serial(&card.serial))
                .await?
                .ok_or(LedgerError::CardNotFound)?;
            let mut entries = store.card_entries(&card.serial, None, usize::MAX).await?;
            entries.reverse();
            report.cards += 1;
            report.entries += entries.len() as u64;
            let problems = card_problems(&card, &entries);
            if let Some(inviter) = &card.referred_by {
                // The inviting card follows the invited one: paid with its qualifying purchase,
                // taken back with its refund.
                let has = |id: String| entries.iter().any(|e| e.id == id);
                let paid_invited = has(referral_entry_id(&card.serial));
                let reversed_invited = has(referral_reversal_id(&card.serial));
                let paid_inviter = store.entry(&referrer_entry_id(&card.serial)).await?.is_some();
                if paid_invited && !reversed_invited && !paid_inviter {
                    ensure_referrer_bonus(store, program, &card.serial, inviter, now).await?;
                    report.repaired_referrals += 1;
                }
                if reversed_invited && paid_inviter && store.entry(&referrer_reversal_id(&card.serial)).await?.is_none()
                {
                    ensure_referrer_reversal(store, program, &card.serial, inviter, now).await?;
                    report.repaired_referrals += 1;
                }
            }
            report
                .mismatches
                .extend(problems.into_iter().map(|problem| Mismatch { serial: card.serial.clone(), problem }));
        }
    }
    Ok(report)
}

/// What is wrong with one card against its ledger (`entries` oldest first): the balance is not
/// the sum of the entries, a running balance is wrong or negative, the first entry does not
/// open the card, or an entry is newer than the card. Empty when the card is sound. Shared by
/// `loy check ledger` and the verification of `loy migrate`.
pub fn card_problems(card: &Card, entries: &[LedgerEntry]) -> Vec<String> {
    let mut problems = Vec::new();
    let sum: i64 = entries.iter().map(|e| e.points).sum();
    if sum != card.balance {
        problems.push(format!("balance {} but its entries sum to {sum}", card.balance));
    }
    let mut running = 0;
    for entry in entries {
        running += entry.points;
        if entry.balance_after != running {
            problems.push(format!(
                "entry {} says balance {} but the running sum is {running}",
                entry.id, entry.balance_after
            ));
            break;
        }
    }
    if entries.iter().any(|e| e.balance_after < 0) {
        problems.push("the balance went below zero".into());
    }
    // Stamps programs: the rewards waiting follow their entries the same way.
    let rewards: i64 = entries.iter().map(|e| e.rewards).sum();
    if rewards != card.rewards {
        problems.push(format!("{} rewards waiting but its entries sum to {rewards}", card.rewards));
    }
    let mut running = 0;
    for entry in entries {
        running += entry.rewards;
        if entry.rewards_after != running || running < 0 {
            problems.push(format!(
                "entry {} says {} rewards waiting but the running sum is {running}",
                entry.id, entry.rewards_after
            ));
            break;
        }
    }
    if entries.first().is_some_and(|e| !matches!(e.kind, EntryKind::Welcome | EntryKind::Import)) {
        problems.push("the first entry is neither the welcome entry nor an import".into());
    }
    if let Some(last) = entries.last() {
        if last.seq > card.version {
            problems
                .push(format!("entry {} is newer ({}) than the card's version {}", last.id, last.seq, card.version));
        }
    }
    problems
}
