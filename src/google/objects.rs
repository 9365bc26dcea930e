//! The request bodies loy sends to the Wallet API, built from a program and a card.
//!
//! Field names, types and enum values follow the API's discovery document
//! (`walletobjects.v1.discovery.json`); the tests validate every body loy sends against it.
//! Only the fields loy owns are ever sent, always with PATCH (never PUT), so what Google or
//! another tool set on a class or object (messages, review comments, linked offers) is kept.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::design::GOOGLE_IMAGE;
use crate::domain::{Card, EntryKind, ImageSlot, Locale, LocalizedText, Program};

/// `{issuerId}.{program}`: the class of a program's cards. Ids may hold only letters, digits,
/// `.`, `_` and `-`; anything else in a program id becomes `_`.
pub fn class_id(issuer_id: &str, program_id: &str) -> String {
    format!("{issuer_id}.{}", id_safe(program_id))
}

/// `{issuerId}.{serial}`: the object of one card.
pub fn object_id(issuer_id: &str, card: &Card) -> String {
    format!("{issuer_id}.{}", id_safe(card.serial.as_str()))
}

fn id_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewStatus {
    /// What a class must say on insert and on every later update (Google approves it itself).
    UnderReview,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectState {
    Active,
    /// The customer was deleted: Google Wallet moves the card to expired passes.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotifyPreference {
    /// Ask Google to notify the holder about this update (ephemeral: per request).
    NotifyOnUpdate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HoldersAllowed {
    /// A card belongs to one person, who may have it on all their devices.
    OneUserAllDevices,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BarcodeType {
    QrCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    /// Shown on the pass and announced with a notification.
    TextAndNotify,
    /// Shown on the pass without a notification (the card's notification budget is spent).
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranslatedString {
    pub language: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalizedString {
    pub default_value: TranslatedString,
    pub translated_values: Vec<TranslatedString>,
}

impl LocalizedString {
    /// An English and a Russian text; Google shows the one matching the phone's language and
    /// `default` otherwise.
    pub fn en_ru(en: impl Into<String>, ru: impl Into<String>, default: Locale) -> Self {
        let en = TranslatedString { language: "en", value: en.into() };
        let ru = TranslatedString { language: "ru", value: ru.into() };
        let default_value = if default == Locale::Ru { ru.clone() } else { en.clone() };
        Self { default_value, translated_values: vec![en, ru] }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageUri {
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub source_uri: ImageUri,
    pub content_description: LocalizedString,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TextModuleData {
    pub id: String,
    pub localized_header: LocalizedString,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localized_body: Option<LocalizedString>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uri {
    pub id: String,
    pub uri: String,
    pub localized_description: LocalizedString,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinksModuleData {
    pub uris: Vec<Uri>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Barcode {
    #[serde(rename = "type")]
    pub kind: BarcodeType,
    pub value: String,
    pub alternate_text: String,
}

/// One of the balance's forms; Google wants exactly one set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LoyaltyPointsBalance {
    Int(i32),
    String(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoyaltyPoints {
    pub localized_label: LocalizedString,
    pub balance: LoyaltyPointsBalance,
}

/// A program's class: branding and the texts every card shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoyaltyClass {
    pub id: String,
    pub issuer_name: String,
    pub program_name: String,
    pub program_logo: Image,
    pub hero_image: Image,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex_background_color: Option<String>,
    pub localized_account_id_label: LocalizedString,
    pub localized_account_name_label: LocalizedString,
    pub review_status: ReviewStatus,
    pub multiple_devices_and_holders_allowed_status: HoldersAllowed,
    pub text_modules_data: Vec<TextModuleData>,
    pub links_module_data: LinksModuleData,
    /// Where Google posts a signed callback when a customer saves or deletes a pass of the class.
    pub callback_options: CallbackOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackOptions {
    pub url: String,
}

/// The address of the save and delete callbacks (`google::callbacks::receive`).
pub const CALLBACK_PATH: &str = "/google/callbacks";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageModuleData {
    pub id: String,
    pub main_image: Image,
}

/// What a card shows and a card change updates: sent on insert and in every sync PATCH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardFields {
    pub state: ObjectState,
    pub account_id: String,
    pub account_name: String,
    /// The balance (stamps programs: the stamps, "4 / 10").
    pub loyalty_points: LoyaltyPoints,
    /// The tier, shown beside the balance (stamps programs: the rewards waiting).
    pub secondary_loyalty_points: LoyaltyPoints,
    pub text_modules_data: Vec<TextModuleData>,
    /// Stamps programs: the strip with the card's stamps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_modules_data: Option<Vec<ImageModuleData>>,
}

/// A card's object, as inserted (and patched over when it already exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoyaltyObject {
    pub id: String,
    pub class_id: String,
    pub barcode: Barcode,
    #[serde(flatten)]
    pub fields: CardFields,
}

/// The PATCH a card change sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectUpdate {
    #[serde(flatten)]
    pub fields: CardFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_preference: Option<NotifyPreference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub header: String,
    pub body: String,
    pub message_type: MessageType,
    /// The texts in both languages (a class message reaches holders of either).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localized_header: Option<LocalizedString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localized_body: Option<LocalizedString>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddMessageRequest {
    pub message: Message,
}

/// The design's `custom` text in both languages, or `en`/`ru` when the design leaves it empty.
pub(super) fn or_default(custom: &LocalizedText, en: &str, ru: &str, default: Locale) -> LocalizedString {
    if custom.is_empty() {
        LocalizedString::en_ru(en, ru, default)
    } else {
        LocalizedString::en_ru(custom.get(Locale::En).trim(), custom.get(Locale::Ru).trim(), default)
    }
}

/// The address of the Google variant of the design's `slot` image, when one was uploaded.
fn design_image(program: &Program, slot: ImageSlot, public_url: &str) -> Option<String> {
    let id = program.design.images.get(&slot)?.get(GOOGLE_IMAGE)?;
    Some(format!("{public_url}{}", crate::http::media::path(id)))
}

/// Builds the class of `program`: its design's logo, strip (as the hero image), colour, texts
/// and terms address; images and links are served from `public_url`; labels fall back to
/// `default_locale` on phones in neither English nor Russian.
pub fn loyalty_class(issuer_id: &str, program: &Program, public_url: &str, default_locale: Locale) -> LoyaltyClass {
    let l = |en: &str, ru: &str| LocalizedString::en_ru(en, ru, default_locale);
    let design = &program.design;
    let text = |id: &str, header: LocalizedString, body: LocalizedString| TextModuleData {
        id: id.to_owned(),
        localized_header: header,
        body: None,
        localized_body: Some(body),
    };
    let texts = |custom: &LocalizedText, en: &str, ru: &str| or_default(custom, en, ru, default_locale);
    let how_to_earn = match program.rules.stamp_rules() {
        Some(stamps) if design.how_to_earn.is_empty() => super::stamps::how_it_works(stamps, default_locale),
        _ => (l("How to earn points", "Как копить баллы"), texts(&design.how_to_earn, HOW_TO_EARN_EN, HOW_TO_EARN_RU)),
    };
    let mut text_modules = vec![
        text("how_to_earn", how_to_earn.0, how_to_earn.1),
        match program.rules.stamp_rules() {
            Some(_) if design.terms.is_empty() => {
                text("terms", l("Terms", "Условия"), super::stamps::terms(default_locale))
            }
            _ => text("terms", l("Terms", "Условия"), texts(&design.terms, TERMS_EN, TERMS_RU)),
        },
    ];
    if !design.contacts.is_empty() {
        text_modules.push(text("contacts", l("Contacts", "Контакты"), texts(&design.contacts, "", "")));
    }
    let mut links = vec![Uri {
        id: "program".to_owned(),
        uri: format!("{public_url}{}", crate::programs::brand::form_path(&program.id)),
        localized_description: l("Program page", "Страница программы"),
    }];
    let terms_url = design.terms_url.trim();
    if !terms_url.is_empty() {
        links.push(Uri {
            id: "terms".to_owned(),
            uri: terms_url.to_owned(),
            localized_description: l("Full terms of the program", "Полные условия программы"),
        });
    }
    let program_name = if design.logo_text.trim().is_empty() { program.name.as_str() } else { design.logo_text.trim() };
    let logo = design_image(program, ImageSlot::Logo, public_url)
        .unwrap_or_else(|| format!("{public_url}/static/google/logo.png"));
    let hero = design_image(program, ImageSlot::Strip, public_url)
        .unwrap_or_else(|| format!("{public_url}/static/google/hero.png"));
    LoyaltyClass {
        id: class_id(issuer_id, &program.id),
        issuer_name: program.name.clone(),
        program_name: program_name.to_owned(),
        program_logo: Image { source_uri: ImageUri { uri: logo }, content_description: l(program_name, program_name) },
        hero_image: Image {
            source_uri: ImageUri { uri: hero },
            content_description: l("Card artwork", "Рисунок карты"),
        },
        hex_background_color: hex_colour(&design.background_color),
        localized_account_id_label: or_default(
            &design.labels.card_number,
            "Card number",
            "Номер карты",
            default_locale,
        ),
        localized_account_name_label: or_default(&design.labels.member, "Member", "Участник", default_locale),
        review_status: ReviewStatus::UnderReview,
        multiple_devices_and_holders_allowed_status: HoldersAllowed::OneUserAllDevices,
        text_modules_data: text_modules,
        links_module_data: LinksModuleData { uris: links },
        callback_options: CallbackOptions { url: format!("{public_url}{CALLBACK_PATH}") },
    }
}

/// Builds the object of `card` in `program`'s class (images served from `public_url`).
pub fn loyalty_object(issuer_id: &str, program: &Program, card: &Card, public_url: &str) -> LoyaltyObject {
    LoyaltyObject {
        id: object_id(issuer_id, card),
        class_id: class_id(issuer_id, &program.id),
        barcode: Barcode {
            kind: BarcodeType::QrCode,
            value: card.barcode.as_str().to_owned(),
            alternate_text: card.card_number.grouped(),
        },
        fields: card_fields(program, card, public_url),
    }
}

/// The PATCH for a change of `card`, asking Google to notify the holder when `notify`.
pub fn object_update(program: &Program, card: &Card, notify: bool, public_url: &str) -> ObjectUpdate {
    ObjectUpdate {
        fields: card_fields(program, card, public_url),
        notify_preference: notify.then_some(NotifyPreference::NotifyOnUpdate),
    }
}

fn card_fields(program: &Program, card: &Card, public_url: &str) -> CardFields {
    let locale = card.locale();
    let l = |en: &str, ru: &str| LocalizedString::en_ru(en, ru, locale);
    let tier_name = match program.rules.tier(&card.tier) {
        Some(t) if locale == Locale::Ru => t.name_ru.clone(),
        Some(t) => t.name_en.clone(),
        None => card.tier.clone(),
    };
    let balance = match i32::try_from(card.balance) {
        Ok(n) => LoyaltyPointsBalance::Int(n),
        Err(_) => LoyaltyPointsBalance::String(card.balance.to_string()),
    };
    let mut text_modules = Vec::new();
    let stamps = program.rules.stamp_rules();
    if let Some(last) = &card.last_entry {
        let (en, ru) = entry_label(last.kind);
        let (header, body) = match stamps {
            Some(_) => super::stamps::last_entry(last, locale),
            None => (l(en, ru), l(&points_en(last.points, last.at), &points_ru(last.points, last.at))),
        };
        text_modules.push(TextModuleData {
            id: "last_transaction".to_owned(),
            localized_header: header,
            body: None,
            localized_body: Some(body),
        });
    }
    if !card.is_deleted() {
        text_modules.push(TextModuleData {
            id: "referral_code".to_owned(),
            localized_header: l("Your invitation code", "Ваш код приглашения"),
            body: None,
            localized_body: Some(l(card.referral_code.as_str(), card.referral_code.as_str())),
        });
    }
    let mut fields = CardFields {
        state: if card.is_deleted() { ObjectState::Expired } else { ObjectState::Active },
        account_id: card.card_number.grouped(),
        account_name: card.display_name(),
        loyalty_points: LoyaltyPoints {
            localized_label: or_default(&program.design.labels.balance, "Points", "Баллы", locale),
            balance,
        },
        secondary_loyalty_points: LoyaltyPoints {
            localized_label: or_default(&program.design.labels.tier, "Level", "Уровень", locale),
            balance: LoyaltyPointsBalance::String(tier_name),
        },
        text_modules_data: text_modules,
        image_modules_data: None,
    };
    if let Some(stamps) = stamps {
        super::stamps::apply(&mut fields, program, stamps, card, public_url);
    }
    fields
}

fn entry_label(kind: EntryKind) -> (&'static str, &'static str) {
    match kind {
        EntryKind::Welcome => ("Welcome bonus", "Приветственный бонус"),
        EntryKind::Earn => ("Last purchase: points earned", "Последняя покупка: начислено"),
        EntryKind::Redeem => ("Last purchase: points spent", "Последняя покупка: списано"),
        EntryKind::Adjust => ("Balance adjusted", "Баланс изменён"),
        EntryKind::Reverse => ("Purchase refunded", "Возврат покупки"),
        EntryKind::Expire => ("Points expired", "Баллы сгорели"),
        EntryKind::Referral => ("Bonus for an invitation", "Бонус за приглашение"),
        EntryKind::Import => ("Balance carried over", "Перенесённый баланс"),
        EntryKind::Stamp => ("Last purchase: stamps", "Последняя покупка: штампы"),
        EntryKind::RewardIssued => ("Reward earned", "Подарок получен"),
        EntryKind::RewardRedeemed => ("Reward redeemed", "Подарок выдан"),
    }
}

pub(super) fn signed(points: i64) -> String {
    if points > 0 { format!("+{points}") } else { points.to_string() }
}

fn points_en(points: i64, at: DateTime<Utc>) -> String {
    let word = if points.abs() == 1 { "point" } else { "points" };
    format!("{} {word}, {}", signed(points), at.format("%-d %b %Y"))
}

fn points_ru(points: i64, at: DateTime<Utc>) -> String {
    let n = points.unsigned_abs();
    let word = match (n % 10, n % 100) {
        (1, r) if r != 11 => "балл",
        (2..=4, r) if !(12..=14).contains(&r) => "балла",
        _ => "баллов",
    };
    format!("{} {word}, {}", signed(points), at.format("%d.%m.%Y"))
}

/// `rgb(28, 43, 74)` (Apple's form, which the design keeps) or `#1c2b4a` → `#1c2b4a`.
fn hex_colour(colour: &str) -> Option<String> {
    let c = colour.trim();
    if let Some(hex) = c.strip_prefix('#') {
        let valid = matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        return valid.then(|| format!("#{}", hex.to_ascii_lowercase()));
    }
    let inner = c.strip_prefix("rgb(")?.strip_suffix(')')?;
    let parts: Vec<u8> = inner.split(',').map(|p| p.trim().parse::<u8>()).collect::<Result<_, _>>().ok()?;
    match parts[..] {
        [r, g, b] => Some(format!("#{r:02x}{g:02x}{b:02x}")),
        _ => None,
    }
}

const HOW_TO_EARN_EN: &str = "Show this card's QR code at the till with every purchase: points are credited to your \
     balance at your level's rate and can pay for later purchases.";
const HOW_TO_EARN_RU: &str = "Показывайте QR-код карты на кассе при каждой покупке: баллы начисляются по ставке \
     вашего уровня и ими можно оплачивать следующие покупки.";
const TERMS_EN: &str = "Points are personal and cannot be exchanged for cash. The program's full terms are available where you registered.";
const TERMS_RU: &str = "Баллы именные и не обмениваются на деньги. Полные условия программы — там, где вы \
     регистрировались.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_customers_object_is_expired_and_names_nobody() {
        use crate::domain::{Currency, Customer, PersonName, Phone};
        let now = chrono::Utc::now();
        let program = Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), now);
        let holder = Customer {
            first_name: PersonName::parse("Anna").unwrap(),
            last_name: None,
            phone: Phone::parse("+79123456789", crate::domain::phone::PhoneRegion::RU).unwrap(),
            email: None,
            birthday: None,
            locale: Locale::En,
            consent_at: now,
        };
        let (card, _) = Card::enroll(&program, holder, None, now);
        let active = serde_json::to_value(object_update(&program, &card, false, "https://loy.example")).unwrap();
        assert_eq!(active["state"], "ACTIVE");
        assert_eq!(active["accountName"], "Anna");

        let deleted =
            serde_json::to_value(object_update(&program, &card.deleted(now), false, "https://loy.example")).unwrap();
        assert_eq!(deleted["state"], "EXPIRED");
        assert_eq!(deleted["accountName"], "");
    }

    #[test]
    fn colours_become_hex_triplets() {
        assert_eq!(hex_colour("rgb(28, 43, 74)").as_deref(), Some("#1c2b4a"));
        assert_eq!(hex_colour("#FFCC00").as_deref(), Some("#ffcc00"));
        assert_eq!(hex_colour("#fc0").as_deref(), Some("#fc0"));
        assert_eq!(hex_colour("rgb(300, 0, 0)"), None);
        assert_eq!(hex_colour("blue"), None);
    }

    #[test]
    fn ids_hold_only_the_characters_google_allows() {
        assert_eq!(class_id("3388", "default"), "3388.default");
        assert_eq!(class_id("3388", "coffee shop/1"), "3388.coffee_shop_1");
    }

    #[test]
    fn point_counts_read_naturally_in_both_languages() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(points_en(120, at), "+120 points, 15 Jan 2027");
        assert_eq!(points_en(-1, at), "-1 point, 15 Jan 2027");
        let words: Vec<_> = [1, 2, 5, 11, 12, 21, 22, 25, 101, 111].iter().map(|n| points_ru(*n, at)).collect();
        let words: Vec<_> = words.iter().map(|w| w.split(' ').nth(1).unwrap().trim_end_matches(',')).collect();
        assert_eq!(words, ["балл", "балла", "баллов", "баллов", "баллов", "балл", "балла", "баллов", "балл", "баллов"]);
    }
}
