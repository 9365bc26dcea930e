//! Computing a write on a stamps program's card: stamps for a purchase (completing rounds into
//! rewards in the same write), a reward redeemed, a correction, a refund. The card's `balance`
//! is the stamps of the round in progress and `rewards` the rewards waiting; every entry records
//! both after it, so `loy check ledger` proves them like points.

use chrono::Duration;

use super::plan::{Builder, Plan};
use super::*;
use crate::domain::StampRules;

/// How many of a card's latest entries the daily limit looks at: far more than any limit allows
/// in 24 hours, so the window is always read whole.
const DAILY_WINDOW_ENTRIES: usize = 500;

pub(super) async fn plan(
    store: &dyn Store,
    program: &Program,
    rules: &StampRules,
    card: &Card,
    command: &Command,
    ctx: &WriteContext,
) -> Result<Plan, LedgerError> {
    let mut b = Builder::new(program, card, ctx);
    let id = ctx.entry_id.clone();
    match command {
        Command::Stamp { stamps, purchase_amount, order_id, description } => {
            active(card)?;
            let count = stamps.unwrap_or_else(|| rules.stamps_for_purchase(*purchase_amount));
            if count <= 0 {
                return Err(LedgerError::refused(
                    "below_stamp_amount",
                    "The purchase is smaller than the amount that earns one stamp.",
                    Some("purchase_amount"),
                ));
            }
            if let Some(limit) = rules.daily_limit {
                let used = stamps_in_last_day(store, card, ctx.now).await?;
                if used + count > i64::from(limit) {
                    return Err(LedgerError::refused(
                        "daily_stamp_limit",
                        format!(
                            "The card received {used} stamps in the last 24 hours; the program allows {limit} a day."
                        ),
                        Some("stamps"),
                    ));
                }
            }
            b.push(
                id.clone(),
                EntryKind::Stamp,
                count,
                count,
                *purchase_amount,
                order_id.clone(),
                description.clone(),
                None,
            );
            complete_rounds(&mut b, rules, &id);
            Ok(b.finish(None, None))
        }
        Command::RedeemReward { count, order_id, description } => {
            active(card)?;
            if card.rewards < *count {
                return Err(LedgerError::refused(
                    "no_reward",
                    format!("The card has {} rewards waiting.", card.rewards),
                    Some("count"),
                ));
            }
            let what = description.clone().or_else(|| Some(rules.reward.en.clone()));
            b.push_entry(id, EntryKind::RewardRedeemed, 0, -count, 0, None, order_id.clone(), what, None);
            Ok(b.finish(None, None))
        }
        Command::Adjust { points, reason } => {
            if card.balance + points < 0 {
                return Err(LedgerError::refused(
                    "insufficient_stamps",
                    format!("The card holds {} stamps; they cannot go below zero.", card.balance),
                    Some("points"),
                ));
            }
            b.push(id.clone(), EntryKind::Adjust, *points, 0, None, None, Some(reason.clone()), None);
            complete_rounds(&mut b, rules, &id);
            Ok(b.finish(None, None))
        }
        Command::Reverse { transaction_id, reason } => {
            let original = store.entry(transaction_id).await?.ok_or(LedgerError::TransactionNotFound)?;
            if let Some(reversal) = store.reversal_of(transaction_id).await? {
                return Err(LedgerError::AlreadyReversed { by: reversal.id });
            }
            let (points, rewards, lifetime) = match original.kind {
                EntryKind::Stamp => {
                    let taken = rewards_still_waiting(store, card, &original).await?;
                    let per = i64::from(rules.stamps_per_reward);
                    // Stamps that went into a reward already redeemed stay spent: the round stops at 0.
                    let after = (card.balance + taken * per - original.points).max(0);
                    (after - card.balance, -taken, -original.points)
                }
                EntryKind::RewardRedeemed => (0, -original.rewards, 0),
                other => {
                    return Err(LedgerError::refused(
                        "not_reversible",
                        format!(
                            "A {} transaction cannot be reversed; only stamps and redeemed rewards can.",
                            other.as_str()
                        ),
                        Some("transaction_id"),
                    ));
                }
            };
            b.push_entry(
                id,
                EntryKind::Reverse,
                points,
                rewards,
                lifetime,
                None,
                original.order_id.clone(),
                reason.clone(),
                Some(transaction_id.clone()),
            );
            Ok(b.finish(Some(original), None))
        }
        Command::Earn { .. } | Command::Redeem { .. } => Err(LedgerError::refused(
            "wrong_mechanic",
            "This card's program collects stamps: add stamps and redeem rewards instead.",
            None,
        )),
    }
}

fn active(card: &Card) -> Result<(), LedgerError> {
    if card.status == CardStatus::Active { Ok(()) } else { Err(LedgerError::CardBlocked) }
}

/// Issues the rewards of every round the stamps now complete, in the same write, and leaves
/// the rest as the next round's stamps.
fn complete_rounds(b: &mut Builder<'_>, rules: &StampRules, main_id: &str) {
    let (issued, _) = rules.complete_rounds(b.balance, 0);
    if issued > 0 {
        let spent = issued * i64::from(rules.stamps_per_reward);
        let note = Some(format!("{} stamps: a reward issued", rules.stamps_per_reward));
        b.push_entry(reward_entry_id(main_id), EntryKind::RewardIssued, -spent, issued, 0, None, None, note, None);
    }
}

/// The stamps the card received in the 24 hours before `now`, not counting refunded purchases.
async fn stamps_in_last_day(store: &dyn Store, card: &Card, now: DateTime<Utc>) -> Result<i64, LedgerError> {
    let since = now - Duration::hours(24);
    let recent = store.card_entries(&card.serial, Some(card.version + 1), DAILY_WINDOW_ENTRIES).await?;
    let recent: Vec<&LedgerEntry> = recent.iter().take_while(|e| e.created_at > since).collect();
    let reversed = |id: &str| recent.iter().any(|e| e.reverses.as_deref() == Some(id));
    Ok(recent.iter().filter(|e| e.kind == EntryKind::Stamp && !reversed(&e.id)).map(|e| e.points).sum())
}

/// The rewards that the purchase `original` completed and that are still waiting, so its refund
/// takes them back. Rewards are given out oldest first: the purchase's rewards are still
/// waiting as far as the rewards issued up to it outnumber every reward given out (redeemed,
/// expired or taken back) since the card began. A reward already redeemed stays redeemed.
async fn rewards_still_waiting(store: &dyn Store, card: &Card, original: &LedgerEntry) -> Result<i64, LedgerError> {
    let Some(issued) = store.entry(&reward_entry_id(&original.id)).await? else { return Ok(0) };
    let entries = store.card_entries(&card.serial, Some(card.version + 1), usize::MAX).await?;
    let issued_up_to: i64 = entries.iter().filter(|e| e.rewards > 0 && e.seq <= issued.seq).map(|e| e.rewards).sum();
    let given_out: i64 = entries.iter().filter(|e| e.rewards < 0).map(|e| -e.rewards).sum();
    Ok((issued_up_to - given_out).clamp(0, issued.rewards.min(card.rewards)))
}
