//! "Add to Apple Wallet" behind the card page: the `.pkpass` download at
//! `/c/{card_key}/card.pkpass` (the card page's secret key is the credential, as for the page).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::apple::{pkpass_response, signed_pass};
use crate::domain::CardKey;
use crate::http::pages::locale_of;
use crate::state::AppState;

/// The file name a browser saves the pass under.
pub const FILENAME: &str = "loyalty-card.pkpass";

/// The download's path for a card key.
pub fn pass_path(card_key: &CardKey) -> String {
    format!("/c/{}/card.pkpass", card_key.expose())
}

/// `GET /c/{card_key}/card.pkpass`.
#[tracing::instrument(name = "apple.download", skip_all)]
pub async fn pkpass(state: web::Data<AppState>, req: HttpRequest, key: web::Path<String>) -> HttpResponse {
    let locale = locale_of(&req, state.settings.default_locale);
    let card = match super::card_for_key(&state, locale, &key).await {
        Ok(card) => card,
        Err(page) => return page,
    };
    match signed_pass(&state, card).await {
        Ok(pass) => pkpass_response(&pass, Some(FILENAME)),
        // The cause is logged where the error was made.
        Err(_) => state.error_page(locale),
    }
}
