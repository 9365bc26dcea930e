//! The rules editor of a stamps program (`/admin/programs/{slug}/rules`): the stamps a reward
//! needs, the stamps a purchase earns (per visit or per amount spent), the reward in both
//! languages, its expiry, welcome stamps and the daily limit. Every value is kept as typed, so
//! a refused form comes back as it was sent; problems are shown next to their fields
//! ([`crate::domain::StampRules::field_errors`] decides what is wrong).

use serde::Serialize;

use super::page::FieldErrors;
use crate::domain::amount::{format_amount, parse_amount};
use crate::domain::{Currency, LocalizedText, Program, ProgramRules, StampRules};

/// The stamp rules as typed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StampValues {
    pub stamps_per_reward: String,
    pub stamps_per_purchase: String,
    /// Empty: stamps per purchase, whatever it costs.
    pub amount_per_stamp: String,
    pub reward_ru: String,
    pub reward_en: String,
    pub reward_expiry_days: String,
    pub welcome_stamps: String,
    pub daily_limit: String,
}

/// The form of `program`'s stored stamp rules.
pub fn values_of(program: &Program) -> StampValues {
    let s = &program.rules.stamps;
    let optional = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    StampValues {
        stamps_per_reward: s.stamps_per_reward.to_string(),
        stamps_per_purchase: s.stamps_per_purchase.to_string(),
        amount_per_stamp: s
            .amount_per_stamp
            .map(|a| format_amount(a, program.currency.minor_digits))
            .unwrap_or_default(),
        reward_ru: s.reward.ru.clone(),
        reward_en: s.reward.en.clone(),
        reward_expiry_days: optional(s.reward_expiry_days),
        welcome_stamps: s.welcome_stamps.to_string(),
        daily_limit: optional(s.daily_limit),
    }
}

/// Reads the stamp fields of a posted form.
pub fn read_form(pairs: &[(String, String)]) -> StampValues {
    let mut values = StampValues::default();
    for (key, value) in pairs {
        let slot = match key.as_str() {
            "stamps_per_reward" => &mut values.stamps_per_reward,
            "stamps_per_purchase" => &mut values.stamps_per_purchase,
            "amount_per_stamp" => &mut values.amount_per_stamp,
            "reward_ru" => &mut values.reward_ru,
            "reward_en" => &mut values.reward_en,
            "reward_expiry_days" => &mut values.reward_expiry_days,
            "welcome_stamps" => &mut values.welcome_stamps,
            "daily_limit" => &mut values.daily_limit,
            _ => continue,
        };
        slot.clone_from(value);
    }
    values
}

/// `rules` with the typed stamp rules; problems are (field, catalog key of `[prog.errors]`).
pub fn parse(values: &StampValues, currency: &Currency, rules: &ProgramRules) -> Result<ProgramRules, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut whole = |field: &str, text: &str| -> u32 {
        text.trim().parse::<u32>().unwrap_or_else(|_| {
            errors.add(field, "whole_number");
            0
        })
    };
    let stamps_per_reward = whole("stamps_per_reward", &values.stamps_per_reward);
    let stamps_per_purchase = whole("stamps_per_purchase", &values.stamps_per_purchase);
    let welcome_stamps = whole("welcome_stamps", &values.welcome_stamps);
    let mut optional = |field: &str, text: &str, key: &str| -> Option<u32> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        text.parse::<u32>().map(Some).unwrap_or_else(|_| {
            errors.add(field, key);
            None
        })
    };
    let reward_expiry_days = optional("reward_expiry_days", &values.reward_expiry_days, "days_invalid");
    let daily_limit = optional("daily_limit", &values.daily_limit, "whole_number");
    let amount_per_stamp = match values.amount_per_stamp.trim() {
        "" => None,
        text => match parse_amount(text, currency.minor_digits) {
            Ok(amount) => Some(amount),
            Err(_) => {
                errors.add("amount_per_stamp", "amount_invalid");
                None
            }
        },
    };
    let stamps = StampRules {
        stamps_per_reward,
        stamps_per_purchase,
        amount_per_stamp,
        reward: LocalizedText::new(values.reward_ru.trim(), values.reward_en.trim()),
        reward_expiry_days,
        welcome_stamps,
        daily_limit,
    };
    for (field, problem) in stamps.field_errors() {
        if field == "reward" {
            // Shown under each language that is missing or too long.
            for (lang, text) in [("reward_ru", &stamps.reward.ru), ("reward_en", &stamps.reward.en)] {
                if text.trim().is_empty() || text.chars().count() > 60 {
                    errors.add(lang, problem.code());
                }
            }
        } else {
            // A field that could not be read keeps that problem (the first one added stays).
            errors.add(field, problem.code());
        }
    }
    if errors.is_empty() { Ok(ProgramRules { stamps, ..rules.clone() }) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Mechanic;

    fn stamps_program() -> Program {
        let mut program = Program::new("cafe", "Café", Currency::parse("RUB").unwrap(), chrono::Utc::now());
        program.rules = ProgramRules::stamps(StampRules { amount_per_stamp: Some(30_000), ..StampRules::default() });
        program
    }

    #[test]
    fn the_stored_stamp_rules_read_back_unchanged_through_the_form() {
        let program = stamps_program();
        let values = values_of(&program);
        assert_eq!(values.amount_per_stamp, "300.00");
        let rules = parse(&values, &program.currency, &program.rules).unwrap();
        assert_eq!(rules, program.rules);
        assert_eq!(rules.mechanic, Mechanic::Stamps);
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let program = stamps_program();
        let pairs: Vec<(String, String)> = [
            ("stamps_per_reward", "40"),
            ("stamps_per_purchase", "one"),
            ("amount_per_stamp", "1,2,3"),
            ("reward_ru", ""),
            ("reward_en", "Free coffee"),
            ("reward_expiry_days", "0"),
            ("welcome_stamps", "0"),
            ("daily_limit", "-1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let errors = parse(&read_form(&pairs), &program.currency, &program.rules).unwrap_err();
        let shown = serde_json::to_value(&errors).unwrap();
        for (field, key) in [
            ("stamps_per_reward", "stamps_per_reward_range"),
            ("stamps_per_purchase", "whole_number"),
            ("amount_per_stamp", "amount_invalid"),
            ("reward_ru", "reward_empty"),
            ("reward_expiry_days", "reward_expiry_zero"),
            ("daily_limit", "whole_number"),
        ] {
            assert_eq!(shown[field], key, "{field}");
        }
        assert!(shown.get("reward_en").is_none());
    }
}
