//! Earn, redeem, adjust and reverse: every one under an idempotency key.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::CardId;
use super::auth::ApiKeyAuth;
use super::idempotent::{self, Done, Failure};
use crate::domain::{ApiKey, EntrySource, Scope, SerialNumber};
use crate::http::errors::ApiError;
use crate::http::json::{RawJson, parse_json};
use crate::ledger::idempotency::request_hash;
use crate::ledger::rules::{MAX_AMOUNT, MAX_POINTS};
use crate::ledger::{self, Actor, Command, LedgerError, WriteContext};
use crate::state::AppState;
use crate::store::{CardForWrite, CardLookup, IdempotencyKey};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarnRequest {
    /// In minor currency units (kopecks, cents).
    pub purchase_amount: i64,
    pub order_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub points: i64,
    pub purchase_amount: Option<i64>,
    pub order_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    pub points: i64,
    pub reason: String,
}

/// Stamps for a purchase (stamps programs): `stamps` to give that many, else the program's
/// stamps for `purchase_amount` (or per visit).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampRequest {
    pub stamps: Option<i64>,
    pub purchase_amount: Option<i64>,
    pub order_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRewardRequest {
    /// How many waiting rewards to give (1 when absent).
    pub count: Option<i64>,
    pub order_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseRequest {
    pub reason: Option<String>,
}

fn invalid(code: &'static str, message: &str, field: &str) -> ApiError {
    ApiError::unprocessable(code, message, field)
}

pub fn amount(value: i64, field: &str) -> Result<i64, ApiError> {
    if (1..=MAX_AMOUNT).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            "invalid_amount",
            &format!("{field} must be a whole number of minor units from 1 to {MAX_AMOUNT}."),
            field,
        ))
    }
}

pub fn points(value: i64) -> Result<i64, ApiError> {
    if (1..=MAX_POINTS).contains(&value) {
        Ok(value)
    } else {
        Err(invalid("invalid_points", &format!("points must be a whole number from 1 to {MAX_POINTS}."), "points"))
    }
}

/// A free text field (order id, description, reason): trimmed, blank as absent, at most `max`
/// characters, and only visible ones (see [`crate::domain::text`]).
pub fn text(value: Option<String>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > max => {
            Err(invalid("invalid_text", &format!("{field} must be at most {max} characters."), field))
        }
        Some(v) => match crate::domain::text::check(&v) {
            Ok(()) => Ok(Some(v)),
            Err(why) => Err(invalid("invalid_text", &format!("{field} {why}; send visible characters only."), field)),
        },
        None => Ok(None),
    }
}

impl CardWrite for EarnRequest {
    const SCOPE: Scope = Scope::Pos;

    fn command(self) -> Result<Command, ApiError> {
        Ok(Command::Earn {
            purchase_amount: amount(self.purchase_amount, "purchase_amount")?,
            order_id: text(self.order_id, "order_id", 128)?,
            description: text(self.description, "description", 500)?,
        })
    }
}

impl CardWrite for RedeemRequest {
    const SCOPE: Scope = Scope::Pos;

    fn command(self) -> Result<Command, ApiError> {
        Ok(Command::Redeem {
            points: points(self.points)?,
            purchase_amount: self.purchase_amount.map(|a| amount(a, "purchase_amount")).transpose()?,
            order_id: text(self.order_id, "order_id", 128)?,
            description: text(self.description, "description", 500)?,
        })
    }
}

impl CardWrite for AdjustRequest {
    const SCOPE: Scope = Scope::Admin;

    fn command(self) -> Result<Command, ApiError> {
        if self.points == 0 || !(-MAX_POINTS..=MAX_POINTS).contains(&self.points) {
            return Err(invalid(
                "invalid_points",
                &format!("points must be non-zero, from -{MAX_POINTS} to {MAX_POINTS}."),
                "points",
            ));
        }
        let reason = text(Some(self.reason), "reason", 500)?
            .ok_or_else(|| invalid("required", "reason is required.", "reason"))?;
        Ok(Command::Adjust { points: self.points, reason })
    }
}

/// A count of stamps or rewards in a request: 1 to the most one purchase may earn.
fn count(value: i64, field: &str) -> Result<i64, ApiError> {
    let max = i64::from(crate::domain::stamps::MAX_STAMPS_PER_PURCHASE);
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid("invalid_count", &format!("{field} must be a whole number from 1 to {max}."), field))
    }
}

impl CardWrite for StampRequest {
    const SCOPE: Scope = Scope::Pos;

    fn command(self) -> Result<Command, ApiError> {
        Ok(Command::Stamp {
            stamps: self.stamps.map(|n| count(n, "stamps")).transpose()?,
            purchase_amount: self.purchase_amount.map(|a| amount(a, "purchase_amount")).transpose()?,
            order_id: text(self.order_id, "order_id", 128)?,
            description: text(self.description, "description", 500)?,
        })
    }
}

impl CardWrite for RedeemRewardRequest {
    const SCOPE: Scope = Scope::Pos;

    fn command(self) -> Result<Command, ApiError> {
        Ok(Command::RedeemReward {
            count: count(self.count.unwrap_or(1), "count")?,
            order_id: text(self.order_id, "order_id", 128)?,
            description: text(self.description, "description", 500)?,
        })
    }
}

/// Which card a write is for.
pub enum Target {
    /// A barcode value or card number from the path.
    Card(String),
    /// The card of a transaction (reversals).
    TransactionOf(String),
}

/// Runs a ledger command for `actor` under `key`: the shared body of every write endpoint and
/// of the webhook.
pub async fn execute(
    state: &AppState,
    key: IdempotencyKey,
    hash: String,
    actor: Actor,
    target: Target,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    let (response, replayed) = execute_stored(state, key, hash, actor, target, command).await?;
    Ok(idempotent::respond(&response, replayed))
}

/// [`execute`] without HTTP: the recorded answer and whether it was replayed. The cashier
/// screen of the staff console calls this with the idempotency key of its rendered form.
pub async fn execute_stored(
    state: &AppState,
    key: IdempotencyKey,
    hash: String,
    actor: Actor,
    target: Target,
    command: Command,
) -> Result<(crate::store::StoredResponse, bool), ApiError> {
    let owned_key = key.clone();
    let work = |entry_id: String| async move {
        let (serial, read): (SerialNumber, Option<CardForWrite>) = match &target {
            Target::Card(id) => {
                // The card and whether this request's entry exists, in one read that also serves
                // as the write's first attempt.
                let read = match CardId::parse(id) {
                    Some(id) => state.store.card_for_write(id.lookup(), &entry_id).await?,
                    None => None,
                };
                let read = read.ok_or_else(|| Failure::Answer(super::card_not_found()))?;
                (read.card.serial.clone(), Some(read))
            }
            Target::TransactionOf(id) => {
                (state.store.entry(id).await?.ok_or(Failure::from(LedgerError::TransactionNotFound))?.serial, None)
            }
        };
        // The card's own program: its rules apply (a reversal reads the card once more for it).
        let program_id = match &read {
            Some(read) => read.card.program_id.clone(),
            None => match state.store.find_card(CardLookup::Serial(&serial)).await? {
                Some(card) => card.program_id,
                None => return Err(Failure::from(LedgerError::TransactionNotFound)),
            },
        };
        let program = state.program_by_id(&program_id).await.map_err(Failure::Transient)?;
        let ctx = WriteContext {
            entry_id,
            actor,
            idempotency: Some(owned_key),
            now: state.clock.now(),
            notify: Some(state.changes.clone()),
        };
        let (result, recorded) = ledger::apply(state.store.as_ref(), &program, &serial, &command, &ctx, read).await?;
        state.metrics.ledger_writes.with_label_values(&[result.kind.as_str()]).inc();
        Ok(Done { response: result.stored(), recorded })
    };
    idempotent::run_stored(state, key, hash, work).await
}

async fn pos_write(
    state: &AppState,
    req: &HttpRequest,
    auth: &ApiKeyAuth,
    scope: Scope,
    body: &[u8],
    target: Target,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    auth.require(scope)?;
    if let Some(program) = &auth.key.program_id {
        check_program(state, &auth.key, program, &target).await?;
    }
    let key = idempotent::idempotency_key(req, &auth.key.id)?;
    let hash = request_hash(req.method().as_str(), req.path(), body);
    let actor = Actor { source: EntrySource::Pos, id: Some(auth.key.id.clone()) };
    execute(state, key, hash, actor, target, command).await
}

/// For a key limited to `program`: the target card must be of that program; any other card (or
/// transaction) is answered as if it did not exist.
async fn check_program(state: &AppState, key: &ApiKey, program: &str, target: &Target) -> Result<(), ApiError> {
    let card = match target {
        Target::Card(id) => super::resolve_card(state.store.as_ref(), id, key).await?,
        Target::TransactionOf(id) => {
            let not_found = || match Failure::from(LedgerError::TransactionNotFound) {
                Failure::Answer(answer) => answer,
                _ => unreachable!("a missing transaction is always an answer"),
            };
            let serial = state.store.entry(id).await?.ok_or_else(not_found)?.serial;
            let card = state.store.find_card(CardLookup::Serial(&serial)).await?.ok_or_else(not_found)?;
            if card.program_id != program {
                return Err(not_found());
            }
            card
        }
    };
    if card.program_id == program { Ok(()) } else { Err(super::card_not_found()) }
}

/// A card write's request body: what it parses into, and the scope it needs.
pub trait CardWrite: serde::de::DeserializeOwned {
    const SCOPE: Scope;
    fn command(self) -> Result<Command, ApiError>;
}

/// `POST /cards/{id}/earn`, `/redeem` and `/adjust`: one handler, typed by its request body.
pub async fn card_write<R: CardWrite>(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: ApiKeyAuth,
    id: web::Path<String>,
    body: RawJson,
) -> Result<HttpResponse, ApiError> {
    auth.require(R::SCOPE)?;
    let command = parse_json::<R>(&body.0)?.command()?;
    pos_write(&state, &req, &auth, R::SCOPE, &body.0, Target::Card(id.into_inner()), command).await
}

pub async fn reverse(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: ApiKeyAuth,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Pos)?;
    let body = crate::http::json::read_request_body(&req, &mut payload, crate::http::json::JSON_LIMIT).await?;
    // The body is optional here: an empty one means no reason.
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        ReverseRequest::default()
    } else {
        crate::http::json::require_content_type(&req, crate::http::json::is_json)?;
        parse_json::<ReverseRequest>(&body)?
    };
    let transaction_id = id.into_inner();
    let command =
        Command::Reverse { transaction_id: transaction_id.clone(), reason: text(request.reason, "reason", 500)? };
    pos_write(&state, &req, &auth, Scope::Pos, &body, Target::TransactionOf(transaction_id), command).await
}
