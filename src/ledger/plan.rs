//! Computing a write: from the card as read and a command, the card after it and the entries
//! to commit, with the follow-up entries a change brings (referral bonuses, a first-purchase
//! welcome). Nothing here touches the store except reading what a reversal reverses.

use super::*;

/// The card and entries a write would produce.
pub(super) struct Plan {
    pub(super) card: Card,
    pub(super) entries: Vec<LedgerEntry>,
    pub(super) original: Option<LedgerEntry>,
    /// What the write owes another card once it is committed.
    pub(super) follow_up: Option<FollowUp>,
}

/// A change to the inviting card that a write of the invited card makes necessary. It is a
/// second write (cards are committed one at a time) with a fixed entry id, so it happens once;
/// if it cannot happen right after the first, a retry of the request or `loy check ledger`
/// finishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FollowUp {
    /// The inviter's bonus for the invited card's first qualifying purchase.
    ReferrerBonus { inviter: SerialNumber },
    /// The inviter's bonus taken back: that purchase was refunded.
    ReferrerReversal { inviter: SerialNumber },
}

impl FollowUp {
    /// The follow-up an already stored answer implies.
    pub(super) fn of(card: &Card, result: &TransactionResult) -> Option<Self> {
        let inviter = card.referred_by.clone()?;
        if result.referral_bonus.is_some() {
            Some(Self::ReferrerBonus { inviter })
        } else if result.referral_bonus_reversed.is_some() {
            Some(Self::ReferrerReversal { inviter })
        } else {
            None
        }
    }

    pub(super) async fn run(&self, store: &dyn Store, program: &Program, invited: &SerialNumber, ctx: &WriteContext) {
        let (inviter, done) = match self {
            Self::ReferrerBonus { inviter } => {
                (inviter, ensure_referrer_bonus(store, program, invited, inviter, ctx.now).await)
            }
            Self::ReferrerReversal { inviter } => {
                (inviter, ensure_referrer_reversal(store, program, invited, inviter, ctx.now).await)
            }
        };
        match done {
            Ok(()) => ctx.changed(inviter),
            // The invited card's write is committed; this is finished by a retry of the request
            // or by `loy check ledger`, never lost.
            Err(e) => tracing::warn!(error = %e, inviter = %inviter, "updating the inviting card failed"),
        }
    }
}

/// Builds the entries of a write on `card` one after another.
pub(super) struct Builder<'a> {
    pub(super) program: &'a Program,
    pub(super) card: &'a Card,
    pub(super) ctx: &'a WriteContext,
    pub(super) balance: i64,
    pub(super) lifetime: i64,
    /// Rewards waiting (stamps programs).
    pub(super) rewards: i64,
    pub(super) tier: String,
    pub(super) entries: Vec<LedgerEntry>,
}

impl<'a> Builder<'a> {
    pub(super) fn new(program: &'a Program, card: &'a Card, ctx: &'a WriteContext) -> Self {
        Self {
            program,
            card,
            ctx,
            balance: card.balance,
            lifetime: card.lifetime_earned,
            rewards: card.rewards,
            tier: card.tier.clone(),
            entries: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
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
        self.push_entry(id, kind, points, 0, lifetime_delta, purchase_amount, order_id, description, reverses);
    }

    /// [`Self::push`] for an entry that also moves the rewards waiting (stamps programs).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_entry(
        &mut self,
        id: String,
        kind: EntryKind,
        points: i64,
        rewards: i64,
        lifetime_delta: i64,
        purchase_amount: Option<i64>,
        order_id: Option<String>,
        description: Option<String>,
        reverses: Option<String>,
    ) {
        self.balance += points;
        self.rewards += rewards;
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
            rewards,
            rewards_after: self.rewards,
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

    pub(super) fn finish(self, original: Option<LedgerEntry>, follow_up: Option<FollowUp>) -> Plan {
        let last = self.entries.last().expect("a write has at least one entry");
        let mut card = self.card.bumped(self.ctx.now);
        card.version = self.card.version + self.entries.len() as i64;
        card.balance = self.balance;
        card.lifetime_earned = self.lifetime;
        card.rewards = self.rewards;
        card.tier = self.tier;
        card.last_entry =
            Some(LastEntry { kind: self.entries[0].kind, points: self.entries[0].points, at: last.created_at });
        Plan { card, entries: self.entries, original, follow_up }
    }
}

pub(super) async fn plan(
    store: &dyn Store,
    program: &Program,
    card: &Card,
    command: &Command,
    ctx: &WriteContext,
) -> Result<Plan, LedgerError> {
    let rules = &program.rules;
    if let Some(stamps) = rules.stamp_rules() {
        return super::stamps::plan(store, program, stamps, card, command, ctx).await;
    }
    let mut b = Builder::new(program, card, ctx);
    let id = ctx.entry_id.clone();
    match command {
        Command::Stamp { .. } | Command::RedeemReward { .. } => Err(LedgerError::refused(
            "wrong_mechanic",
            "This card's program collects points: earn and redeem points instead.",
            None,
        )),
        Command::Earn { purchase_amount, order_id, description } => {
            if card.status != CardStatus::Active {
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
            if rules.welcome_at_first_purchase && rules.welcome_bonus > 0 && card.lifetime_earned == 0 {
                // Only a card that never kept earned points can be at its first purchase; the
                // fixed id makes the bonus once per card whatever the lifetime does later.
                let welcome_id = first_purchase_welcome_id(&card.serial);
                if store.entry(&welcome_id).await?.is_none() {
                    let note = Some("Welcome bonus with the first purchase".to_owned());
                    b.push(welcome_id, EntryKind::Welcome, rules.welcome_bonus, 0, None, None, note, None);
                }
            }
            let mut follow_up = None;
            if let Some(inviter) = &card.referred_by {
                let referral_id = referral_entry_id(&card.serial);
                if rules.referral_bonus > 0
                    && *purchase_amount >= rules.referral_min_purchase
                    && store.entry(&referral_id).await?.is_none()
                {
                    let note = Some("Bonus for joining by invitation".to_owned());
                    b.push(referral_id, EntryKind::Referral, rules.referral_bonus, 0, None, None, note, None);
                    follow_up = Some(FollowUp::ReferrerBonus { inviter: inviter.clone() });
                }
            }
            Ok(b.finish(None, follow_up))
        }
        Command::Redeem { points, purchase_amount, order_id, description } => {
            if card.status != CardStatus::Active {
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
            let mut follow_up = None;
            if original.kind == EntryKind::Earn && card.referred_by.is_some() {
                // The purchase that paid the referral bonus is refunded: the bonus goes back too,
                // as far as it is unspent, here and on the inviting card.
                let referral_id = referral_entry_id(&card.serial);
                let paid_with_it = store
                    .entry(&referral_id)
                    .await?
                    .filter(|r| r.seq > original.seq && r.seq <= original.seq + 2 && r.serial == original.serial);
                if let Some(referral) = paid_with_it {
                    if store.reversal_of(&referral_id).await?.is_none() {
                        let taken = referral.points.min(b.balance.max(0));
                        let note = Some("Referral bonus taken back: its purchase was refunded".to_owned());
                        b.push(
                            referral_reversal_id(&card.serial),
                            EntryKind::Reverse,
                            -taken,
                            0,
                            None,
                            None,
                            note,
                            Some(referral_id),
                        );
                        follow_up = card.referred_by.clone().map(|inviter| FollowUp::ReferrerReversal { inviter });
                    }
                }
            }
            Ok(b.finish(Some(original), follow_up))
        }
    }
}
