//! The POS API (SPEC §4.4) under `/api/v1`: card lookup, earn, redeem, adjust, reverse and the
//! transaction list for API keys, and signed webhooks for POS systems that push.

pub mod auth;
pub mod cards;
pub mod idempotent;
pub mod messages;
pub mod webhook;
pub mod writes;

use actix_web::http::StatusCode;
use actix_web::web;

use crate::domain::{ApiKey, BarcodeValue, Card, CardNumber, DEFAULT_PROGRAM_ID, Program};
use crate::http::errors::ApiError;
use crate::state::AppState;
use crate::store::{CardLookup, Store};

pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::http::get_only;
    use crate::http::not_allowed;
    let post_only =
        |path: &str, route: actix_web::Route| web::resource(path).route(route).default_service(not_allowed("POST"));
    cfg.service(get_only("/cards", web::get().to(cards::find_by_phone)))
        .service(get_only("/cards/{id}", web::get().to(cards::lookup)))
        .service(get_only("/cards/{id}/transactions", web::get().to(cards::transactions)))
        .service(post_only("/cards/{id}/earn", web::post().to(writes::card_write::<writes::EarnRequest>)))
        .service(post_only("/cards/{id}/redeem", web::post().to(writes::card_write::<writes::RedeemRequest>)))
        .service(post_only("/cards/{id}/adjust", web::post().to(writes::card_write::<writes::AdjustRequest>)))
        .service(post_only("/cards/{id}/stamps", web::post().to(writes::card_write::<writes::StampRequest>)))
        .service(post_only(
            "/cards/{id}/rewards/redeem",
            web::post().to(writes::card_write::<writes::RedeemRewardRequest>),
        ))
        .service(post_only("/cards/{id}/block", web::post().to(cards::block)))
        .service(post_only("/cards/{id}/unblock", web::post().to(cards::unblock)))
        .service(post_only("/transactions/{id}/reverse", web::post().to(writes::reverse)))
        .service(post_only("/webhooks/pos", web::post().to(webhook::receive)))
        .service(post_only("/messages", web::post().to(messages::create)))
        .service(get_only("/messages/{id}", web::get().to(messages::show)));
}

pub fn card_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "card_not_found", "No card has this number or code.")
}

/// The program a request names (a `program` field or parameter); without one, the key's own
/// program when it is limited to one, else the default program. A key limited to another program
/// is refused (403), an unknown program is a 422 on the `program` field.
pub async fn requested_program(state: &AppState, key: &ApiKey, named: Option<&str>) -> Result<Program, ApiError> {
    let id = named.or(key.program_id.as_deref()).unwrap_or(DEFAULT_PROGRAM_ID);
    if !key.covers(id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "program_not_allowed",
            "This API key is limited to another program.",
        ));
    }
    state
        .find_program(id)
        .await?
        .ok_or_else(|| ApiError::unprocessable("unknown_program", format!("There is no program `{id}`."), "program"))
}

/// What a till has to name a card: the scanned barcode value, or the card number typed with
/// or without spaces.
pub enum CardId {
    Number(CardNumber),
    Barcode(BarcodeValue),
}

impl CardId {
    /// `None` when `id` can be neither.
    pub fn parse(id: &str) -> Option<Self> {
        let id = id.trim();
        let looks_like_number = !id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
        if looks_like_number {
            CardNumber::parse(id).ok().map(Self::Number)
        } else {
            BarcodeValue::parse(id).ok().map(Self::Barcode)
        }
    }

    pub fn lookup(&self) -> CardLookup<'_> {
        match self {
            Self::Number(number) => CardLookup::Number(number),
            Self::Barcode(barcode) => CardLookup::Barcode(barcode.as_str()),
        }
    }
}

/// Finds a card by what a till has (see [`CardId`]), among the cards `key` may work with (a
/// key limited to one program sees other programs' cards as not existing).
pub async fn resolve_card(store: &dyn Store, id: &str, key: &ApiKey) -> Result<Card, ApiError> {
    let found = match CardId::parse(id) {
        Some(id) => store.find_card(id.lookup()).await?,
        None => None,
    };
    found.filter(|card| key.covers(&card.program_id)).ok_or_else(card_not_found)
}
