//! The card page's "Add to Google Wallet" button and the route behind it.
//!
//! The button points to `/c/{card_key}/google`, which makes sure the card's object exists with
//! its current state (insert, or patch on 409) and answers `303` to the save link. Doing this on
//! the click rather than when the page is drawn keeps the card page fast and independent of
//! Google, signs a JWT only for customers who want one, and creates the object lazily when
//! Google was unreachable at enrollment.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, LOCATION, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::{Card, Locale};
use crate::http::pages::{Message, locale_of};
use crate::state::AppState;

/// The button for the card page, or `None` when Google Wallet is off. Styled after Google's
/// black "Add to Google Wallet" badge.
pub fn button(state: &AppState, card: &Card, locale: Locale) -> Option<String> {
    state.google.as_ref()?;
    let label = escape(state.pages.catalog(locale).text("add_to_google_wallet"));
    let href = format!("/c/{}/google", card.card_key.expose());
    Some(format!(
        concat!(
            r#"<a class="wallet-button wallet-google" data-testid="add-to-google-wallet" href="{href}" rel="nofollow noreferrer" "#,
            r#"style="display:inline-flex;align-items:center;gap:10px;height:48px;padding:0 22px;border-radius:24px;"#,
            r#"background:#000;color:#fff;font:500 16px/1 Roboto,Arial,sans-serif;text-decoration:none">"#,
            r#"<svg width="22" height="18" viewBox="0 0 22 18" aria-hidden="true">"#,
            r##"<rect y="0" width="22" height="6" rx="2" fill="#4285f4"/><rect y="4" width="22" height="6" rx="2" fill="#34a853"/>"##,
            r##"<rect y="8" width="22" height="6" rx="2" fill="#fbbc04"/><rect y="12" width="22" height="6" rx="2" fill="#ea4335"/>"##,
            r#"</svg><span>{label}</span></a>"#
        ),
        href = escape(&href),
        label = label,
    ))
}

/// `GET /c/{card_key}/google`: upsert the object, then `303` to the save link.
pub async fn add_to_google_wallet(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> HttpResponse {
    let locale = locale_of(&req, state.settings.default_locale);
    let Some(google) = state.google.clone() else {
        return crate::card_page::not_found(&state, locale).await;
    };
    let card = match crate::card_page::card_for_key(&state, locale, &key).await {
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
            title: t.text("google_unavailable_title").to_owned(),
            text: t.text("google_unavailable_text").to_owned(),
            link: Some(back),
            link_text: Some(t.text("back_to_card").to_owned()),
        },
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
