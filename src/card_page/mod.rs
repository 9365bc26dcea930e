//! The card page `/c/{card_key}` and what hangs off it: the customer's card with its till QR
//! code, the wallet buttons and the routes behind them (`apple`: the `.pkpass` download,
//! `google`: the save link), the customer's invitation code, and on wide screens a QR code of
//! the page itself so a desktop visitor can continue on the phone.
//!
//! The card page's secret key in the address is the credential for all of them.

pub mod apple;
pub mod google;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Serialize;

use crate::domain::{Card, CardKey, Locale, ReferralCode};
use crate::http::get_only;
use crate::http::pages::locale_of;
use crate::programs::brand::Brand;
use crate::state::AppState;
use crate::store::CardLookup;

/// The routes of the card page and its wallet buttons.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/c/{card_key}", web::get().to(show)))
        .service(get_only("/c/{card_key}/card.pkpass", web::get().to(apple::pkpass)))
        .service(get_only("/c/{card_key}/google", web::get().to(google::add_to_google_wallet)));
}

#[derive(Serialize)]
struct CardPage {
    program_name: String,
    brand: Brand,
    member_name: String,
    card_number: String,
    balance: i64,
    tier_name: String,
    background_color: String,
    foreground_color: String,
    label_color: String,
    /// The till's QR code: the pass's barcode, for a customer without a wallet.
    till_qr_svg: String,
    /// The page's own address as a QR code, shown on wide screens.
    page_qr_svg: String,
    apple_pass_url: String,
    /// `None` when Google Wallet is off.
    google_url: Option<String>,
    referral_code: String,
    referral_link: String,
    /// A stamp card: the round's size, the rewards waiting and what a reward is.
    stamps: Option<StampsShown>,
}

#[derive(Serialize)]
struct StampsShown {
    per_reward: u32,
    rewards: i64,
    /// "10 stamps: Free coffee".
    reward_line: String,
}

/// The address of the program's registration form that fills in `code` as the invitation code
/// (invitation codes are per program).
pub fn referral_link(state: &AppState, program_id: &str, code: &ReferralCode) -> String {
    state.settings.url(&format!("{}?ref={}", crate::programs::brand::form_path(program_id), code.as_str()))
}

/// An inline SVG QR code of `text`.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    let image = code.render::<svg::Color<'_>>().min_dimensions(180, 180).quiet_zone(true).build();
    // Inline SVG must not carry an XML declaration.
    Some(
        image
            .trim_start_matches(|c| c != '<')
            .split_once("?>")
            .map(|(_, rest)| rest.trim_start().to_owned())
            .unwrap_or(image),
    )
}

/// The card whose page key is `raw_key`, or the page to answer instead: "not found" for a key
/// that is malformed or unknown, the error page when the store fails. Shared by the card page
/// and the wallet buttons behind it.
pub async fn card_for_key(state: &AppState, locale: Locale, raw_key: &str) -> Result<Card, HttpResponse> {
    let Ok(key) = CardKey::parse(raw_key) else {
        return Err(not_found(state, locale).await);
    };
    match state.store.find_card(CardLookup::Key(key.expose())).await {
        // A deleted customer's card page is gone with the customer.
        Ok(Some(card)) if key.matches(card.card_key.expose()) && !card.is_deleted() => Ok(card),
        Ok(_) => Err(not_found(state, locale).await),
        Err(e) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "loading a card by its page key failed");
            Err(state.error_page(locale))
        }
    }
}

pub async fn show(state: web::Data<AppState>, req: HttpRequest, key: web::Path<String>) -> HttpResponse {
    let locale = locale_of(&req, state.settings.default_locale);
    let card = match card_for_key(&state, locale, &key).await {
        Ok(card) => card,
        Err(page) => return page,
    };
    let program = match state.program_by_id(&card.program_id).await {
        Ok(p) => p,
        Err(_) => return state.error_page(locale),
    };
    let tier_name = program.tier_name(&card.tier, locale);
    let page_url = state.card_url(&card);
    let ctx = CardPage {
        program_name: program.name.clone(),
        brand: Brand::of(&program),
        member_name: card.display_name(),
        card_number: card.card_number.grouped(),
        balance: card.balance,
        tier_name,
        background_color: program.design.background_color.clone(),
        foreground_color: program.design.foreground_color.clone(),
        label_color: program.design.label_color.clone(),
        till_qr_svg: qr_svg(card.barcode.as_str()).unwrap_or_default(),
        page_qr_svg: qr_svg(&page_url).unwrap_or_default(),
        apple_pass_url: apple::pass_path(&card.card_key),
        google_url: state.google.as_ref().map(|_| google::add_path(&card.card_key)),
        referral_code: card.referral_code.as_str().to_owned(),
        referral_link: referral_link(&state, &program.id, &card.referral_code),
        stamps: program.rules.stamp_rules().map(|s| StampsShown {
            per_reward: s.stamps_per_reward,
            rewards: card.rewards,
            reward_line: match locale {
                Locale::Ru => {
                    let n = s.stamps_per_reward;
                    format!("{n} {} — {}", crate::apple::stamps::stamps_ru(n), s.reward.get(locale))
                }
                Locale::En => format!("{} stamps: {}", s.stamps_per_reward, s.reward.get(locale)),
            },
        }),
    };
    let mut response = state.pages.respond(StatusCode::OK, "card.html", locale, ctx);
    // The page holds the card's secrets: never cache it anywhere shared.
    response
        .headers_mut()
        .insert(actix_web::http::header::CACHE_CONTROL, actix_web::http::header::HeaderValue::from_static("no-store"));
    response
}

/// The "card not found" page (also for downloads of an unknown card).
pub(crate) async fn not_found(state: &AppState, locale: Locale) -> HttpResponse {
    state.not_found_page(locale, "not_found_title", "not_found_text").await
}
