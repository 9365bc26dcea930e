//! The balance ledger (SPEC §4.4): every balance change is an immutable entry written in the
//! same atomic step as the card's new balance, tier and version, so the balance always equals
//! the sum of the card's entries and every change reaches the phone.
//!
//! A write is computed from the card as read and committed only if the card has not changed
//! since (optimistic concurrency; see `store::LedgerStore::commit_ledger`); a conflict recomputes
//! it. The entry id is fixed before the first attempt and every attempt reads the card together
//! with that entry (`LedgerStore::card_for_write`), so a retried request — or one whose
//! idempotency lease was taken over while it ran — recognises its own entry and never applies
//! twice (see [`idempotency`] and `docs/architecture.md`).

pub mod check;
pub mod expiry;
pub mod idempotency;
mod plan;
pub mod rules;
mod stamps;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Card, CardStatus, EntryKind, EntrySource, LastEntry, LedgerEntry, Program, SerialNumber};
use crate::store::faults::points;
use crate::store::{CardForWrite, CardLookup, IdempotencyKey, LedgerWrite, Store, StoreError, StoredResponse};
use plan::{Builder, FollowUp, plan};
use rules::RedeemRefusal;

/// Who asks for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub source: EntrySource,
    /// The API key id, webhook source id or staff id.
    pub id: Option<String>,
}

/// A balance change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Points for a purchase, at the card's tier cashback.
    Earn { purchase_amount: i64, order_id: Option<String>, description: Option<String> },
    /// Points paying (part of) a purchase.
    Redeem { points: i64, purchase_amount: Option<i64>, order_id: Option<String>, description: Option<String> },
    /// A manual correction by staff, positive or negative.
    Adjust { points: i64, reason: String },
    /// Undoes an earn or a redeem (a refund); in a stamps program a purchase's stamps or a
    /// reward's redemption.
    Reverse { transaction_id: String, reason: Option<String> },
    /// Stamps for a purchase (stamps programs): `stamps` when given, else what the program gives
    /// for `purchase_amount` (or per visit).
    Stamp { stamps: Option<i64>, purchase_amount: Option<i64>, order_id: Option<String>, description: Option<String> },
    /// Gives `count` waiting rewards to the customer (stamps programs).
    RedeemReward { count: i64, order_id: Option<String>, description: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no such card")]
    CardNotFound,
    #[error("no such transaction")]
    TransactionNotFound,
    #[error("the card is blocked")]
    CardBlocked,
    #[error("{message}")]
    Refused { code: &'static str, message: String, field: Option<&'static str> },
    #[error("the transaction was already reversed by {by}")]
    AlreadyReversed { by: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LedgerError {
    fn refused(code: &'static str, message: impl Into<String>, field: Option<&'static str>) -> Self {
        Self::Refused { code, message: message.into(), field }
    }
}

/// The answer to a ledger write. It is derived from the stored entries alone, so the first
/// answer and the answer to any retry are identical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionResult {
    pub transaction_id: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// The change of this transaction, signed.
    pub points: i64,
    /// The card's balance after everything this request did.
    pub balance: i64,
    pub tier: String,
    pub card_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The invited customer's bonus credited with their first qualifying purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_bonus: Option<i64>,
    /// The welcome bonus credited with the first purchase (programs that credit it then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub welcome_bonus: Option<i64>,
    /// For the reversal of a purchase that paid the referral bonus: the bonus taken back from
    /// this card (as much of it as was unspent; the inviting card's bonus is taken back too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_bonus_reversed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversed_transaction_id: Option<String>,
    /// For a reversed earn whose points were partly spent: the points that could not be taken
    /// back (the balance stops at zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_not_reversed: Option<i64>,
    /// Stamps programs (where `points` are stamps and `balance` the stamps of the round in
    /// progress): the rewards waiting after this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards: Option<i64>,
    /// The rewards this request issued: rounds it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards_issued: Option<i64>,
    /// The rewards this request gave to the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards_redeemed: Option<i64>,
    /// For a refunded purchase whose stamps had completed a reward still waiting: the rewards
    /// taken back with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards_taken_back: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl TransactionResult {
    pub fn stored(&self) -> StoredResponse {
        StoredResponse { status: 200, body: serde_json::to_string(self).expect("a result always serialises") }
    }
}

/// The id of the invited customer's referral entry: one per card, ever.
pub fn referral_entry_id(invited: &SerialNumber) -> String {
    format!("ref_{invited}")
}

/// The id of the inviting customer's bonus for inviting `invited`.
pub fn referrer_entry_id(invited: &SerialNumber) -> String {
    format!("refby_{invited}")
}

/// The id of the entry taking back the invited customer's referral bonus (its purchase was
/// refunded): one per card, ever.
pub fn referral_reversal_id(invited: &SerialNumber) -> String {
    format!("unref_{invited}")
}

/// The id of the entry taking back the inviting customer's bonus for inviting `invited`.
pub fn referrer_reversal_id(invited: &SerialNumber) -> String {
    format!("unrefby_{invited}")
}

/// The id of the reward a stamps write issues when it completes a round: one per write.
pub fn reward_entry_id(main: &str) -> String {
    format!("{main}_reward")
}

/// The id of a welcome bonus credited at the first purchase: one per card, ever.
pub fn first_purchase_welcome_id(card: &SerialNumber) -> String {
    format!("welcome_{card}")
}

/// How one write is made.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// The id of the main entry, reserved before the first attempt.
    pub entry_id: String,
    pub actor: Actor,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
    /// Told about every card this write changes, so the change reaches the phones.
    pub notify: Option<crate::push::ChangeNotifier>,
}

impl WriteContext {
    fn changed(&self, serial: &SerialNumber) {
        if let Some(notify) = &self.notify {
            notify.card_changed(serial);
        }
    }
}

/// The answer for an entry already stored (a retry of a write that was applied): the entries
/// written with it follow it directly on the card.
pub async fn describe_stored(
    store: &dyn Store,
    program: &Program,
    main: &LedgerEntry,
    card_number: &str,
) -> Result<TransactionResult, LedgerError> {
    let followers = match main.kind {
        EntryKind::Earn | EntryKind::Reverse | EntryKind::Stamp | EntryKind::Adjust => {
            let mut next = store.card_entries(&main.serial, Some(main.seq + 3), 2).await?;
            next.retain(|e| e.seq > main.seq && is_follower(main, e));
            next.sort_by_key(|e| e.seq);
            next
        }
        _ => Vec::new(),
    };
    let original = match &main.reverses {
        Some(id) => store.entry(id).await?,
        None => None,
    };
    let mut entries = vec![main.clone()];
    entries.extend(followers);
    Ok(describe(&entries, original.as_ref(), card_number, program.rules.stamp_rules().is_some()))
}

/// Whether `entry` is one a write of `main` adds after it (bonuses, a referral taken back).
fn is_follower(main: &LedgerEntry, entry: &LedgerEntry) -> bool {
    let serial = &main.serial;
    match main.kind {
        EntryKind::Earn => entry.id == referral_entry_id(serial) || entry.id == first_purchase_welcome_id(serial),
        EntryKind::Reverse => entry.id == referral_reversal_id(serial),
        EntryKind::Stamp | EntryKind::Adjust => entry.id == reward_entry_id(&main.id),
        _ => false,
    }
}

/// The answer to a write that produced `entries` (the main one first); `stamps` for a stamps
/// program's card.
fn describe(
    entries: &[LedgerEntry],
    original: Option<&LedgerEntry>,
    card_number: &str,
    stamps: bool,
) -> TransactionResult {
    let main = &entries[0];
    let last = entries.last().unwrap_or(main);
    let serial = &main.serial;
    let points_of = |id: String| entries.iter().find(|e| e.id == id).map(|e| e.points);
    TransactionResult {
        transaction_id: main.id.clone(),
        kind: main.kind,
        points: main.points,
        balance: last.balance_after,
        tier: last.tier_after.clone(),
        card_number: card_number.to_owned(),
        purchase_amount: main.purchase_amount,
        order_id: main.order_id.clone(),
        referral_bonus: points_of(referral_entry_id(serial)),
        welcome_bonus: points_of(first_purchase_welcome_id(serial)),
        referral_bonus_reversed: points_of(referral_reversal_id(serial)).map(i64::abs),
        reversed_transaction_id: main.reverses.clone(),
        points_not_reversed: original.filter(|_| !stamps).and_then(|o| {
            let missing = o.points.abs() - main.points.abs();
            (main.kind == EntryKind::Reverse && missing > 0).then_some(missing)
        }),
        rewards: stamps.then_some(last.rewards_after),
        rewards_issued: stamps
            .then(|| entries.iter().filter(|e| e.kind == EntryKind::RewardIssued).map(|e| e.rewards).sum())
            .filter(|n: &i64| *n > 0),
        rewards_redeemed: (main.kind == EntryKind::RewardRedeemed).then_some(-main.rewards),
        rewards_taken_back: (stamps && main.kind == EntryKind::Reverse && main.rewards < 0).then_some(-main.rewards),
        created_at: main.created_at,
    }
}

/// Applies `command` to the card `serial` exactly once, whatever races with it. Also says
/// whether the answer was recorded in the idempotency record with the write.
///
/// `read` is the card as the caller already read it with [`Store::card_for_write`] for
/// `ctx.entry_id`, used for the first attempt instead of reading it again; if it is stale the
/// commit is refused and the card is read again.
///
/// Every attempt reads the card together with the entry this write reserved: found, the write
/// was applied before (a retry, or a request whose lease was taken over while this one ran) and
/// its answer is derived from the stored entries; not found, the write is computed from the card
/// and committed only if the card is still at the version read, so anything committed after the
/// read — this very entry included — makes the commit match nothing and the loop decide again.
#[tracing::instrument(skip_all, fields(serial = %serial))]
pub async fn apply(
    store: &dyn Store,
    program: &Program,
    serial: &SerialNumber,
    command: &Command,
    ctx: &WriteContext,
    mut read: Option<CardForWrite>,
) -> Result<(TransactionResult, bool), LedgerError> {
    loop {
        let CardForWrite { card, existing } = match read.take().filter(|r| &r.card.serial == serial) {
            Some(read) => read,
            None => store
                .card_for_write(CardLookup::Serial(serial), &ctx.entry_id)
                .await?
                .ok_or(LedgerError::CardNotFound)?,
        };
        if let Some(existing) = existing {
            let result = describe_stored(store, program, &existing, card.card_number.as_str()).await?;
            if let Some(follow_up) = FollowUp::of(&card, &result) {
                follow_up.run(store, program, serial, ctx).await;
            }
            ctx.changed(serial);
            return Ok((result, false));
        }
        let plan = plan(store, program, &card, command, ctx).await?;
        let stamps = program.rules.stamp_rules().is_some();
        let result = describe(&plan.entries, plan.original.as_ref(), card.card_number.as_str(), stamps);
        // The answer is recorded with the write itself, unless a follow-up write remains.
        let completes = match (&ctx.idempotency, &plan.follow_up) {
            (Some(key), None) => Some((key.clone(), result.stored())),
            _ => None,
        };
        let write = LedgerWrite { card: plan.card, expected_version: card.version, entries: plan.entries, completes };
        store.reached(points::LEDGER_BEFORE_COMMIT).await;
        if !store.commit_ledger(&write).await? {
            tracing::debug!("the card changed meanwhile; deciding again");
            continue;
        }
        // Past the commit point: the change exists, and nothing below fails the request.
        ctx.changed(serial);
        if write.card.tier != card.tier {
            tracing::info!(from = %card.tier, to = %write.card.tier, "tier changed");
        }
        let mut recorded = ctx.idempotency.is_some();
        if let Some(follow_up) = &plan.follow_up {
            follow_up.run(store, program, serial, ctx).await;
            if let Some(key) = &ctx.idempotency {
                if let Err(e) = store.idempotency_complete(key, &result.stored()).await {
                    // A retry finds the entry and answers the same.
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "recording an answer failed");
                    recorded = false;
                }
            }
        }
        return Ok((result, recorded));
    }
}

/// Credits the inviting card for `invited`'s first qualifying purchase, once (the entry id is
/// fixed).
pub async fn ensure_referrer_bonus(
    store: &dyn Store,
    program: &Program,
    invited: &SerialNumber,
    inviter: &SerialNumber,
    now: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let id = referrer_entry_id(invited);
    let note = "Bonus for inviting a friend";
    write_system_entry(store, program, inviter, &id, now, |_| Some((program.rules.referral_bonus, note, None))).await
}

/// Takes back the inviting card's bonus for `invited` (the purchase that paid it was refunded),
/// as far as it is unspent, once.
pub async fn ensure_referrer_reversal(
    store: &dyn Store,
    program: &Program,
    invited: &SerialNumber,
    inviter: &SerialNumber,
    now: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let bonus_id = referrer_entry_id(invited);
    let Some(bonus) = store.entry(&bonus_id).await? else {
        return Ok(()); // never paid: nothing to take back
    };
    let id = referrer_reversal_id(invited);
    let note = "Bonus for inviting a friend taken back: the friend's purchase was refunded";
    write_system_entry(store, program, inviter, &id, now, |card| {
        Some((-bonus.points.min(card.balance.max(0)), note, Some(bonus_id.clone())))
    })
    .await
}

/// Writes one system entry with a fixed id on `serial` unless it is already there. `entry`
/// gives its points, note and the entry it reverses, from the card as read.
async fn write_system_entry(
    store: &dyn Store,
    program: &Program,
    serial: &SerialNumber,
    id: &str,
    now: DateTime<Utc>,
    entry: impl Fn(&Card) -> Option<(i64, &'static str, Option<String>)>,
) -> Result<(), LedgerError> {
    loop {
        let Some(CardForWrite { card, existing }) = store.card_for_write(CardLookup::Serial(serial), id).await? else {
            return Ok(());
        };
        if existing.is_some() {
            return Ok(());
        }
        let Some((points, note, reverses)) = entry(&card) else { return Ok(()) };
        let ctx = WriteContext {
            entry_id: id.to_owned(),
            actor: Actor { source: EntrySource::System, id: None },
            idempotency: None,
            now,
            notify: None,
        };
        let kind = if reverses.is_some() { EntryKind::Reverse } else { EntryKind::Referral };
        let mut b = Builder::new(program, &card, &ctx);
        b.push(id.to_owned(), kind, points, 0, None, None, Some(note.to_owned()), reverses);
        let plan = b.finish(None, None);
        let write =
            LedgerWrite { card: plan.card, expected_version: card.version, entries: plan.entries, completes: None };
        if store.commit_ledger(&write).await? {
            return Ok(());
        }
    }
}
