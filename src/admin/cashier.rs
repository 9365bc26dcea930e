//! `/admin/cashier` (every role): the till. One field takes a typed card number, a phone or a
//! scanned code (the Wallet pass's QR or the card page's); the card's holder, tier, balance and
//! what may be redeemed are shown; the purchase is typed in ordinary currency with decimals.
//! Earn, redeem and refund the last purchase run under the idempotency key of the rendered form
//! through the POS API's ledger path, so a double tap, a reload or a retried form applies once.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit;
use super::page::FieldErrors;
use super::session::{Cashier, CsrfForm, StaffSession};
use super::{AdminError, ledger_failed};
use crate::customers::till::{self, TillDone, TillOperation, TillOutcome};
use crate::domain::{Card, DEFAULT_PROGRAM_ID, Locale, Program, SerialNumber, parse_amount};
use crate::ledger::rules::MAX_AMOUNT;
use crate::state::AppState;
use crate::store::CardLookup;

/// The card as the cashier sees it.
#[derive(Serialize)]
struct TillCard {
    serial: String,
    card_number: String,
    name: String,
    tier: String,
    balance: i64,
    status: &'static str,
    /// Points that may pay for a purchase now (no purchase typed: any purchase).
    redeemable: i64,
    /// When a purchase was typed: the points that may pay for it.
    redeemable_for_purchase: Option<i64>,
    min_redemption: i64,
    max_share_percent: u32,
    /// Stamps programs: the card's stamps instead of points.
    stamps: Option<TillStamps>,
}

/// A stamp card at the till.
#[derive(Serialize)]
struct TillStamps {
    /// Stamps of the round in progress, and of a full round.
    stamps: i64,
    per_reward: u32,
    /// One entry per slot: whether it is stamped (the till draws the card).
    slots: Vec<bool>,
    rewards: i64,
    reward: String,
    /// Whether a purchase earns stamps by its amount (the amount field is shown then).
    by_amount: bool,
}

fn till_card(card: &Card, program: &Program, locale: Locale, purchase: Option<i64>) -> TillCard {
    let rules = &program.rules;
    let tier = program.tier_name(&card.tier, locale);
    TillCard {
        serial: card.serial.to_string(),
        card_number: card.card_number.grouped(),
        name: card.display_name(),
        tier,
        balance: card.balance,
        status: card.status.as_str(),
        redeemable: till::redeemable_for(program, card, None),
        redeemable_for_purchase: purchase.map(|p| till::redeemable_for(program, card, Some(p))),
        min_redemption: rules.min_redemption,
        max_share_percent: rules.max_redeem_percent,
        stamps: rules.stamp_rules().map(|s| TillStamps {
            stamps: card.balance,
            per_reward: s.stamps_per_reward,
            slots: (0..i64::from(s.stamps_per_reward)).map(|i| i < card.balance).collect(),
            rewards: card.rewards,
            reward: s.reward.get(locale).to_owned(),
            by_amount: s.amount_per_stamp.is_some(),
        }),
    }
}

/// What was done, as the answer shows it.
#[derive(Serialize)]
struct Outcome {
    operation: &'static str,
    /// Positive: credited; negative: spent.
    points: i64,
    balance: i64,
    bonus: i64,
    replayed: bool,
    /// Stamps programs: rewards waiting after, and issued or taken back by this write.
    rewards: Option<i64>,
    rewards_issued: i64,
    rewards_taken_back: i64,
}

#[derive(Serialize, Default)]
struct Values {
    card: String,
    amount: String,
    points: String,
}

#[derive(Serialize)]
struct CashierPage {
    card: Option<TillCard>,
    values: Values,
    errors: FieldErrors,
    /// A refusal of the ledger in words, shown next to the field it is about.
    refusal: Option<String>,
    result: Option<Outcome>,
    /// The idempotency key of this rendered form.
    form_id: String,
    currency: String,
    not_found: bool,
    /// The program the till works in, and the programs to choose from (more than one open).
    program: String,
    programs: Vec<ProgramChoice>,
}

#[derive(Serialize)]
struct ProgramChoice {
    id: String,
    name: String,
}

/// The open programs a till can switch between (none listed when there is only one).
async fn program_choices(state: &AppState) -> Result<Vec<ProgramChoice>, AdminError> {
    let open: Vec<ProgramChoice> = state
        .store
        .programs()
        .await?
        .into_iter()
        .filter(|p| !p.is_archived())
        .map(|p| ProgramChoice { id: p.id, name: p.name })
        .collect();
    Ok(if open.len() > 1 { open } else { Vec::new() })
}

#[derive(Debug, Default, Deserialize)]
pub struct FindQuery {
    #[serde(default)]
    card: String,
    #[serde(default)]
    amount: String,
    /// The program whose phones are searched (`default` when absent).
    #[serde(default)]
    program: String,
}

/// `GET /admin/cashier[?card=…&amount=…]`: the field, and the card once one is found.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Cashier>,
    req: HttpRequest,
    query: web::Query<FindQuery>,
) -> Result<HttpResponse, AdminError> {
    let program = super::chosen_program(&state, &query.program).await?;
    let locale = super::page::locale(&req);
    let mut errors = FieldErrors::default();
    let purchase = if query.amount.trim().is_empty() {
        None
    } else {
        match parse_amount(&query.amount, program.currency.minor_digits) {
            Ok(amount) => Some(amount),
            Err(_) => {
                errors.add("amount", "amount_invalid");
                None
            }
        }
    };
    let found = if query.card.trim().is_empty() {
        None
    } else {
        crate::customers::find_for_till(
            state.store.as_ref(),
            &program.id,
            &query.card,
            state.settings.default_phone_region,
        )
        .await?
    };
    // A scanned or typed card of another program: the till switches to that program.
    let program = match &found {
        Some(card) if card.program_id != program.id => super::chosen_program(&state, &card.program_id).await?,
        _ => program,
    };
    if let Some(card) = &found {
        let named = match query.program.trim() {
            "" => DEFAULT_PROGRAM_ID,
            id => id,
        };
        if query.card.trim() != card.card_number.as_str() || named != program.id {
            // A phone, a scanned code or a card page address (whose key is a secret) leaves the
            // address bar and the history: the page is the card number's.
            let mut location = format!("/admin/cashier?card={}", card.card_number.as_str());
            if program.id != DEFAULT_PROGRAM_ID {
                location.push_str(&format!("&program={}", program.id));
            }
            if !query.amount.trim().is_empty() {
                location.push_str("&amount=");
                location.extend(url::form_urlencoded::byte_serialize(query.amount.as_bytes()));
            }
            return Ok(HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, location)).finish());
        }
    }
    let not_found = !query.card.trim().is_empty() && found.is_none();
    if not_found {
        errors.add("card", "card_not_found");
    }
    let page = CashierPage {
        card: found.as_ref().map(|c| till_card(c, &program, locale, purchase)),
        values: Values { card: query.card.clone(), amount: query.amount.clone(), points: String::new() },
        errors,
        refusal: None,
        result: None,
        form_id: till::new_form_id(),
        currency: program.currency.code.clone(),
        not_found,
        programs: program_choices(&state).await?,
        program: program.id.clone(),
    };
    let status = if not_found { StatusCode::NOT_FOUND } else { StatusCode::OK };
    Ok(session.page_with(&req, status, "cashier.html", page))
}

#[derive(Debug, Deserialize)]
pub struct TillForm {
    /// The card's serial, from the card shown.
    serial: String,
    form_id: String,
    op: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    points: String,
}

/// `POST /admin/cashier`: earn, redeem or refund on the card shown.
pub async fn submit(
    state: web::Data<AppState>,
    session: StaffSession<Cashier>,
    req: HttpRequest,
    form: CsrfForm<TillForm>,
) -> Result<HttpResponse, AdminError> {
    let locale = super::page::locale(&req);
    let card = match SerialNumber::parse(&form.serial) {
        Ok(serial) => state.store.find_card(CardLookup::Serial(&serial)).await?,
        Err(_) => None,
    };
    let Some(card) = card.filter(|c| !c.is_deleted()) else {
        let program = state.program().await.map_err(ledger_failed)?;
        let mut errors = FieldErrors::default();
        errors.add("card", "card_not_found");
        let page = CashierPage {
            card: None,
            values: Values::default(),
            errors,
            refusal: None,
            result: None,
            form_id: till::new_form_id(),
            currency: program.currency.code.clone(),
            not_found: true,
            programs: program_choices(&state).await?,
            program: program.id.clone(),
        };
        return Ok(session.page_with(&req, StatusCode::NOT_FOUND, "cashier.html", page));
    };
    // The card's own program: its rules and currency.
    let program = state.program_by_id(&card.program_id).await.map_err(ledger_failed)?;
    let Some(key) = till::form_key(&session.staff.id, &form.form_id) else {
        return Ok(super::bad_form(&req, &session.viewer()));
    };
    let digits = program.currency.minor_digits;
    let mut errors = FieldErrors::default();
    let amount = if form.amount.trim().is_empty() {
        None
    } else {
        match parse_amount(&form.amount, digits) {
            Ok(a) if (1..=MAX_AMOUNT).contains(&a) => Some(a),
            _ => {
                errors.add("amount", "amount_invalid");
                None
            }
        }
    };
    let operation = match form.op.as_str() {
        "earn" => match amount {
            Some(purchase_amount) => Some(TillOperation::Earn { purchase_amount }),
            None => {
                errors.add("amount", "amount_invalid");
                None
            }
        },
        // Without a purchase and without points, "redeem" would spend the whole balance: ask.
        "redeem" if form.points.trim().is_empty() && amount.is_none() => {
            if form.amount.trim().is_empty() {
                errors.add("points", "amount_or_points");
            }
            None
        }
        "redeem" => {
            let points = if form.points.trim().is_empty() {
                Some(till::redeemable_for(&program, &card, amount))
            } else {
                form.points.trim().parse::<i64>().ok().filter(|p| *p > 0)
            };
            match points {
                Some(p) if p > 0 => Some(TillOperation::Redeem { points: p, purchase_amount: amount }),
                Some(_) => {
                    errors.add("points", "nothing_to_redeem");
                    None
                }
                None => {
                    errors.add("points", "points_invalid");
                    None
                }
            }
        }
        "refund" => Some(TillOperation::RefundLast),
        "stamp" => Some(TillOperation::Stamp { purchase_amount: amount }),
        "redeem_reward" => Some(TillOperation::RedeemReward),
        _ => return Ok(super::bad_form(&req, &session.viewer())),
    };
    let values = Values { card: card.card_number.grouped(), amount: form.amount.clone(), points: form.points.clone() };
    let Some(operation) = operation.filter(|_| errors.is_empty()) else {
        // Nothing was sent to the ledger: the same form (and key) may be sent again once fixed.
        let page = CashierPage {
            card: Some(till_card(&card, &program, locale, amount)),
            values,
            errors,
            refusal: None,
            result: None,
            form_id: form.form_id.clone(),
            currency: program.currency.code.clone(),
            not_found: false,
            programs: program_choices(&state).await?,
            program: program.id.clone(),
        };
        return Ok(session.page_with(&req, StatusCode::UNPROCESSABLE_ENTITY, "cashier.html", page));
    };
    let name = operation.name();
    let outcome = till::write(&state, &session.staff.id, key, &card, operation.clone()).await.map_err(ledger_failed)?;
    let after = state.store.find_card(CardLookup::Serial(&card.serial)).await?.unwrap_or_else(|| card.clone());
    match outcome {
        TillOutcome::Done(done) => {
            if !done.replayed {
                audit::record(
                    &state,
                    &session,
                    name,
                    Some(card.serial.as_str()),
                    json!({
                        "card_number": card.card_number.as_str(),
                        "transaction_id": done.transaction_id,
                        "purchase_amount": amount,
                        "points": done.points,
                        "balance_before": card.balance,
                        "balance_after": done.balance,
                        "rewards_after": done.rewards,
                    }),
                )
                .await;
            }
            let page = CashierPage {
                card: Some(till_card(&after, &program, locale, None)),
                values: Values { card: card.card_number.grouped(), ..Values::default() },
                errors,
                refusal: None,
                result: Some(result_of(name, &done)),
                form_id: till::new_form_id(),
                currency: program.currency.code.clone(),
                not_found: false,
                programs: program_choices(&state).await?,
                program: program.id.clone(),
            };
            Ok(session.page(&req, "cashier.html", page))
        }
        TillOutcome::Refused { code, message: _ } => {
            let field = match code.as_str() {
                "card_blocked" | "card_not_found" => "card",
                "invalid_amount" => "amount",
                "transaction_not_found"
                | "already_reversed"
                | "not_reversible"
                | "form_used"
                | "in_progress"
                | "no_reward"
                | "daily_stamp_limit"
                | "wrong_mechanic" => "op",
                "below_stamp_amount" => "amount",
                _ => "points",
            };
            errors.add(field, &code);
            // The refusal is recorded under this form's key: a corrected try needs a new form.
            let page = CashierPage {
                card: Some(till_card(&after, &program, locale, amount)),
                values,
                errors,
                refusal: Some(code),
                result: None,
                form_id: till::new_form_id(),
                currency: program.currency.code.clone(),
                not_found: false,
                programs: program_choices(&state).await?,
                program: program.id.clone(),
            };
            Ok(session.page_with(&req, StatusCode::UNPROCESSABLE_ENTITY, "cashier.html", page))
        }
    }
}

fn result_of(operation: &'static str, done: &TillDone) -> Outcome {
    Outcome {
        operation,
        points: done.points,
        balance: done.balance,
        bonus: done.welcome_bonus.unwrap_or(0) + done.referral_bonus.unwrap_or(0),
        replayed: done.replayed,
        rewards: done.rewards,
        rewards_issued: done.rewards_issued.unwrap_or(0),
        rewards_taken_back: done.rewards_taken_back.unwrap_or(0),
    }
}

/// The cashier screen's routes, inside `/admin`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/cashier")
            .route(web::get().to(show))
            .route(web::post().to(submit))
            .default_service(crate::http::not_allowed("GET, HEAD, POST")),
    );
}
