//! A stamps program's Google Wallet object: the stamps as the balance ("4 / 10"), the rewards
//! waiting beside it, and an image module with the same strip the Apple pass shows.

use super::objects::{
    CardFields, Image, ImageModuleData, ImageUri, LocalizedString, LoyaltyPoints, LoyaltyPointsBalance, or_default,
    signed,
};
use crate::apple::stamps::stamps_ru;
use crate::domain::{Card, EntryKind, LastEntry, Locale, Program, StampRules};

/// Turns the points fields of `fields` into stamp fields.
pub fn apply(fields: &mut CardFields, program: &Program, rules: &StampRules, card: &Card, public_url: &str) {
    let locale = card.locale();
    let l = |en: &str, ru: &str| LocalizedString::en_ru(en, ru, locale);
    fields.loyalty_points = LoyaltyPoints {
        localized_label: or_default(&program.design.labels.balance, "Stamps", "Штампы", locale),
        balance: LoyaltyPointsBalance::String(format!("{} / {}", card.balance, rules.stamps_per_reward)),
    };
    fields.secondary_loyalty_points = LoyaltyPoints {
        localized_label: l("Rewards", "Подарки"),
        balance: LoyaltyPointsBalance::Int(i32::try_from(card.rewards).unwrap_or(i32::MAX)),
    };
    let filled = u32::try_from(card.balance.clamp(0, i64::from(rules.stamps_per_reward))).unwrap_or(0);
    let description = l(
        &format!("{filled} of {} stamps", rules.stamps_per_reward),
        &format!("{filled} из {} {}", rules.stamps_per_reward, stamps_ru(rules.stamps_per_reward)),
    );
    fields.image_modules_data = Some(vec![ImageModuleData {
        id: "stamps".to_owned(),
        main_image: Image {
            source_uri: ImageUri {
                uri: format!("{public_url}{}", crate::programs::stamp_strips::google_path(program, filled)),
            },
            content_description: description,
        },
    }]);
}

/// The class's "how it works" module of a stamps program: header and text.
pub fn how_it_works(rules: &StampRules, default: Locale) -> (LocalizedString, LocalizedString) {
    let n = rules.stamps_per_reward;
    let (en, ru) = (rules.reward.get(Locale::En), rules.reward.get(Locale::Ru));
    (
        LocalizedString::en_ru("How it works", "Как это работает", default),
        LocalizedString::en_ru(
            format!(
                "Show this card's QR code at the till with every purchase: each purchase earns a stamp, and {n} stamps earn {en}."
            ),
            format!(
                "Показывайте QR-код карты на кассе при каждой покупке: за покупку ставится штамп, {n} {} — {ru}.",
                stamps_ru(n)
            ),
            default,
        ),
    )
}

/// The class's terms of a stamps program whose design has none of its own.
pub fn terms(default: Locale) -> LocalizedString {
    LocalizedString::en_ru(
        "Stamps and rewards are personal and cannot be exchanged for cash. The program's full terms are available where you registered.",
        "Штампы и подарки именные и не обмениваются на деньги. Полные условия программы — там, где вы регистрировались.",
        default,
    )
}

/// The last entry of a stamp card: what happened and how many stamps it moved.
pub fn last_entry(last: &LastEntry, locale: Locale) -> (LocalizedString, LocalizedString) {
    let header = LocalizedString::en_ru(
        crate::apple::stamps::last_entry_label(last.kind, Locale::En),
        crate::apple::stamps::last_entry_label(last.kind, Locale::Ru),
        locale,
    );
    let n = last.points.unsigned_abs().min(u64::from(u32::MAX)) as u32;
    let body = match last.kind {
        EntryKind::RewardRedeemed | EntryKind::RewardIssued => LocalizedString::en_ru(
            last.at.format("%-d %b %Y").to_string(),
            last.at.format("%d.%m.%Y").to_string(),
            locale,
        ),
        _ => LocalizedString::en_ru(
            format!("{} stamps, {}", signed(last.points), last.at.format("%-d %b %Y")),
            format!("{} {}, {}", signed(last.points), stamps_ru(n), last.at.format("%d.%m.%Y")),
            locale,
        ),
    };
    (header, body)
}
