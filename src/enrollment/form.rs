//! The registration form: `/` for the default program and `/p/{slug}` for every program, in the
//! program's brand. Works without JavaScript; errors are shown next to their fields and what the
//! customer typed is kept. An archived program's form says registration is closed.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::{EnrollError, Enrolled, EnrollmentInput, enroll};
use crate::domain::{DEFAULT_PROGRAM_ID, Locale, Program, ReferralCode};
use crate::http::json::read_request_body;
use crate::http::pages::{Message, locale_of};
use crate::programs::brand::Brand;
use crate::rate_limit;
use crate::state::AppState;

/// Form posts are small; anything bigger is not a person typing.
const FORM_LIMIT: usize = 16 * 1024;
const FIELDS: [&str; 6] = ["first_name", "last_name", "phone", "email", "birthday", "referral_code"];

#[derive(Serialize)]
struct FormPage {
    program_name: String,
    brand: Brand,
    consent_text: String,
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// Whether e-mail is on: only then does the form say the link is sent by e-mail.
    mail_on: bool,
}

fn form_page(
    state: &AppState,
    program: &Program,
    locale: Locale,
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    status: StatusCode,
) -> HttpResponse {
    let consent_text =
        state.settings.consent_text.clone().unwrap_or_else(|| state.pages.catalog(locale).text("consent").to_owned());
    let page = FormPage {
        program_name: program.name.clone(),
        brand: Brand::of(program),
        consent_text,
        values,
        errors,
        mail_on: state.mail.is_some(),
    };
    state.pages.respond(status, "register.html", locale, page)
}

/// The program whose form `slug` is, open for registration; or the page to answer instead: not
/// found for an unknown program, "registration is closed" (410) for an archived one.
pub(super) async fn open_program(state: &AppState, slug: &str, locale: Locale) -> Result<Program, HttpResponse> {
    if Program::check_slug(slug).is_err() {
        return Err(state.not_found_page(locale, "program_not_found_title", "program_not_found_text").await);
    }
    let program = match state.find_program(slug).await {
        Ok(Some(program)) => program,
        Ok(None) => {
            return Err(state.not_found_page(locale, "program_not_found_title", "program_not_found_text").await);
        }
        Err(_) => return Err(state.error_page(locale)),
    };
    if program.is_archived() {
        let t = state.pages.catalog(locale);
        return Err(state.pages.respond(
            StatusCode::GONE,
            "message.html",
            locale,
            Message {
                program_name: program.name.clone(),
                brand: Some(Brand::of(&program)),
                title: t.text("registration_closed_title").to_owned(),
                text: t.text("registration_closed_text").to_owned(),
                link: None,
                link_text: None,
            },
        ));
    }
    Ok(program)
}

/// `GET /`: the default program's form.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    show_form(&state, &req, DEFAULT_PROGRAM_ID).await
}

/// `GET /p/{slug}`: a program's form.
pub async fn show_program(state: web::Data<AppState>, req: HttpRequest, slug: web::Path<String>) -> HttpResponse {
    show_form(&state, &req, &slug).await
}

/// `POST /`.
pub async fn submit(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    submit_form(&state, &req, payload, DEFAULT_PROGRAM_ID).await
}

/// `POST /p/{slug}`.
pub async fn submit_program(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    slug: web::Path<String>,
) -> HttpResponse {
    submit_form(&state, &req, payload, &slug).await
}

/// The form; `?ref=CODE` (a customer's invitation link) fills in the invitation code.
async fn show_form(state: &AppState, req: &HttpRequest, slug: &str) -> HttpResponse {
    let locale = locale_of(req, state.settings.default_locale);
    let program = match open_program(state, slug, locale).await {
        Ok(program) => program,
        Err(page) => return page,
    };
    // A visitor whose browser prefers neither language sees the program's own.
    let locale = locale_of(req, program.locale_or(state.settings.default_locale));
    let mut values = HashMap::new();
    let invited_by = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("ref").and_then(|code| ReferralCode::parse(code).ok()));
    if let Some(code) = invited_by {
        values.insert("referral_code".to_owned(), code.as_str().to_owned());
    }
    form_page(state, &program, locale, values, HashMap::new(), StatusCode::OK)
}

async fn submit_form(state: &AppState, req: &HttpRequest, mut payload: web::Payload, slug: &str) -> HttpResponse {
    let query_locale = locale_of(req, state.settings.default_locale);
    let program = match open_program(state, slug, query_locale).await {
        Ok(program) => program,
        Err(page) => return page,
    };
    let query_locale = locale_of(req, program.locale_or(state.settings.default_locale));
    let is_form = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if let Err(throttled) = state.limits.check(rate_limit::ENROLL, &state.client_addr(req).to_string()).await {
        return state.too_many_requests_page(
            query_locale,
            &throttled,
            Brand::of(&program).form_link(query_locale.code()),
            "back_to_form",
        );
    }
    if !is_form {
        return HttpResponse::UnsupportedMediaType()
            .content_type("text/plain; charset=utf-8")
            .body("Send the form as application/x-www-form-urlencoded.");
    }
    let body = match read_request_body(req, &mut payload, FORM_LIMIT).await {
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
        return form_page(state, &program, locale, values, garbled, StatusCode::UNPROCESSABLE_ENTITY);
    }
    match enroll(state.store.as_ref(), &program, &input, state.clock.now()).await {
        Ok(Enrolled::Created(card)) => {
            state.metrics.cards_issued.with_label_values(&[&program.id]).inc();
            crate::google::after_enrollment(state.google.as_ref(), &program, &card);
            crate::mail::send_welcome(state, &card).await;
            HttpResponse::SeeOther()
                .insert_header(("Location", format!("/c/{}?lang={}", card.card_key.expose(), locale.code())))
                .finish()
        }
        Ok(Enrolled::AlreadyRegistered(card)) => {
            let sent_to = crate::mail::send_card_link(state, &card).await;
            let t = state.pages.catalog(locale);
            let text = match sent_to {
                Some(masked) => t.text("already_text_sent").replace("{address}", &masked),
                None => t.text("already_text_ask_staff").to_owned(),
            };
            state.pages.respond(
                StatusCode::OK,
                "message.html",
                locale,
                Message {
                    brand: Some(Brand::of(&program)),
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
            form_page(state, &program, locale, values, errors, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(EnrollError::Store(e)) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "enrollment through the form failed");
            state.error_page(locale)
        }
    }
}
