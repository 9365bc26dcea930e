//! "Lost your card?" at `/recover`: a phone number or an e-mail address in, the card link out by
//! e-mail when a card with an address matches. The answer is the same page with the same status
//! whether or not a card exists, and the lookup runs after the answer, so neither the page nor
//! its timing tells who is a customer.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::domain::{Email, Locale, Phone};
use crate::http::pages::{Message, locale_of};
use crate::rate_limit;
use crate::state::AppState;
use crate::store::CardLookup;
use crate::telemetry::error_chain;

/// Cards sharing one e-mail address that get the link at once.
const MAX_CARDS_PER_EMAIL: usize = 5;

#[derive(Serialize)]
struct RecoverPage {
    program_name: String,
    mail_on: bool,
}

async fn program_name(state: &AppState) -> String {
    state.program().await.map(|p| p.name).unwrap_or_default()
}

/// `GET /recover`: the form, or (e-mail off) where to get help.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let locale = locale_of(&req, state.settings.default_locale);
    let page = RecoverPage { program_name: program_name(&state).await, mail_on: state.mail.is_some() };
    state.pages.respond(StatusCode::OK, "recover.html", locale, page)
}

/// `POST /recover`: the same answer for every contact, known or not.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let locale = form
        .get("lang")
        .and_then(|l| Locale::parse(l))
        .unwrap_or_else(|| locale_of(&req, state.settings.default_locale));
    let t = state.pages.catalog(locale);
    if let Err(throttled) = state.limits.check(rate_limit::RECOVER, &state.client_addr(&req).to_string()).await {
        return state.too_many_requests_page(
            locale,
            &throttled,
            format!("/recover?lang={}", locale.code()),
            "recover_title",
        );
    }
    let (title, text) = if state.mail.is_some() {
        let contact = form.get("contact").map(|c| c.trim().to_owned()).unwrap_or_default();
        let state = state.clone();
        tokio::spawn(async move { send_link(&state, &contact).await });
        (t.text("recover_done_title"), t.text("recover_done_text"))
    } else {
        (t.text("recover_title"), t.text("recover_off_text"))
    };
    state.pages.respond(
        StatusCode::OK,
        "message.html",
        locale,
        Message {
            program_name: program_name(&state).await,
            title: title.to_owned(),
            text: text.to_owned(),
            link: Some(format!("/?lang={}", locale.code())),
            link_text: Some(t.text("back_to_form").to_owned()),
        },
    )
}

/// Finds the cards `contact` names and queues their link (nothing when none matches).
async fn send_link(state: &AppState, contact: &str) {
    let program = match state.program().await {
        Ok(program) => program,
        Err(_) => return,
    };
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
