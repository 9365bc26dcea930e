//! Enrollment (SPEC §4.1): a customer registers and gets a card, once per phone number.
//!
//! The same rules serve the JSON API ([`api`]) and the HTML form ([`form`]).

pub mod api;
pub mod form;
pub mod phones;
pub mod recover;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{
    Card, Customer, Email, Locale, PersonName, PersonNameError, Phone, PhoneError, PhoneRegion, Program, ReferralCode,
    SerialNumber,
};
use crate::store::{CardLookup, Store, StoreError, UniqueKey};

/// What a customer typed, before any checking. Absent and blank are the same.
#[derive(Debug, Default, Clone)]
pub struct EnrollmentInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birthday: Option<String>,
    pub consent: bool,
    pub referral_code: Option<String>,
    pub locale: Locale,
    /// The country a phone typed without its country code is read in.
    pub phone_region: PhoneRegion,
}

/// A field that failed its check: `code` is stable (and keys the form's translated message),
/// `message` is English for API clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { field, code, message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub enum Enrolled {
    /// A new card.
    Created(Card),
    /// The phone already has a card: it is not shown to whoever typed the phone; the link goes
    /// to the contact on file instead.
    AlreadyRegistered(Card),
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The checked customer and the referral code they brought, or every field error at once (the
/// form shows them all; the API reports the first).
pub fn validate(
    input: &EnrollmentInput,
    now: DateTime<Utc>,
) -> Result<(Customer, Option<ReferralCode>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = |field: &'static str, value: &str, errors: &mut Vec<FieldError>| match PersonName::parse(value) {
        Ok(name) => Some(name),
        Err(e) => {
            let code = match e {
                PersonNameError::Empty => "required",
                PersonNameError::Hidden(_) => "invalid_characters",
                PersonNameError::TooLong | PersonNameError::InvalidCharacter => "invalid_name",
            };
            errors.push(FieldError::new(field, code, e.to_string()));
            None
        }
    };
    let first_name = match present(&input.first_name) {
        Some(v) => name("first_name", v, &mut errors),
        None => {
            errors.push(FieldError::new("first_name", "required", "first_name is required"));
            None
        }
    };
    let last_name = present(&input.last_name).and_then(|v| name("last_name", v, &mut errors));
    let phone = match present(&input.phone) {
        None => {
            errors.push(FieldError::new("phone", "required", "phone is required"));
            None
        }
        Some(v) => match Phone::parse(v, input.phone_region) {
            Ok(phone) => Some(phone),
            Err(e) => {
                let code = phone_error_code(&e);
                errors.push(FieldError::new("phone", code, e.to_string()));
                None
            }
        },
    };
    let email = present(&input.email).and_then(|v| match Email::parse(v) {
        Ok(email) => Some(email),
        Err(e) => {
            errors.push(FieldError::new("email", "invalid_email", e.to_string()));
            None
        }
    });
    let birthday = present(&input.birthday).and_then(|v| {
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a valid date");
        match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            Ok(date) if date >= earliest && date <= now.date_naive() => Some(date),
            _ => {
                errors.push(FieldError::new(
                    "birthday",
                    "invalid_birthday",
                    "birthday must be a past date as YYYY-MM-DD",
                ));
                None
            }
        }
    });
    if !input.consent {
        errors.push(FieldError::new("consent", "consent_required", "consent must be true to join the program"));
    }
    let referral = present(&input.referral_code).and_then(|v| match ReferralCode::parse(v) {
        Ok(code) => Some(code),
        Err(e) => {
            errors.push(FieldError::new("referral_code", "invalid_referral_code", e.to_string()));
            None
        }
    });
    match (first_name, phone) {
        (Some(first_name), Some(phone)) if errors.is_empty() => Ok((
            Customer { first_name, last_name, phone, email, birthday, locale: input.locale, consent_at: now },
            referral,
        )),
        _ => Err(errors),
    }
}

/// The stable code of a phone mistake (it keys the form's translated message).
pub fn phone_error_code(e: &PhoneError) -> &'static str {
    match e {
        PhoneError::UnknownCountryCode => "phone_country_code",
        PhoneError::WrongLength => "phone_length",
        PhoneError::NotValid => "phone_not_valid",
        PhoneError::Empty | PhoneError::InvalidCharacter => "invalid_phone",
    }
}

/// Registers a customer in `program`: a new card with the welcome bonus, or — when the phone is
/// known — the existing card, never a second one.
#[tracing::instrument(skip_all, fields(program = %program.id))]
pub async fn enroll(
    store: &dyn Store,
    program: &Program,
    input: &EnrollmentInput,
    now: DateTime<Utc>,
) -> Result<Enrolled, EnrollError> {
    let (customer, referral) = validate(input, now).map_err(EnrollError::Invalid)?;
    if let Some(existing) =
        store.find_card(CardLookup::Phone { program_id: &program.id, phone: &customer.phone }).await?
    {
        tracing::info!(serial = %existing.serial, "the phone already has a card");
        return Ok(Enrolled::AlreadyRegistered(existing));
    }
    let referred_by: Option<SerialNumber> = match &referral {
        None => None,
        Some(code) => match store.find_card(CardLookup::ReferralCode { program_id: &program.id, code }).await? {
            Some(referrer) => Some(referrer.serial),
            None => {
                return Err(EnrollError::Invalid(vec![FieldError::new(
                    "referral_code",
                    "unknown_referral_code",
                    "no card has this referral code",
                )]));
            }
        },
    };
    // Random identifiers can collide (astronomically rarely for keys, a little more for the
    // 8-symbol referral code); a collision is retried with fresh ones.
    for _ in 0..5 {
        let (card, welcome) = Card::enroll(program, customer.clone(), referred_by.clone(), now);
        match store.insert_card(&card, &welcome).await {
            Ok(()) => {
                tracing::info!(serial = %card.serial, "card issued");
                return Ok(Enrolled::Created(card));
            }
            Err(StoreError::Duplicate(UniqueKey::Phone)) => {
                // Registered concurrently with the same phone: the other request won.
                let existing = store
                    .find_card(CardLookup::Phone { program_id: &program.id, phone: &customer.phone })
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("a duplicate phone with no card".into()))?;
                tracing::info!(serial = %existing.serial, "the phone was registered concurrently");
                return Ok(Enrolled::AlreadyRegistered(existing));
            }
            Err(StoreError::Duplicate(key)) => tracing::warn!(?key, "identifier collision, retrying with fresh ones"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Corrupt("could not generate unique card identifiers in 5 attempts".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> EnrollmentInput {
        EnrollmentInput {
            first_name: Some("Anna".into()),
            phone: Some("+7 912 345 67 89".into()),
            consent: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_enrollment_is_valid() {
        let (customer, referral) = validate(&input(), Utc::now()).unwrap();
        assert_eq!(customer.phone.as_str(), "+79123456789");
        assert!(referral.is_none());
    }

    #[test]
    fn every_bad_field_is_reported_with_its_code() {
        let bad = EnrollmentInput {
            first_name: Some("  ".into()),
            last_name: Some("<b>".into()),
            phone: Some("+8 912 345 67 89".into()),
            email: Some("nope".into()),
            birthday: Some("2999-01-01".into()),
            consent: false,
            referral_code: Some("!".into()),
            locale: Locale::En,
            phone_region: PhoneRegion::RU,
        };
        let errors = validate(&bad, Utc::now()).unwrap_err();
        let got: Vec<_> = errors.iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(
            got,
            [
                ("first_name", "required"),
                ("last_name", "invalid_name"),
                ("phone", "phone_country_code"),
                ("email", "invalid_email"),
                ("birthday", "invalid_birthday"),
                ("consent", "consent_required"),
                ("referral_code", "invalid_referral_code"),
            ]
        );
    }
}
