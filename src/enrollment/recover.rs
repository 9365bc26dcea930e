//! "Lost your card?" at `/recover` (`/p/{slug}/recover` for a program other than the default): a phone number or an e-mail address in, the card link out by
//! e-mail when a card with an address matches. The answer is the same page with the same status
//! whether or not a card exists, and the lookup runs after the answer, so neither the page nor
//! its timing tells who is a customer.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::domain::{DEFAULT_PROGRAM_ID, Email, Locale, Phone, Program};
use crate::http::pages::{Message, locale_of};
use crate::programs::brand::{Brand, recover_path};
use crate::rate_limit;
use crate::state::AppState;
use crate::store::CardLookup;
use crate::telemetry::error_chain;

/// Cards sharing one e-mail address that get the link at once.
const MAX_CARDS_PER_EMAIL: usize = 5;

#[derive(Serialize)]
struct RecoverPage {
    program_name: String,
    brand: Brand,
    /// Where the form posts.
    action: String,
    mail_on: bool,
}

/// `GET /recover`: the form, or (e-mail off) where to get help.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    show_for(&state, &req, DEFAULT_PROGRAM_ID).await
}

/// `GET /p/{slug}/recover`.
pub async fn show_program(state: web::Data<AppState>, req: HttpRequest, slug: web::Path<String>) -> HttpResponse {
    show_for(&state, &req, &slug).await
}

/// `POST /recover`.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    submit_for(state, &req, &form, DEFAULT_PROGRAM_ID).await
}

/// `POST /p/{slug}/recover`.
pub async fn submit_program(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
    slug: web::Path<String>,
) -> HttpResponse {
    submit_for(state, &req, &form, &slug).await
}

async fn show_for(state: &AppState, req: &HttpRequest, slug: &str) -> HttpResponse {
    let locale = locale_of(req, state.settings.default_locale);
    let program = match super::form::open_program(state, slug, locale).await {
        Ok(program) => program,
        Err(page) => return page,
    };
    let locale = locale_of(req, program.locale_or(state.settings.default_locale));
    let page = RecoverPage {
        program_name: program.name.clone(),
        brand: Brand::of(&program),
        action: recover_path(&program.id),
        mail_on: state.mail.is_some(),
    };
    state.pages.respond(StatusCode::OK, "recover.html", locale, page)
}

/// The same answer for every contact, known or not.
async fn submit_for(
    state: web::Data<AppState>,
    req: &HttpRequest,
    form: &HashMap<String, String>,
    slug: &str,
) -> HttpResponse {
    let locale = form
        .get("lang")
        .and_then(|l| Locale::parse(l))
        .unwrap_or_else(|| locale_of(req, state.settings.default_locale));
    let program = match super::form::open_program(&state, slug, locale).await {
        Ok(program) => program,
        Err(page) => return page,
    };
    let t = state.pages.catalog(locale);
    if let Err(throttled) = state.limits.check(rate_limit::RECOVER, &state.client_addr(req).to_string()).await {
        return state.too_many_requests_page(
            locale,
            &throttled,
            format!("{}?lang={}", recover_path(&program.id), locale.code()),
            "recover_title",
        );
    }
    let (title, text) = if state.mail.is_some() {
        let contact = form.get("contact").map(|c| c.trim().to_owned()).unwrap_or_default();
        let (state, program) = (state.clone(), program.clone());
        tokio::spawn(async move { send_link(&state, &program, &contact).await });
        (t.text("recover_done_title"), t.text("recover_done_text"))
    } else {
        (t.text("recover_title"), t.text("recover_off_text"))
    };
    state.pages.respond(
        StatusCode::OK,
        "message.html",
        locale,
        Message {
            program_name: program.name.clone(),
            brand: Some(Brand::of(&program)),
            title: title.to_owned(),
            text: text.to_owned(),
            link: Some(Brand::of(&program).form_link(locale.code())),
            link_text: Some(t.text("back_to_form").to_owned()),
        },
    )
}

/// Finds the cards `contact` names and queues their link (nothing when none matches).
async fn send_link(state: &AppState, program: &Program, contact: &str) {
    let cards = if contact.contains('@') {
        match Email::parse(contact) {
            Ok(email) => state.store.cards_by_email(&program.id, &email, MAX_CARDS_PER_EMAIL).await,
            Err(_) => Ok(Vec::new()),
        }
    } else {
        match Phone::parse(contact, state.settings.default_phone_region) {
            Ok(phone) => state
                .store
                .find_card(CardLookup::Phone { program_id: &program.id, phone: &phone })
                .await
                .map(|c| c.into_iter().collect()),
            Err(_) => Ok(Vec::new()),
        }
    };
    match cards {
        Ok(cards) => {
            for card in cards.iter().filter(|c| c.holder.is_some()) {
                crate::mail::send_card_link(state, card).await;
            }
        }
        Err(e) => tracing::error!(error = %error_chain(&e), "looking up a card to recover failed"),
    }
}
