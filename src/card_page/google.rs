//! "Add to Google Wallet" behind the card page.
//!
//! The button points to `/c/{card_key}/google`, which makes sure the card's object exists with
//! its current state (insert, or patch on 409) and answers `303` to the save link. Doing this on
//! the click rather than when the page is drawn keeps the card page fast and independent of
//! Google, signs a JWT only for customers who want one, and creates the object lazily when
//! Google was unreachable at enrollment.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, LOCATION, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::{CardKey, Locale};
use crate::http::pages::{Message, locale_of};
use crate::state::AppState;

/// The card page's link to the route below, for a card of `card_key`.
pub fn add_path(card_key: &CardKey) -> String {
    format!("/c/{}/google", card_key.expose())
}

/// `GET /c/{card_key}/google`: upsert the object, then `303` to the save link.
pub async fn add_to_google_wallet(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> HttpResponse {
    let locale = locale_of(&req, state.settings.default_locale);
    let Some(google) = state.google.clone() else {
        return super::not_found(&state, locale).await;
    };
    let card = match super::card_for_key(&state, locale, &key).await {
        Ok(card) => card,
        Err(page) => return page,
    };
    let Ok(program) = state.program_by_id(&card.program_id).await else {
        return state.error_page(locale);
    };
    let link = match google.upsert_object(&program, &card).await {
        Ok(()) => google.save_link(&card),
        Err(e) => Err(e),
    };
    match link {
        Ok(link) => {
            let Ok(location) = HeaderValue::from_str(&link) else { return state.error_page(locale) };
            let mut response = HttpResponse::SeeOther().finish();
            let headers = response.headers_mut();
            headers.insert(LOCATION, location);
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        Err(e) => {
            tracing::warn!(serial = %card.serial, error = %e, "Add to Google Wallet: the object could not be written");
            let back = format!("/c/{}?lang={}", card.card_key.expose(), locale.code());
            unavailable(&state, locale, &program.name, back)
        }
    }
}

fn unavailable(state: &AppState, locale: Locale, program_name: &str, back: String) -> HttpResponse {
    let t = state.pages.catalog(locale);
    state.pages.respond(
        StatusCode::SERVICE_UNAVAILABLE,
        "message.html",
        locale,
        Message {
            program_name: program_name.to_owned(),
            brand: None,
            title: t.text("google_unavailable_title").to_owned(),
            text: t.text("google_unavailable_text").to_owned(),
            link: Some(back),
            link_text: Some(t.text("back_to_card").to_owned()),
        },
    )
}
