//! Messages for integrations: `POST /api/v1/messages` writes one (admin scope, under an
//! `Idempotency-Key`) and answers its id and audience size; `GET /api/v1/messages/{id}` answers
//! its progress. The console writes them the same way ([`crate::messages::compose`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::ApiKeyAuth;
use super::idempotent::{self, Done, Failure};
use super::{requested_program, resolve_card};
use crate::domain::{LocalizedText, Scope};
use crate::http::errors::ApiError;
use crate::ledger::idempotency::request_hash;
use crate::messages::compose::{ComposeError, compose};
use crate::messages::{Audience, Message, MessageText, Wallet};
use crate::state::AppState;
use crate::store::{SendCounts, StoredResponse};

/// A text in both languages; one given alone serves both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextsRequest {
    #[serde(default)]
    pub ru: Option<String>,
    #[serde(default)]
    pub en: Option<String>,
}

impl TextsRequest {
    fn text(&self) -> LocalizedText {
        let ru = self.ru.clone().unwrap_or_default();
        let en = self.en.clone().unwrap_or_default();
        LocalizedText { ru, en }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceRequest {
    pub kind: String,
    pub tier: Option<String>,
    pub days: Option<u32>,
    pub month: Option<u32>,
    pub wallet: Option<String>,
    /// The card number or barcode value of the one customer.
    pub card: Option<String>,
    /// The RFM segment (`champions`, `at_risk`, …).
    pub segment: Option<String>,
    /// Fields of the answers' audiences (automatic messages' kinds, a customer's serial): read
    /// so that a request echoing an answer is refused for its kind, not as an unreadable body.
    #[serde(rename = "day", default)]
    _day: Option<serde::de::IgnoredAny>,
    #[serde(rename = "date", default)]
    _date: Option<serde::de::IgnoredAny>,
    #[serde(rename = "expiry_days", default)]
    _expiry_days: Option<serde::de::IgnoredAny>,
    #[serde(rename = "time_zone", default)]
    _time_zone: Option<serde::de::IgnoredAny>,
    #[serde(rename = "serial", default)]
    _serial: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub program: Option<String>,
    pub title: Option<TextsRequest>,
    pub text: TextsRequest,
    pub link: Option<String>,
    pub audience: AudienceRequest,
    /// When to send; now when absent or past.
    pub send_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: String,
    pub program: String,
    pub state: &'static str,
    pub audience: Audience,
    pub audience_size: u64,
    pub send_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: SendCounts,
}

impl MessageView {
    pub fn new(message: &Message, progress: SendCounts) -> Self {
        Self {
            id: message.id.clone(),
            program: message.program_id.clone(),
            state: message.state.as_str(),
            audience: message.audience.clone(),
            audience_size: message.audience_size,
            send_at: message.send_at,
            created_at: message.created_at,
            finished_at: message.finished_at,
            progress,
        }
    }
}

fn invalid(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::unprocessable("invalid_message", message, field)
}

/// The stored audience a request names; the one customer is found by card number or barcode.
async fn audience(state: &AppState, auth: &ApiKeyAuth, a: &AudienceRequest) -> Result<Audience, ApiError> {
    let missing = |what: &str| invalid(format!("An audience of kind `{}` needs `{what}`.", a.kind), "audience");
    Ok(match a.kind.as_str() {
        "all" => Audience::All,
        "tier" => Audience::Tier { tier: a.tier.clone().ok_or_else(|| missing("tier"))? },
        "inactive" => Audience::Inactive { days: a.days.ok_or_else(|| missing("days"))? },
        "birthdays" => Audience::Birthdays { month: a.month.ok_or_else(|| missing("month"))? },
        "wallet" => {
            let wallet = a.wallet.as_deref().ok_or_else(|| missing("wallet"))?;
            Audience::Wallet {
                wallet: Wallet::parse(wallet)
                    .ok_or_else(|| invalid("The wallet is `apple` or `google`.", "audience"))?,
            }
        }
        "segment" => Audience::Segment { segment: a.segment.clone().ok_or_else(|| missing("segment"))? },
        "customer" => {
            let id = a.card.as_deref().ok_or_else(|| missing("card"))?;
            let card = resolve_card(state.store.as_ref(), id, &auth.key).await?;
            Audience::Customer { serial: card.serial.as_str().to_owned() }
        }
        other => {
            return Err(invalid(
                format!("`{other}` is not an audience: all, tier, inactive, birthdays, wallet, segment or customer."),
                "audience",
            ));
        }
    })
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: ApiKeyAuth,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Admin)?;
    let key = idempotent::idempotency_key(&req, &auth.key.id)?;
    let request: MessageRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("The request body is invalid: {e}.")))?;
    let hash = request_hash(req.method().as_str(), req.path(), &body);
    let shared = state.clone();
    let (auth, request) = (&auth, &request);
    let work = move |_entry_id: String| async move {
        let state = shared;
        let program = requested_program(&state, &auth.key, request.program.as_deref()).await?;
        let audience = audience(&state, auth, &request.audience).await?;
        let text = MessageText {
            title: request.title.as_ref().map(TextsRequest::text).unwrap_or_default(),
            body: request.text.text(),
            link: request.link.clone(),
        };
        let author = format!("key:{}", auth.key.id);
        let message = match compose(&state, &program, text, audience, request.send_at, author).await {
            Ok(message) => message,
            Err(ComposeError::Store(e)) => return Err(Failure::Transient(e.into())),
            Err(e) => return Err(Failure::Answer(invalid(e.to_string(), e.field()))),
        };
        let view = MessageView::new(&message, SendCounts::default());
        let body = serde_json::to_string(&view).expect("serialises");
        Ok(Done { response: StoredResponse { status: 201, body }, recorded: false })
    };
    idempotent::run(&state, key, hash, work).await
}

pub async fn show(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::Admin)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "message_not_found", "No message has this id.");
    let message = state.store.message(&id).await?.ok_or_else(not_found)?;
    if !auth.key.covers(&message.program_id) {
        return Err(not_found());
    }
    let progress = state.store.send_counts(&message.id).await?;
    Ok(HttpResponse::Ok().json(MessageView::new(&message, progress)))
}
