//! A stamps program's pass: the template's `pass.json` with its points fields turned into stamp
//! fields. The stamps themselves are drawn on the strip image (`programs::stamp_strips`); the
//! fields say "4 / 10" with a lock-screen message when a stamp arrives, the rewards waiting,
//! and on the back what the reward is.
//!
//! Texts are written in the holder's language rather than as `pass.strings` keys, so a custom
//! template made for points cards needs no new strings to serve stamp cards.

use serde_json::{Value, json};

use crate::domain::{Card, EntryKind, Locale, Program, StampRules};

/// A text in the holder's language.
fn t(locale: Locale, en: &str, ru: &str) -> String {
    if locale == Locale::Ru { ru.to_owned() } else { en.to_owned() }
}

/// Rewrites `pass` (a rendered store card) for `card` of the stamps program `program`.
pub fn adapt(pass: &mut Value, card: &Card, program: &Program, rules: &StampRules) {
    let locale = card.locale();
    let labels = &program.design.labels;
    let stamps_label = match labels.balance.get(locale).trim() {
        "" => t(locale, "Stamps", "Штампы"),
        custom => custom.to_owned(),
    };
    let rewards_label = t(locale, "Rewards", "Подарки");
    let reward = rules.reward.get(locale);
    let Some(store_card) = pass.get_mut("storeCard").and_then(Value::as_object_mut) else { return };
    store_card.insert(
        "headerFields".into(),
        json!([{
            "key": "stamps",
            "label": stamps_label,
            "value": format!("{} / {}", card.balance, rules.stamps_per_reward),
            "changeMessage": format!("{stamps_label}: %@"),
        }]),
    );
    // The strip shows the stamps; a primary field would be drawn over it.
    store_card.remove("primaryFields");
    let mut secondary = vec![json!({
        "key": "rewards",
        "label": rewards_label,
        "value": card.rewards,
        "changeMessage": t(locale, "Rewards waiting: %@", "Подарков ждёт: %@"),
    })];
    if let Some(fields) = store_card.get("secondaryFields").and_then(Value::as_array) {
        secondary.extend(fields.iter().filter(|f| f["key"] != "tier").take(2).cloned());
    }
    store_card.insert("secondaryFields".into(), Value::Array(secondary));
    let n = rules.stamps_per_reward;
    let how = t(
        locale,
        &format!(
            "Show this card's QR code at the till with every purchase: each purchase earns a stamp, and {n} stamps earn {reward}."
        ),
        &format!(
            "Показывайте QR-код карты на кассе при каждой покупке: за покупку ставится штамп, {n} {} — {reward}.",
            stamps_ru(n)
        ),
    );
    let mut back = vec![json!({
        "key": "reward",
        "label": t(locale, "Reward", "Подарок"),
        "value": t(locale, &format!("{n} stamps: {reward}"), &format!("{n} {}: {reward}", stamps_ru(n))),
    })];
    if let Some(fields) = store_card.get("backFields").and_then(Value::as_array) {
        for field in fields {
            let mut field = field.clone();
            match field["key"].as_str() {
                // The template's points texts, unless the design wrote its own.
                Some("how_to_earn") if field["value"] == "HOW_TO_EARN_TEXT" => {
                    field["label"] = Value::from(t(locale, "How it works", "Как это работает"));
                    field["value"] = Value::from(how.clone());
                }
                Some("terms") if field["value"] == "TERMS_TEXT" => {
                    field["value"] = Value::from(t(
                        locale,
                        "Stamps and rewards are personal and cannot be exchanged for cash.",
                        "Штампы и подарки именные и не обмениваются на деньги.",
                    ));
                }
                Some("last_transaction") => {
                    if let Some(last) = &card.last_entry {
                        field["label"] = Value::from(last_entry_label(last.kind, locale));
                        if last.kind == EntryKind::RewardRedeemed {
                            field["value"] = Value::from(reward);
                        }
                    }
                }
                _ => {}
            }
            back.push(field);
        }
    }
    store_card.insert("backFields".into(), Value::Array(back));
}

/// "штамп", "штампа" or "штампов" after the number `n`.
pub fn stamps_ru(n: u32) -> &'static str {
    match (n % 10, n % 100) {
        (1, r) if r != 11 => "штамп",
        (2..=4, r) if !(12..=14).contains(&r) => "штампа",
        _ => "штампов",
    }
}

/// What the last entry of a stamp card was, for the back of the pass.
pub fn last_entry_label(kind: EntryKind, locale: Locale) -> String {
    let (en, ru) = match kind {
        EntryKind::Welcome => ("Welcome stamps", "Приветственные штампы"),
        EntryKind::Stamp | EntryKind::Earn => ("Last purchase: stamps", "Последняя покупка: штампы"),
        EntryKind::RewardIssued => ("Reward earned", "Подарок получен"),
        EntryKind::RewardRedeemed | EntryKind::Redeem => ("Reward redeemed", "Подарок выдан"),
        EntryKind::Adjust => ("Stamps corrected", "Штампы исправлены"),
        EntryKind::Reverse => ("Purchase refunded", "Возврат покупки"),
        EntryKind::Expire => ("Reward expired", "Подарок сгорел"),
        EntryKind::Referral => ("Bonus for an invitation", "Бонус за приглашение"),
        EntryKind::Import => ("Stamps carried over", "Перенесённые штампы"),
    };
    t(locale, en, ru)
}
