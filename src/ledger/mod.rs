//! The balance ledger (SPEC §4.4): every balance change is an immutable entry written in the
//! same atomic step as the card's new balance, tier and version, so the balance always equals
//! the sum of the card's entries and every change reaches the phone.
//!
//! A write is computed from the card as read and committed only if the card has not changed
//! since (optimistic concurrency; see `store::LedgerStore::commit_ledger`); a conflict recomputes
//! it. The entry id is fixed before the first attempt, so a retried request recognises its own
//! entry and never applies twice (see [`idempotency`]).

pub mod check;
pub mod expiry;
pub mod idempotency;
pub mod rules;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Card, CardStatus, EntryKind, EntrySource, LastEntry, LedgerEntry, Program, SerialNumber};
use crate::store::{CardLookup, IdempotencyKey, LedgerWrite, Store, StoreError, StoredResponse};
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
    /// Undoes an earn or a redeem (a refund).
    Reverse { transaction_id: String, reason: Option<String> },
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
    /// The invited customer's bonus credited with their first purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_bonus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversed_transaction_id: Option<String>,
    /// For a reversed earn whose points were partly spent: the points that could not be taken
    /// back (the balance stops at zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_not_reversed: Option<i64>,
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

/// How one write is made.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// The id of the main entry, reserved before the first attempt.
    pub entry_id: String,
    pub actor: Actor,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
    /// Whether an earlier attempt may already have applied this write (a retry).
    pub may_exist: bool,
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

/// The answer for an entry already stored (a retry of a write that was applied).
pub async fn describe_stored(
    store: &dyn Store,
    main: &LedgerEntry,
    card_number: &str,
) -> Result<TransactionResult, LedgerError> {
    let referral = match main.kind {
        EntryKind::Earn => store.entry(&referral_entry_id(&main.serial)).await?.filter(|r| r.seq == main.seq + 1),
        _ => None,
    };
    let original = match &main.reverses {
        Some(id) => store.entry(id).await?,
        None => None,
    };
    Ok(describe(main, referral.as_ref(), original.as_ref(), card_number))
}

fn describe(
    main: &LedgerEntry,
    referral: Option<&LedgerEntry>,
    original: Option<&LedgerEntry>,
    card_number: &str,
) -> TransactionResult {
    let last = referral.unwrap_or(main);
    TransactionResult {
        transaction_id: main.id.clone(),
        kind: main.kind,
        points: main.points,
        balance: last.balance_after,
        tier: last.tier_after.clone(),
        card_number: card_number.to_owned(),
        purchase_amount: main.purchase_amount,
        order_id: main.order_id.clone(),
        referral_bonus: referral.map(|r| r.points),
        reversed_transaction_id: main.reverses.clone(),
        points_not_reversed: original.and_then(|o| {
            let missing = o.points.abs() - main.points.abs();
            (main.kind == EntryKind::Reverse && missing > 0).then_some(missing)
        }),
        created_at: main.created_at,
    }
}

/// The card and entries a write would produce.
struct Plan {
    card: Card,
    entries: Vec<LedgerEntry>,
    original: Option<LedgerEntry>,
    /// The inviting card owed a bonus because of this write.
    referrer: Option<SerialNumber>,
}

/// Builds the entries of a write on `card` one after another.
struct Builder<'a> {
    program: &'a Program,
    card: &'a Card,
    ctx: &'a WriteContext,
    balance: i64,
    lifetime: i64,
    tier: String,
    entries: Vec<LedgerEntry>,
}

impl<'a> Builder<'a> {
    fn new(program: &'a Program, card: &'a Card, ctx: &'a WriteContext) -> Self {
        Self {
            program,
            card,
            ctx,
            balance: card.balance,
            lifetime: card.lifetime_earned,
            tier: card.tier.clone(),
            entries: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        id: String,
        kind: EntryKind,
        points: i64,
        lifetime_delta: i64,
        purchase_amount: Option<i64>,
        order_id: Option<String>,
        description: Option<String>,
        reverses: Option<String>,
    ) {
        self.balance += points;
        self.lifetime = (self.lifetime + lifetime_delta).max(0);
        self.tier = self.program.rules.tier_for(self.lifetime).id.clone();
        let main = self.entries.is_empty();
        self.entries.push(LedgerEntry {
            id,
            serial: self.card.serial.clone(),
            program_id: self.card.program_id.clone(),
            seq: self.card.version + 1 + self.entries.len() as i64,
            kind,
            points,
            purchase_amount,
            balance_after: self.balance,
            lifetime_after: self.lifetime,
            tier_after: self.tier.clone(),
            order_id,
            description,
            source: if main { self.ctx.actor.source } else { EntrySource::System },
            actor: if main { self.ctx.actor.id.clone() } else { None },
            idempotency_key: if main { self.ctx.idempotency.as_ref().map(|k| k.key.clone()) } else { None },
            reverses,
            created_at: self.ctx.now,
        });
    }

    fn finish(self, original: Option<LedgerEntry>, referrer: Option<SerialNumber>) -> Plan {
        let last = self.entries.last().expect("a write has at least one entry");
        let mut card = self.card.bumped(self.ctx.now);
        card.version = self.card.version + self.entries.len() as i64;
        card.balance = self.balance;
        card.lifetime_earned = self.lifetime;
        card.tier = self.tier;
        card.last_entry =
            Some(LastEntry { kind: self.entries[0].kind, points: self.entries[0].points, at: last.created_at });
        Plan { card, entries: self.entries, original, referrer }
    }
}

async fn plan(
    store: &dyn Store,
    program: &Program,
    card: &Card,
    command: &Command,
    ctx: &WriteContext,
) -> Result<Plan, LedgerError> {
    let rules = &program.rules;
    let mut b = Builder::new(program, card, ctx);
    let id = ctx.entry_id.clone();
    match command {
        Command::Earn { purchase_amount, order_id, description } => {
            if card.status == CardStatus::Blocked {
                return Err(LedgerError::CardBlocked);
            }
            let tier = rules.tier(&card.tier).unwrap_or_else(|| rules.tier_for(card.lifetime_earned));
            let points = rules::cashback_points(*purchase_amount, tier.cashback_bp, &program.currency);
            b.push(
                id,
                EntryKind::Earn,
                points,
                points,
                Some(*purchase_amount),
                order_id.clone(),
                description.clone(),
                None,
            );
            let mut referrer = None;
            if let Some(inviter) = &card.referred_by {
                let referral_id = referral_entry_id(&card.serial);
                if rules.referral_bonus > 0 && store.entry(&referral_id).await?.is_none() {
                    let note = Some("Bonus for joining by invitation".to_owned());
                    b.push(referral_id, EntryKind::Referral, rules.referral_bonus, 0, None, None, note, None);
                    referrer = Some(inviter.clone());
                }
            }
            Ok(b.finish(None, referrer))
        }
        Command::Redeem { points, purchase_amount, order_id, description } => {
            if card.status == CardStatus::Blocked {
                return Err(LedgerError::CardBlocked);
            }
            rules::check_redeem(rules, &program.currency, card.balance, *points, *purchase_amount).map_err(
                |refusal| match refusal {
                    RedeemRefusal::BelowMinimum { minimum } => LedgerError::refused(
                        "below_minimum_redemption",
                        format!("At least {minimum} points must be redeemed at once."),
                        Some("points"),
                    ),
                    RedeemRefusal::Insufficient { balance } => LedgerError::refused(
                        "insufficient_points",
                        format!("The card holds {balance} points."),
                        Some("points"),
                    ),
                    RedeemRefusal::ExceedsShare { max_points } => LedgerError::refused(
                        "exceeds_max_share",
                        format!(
                            "Points may pay at most {} % of the purchase: {max_points} points here.",
                            rules.max_redeem_percent
                        ),
                        Some("points"),
                    ),
                },
            )?;
            b.push(id, EntryKind::Redeem, -points, 0, *purchase_amount, order_id.clone(), description.clone(), None);
            Ok(b.finish(None, None))
        }
        Command::Adjust { points, reason } => {
            if card.balance + points < 0 {
                return Err(LedgerError::refused(
                    "insufficient_points",
                    format!("The card holds {} points; the balance cannot go below zero.", card.balance),
                    Some("points"),
                ));
            }
            b.push(id, EntryKind::Adjust, *points, 0, None, None, Some(reason.clone()), None);
            Ok(b.finish(None, None))
        }
        Command::Reverse { transaction_id, reason } => {
            let original = store.entry(transaction_id).await?.ok_or(LedgerError::TransactionNotFound)?;
            if let Some(reversal) = store.reversal_of(transaction_id).await? {
                return Err(LedgerError::AlreadyReversed { by: reversal.id });
            }
            let (points, lifetime_delta) = match original.kind {
                // Points already spent cannot be taken back: the balance stops at zero.
                EntryKind::Earn => (-original.points.min(card.balance.max(0)), -original.points),
                EntryKind::Redeem => (-original.points, 0),
                other => {
                    return Err(LedgerError::refused(
                        "not_reversible",
                        format!("A {} transaction cannot be reversed; only earn and redeem can.", other.as_str()),
                        Some("transaction_id"),
                    ));
                }
            };
            b.push(
                id,
                EntryKind::Reverse,
                points,
                lifetime_delta,
                None,
                original.order_id.clone(),
                reason.clone(),
                Some(transaction_id.clone()),
            );
            Ok(b.finish(Some(original), None))
        }
    }
}

/// Applies `command` to the card `serial` exactly once, whatever races with it. Also says
/// whether the answer was recorded in the idempotency record with the write.
///
/// `read` is the card as the caller already read it, used for the first attempt instead of
/// reading it again; if it is stale the version check refuses the write and it is re-read.
#[tracing::instrument(skip_all, fields(serial = %serial))]
pub async fn apply(
    store: &dyn Store,
    program: &Program,
    serial: &SerialNumber,
    command: &Command,
    ctx: &WriteContext,
    mut read: Option<Card>,
) -> Result<(TransactionResult, bool), LedgerError> {
    loop {
        let card = match read.take().filter(|card| &card.serial == serial) {
            Some(card) => card,
            None => store.find_card(CardLookup::Serial(serial)).await?.ok_or(LedgerError::CardNotFound)?,
        };
        if ctx.may_exist {
            if let Some(existing) = store.entry(&ctx.entry_id).await? {
                let result = describe_stored(store, &existing, card.card_number.as_str()).await?;
                if let Some(inviter) = card.referred_by.as_ref().filter(|_| result.referral_bonus.is_some()) {
                    ensure_referrer_bonus(store, program, serial, inviter, ctx.now).await?;
                    ctx.changed(inviter);
                }
                ctx.changed(serial);
                return Ok((result, false));
            }
        }
        let plan = plan(store, program, &card, command, ctx).await?;
        let result = describe(&plan.entries[0], plan.entries.get(1), plan.original.as_ref(), card.card_number.as_str());
        // The answer is recorded with the write itself, unless a follow-up write remains.
        let recorded = ctx.idempotency.is_some();
        let completes = match (&ctx.idempotency, &plan.referrer) {
            (Some(key), None) => Some((key.clone(), result.stored())),
            _ => None,
        };
        let write = LedgerWrite { card: plan.card, expected_version: card.version, entries: plan.entries, completes };
        if store.commit_ledger(&write).await? {
            ctx.changed(serial);
            if write.card.tier != card.tier {
                tracing::info!(from = %card.tier, to = %write.card.tier, "tier changed");
            }
            if let Some(inviter) = &plan.referrer {
                ensure_referrer_bonus(store, program, serial, inviter, ctx.now).await?;
                ctx.changed(inviter);
                if let Some(key) = &ctx.idempotency {
                    store.idempotency_complete(key, &result.stored()).await?;
                }
            }
            return Ok((result, recorded));
        }
        tracing::debug!("the card changed meanwhile; recomputing");
    }
}

/// Credits the inviting card for `invited`'s first purchase, once (the entry id is fixed).
pub async fn ensure_referrer_bonus(
    store: &dyn Store,
    program: &Program,
    invited: &SerialNumber,
    inviter: &SerialNumber,
    now: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let id = referrer_entry_id(invited);
    loop {
        if store.entry(&id).await?.is_some() {
            return Ok(());
        }
        let Some(card) = store.find_card(CardLookup::Serial(inviter)).await? else {
            return Ok(());
        };
        let ctx = WriteContext {
            entry_id: id.clone(),
            actor: Actor { source: EntrySource::System, id: None },
            idempotency: None,
            now,
            may_exist: true,
            notify: None,
        };
        let mut b = Builder::new(program, &card, &ctx);
        let note = Some("Bonus for inviting a friend".to_owned());
        b.push(id.clone(), EntryKind::Referral, program.rules.referral_bonus, 0, None, None, note, None);
        let plan = b.finish(None, None);
        let write =
            LedgerWrite { card: plan.card, expected_version: card.version, entries: plan.entries, completes: None };
        if store.commit_ledger(&write).await? {
            return Ok(());
        }
    }
}
