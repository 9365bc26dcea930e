//! "Add to Apple Wallet" on the card page: the badge, and the `.pkpass` download behind it at
//! `/c/{card_key}/card.pkpass` (the card page's secret key is the credential, as for the page).

use actix_web::{HttpRequest, HttpResponse, web};

use super::{pkpass_response, signed_pass};
use crate::domain::CardKey;
use crate::http::pages::{Catalog, locale_of};
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
    let card = match crate::card_page::card_for_key(&state, locale, &key).await {
        Ok(card) => card,
        Err(page) => return page,
    };
    match signed_pass(&state, card).await {
        Ok(pass) => pkpass_response(&pass, Some(FILENAME)),
        // The cause is logged where the error was made.
        Err(_) => state.error_page(locale),
    }
}

/// The badge linking to the card's pass, in the page's language. Drawn after Apple's badge
/// (black, rounded, the Wallet mark, "Add to / Apple Wallet") with original artwork.
pub fn badge_html(card_key: &CardKey, t: &Catalog) -> String {
    // The key is URL-safe by construction and the texts come from our own catalogs; both are
    // escaped anyway so a future catalog entry cannot break the markup.
    let href = html_escape(&pass_path(card_key));
    let label = html_escape(t.text("apple_wallet_label"));
    let line1 = html_escape(t.text("apple_wallet_add"));
    let line2 = html_escape(t.text("apple_wallet_name"));
    format!(
        concat!(
            r#"<a class="wallet-badge wallet-badge-apple" href="{href}" aria-label="{label}" data-testid="add-to-apple-wallet">"#,
            r#"<svg class="wallet-badge-mark" viewBox="0 0 32 28" width="32" height="28" aria-hidden="true" focusable="false">"#,
            r##"<rect x="1" y="1" width="30" height="26" rx="5" fill="#fff"/>"##,
            r##"<rect x="3" y="4" width="26" height="6" rx="2" fill="#3b7ddd"/>"##,
            r##"<rect x="3" y="8" width="26" height="6" rx="2" fill="#41b35d"/>"##,
            r##"<rect x="3" y="12" width="26" height="6" rx="2" fill="#f4b41a"/>"##,
            r##"<rect x="3" y="16" width="26" height="6" rx="2" fill="#e2493b"/>"##,
            r##"<path d="M1 18h10a5 5 0 0 0 10 0h10v4a5 5 0 0 1-5 5H6a5 5 0 0 1-5-5z" fill="#d9d9d9"/>"##,
            r#"</svg>"#,
            r#"<span class="wallet-badge-text"><span class="wallet-badge-small">{line1}</span>"#,
            r#"<span class="wallet-badge-big">{line2}</span></span></a>"#,
        ),
        href = href,
        label = label,
        line1 = line1,
        line2 = line2,
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
