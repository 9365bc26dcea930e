//! `/admin/programs/{slug}/rules` (SPEC §4.8): the rules editor. Owners edit the tiers (id,
//! names in both languages, threshold, cashback with decimals), the welcome bonus, redemption
//! limits, expiry and the referral bonus; managers see them read-only.
//!
//! Without JavaScript, "Add a tier" and each row's "Remove" are submit buttons that redraw the
//! form with the values as typed (nothing is saved until "Save"). Every problem is shown next to
//! its field ([`ProgramRules::field_errors`] decides what is wrong) and nothing is saved then.
//! A saved change applies to later transactions only: it is just the stored program, and
//! nothing recomputes the ledger. The audit log keeps the rules before and after.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::AdminError;
use super::audit::{self, actions};
use super::page::FieldErrors;
use super::programs::{find, just_saved, next_version, see_other};
use super::programs_stamps::{self, StampValues};
use super::session::{CsrfForm, Manager, Owner, RoleRequirement, StaffSession};
use crate::domain::amount::{format_amount, parse_amount};
use crate::domain::{Currency, Program, ProgramRules, Role, TierRule};
use crate::state::AppState;

/// The most tier rows a form may carry.
pub const MAX_TIERS: usize = 20;

/// One tier row as typed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierRow {
    pub id: String,
    pub name_ru: String,
    pub name_en: String,
    pub threshold: String,
    pub cashback: String,
}

impl TierRow {
    fn is_blank(&self) -> bool {
        [&self.id, &self.name_ru, &self.name_en, &self.threshold, &self.cashback].iter().all(|v| v.trim().is_empty())
    }
}

/// The rules form as typed: every value a string, so a refused form comes back as it was sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RulesValues {
    pub tiers: Vec<TierRow>,
    pub welcome_bonus: String,
    /// `registration` or `first_purchase`.
    pub welcome_at: String,
    pub min_redemption: String,
    pub max_redeem_percent: String,
    pub expiry_days: String,
    pub referral_bonus: String,
    pub referral_min_purchase: String,
    pub version: i64,
}

/// Basis points as a percentage without trailing zeros: 750 → `7.5`.
pub fn percent(bp: u32) -> String {
    let text = format_amount(i64::from(bp), 2);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The form for `program`'s stored rules.
pub fn values_of(program: &Program) -> RulesValues {
    let r = &program.rules;
    RulesValues {
        tiers: r
            .tiers
            .iter()
            .map(|t| TierRow {
                id: t.id.clone(),
                name_ru: t.name_ru.clone(),
                name_en: t.name_en.clone(),
                threshold: t.threshold.to_string(),
                cashback: percent(t.cashback_bp),
            })
            .collect(),
        welcome_bonus: r.welcome_bonus.to_string(),
        welcome_at: if r.welcome_at_first_purchase { "first_purchase" } else { "registration" }.to_owned(),
        min_redemption: r.min_redemption.to_string(),
        max_redeem_percent: r.max_redeem_percent.to_string(),
        expiry_days: r.expiry_days.map(|d| d.to_string()).unwrap_or_default(),
        referral_bonus: r.referral_bonus.to_string(),
        referral_min_purchase: format_amount(r.referral_min_purchase, program.currency.minor_digits),
        version: program.version,
    }
}

/// What the submit button asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Save,
    AddRow,
    RemoveRow(usize),
}

/// Reads the posted form (`tier_{i}_{field}` for the rows).
pub fn read_form(pairs: &[(String, String)]) -> (RulesValues, Intent) {
    let mut values = RulesValues::default();
    let mut intent = Intent::Save;
    for (key, value) in pairs {
        if let Some(rest) = key.strip_prefix("tier_") {
            let Some((index, field)) = rest.split_once('_') else { continue };
            let Some(index) = index.parse::<usize>().ok().filter(|i| *i < MAX_TIERS) else { continue };
            if values.tiers.len() <= index {
                values.tiers.resize(index + 1, TierRow::default());
            }
            let row = &mut values.tiers[index];
            let slot = match field {
                "id" => &mut row.id,
                "name_ru" => &mut row.name_ru,
                "name_en" => &mut row.name_en,
                "threshold" => &mut row.threshold,
                "cashback" => &mut row.cashback,
                _ => continue,
            };
            slot.clone_from(value);
            continue;
        }
        let slot = match key.as_str() {
            "welcome_bonus" => &mut values.welcome_bonus,
            "welcome_at" => &mut values.welcome_at,
            "min_redemption" => &mut values.min_redemption,
            "max_redeem_percent" => &mut values.max_redeem_percent,
            "expiry_days" => &mut values.expiry_days,
            "referral_bonus" => &mut values.referral_bonus,
            "referral_min_purchase" => &mut values.referral_min_purchase,
            "version" => {
                values.version = value.trim().parse().unwrap_or(-1);
                continue;
            }
            "add_row" => {
                intent = Intent::AddRow;
                continue;
            }
            "remove_row" => {
                if let Ok(i) = value.parse() {
                    intent = Intent::RemoveRow(i);
                }
                continue;
            }
            _ => continue,
        };
        slot.clone_from(value);
    }
    (values, intent)
}

/// Turns the typed values into rules; problems are (field, catalog key of `[prog.errors]`).
/// Blank tier rows are dropped first, so tier `i` of the rules is row `i` of the form shown back.
pub fn parse_rules(values: &mut RulesValues, currency: &Currency) -> Result<ProgramRules, FieldErrors> {
    values.tiers.retain(|row| !row.is_blank());
    let mut errors = FieldErrors::default();
    let mut whole = |field: &str, text: &str| -> i64 {
        text.trim().parse::<i64>().unwrap_or_else(|_| {
            errors.add(field, "whole_number");
            0
        })
    };
    let mut tiers = Vec::new();
    let mut thresholds = Vec::new();
    for (i, row) in values.tiers.iter().enumerate() {
        thresholds.push(whole(&format!("tier_{i}_threshold"), &row.threshold));
    }
    let welcome_bonus = whole("welcome_bonus", &values.welcome_bonus);
    let min_redemption = whole("min_redemption", &values.min_redemption);
    let referral_bonus = whole("referral_bonus", &values.referral_bonus);
    for (i, (row, threshold)) in values.tiers.iter().zip(thresholds).enumerate() {
        let cashback_bp = parse_amount(&row.cashback, 2).ok().and_then(|bp| u32::try_from(bp).ok());
        if cashback_bp.is_none() {
            errors.add(&format!("tier_{i}_cashback"), "percent_invalid");
        }
        tiers.push(TierRule {
            id: row.id.trim().to_owned(),
            name_ru: row.name_ru.trim().to_owned(),
            name_en: row.name_en.trim().to_owned(),
            threshold,
            cashback_bp: cashback_bp.unwrap_or(0),
        });
    }
    let max_redeem_percent = values.max_redeem_percent.trim().parse::<u32>().unwrap_or_else(|_| {
        errors.add("max_redeem_percent", "percent_whole");
        0
    });
    let expiry = values.expiry_days.trim();
    let expiry_days = if expiry.is_empty() {
        None
    } else {
        expiry.parse::<u32>().map(Some).unwrap_or_else(|_| {
            errors.add("expiry_days", "days_invalid");
            None
        })
    };
    let referral_min_purchase =
        parse_amount(&values.referral_min_purchase, currency.minor_digits).unwrap_or_else(|_| {
            errors.add("referral_min_purchase", "amount_invalid");
            0
        });
    let welcome_at_first_purchase = match values.welcome_at.as_str() {
        "first_purchase" => true,
        "registration" => false,
        _ => {
            errors.add("welcome_at", "welcome_at_invalid");
            false
        }
    };
    let rules = ProgramRules {
        tiers,
        welcome_bonus,
        min_redemption,
        max_redeem_percent,
        expiry_days,
        referral_bonus,
        referral_min_purchase,
        welcome_at_first_purchase,
        ..ProgramRules::default()
    };
    for problem in rules.field_errors() {
        errors.add(&problem.field, problem.problem.code());
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

#[derive(Serialize)]
struct RulesPage {
    id: String,
    name: String,
    currency: String,
    can_edit: bool,
    values: RulesValues,
    errors: FieldErrors,
    problem: Option<&'static str>,
    saved: bool,
    max_tiers: usize,
    /// A stamps program's rules (its form replaces the tiers and points rules).
    stamps: Option<StampValues>,
}

#[allow(clippy::too_many_arguments)]
fn render<R: RoleRequirement>(
    session: &StaffSession<R>,
    req: &HttpRequest,
    status: StatusCode,
    program: &Program,
    values: RulesValues,
    errors: FieldErrors,
    problem: Option<&'static str>,
    stamps: Option<StampValues>,
) -> HttpResponse {
    let page = RulesPage {
        stamps,
        id: program.id.clone(),
        name: program.name.clone(),
        currency: program.currency.code.clone(),
        can_edit: session.staff.role >= Role::Owner,
        values,
        errors,
        problem,
        saved: just_saved(req),
        max_tiers: MAX_TIERS,
    };
    session.page_with(req, status, "program_rules.html", page)
}

/// `GET /admin/programs/{slug}/rules`.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let program = match find(&state, &req, &session, &slug).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let stamps = stamp_values(&program);
    Ok(render(&session, &req, StatusCode::OK, &program, values_of(&program), FieldErrors::default(), None, stamps))
}

/// The stamp rules form of a stamps program.
fn stamp_values(program: &Program) -> Option<StampValues> {
    program.rules.stamp_rules().map(|_| programs_stamps::values_of(program))
}

/// `POST /admin/programs/{slug}/rules`: adds or removes a row (redrawn, not saved), or saves the
/// rules if they are valid and nobody saved the program in between.
pub async fn save(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    slug: web::Path<String>,
    form: CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, AdminError> {
    let program = match find(&state, &req, &session, &slug).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let (mut values, intent) = read_form(&form);
    let stamps = program.rules.stamp_rules().map(|_| programs_stamps::read_form(&form));
    match intent {
        Intent::AddRow => {
            if values.tiers.len() < MAX_TIERS {
                values.tiers.push(TierRow::default());
            }
            return Ok(render(&session, &req, StatusCode::OK, &program, values, FieldErrors::default(), None, stamps));
        }
        Intent::RemoveRow(i) => {
            if i < values.tiers.len() {
                values.tiers.remove(i);
            }
            return Ok(render(&session, &req, StatusCode::OK, &program, values, FieldErrors::default(), None, stamps));
        }
        Intent::Save => {}
    }
    let parsed = match &stamps {
        Some(typed) => programs_stamps::parse(typed, &program.currency, &program.rules),
        None => parse_rules(&mut values, &program.currency),
    };
    let rules = match parsed {
        Ok(rules) => rules,
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(render(&session, &req, status, &program, values, errors, None, stamps));
        }
    };
    let conflict = |current: &Program| {
        let (values, stamps) = (values_of(current), stamp_values(current));
        render(&session, &req, StatusCode::CONFLICT, current, values, FieldErrors::default(), Some("conflict"), stamps)
    };
    if values.version != program.version {
        return Ok(conflict(&program));
    }
    if rules == program.rules {
        return Ok(saved(&program));
    }
    let next = next_version(&program, state.clock.now(), |p| p.rules = rules);
    if !state.save_program(&next, program.version).await? {
        let current = state.store.program(&program.id).await?.unwrap_or(program);
        return Ok(conflict(&current));
    }
    let details = json!({ "before": program.rules, "after": next.rules });
    audit::record(&state, &session, actions::PROGRAM_RULES_CHANGED, Some(&program.id), details).await;
    let names = |p: &Program| -> Vec<(String, String, String)> {
        p.rules.tiers.iter().map(|t| (t.id.clone(), t.name_ru.clone(), t.name_en.clone())).collect()
    };
    let shown = |p: &Program| (p.rules.stamps.stamps_per_reward, p.rules.stamps.reward.clone());
    if names(&next) != names(&program) || (stamps.is_some() && shown(&next) != shown(&program)) {
        // Tier names (and a stamp card's round and reward) are on the passes: the cards follow
        // them. Other rules apply to later transactions only, so they change no card.
        crate::programs::refresh_cards(&state, &next).await?;
    }
    Ok(saved(&program))
}

fn saved(program: &Program) -> HttpResponse {
    see_other(format!("/admin/programs/{}/rules?saved=1", program.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_stored_rules_read_back_unchanged_through_the_form() {
        let program = Program::new("cafe", "Café", Currency::parse("RUB").unwrap(), chrono::Utc::now());
        let mut values = values_of(&program);
        assert_eq!(values.tiers[0].cashback, "5");
        assert_eq!(values.referral_min_purchase, "100.00");
        assert_eq!(parse_rules(&mut values, &program.currency).unwrap(), program.rules);
    }

    #[test]
    fn cashback_takes_decimals_and_blank_rows_are_dropped() {
        let (mut values, intent) = read_form(&pairs(&[
            ("tier_0_id", "base"),
            ("tier_0_name_ru", "База"),
            ("tier_0_name_en", "Base"),
            ("tier_0_threshold", "0"),
            ("tier_0_cashback", "7,5"),
            ("tier_1_id", ""),
            ("tier_2_id", "vip"),
            ("tier_2_name_ru", "VIP"),
            ("tier_2_name_en", "VIP"),
            ("tier_2_threshold", "1000"),
            ("tier_2_cashback", "12.25"),
            ("welcome_bonus", "0"),
            ("welcome_at", "first_purchase"),
            ("min_redemption", "50"),
            ("max_redeem_percent", "30"),
            ("expiry_days", ""),
            ("referral_bonus", "0"),
            ("referral_min_purchase", "500"),
            ("version", "3"),
        ]));
        assert_eq!((intent, values.version), (Intent::Save, 3));
        let rules = parse_rules(&mut values, &Currency::parse("RUB").unwrap()).unwrap();
        let tiers: Vec<_> = rules.tiers.iter().map(|t| (t.id.as_str(), t.cashback_bp)).collect();
        assert_eq!(tiers, [("base", 750), ("vip", 1225)]);
        assert_eq!((rules.referral_min_purchase, rules.expiry_days), (50_000, None));
        assert!(rules.welcome_at_first_purchase);
    }

    #[test]
    fn unreadable_numbers_are_named_by_field() {
        let (mut values, _) = read_form(&pairs(&[
            ("tier_0_id", "base"),
            ("tier_0_name_ru", "База"),
            ("tier_0_name_en", "Base"),
            ("tier_0_threshold", "zero"),
            ("tier_0_cashback", "5.125"),
            ("welcome_at", "whenever"),
            ("max_redeem_percent", "50.5"),
            ("expiry_days", "-3"),
            ("referral_min_purchase", "1,2,3"),
            ("add_row", ""),
        ]));
        let errors = parse_rules(&mut values, &Currency::parse("RUB").unwrap()).unwrap_err();
        let shown = serde_json::to_value(&errors).unwrap();
        for (field, key) in [
            ("tier_0_threshold", "whole_number"),
            ("tier_0_cashback", "percent_invalid"),
            ("welcome_at", "welcome_at_invalid"),
            ("max_redeem_percent", "percent_whole"),
            ("expiry_days", "days_invalid"),
            ("referral_min_purchase", "amount_invalid"),
            ("welcome_bonus", "whole_number"),
        ] {
            assert_eq!(shown[field], key, "{field}");
        }
    }
}
