//! The cashier screen's writes: earn, redeem and refund the last purchase, each under the
//! idempotency key of the form the cashier was shown, through the same ledger path as the POS
//! API ([`crate::pos::writes::execute_stored`]). A double tap, a reload or a retried form
//! replays the first answer and never applies twice.

use serde::Deserialize;

use crate::domain::{Card, EntryKind, EntrySource};
use crate::http::errors::ApiError;
use crate::ledger::idempotency::request_hash;
use crate::ledger::{Actor, Command};
use crate::pos::writes::{Target, execute_stored};
use crate::state::AppState;
use crate::store::IdempotencyKey;

/// What the cashier asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TillOperation {
    /// Points for a purchase of this many minor units.
    Earn { purchase_amount: i64 },
    /// Points paying for (part of) a purchase.
    Redeem { points: i64, purchase_amount: Option<i64> },
    /// Undo the card's last earn or redeem.
    RefundLast,
    /// A manager's correction of the balance, with the reason.
    Adjust { points: i64, reason: String },
    /// Stamps programs: stamps for a purchase (the program's count, or by its amount).
    Stamp { purchase_amount: Option<i64> },
    /// Stamps programs: one waiting reward given to the customer.
    RedeemReward,
}

impl TillOperation {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Earn { .. } => "earn",
            Self::Redeem { .. } => "redeem",
            Self::RefundLast => "refund",
            Self::Adjust { .. } => "adjust",
            Self::Stamp { .. } => "stamp",
            Self::RedeemReward => "redeem_reward",
        }
    }
}

/// The answer shown to the cashier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TillOutcome {
    Done(TillDone),
    /// Refused, with the reason (`code`) and the ledger's message.
    Refused {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TillDone {
    pub transaction_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Signed: credited (positive) or spent (negative).
    pub points: i64,
    pub balance: i64,
    #[serde(default)]
    pub welcome_bonus: Option<i64>,
    #[serde(default)]
    pub referral_bonus: Option<i64>,
    /// Stamps programs: the rewards waiting after the write, and those it issued, redeemed or
    /// took back.
    #[serde(default)]
    pub rewards: Option<i64>,
    #[serde(default)]
    pub rewards_issued: Option<i64>,
    #[serde(default)]
    pub rewards_redeemed: Option<i64>,
    #[serde(default)]
    pub rewards_taken_back: Option<i64>,
    /// Set when the same form was sent before: nothing was applied this time.
    #[serde(skip)]
    pub replayed: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A fresh id for a rendered form (its idempotency key): 128 bits and more of randomness.
pub fn new_form_id() -> String {
    crate::domain::tokens::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 26)
}

/// The idempotency key of a console form: one per rendered form and staff member.
pub fn form_key(staff_id: &str, form_id: &str) -> Option<IdempotencyKey> {
    let ok = !form_id.is_empty()
        && form_id.len() <= 128
        && form_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| IdempotencyKey { scope: format!("staff:{staff_id}"), key: format!("till:{form_id}") })
}

/// Runs `operation` on `card` for the staff member `staff_id` under the form's key.
pub async fn write(
    state: &AppState,
    staff_id: &str,
    key: IdempotencyKey,
    card: &Card,
    operation: TillOperation,
) -> Result<TillOutcome, ApiError> {
    // The hash names the request, not what it resolved to: a replay after the refund must
    // match the first request even though "the last purchase" has changed since.
    let description = format!("{}:{}:{:?}", card.serial, operation.name(), operation);
    let hash = request_hash("POST", "/admin/cashier", description.as_bytes());
    let actor = Actor { source: EntrySource::Admin, id: Some(format!("staff:{staff_id}")) };
    let (target, command) = match operation {
        TillOperation::Earn { purchase_amount } => (
            Target::Card(card.card_number.as_str().to_owned()),
            Command::Earn { purchase_amount, order_id: None, description: Some("Cashier screen".to_owned()) },
        ),
        TillOperation::Redeem { points, purchase_amount } => (
            Target::Card(card.card_number.as_str().to_owned()),
            Command::Redeem { points, purchase_amount, order_id: None, description: Some("Cashier screen".to_owned()) },
        ),
        TillOperation::Adjust { points, reason } => {
            (Target::Card(card.card_number.as_str().to_owned()), Command::Adjust { points, reason })
        }
        TillOperation::Stamp { purchase_amount } => (
            Target::Card(card.card_number.as_str().to_owned()),
            Command::Stamp {
                stamps: None,
                purchase_amount,
                order_id: None,
                description: Some("Cashier screen".to_owned()),
            },
        ),
        TillOperation::RedeemReward => (
            Target::Card(card.card_number.as_str().to_owned()),
            Command::RedeemReward { count: 1, order_id: None, description: None },
        ),
        TillOperation::RefundLast => {
            // A replayed form answers from its record whatever this finds; a first one needs a
            // purchase to refund.
            let last = last_refundable(state, card).await?;
            match last {
                Some(id) => (
                    Target::TransactionOf(id.clone()),
                    Command::Reverse { transaction_id: id, reason: Some("Refund at the cashier screen".to_owned()) },
                ),
                None => (
                    Target::TransactionOf(String::new()),
                    Command::Reverse { transaction_id: String::new(), reason: None },
                ),
            }
        }
    };
    let (response, replayed) = match execute_stored(state, key, hash, actor, target, command).await {
        Ok(answer) => answer,
        // The form was sent before with other values (back, edit, send), or its first sending
        // is still being applied: said in words, with a fresh form.
        Err(e) if e.code == "idempotency_key_reused" || e.code == "request_in_progress" => {
            let code = if e.code == "request_in_progress" { "in_progress" } else { "form_used" };
            return Ok(TillOutcome::Refused { code: code.to_owned(), message: e.message });
        }
        Err(e) => return Err(e),
    };
    if response.status == 200 {
        let mut done: TillDone = serde_json::from_str(&response.body)
            .map_err(|e| ApiError::internal(&crate::store::StoreError::Corrupt(format!("a ledger answer: {e}"))))?;
        done.replayed = replayed;
        return Ok(TillOutcome::Done(done));
    }
    let body: ErrorBody = serde_json::from_str(&response.body)
        .map_err(|e| ApiError::internal(&crate::store::StoreError::Corrupt(format!("a ledger refusal: {e}"))))?;
    Ok(TillOutcome::Refused { code: body.error.code, message: body.error.message })
}

/// The card's newest earn, redeem or stamps. Only that one is refunded: pressing "refund" again on a
/// new form says it was already refunded rather than refunding an older purchase.
async fn last_refundable(state: &AppState, card: &Card) -> Result<Option<String>, ApiError> {
    let mut before = None;
    loop {
        let page = state.store.card_entries(&card.serial, before, 50).await?;
        let Some(last) = page.last() else { return Ok(None) };
        before = Some(last.seq);
        if let Some(entry) =
            page.iter().find(|e| matches!(e.kind, EntryKind::Earn | EntryKind::Redeem | EntryKind::Stamp))
        {
            return Ok(Some(entry.id.clone()));
        }
        if page.len() < 50 {
            return Ok(None);
        }
    }
}

/// The points `card` may pay for a purchase of `purchase_amount` minor units (any purchase
/// when `None`): its balance, within the program's share of a purchase, and nothing below the
/// minimum redemption or on a card that is not active.
pub fn redeemable_for(program: &crate::domain::Program, card: &Card, purchase_amount: Option<i64>) -> i64 {
    if card.status != crate::domain::CardStatus::Active {
        return 0;
    }
    let rules = &program.rules;
    let limit = crate::ledger::rules::share_limit(rules, &program.currency, purchase_amount).unwrap_or(i64::MAX);
    let points = card.balance.min(limit);
    if points >= rules.min_redemption && points > 0 { points } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phone::PhoneRegion;
    use crate::domain::{Currency, Customer, Locale, PersonName, Phone, Program};
    use chrono::Utc;

    fn card(balance: i64) -> (Program, Card) {
        let now = Utc::now();
        let program = Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), now);
        let holder = Customer {
            first_name: PersonName::parse("Anna").unwrap(),
            last_name: None,
            phone: Phone::parse("+79123456789", PhoneRegion::RU).unwrap(),
            email: None,
            birthday: None,
            locale: Locale::En,
            consent_at: now,
        };
        let (mut card, _) = Card::enroll(&program, holder, None, now);
        card.balance = balance;
        (program, card)
    }

    #[test]
    fn what_may_be_redeemed_respects_balance_share_and_minimum() {
        let (program, card) = card(1_000);
        let rules = &program.rules;
        assert_eq!(redeemable_for(&program, &card, None), 1_000);
        let share = crate::ledger::rules::share_limit(rules, &program.currency, Some(45_050)).unwrap();
        assert_eq!(redeemable_for(&program, &card, Some(45_050)), share.min(1_000));
        let (program, poor) = self::card(rules.min_redemption - 1);
        assert_eq!(redeemable_for(&program, &poor, None), 0);
        let (program, mut blocked) = self::card(1_000);
        blocked.status = crate::domain::CardStatus::Blocked;
        assert_eq!(redeemable_for(&program, &blocked, None), 0);
    }

    #[test]
    fn form_keys_are_scoped_to_the_staff_member() {
        let key = form_key("st_1", "abc-123").unwrap();
        assert_eq!(key.scope, "staff:st_1");
        assert_ne!(form_key("st_2", "abc-123"), Some(key));
        assert!(form_key("st_1", "").is_none());
        assert!(form_key("st_1", "a b").is_none());
    }
}
