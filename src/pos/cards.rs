//! Reading cards and their transactions, and blocking cards.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::ApiKeyAuth;
use super::idempotent::{self, Done, Failure};
use super::{card_not_found, resolve_card};
use crate::domain::{Card, CardStatus, EntryKind, EntrySource, LedgerEntry, Locale, Mechanic, Phone, Program, Scope};
use crate::http::errors::ApiError;
use crate::ledger::idempotency::request_hash;
use crate::ledger::rules;
use crate::state::AppState;
use crate::store::{CardLookup, StoredResponse};

#[derive(Debug, Serialize)]
pub struct CardView {
    pub card_number: String,
    pub serial_number: String,
    pub first_name: String,
    /// Only the initial ("I."): a cashier needs no more to greet the customer.
    pub last_name: Option<String>,
    pub balance: i64,
    pub lifetime_earned: i64,
    pub tier: TierView,
    pub status: CardStatus,
    pub redeem: RedeemView,
    /// The card's own referral code, for a till or CRM to hand out to friends.
    pub referral_code: String,
    /// `points` or `stamps`: how the card's program collects.
    pub mechanic: Mechanic,
    /// Stamps programs: the stamps, the rewards waiting and what the next reward is (`balance`
    /// is the stamps too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamps: Option<StampsView>,
}

#[derive(Debug, Serialize)]
pub struct StampsView {
    /// Stamps of the round in progress.
    pub stamps: i64,
    pub stamps_per_reward: u32,
    /// Stamps still needed for the next reward.
    pub stamps_to_next_reward: i64,
    /// Rewards waiting to be redeemed.
    pub rewards_waiting: i64,
    /// What a reward is, in the card holder's language.
    pub reward: String,
}

#[derive(Debug, Serialize)]
pub struct TierView {
    pub id: String,
    pub name: String,
    /// Cashback of the tier in percent of the purchase.
    pub cashback_percent: f64,
}

/// What the card can pay with now.
#[derive(Debug, Serialize)]
pub struct RedeemView {
    /// Points that can be redeemed now (0 below the minimum or when blocked).
    pub available_points: i64,
    pub min_redemption: i64,
    /// Points may pay at most this share of a purchase.
    pub max_share_percent: u32,
}

pub fn card_view(card: &Card, program: &Program, locale: Locale) -> CardView {
    let rules = &program.rules;
    let tier = rules.tier(&card.tier).unwrap_or_else(|| rules.tier_for(card.lifetime_earned));
    CardView {
        card_number: card.card_number.as_str().to_owned(),
        serial_number: card.serial.to_string(),
        first_name: card.holder.as_ref().map(|h| h.first_name.to_string()).unwrap_or_default(),
        last_name: card.holder.as_ref().and_then(|h| h.last_name.as_ref()).map(|n| n.initial()),
        balance: card.balance,
        lifetime_earned: card.lifetime_earned,
        tier: TierView {
            id: tier.id.clone(),
            name: if locale == Locale::Ru { tier.name_ru.clone() } else { tier.name_en.clone() },
            cashback_percent: f64::from(tier.cashback_bp) / 100.0,
        },
        status: card.status,
        redeem: RedeemView {
            available_points: if card.status == CardStatus::Active {
                rules::redeemable_now(rules, card.balance)
            } else {
                0
            },
            min_redemption: rules.min_redemption,
            max_share_percent: rules.max_redeem_percent,
        },
        referral_code: card.referral_code.as_str().to_owned(),
        mechanic: rules.mechanic,
        stamps: rules.stamp_rules().map(|stamps| StampsView {
            stamps: card.balance,
            stamps_per_reward: stamps.stamps_per_reward,
            stamps_to_next_reward: (i64::from(stamps.stamps_per_reward) - card.balance).max(0),
            rewards_waiting: card.rewards,
            reward: stamps.reward.get(locale).to_owned(),
        }),
    }
}

pub async fn lookup(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Pos)?;
    let card = resolve_card(state.store.as_ref(), &id, &auth.key).await?;
    let program = state.program_by_id(&card.program_id).await?;
    Ok(HttpResponse::Ok().json(card_view(&card, &program, card.locale())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneQuery {
    pub phone: String,
    /// The program to look in (see [`super::requested_program`]).
    pub program: Option<String>,
}

pub async fn find_by_phone(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    query: web::Query<PhoneQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Pos)?;
    let phone = Phone::parse(&query.phone, state.settings.default_phone_region).map_err(|e| {
        ApiError::unprocessable(crate::enrollment::phone_error_code(&e), format!("phone: {e}."), "phone")
    })?;
    let program = super::requested_program(&state, &auth.key, query.program.as_deref()).await?;
    let card = state
        .store
        .find_card(CardLookup::Phone { program_id: &program.id, phone: &phone })
        .await?
        .ok_or_else(card_not_found)?;
    Ok(HttpResponse::Ok().json(card_view(&card, &program, card.locale())))
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub points: i64,
    pub balance_after: i64,
    pub tier_after: String,
    /// Stamps programs: the rewards this entry added or took, and those waiting after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: EntrySource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<LedgerEntry> for EntryView {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            points: e.points,
            balance_after: e.balance_after,
            tier_after: e.tier_after,
            rewards: (e.rewards != 0 || e.rewards_after != 0).then_some(e.rewards),
            rewards_after: (e.rewards != 0 || e.rewards_after != 0).then_some(e.rewards_after),
            purchase_amount: e.purchase_amount,
            order_id: e.order_id,
            description: e.description,
            source: e.source,
            reverses: e.reverses,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TransactionPage {
    pub transactions: Vec<EntryView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub async fn transactions(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Pos)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::unprocessable("invalid_limit", "limit must be from 1 to 100.", "limit"));
    }
    // An empty cursor (`?cursor=`, what a client sends for "no next_cursor yet") is the first page.
    let before = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().ok().filter(|seq| *seq > 0).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_cursor",
                "cursor must be a next_cursor value from an earlier page.",
                "cursor",
            )
        })?),
    };
    let card = resolve_card(state.store.as_ref(), &id, &auth.key).await?;
    // One more than asked tells whether an older page exists.
    let mut entries = state.store.card_entries(&card.serial, before, limit + 1).await?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next_cursor = if more { entries.last().map(|e| e.seq.to_string()) } else { None };
    Ok(HttpResponse::Ok()
        .json(TransactionPage { transactions: entries.into_iter().map(EntryView::from).collect(), next_cursor }))
}

async fn set_status(
    state: &AppState,
    req: &HttpRequest,
    auth: &ApiKeyAuth,
    id: String,
    status: CardStatus,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Admin)?;
    let key = idempotent::idempotency_key(req, &auth.key.id)?;
    let hash = request_hash(req.method().as_str(), req.path(), b"");
    let work = |_entry_id: String| async move {
        loop {
            let card = resolve_card(state.store.as_ref(), &id, &auth.key).await?;
            if card.is_deleted() {
                // A deleted customer's card only keeps its ledger: it is never active again.
                return Err(Failure::Answer(card_not_found()));
            }
            let program = state.program_by_id(&card.program_id).await.map_err(Failure::Transient)?;
            if card.status == status {
                let body = serde_json::to_string(&card_view(&card, &program, card.locale())).expect("serialises");
                return Ok(Done { response: StoredResponse { status: 200, body }, recorded: false });
            }
            let mut next = card.bumped(state.clock.now());
            next.status = status;
            if state
                .store
                .update_card_emitting(
                    &next,
                    card.version,
                    &crate::webhooks::events::status_change(&card, &next, next.updated_at),
                )
                .await?
            {
                state.changes.card_changed(&card.serial);
                tracing::info!(serial = %card.serial, status = status.as_str(), api_key = %auth.key.id, "card status changed");
                let body = serde_json::to_string(&card_view(&next, &program, next.locale())).expect("serialises");
                return Ok(Done { response: StoredResponse { status: 200, body }, recorded: false });
            }
        }
    };
    idempotent::run(state, key, hash, work).await
}

pub async fn block(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &req, &auth, id.into_inner(), CardStatus::Blocked).await
}

pub async fn unblock(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &req, &auth, id.into_inner(), CardStatus::Active).await
}
