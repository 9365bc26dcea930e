//! Runs a POS write under its idempotency key: the first answer is kept and replayed to every
//! retry with the same key and body; a different body with the same key is refused.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::http::errors::ApiError;
use crate::ledger::LedgerError;
use crate::ledger::idempotency::{Claim, IdempotencyError, claim};
use crate::state::AppState;
use crate::store::{IdempotencyKey, StoreError, StoredResponse};

/// A write's result: the answer, and whether the store already recorded it with the write.
pub struct Done {
    pub response: StoredResponse,
    pub recorded: bool,
}

/// Why a write did not succeed.
pub enum Failure {
    /// A definite answer (404, 409, 422): recorded, so a retry gets the same.
    Answer(ApiError),
    /// The store failed: not recorded; a retry runs the write again (it recognises its entry if
    /// the write did go through).
    Transient(ApiError),
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::CardNotFound => Failure::Answer(ApiError::new(
                StatusCode::NOT_FOUND,
                "card_not_found",
                "No card has this number or code.",
            )),
            LedgerError::TransactionNotFound => Failure::Answer(ApiError::new(
                StatusCode::NOT_FOUND,
                "transaction_not_found",
                "No transaction has this id.",
            )),
            LedgerError::CardBlocked => Failure::Answer(ApiError::new(
                StatusCode::CONFLICT,
                "card_blocked",
                "The card is blocked: it cannot earn or redeem.",
            )),
            LedgerError::Refused { code, message, field } => {
                let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
                Failure::Answer(match field {
                    Some(field) => error.with_field(field),
                    None => error,
                })
            }
            LedgerError::AlreadyReversed { by } => Failure::Answer(ApiError::new(
                StatusCode::CONFLICT,
                "already_reversed",
                format!("The transaction was already reversed by {by}."),
            )),
            LedgerError::Store(e) => Failure::Transient(e.into()),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Transient(e.into())
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() { Failure::Transient(e) } else { Failure::Answer(e) }
    }
}

/// The `Idempotency-Key` header, required on every write (400 without it).
pub fn idempotency_key(req: &HttpRequest, scope: &str) -> Result<IdempotencyKey, ApiError> {
    let value = req.headers().get("idempotency-key").ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "Every write needs an Idempotency-Key header (a unique string per operation).",
        )
    })?;
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(key) => Ok(IdempotencyKey { scope: scope.to_owned(), key: key.to_owned() }),
        None => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "The Idempotency-Key must be 1 to 255 printable ASCII characters.",
        )),
    }
}

/// The HTTP answer of a recorded response (`Idempotent-Replayed: true` on replays).
pub fn respond(response: &StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/json");
    if replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    builder.body(response.body.clone())
}

/// Claims the key and runs `work` (given the reserved entry id), or replays the recorded answer.
pub async fn run<F, Fut>(
    state: &AppState,
    key: IdempotencyKey,
    request_hash: String,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Done, Failure>>,
{
    let (response, replayed) = run_stored(state, key, request_hash, work).await?;
    Ok(respond(&response, replayed))
}

/// [`run`] without HTTP: the answer as recorded (a JSON body and its status), and whether it
/// is the replay of an earlier request with the same key. The staff console's cashier screen
/// goes through here, so its writes are exactly-once like the POS API's.
pub async fn run_stored<F, Fut>(
    state: &AppState,
    key: IdempotencyKey,
    request_hash: String,
    work: F,
) -> Result<(StoredResponse, bool), ApiError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Done, Failure>>,
{
    let claimed = claim(state.store.as_ref(), state.clock.as_ref(), &key, &request_hash).await;
    let entry_id = match claimed {
        Ok(Claim::Replay(response)) => return Ok((response, true)),
        Ok(Claim::Owner { entry_id }) => entry_id,
        Err(IdempotencyError::KeyReused) => {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request.",
                "Idempotency-Key",
            ));
        }
        Err(IdempotencyError::InProgress) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            ));
        }
        Err(IdempotencyError::Store(e)) => return Err(e.into()),
    };
    state.store.reached(crate::store::faults::points::CLAIMED).await;
    match work(entry_id).await {
        Ok(done) => {
            if !done.recorded {
                if let Err(e) = state.store.idempotency_complete(&key, &done.response).await {
                    // The write is done; a retry will find its entry and answer the same.
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "recording an answer failed");
                }
            }
            Ok((done.response, false))
        }
        Err(Failure::Answer(error)) => {
            let response = StoredResponse { status: error.status.as_u16(), body: error.body().to_string() };
            if let Err(e) = state.store.idempotency_complete(&key, &response).await {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "recording an answer failed");
            }
            Ok((response, false))
        }
        Err(Failure::Transient(error)) => {
            if let Err(e) = state.store.idempotency_release(&key).await {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "releasing an idempotency key failed");
            }
            Err(error)
        }
    }
}
