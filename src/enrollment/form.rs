//! The registration form at `/`: works without JavaScript; errors are shown next to their
//! fields and what the customer typed is kept.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::{EnrollError, Enrolled, EnrollmentInput, enroll};
use crate::domain::{Locale, ReferralCode};
use crate::http::json::read_request_body;
use crate::http::pages::locale_of;
use crate::rate_limit;
use crate::state::AppState;

/// Form posts are small; anything bigger is not a person typing.
const FORM_LIMIT: usize = 16 * 1024;
const FIELDS: [&str; 6] = ["first_name", "last_name", "phone", "email", "birthday", "referral_code"];

#[derive(Serialize, Default)]
struct FormPage {
    program_name: String,
    consent_text: String,
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// Whether e-mail is on: only then does the form say the link is sent by e-mail.
    mail_on: bool,
}

async fn form_page(
    state: &AppState,
    locale: Locale,
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    status: StatusCode,
) -> HttpResponse {
    let program_name = match state.program().await {
        Ok(p) => p.name,
        Err(_) => return state.error_page(locale),
    };
    let consent_text =
        state.settings.consent_text.clone().unwrap_or_else(|| state.pages.catalog(locale).text("consent").to_owned());
    state.pages.respond(
        status,
        "register.html",
        locale,
        FormPage { program_name, consent_text, values, errors, mail_on: state.mail.is_some() },
    )
}

/// `GET /`; `?ref=CODE` (a customer's invitation link) fills in the invitation code.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let locale = locale_of(&req, state.settings.default_locale);
    let mut values = HashMap::new();
    let invited_by = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("ref").and_then(|code| ReferralCode::parse(code).ok()));
    if let Some(code) = invited_by {
        values.insert("referral_code".to_owned(), code.as_str().to_owned());
    }
    form_page(&state, locale, values, HashMap::new(), StatusCode::OK).await
}

pub async fn submit(state: web::Data<AppState>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let query_locale = locale_of(&req, state.settings.default_locale);
    let is_form = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if let Err(throttled) = state.limits.check(rate_limit::ENROLL, &state.client_addr(&req).to_string()).await {
        return state.too_many_requests_page(
            query_locale,
            &throttled,
            format!("/?lang={}", query_locale.code()),
            "back_to_form",
        );
    }
    if !is_form {
        return HttpResponse::UnsupportedMediaType()
            .content_type("text/plain; charset=utf-8")
            .body("Send the form as application/x-www-form-urlencoded.");
    }
    let body = match read_request_body(&req, &mut payload, FORM_LIMIT).await {
        Ok(body) => body,
        Err(e) => return HttpResponse::build(e.status).content_type("text/plain; charset=utf-8").body(e.message),
    };
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(pairs) => pairs,
        Err(_) => {
            return HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body("The form could not be read.");
        }
    };
    let mut values: HashMap<String, String> = HashMap::new();
    for (key, value) in pairs {
        if FIELDS.contains(&key.as_str()) || key == "consent" || key == "lang" {
            values.insert(key, value);
        }
    }
    let locale = values.get("lang").and_then(|l| Locale::parse(l)).unwrap_or(query_locale);
    let field = |name: &str| values.get(name).cloned();
    let input = EnrollmentInput {
        first_name: field("first_name"),
        last_name: field("last_name"),
        phone: field("phone"),
        email: field("email"),
        birthday: field("birthday"),
        consent: values.get("consent").is_some_and(|v| !v.is_empty()),
        referral_code: field("referral_code"),
        locale,
        phone_region: state.settings.default_phone_region,
    };
    // The form decoder replaces bytes that are not UTF-8 (`%FF%FE`) with U+FFFD; such a field
    // is refused next to itself rather than stored garbled.
    let garbled: HashMap<String, String> = FIELDS
        .iter()
        .filter(|name| values.get(**name).is_some_and(|v| v.contains('\u{FFFD}')))
        .map(|name| ((*name).to_owned(), state.pages.catalog(locale).error("invalid_encoding")))
        .collect();
    if !garbled.is_empty() {
        values.remove("lang");
        return form_page(&state, locale, values, garbled, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let program = match state.program().await {
        Ok(p) => p,
        Err(_) => return state.error_page(locale),
    };
    match enroll(state.store.as_ref(), &program, &input, state.clock.now()).await {
        Ok(Enrolled::Created(card)) => {
            crate::google::after_enrollment(state.google.as_ref(), &program, &card);
            crate::mail::send_welcome(&state, &card).await;
            HttpResponse::SeeOther()
                .insert_header(("Location", format!("/c/{}?lang={}", card.card_key.expose(), locale.code())))
                .finish()
        }
        Ok(Enrolled::AlreadyRegistered(card)) => {
            let sent_to = crate::mail::send_card_link(&state, &card).await;
            let t = state.pages.catalog(locale);
            let text = match sent_to {
                Some(masked) => t.text("already_text_sent").replace("{address}", &masked),
                None => t.text("already_text_ask_staff").to_owned(),
            };
            state.pages.respond(
                StatusCode::OK,
                "message.html",
                locale,
                crate::http::pages::Message {
                    program_name: program.name,
                    title: t.text("already_title").to_owned(),
                    text,
                    link: None,
                    link_text: None,
                },
            )
        }
        Err(EnrollError::Invalid(errors)) => {
            let catalog = state.pages.catalog(locale);
            let errors = errors.into_iter().map(|e| (e.field.to_owned(), catalog.error(e.code))).collect();
            values.remove("lang");
            form_page(&state, locale, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(EnrollError::Store(e)) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "enrollment through the form failed");
            state.error_page(locale)
        }
    }
}
