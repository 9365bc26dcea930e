//! `POST /api/v1/enrollments`: enrollment for integrations.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{EnrollError, Enrolled, EnrollmentInput, enroll};
use crate::domain::Locale;
use crate::http::errors::ApiError;
use crate::http::json::JsonBody;
use crate::pos::auth::ApiKeyAuth;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthday: Option<String>,
    pub consent: Option<bool>,
    pub referral_code: Option<String>,
    /// `ru` or `en`: the language of the customer's card and messages.
    pub locale: Option<String>,
    /// The program's id; without it the key's program (a key limited to one) or the default.
    pub program: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EnrollmentCreated {
    pub card: CardSummary,
}

#[derive(Debug, Serialize)]
pub struct CardSummary {
    pub serial_number: String,
    pub card_number: String,
    pub balance: i64,
    pub card_url: String,
}

#[derive(Debug, Serialize)]
pub struct AlreadyRegistered {
    pub status: &'static str,
    pub message: &'static str,
    /// How the card link reached the holder: `email` (queued to the address on file) or `none`
    /// (no address, or e-mail is off: staff can show the card). Never the address itself.
    pub sent_to: &'static str,
}

#[tracing::instrument(skip_all)]
/// Needs an API key (either scope): its 201/202 difference tells whether a phone number is
/// registered, which a stranger must not be able to ask for any number. The form at `/` answers
/// both cases with the same page.
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: ApiKeyAuth,
    body: JsonBody<EnrollmentRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(crate::domain::Scope::Pos)?;
    state.rate_limit(crate::rate_limit::ENROLL, &state.client_addr(&req).to_string()).await?;
    let request = body.0;
    let locale = match request.locale.as_deref() {
        None => state.settings.default_locale,
        Some(code) => Locale::parse(code)
            .ok_or_else(|| ApiError::unprocessable("invalid_locale", "locale must be `ru` or `en`", "locale"))?,
    };
    let input = EnrollmentInput {
        first_name: request.first_name,
        last_name: request.last_name,
        phone: request.phone,
        email: request.email,
        birthday: request.birthday,
        consent: request.consent.unwrap_or(false),
        referral_code: request.referral_code,
        locale,
        phone_region: state.settings.default_phone_region,
    };
    let program = crate::pos::requested_program(&state, &auth.key, request.program.as_deref()).await?;
    if program.is_archived() {
        return Err(ApiError::unprocessable(
            "program_archived",
            format!("The program `{}` is archived: it takes no new members.", program.id),
            "program",
        ));
    }
    match enroll(state.store.as_ref(), &program, &input, state.clock.now()).await {
        Ok(Enrolled::Created(card)) => {
            state.metrics.cards_issued.with_label_values(&[&program.id]).inc();
            crate::google::after_enrollment(state.google.as_ref(), &program, &card);
            crate::mail::send_welcome(&state, &card).await;
            let card_url = state.card_url(&card);
            Ok(HttpResponse::Created().insert_header(("Location", card_url.clone())).json(EnrollmentCreated {
                card: CardSummary {
                    serial_number: card.serial.to_string(),
                    card_number: card.card_number.as_str().to_owned(),
                    balance: card.balance,
                    card_url,
                },
            }))
        }
        Ok(Enrolled::AlreadyRegistered(card)) => {
            let answer = match crate::mail::send_card_link(&state, &card).await {
                Some(_) => AlreadyRegistered {
                    status: "already_registered",
                    message: "This phone number already has a card. The link to it has been sent to the e-mail address on file.",
                    sent_to: "email",
                },
                None => AlreadyRegistered {
                    status: "already_registered",
                    message: "This phone number already has a card. It has no e-mail address to send the link to: staff can show the card.",
                    sent_to: "none",
                },
            };
            Ok(HttpResponse::build(StatusCode::ACCEPTED).json(answer))
        }
        Err(EnrollError::Invalid(errors)) => {
            let first = errors.into_iter().next().expect("Invalid always carries an error");
            Err(ApiError::unprocessable(first.code, first.message, first.field))
        }
        Err(EnrollError::Store(e)) => Err(e.into()),
    }
}
