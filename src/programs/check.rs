//! Checking a design before it is published: what would make Wallet refuse the pass (an
//! unreadable colour, a missing image, an over-long text, a broken terms address) is an error and
//! blocks publishing; what only hurts readability (contrast below WCAG AA) is a warning. The pass
//! part is the same check as `loy pass lint`, run on a pass built for a sample card with exactly
//! the builder the phones' passes come from.

use chrono::Utc;

use crate::apple::Apple;
use crate::apple::rules::is_rgb;
use crate::domain::{
    Card, Customer, ImageSlot, Locale, LocalizedText, PersonName, Phone, PhoneRegion, Program, ProgramDesign,
};
use crate::programs::images::{file_names, is_image_id};

/// The longest logo text that fits beside the logo on a phone.
pub const MAX_LOGO_TEXT: usize = 20;

/// The longest back-of-card text.
pub const MAX_BACK_TEXT: usize = 2000;

/// The longest field label (Wallet shows labels in one short line above the value).
pub const MAX_LABEL: usize = 24;

/// WCAG AA's minimum contrast for normal text.
pub const MIN_CONTRAST: f64 = 4.5;

/// One problem of a design: the form field it belongs to, a stable code (the console shows the
/// catalog's text for it, with `{v}` replaced by `value`), and the same in English words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub field: &'static str,
    pub code: &'static str,
    /// The detail the text names: a colour, a length, a ratio, file names.
    pub value: String,
    pub message: String,
}

/// What is wrong with a design: errors block publishing, warnings are shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesignReport {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

fn finding(field: &'static str, code: &'static str, value: impl ToString, message: String) -> Finding {
    Finding { field, code, value: value.to_string(), message }
}

impl DesignReport {
    pub fn is_publishable(&self) -> bool {
        self.errors.is_empty()
    }
}

/// An imaginary card of `program` in `locale`, for checking and previewing a design.
pub fn sample_card(program: &Program, locale: Locale) -> Card {
    let holder = Customer {
        first_name: PersonName::parse(if locale == Locale::Ru { "Анна" } else { "Anna" }).expect("a valid name"),
        last_name: None,
        phone: Phone::parse("+79000000000", PhoneRegion::RU).expect("a valid phone"),
        email: None,
        birthday: None,
        locale,
        consent_at: Utc::now(),
    };
    let (mut card, _) = Card::enroll(program, holder, None, Utc::now());
    match program.rules.stamp_rules() {
        // A round under way, one reward waiting.
        Some(stamps) => {
            card.balance = i64::from(stamps.stamps_per_reward.saturating_sub(1).min(4));
            card.rewards = 1;
        }
        None => card.balance = 1250,
    }
    card
}

/// `rgb(r, g, b)` → its three channels.
pub fn rgb(colour: &str) -> Option<[u8; 3]> {
    if !is_rgb(colour) {
        return None;
    }
    let inner = colour.trim().strip_prefix("rgb(")?.strip_suffix(')')?;
    let parts: Vec<u8> = inner.split(',').map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// WCAG 2's contrast ratio of two colours (1 to 21).
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let luminance = |c: [u8; 3]| {
        let channel = |v: u8| {
            let s = f64::from(v) / 255.0;
            if s <= 0.039_28 { s / 12.92 } else { ((s + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])
    };
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// Checks `design` as `program`'s next one.
pub fn check(apple: &Apple, program: &Program, design: &ProgramDesign) -> DesignReport {
    let mut report = DesignReport::default();
    let colours = [
        ("background_color", &design.background_color),
        ("foreground_color", &design.foreground_color),
        ("label_color", &design.label_color),
    ];
    for (field, value) in colours {
        if rgb(value).is_none() {
            report.errors.push(finding(field, "colour_invalid", value, format!("“{value}” is not a colour")));
        }
    }
    if let (Some(bg), Some(fg), Some(label)) =
        (rgb(&design.background_color), rgb(&design.foreground_color), rgb(&design.label_color))
    {
        for (field, colour, what) in [("foreground_color", fg, "text"), ("label_color", label, "labels")] {
            let ratio = contrast(bg, colour);
            if ratio < MIN_CONTRAST {
                let ratio = format!("{ratio:.1}");
                let message =
                    format!("the {what} have a contrast of {ratio}:1 with the background, below the 4.5:1 of WCAG AA");
                report.warnings.push(finding(field, "contrast_low", ratio, message));
            }
        }
    }
    if design.logo_text.chars().count() > MAX_LOGO_TEXT {
        let message = format!("the logo text is longer than {MAX_LOGO_TEXT} characters");
        report.errors.push(finding("logo_text", "too_long", MAX_LOGO_TEXT, message));
    }
    for (field, text) in
        [("terms", &design.terms), ("how_to_earn", &design.how_to_earn), ("contacts", &design.contacts)]
    {
        if too_long(text, MAX_BACK_TEXT) {
            let message = format!("the text is longer than {MAX_BACK_TEXT} characters");
            report.errors.push(finding(field, "too_long", MAX_BACK_TEXT, message));
        }
    }
    let labels = &design.labels;
    for (field, label) in [
        ("label_balance", &labels.balance),
        ("label_tier", &labels.tier),
        ("label_member", &labels.member),
        ("label_card_number", &labels.card_number),
    ] {
        if too_long(label, MAX_LABEL) {
            let message = format!("the label is longer than {MAX_LABEL} characters");
            report.errors.push(finding(field, "too_long", MAX_LABEL, message));
        }
    }
    check_images(apple, design, &mut report);
    let url = design.terms_url.trim();
    if !url.is_empty() && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.has_host()) {
        let message = "the terms address must be a full https:// address".to_owned();
        report.errors.push(finding("terms_url", "terms_url_invalid", url, message));
    }
    if report.errors.is_empty() {
        let mut next = program.clone();
        next.design = design.clone();
        for locale in Locale::ALL {
            if let Err(e) = apple.builder().pass_json(&sample_card(&next, locale), &next) {
                report.errors.push(finding("pass", "pass_invalid", &e, e.to_string()));
                break;
            }
        }
    }
    report
}

fn too_long(text: &LocalizedText, max: usize) -> bool {
    text.ru.chars().count() > max || text.en.chars().count() > max
}

/// What `loy pass lint` would refuse in the files: a pass without `icon.png` (neither the
/// template nor an upload gives one), and uploads that lost files or refer to no stored image.
fn check_images(apple: &Apple, design: &ProgramDesign, report: &mut DesignReport) {
    for (slot, files) in &design.images {
        let missing: Vec<&str> = file_names(*slot).filter(|name| !files.contains_key(*name)).collect();
        if !missing.is_empty() {
            let missing = missing.join(", ");
            let message = format!("the image lacks {missing}: upload it again");
            report.errors.push(finding(slot.as_str(), "image_incomplete", missing, message));
        }
        if files.values().any(|id| !is_image_id(id)) {
            let message = "the image refers to no stored file: upload it again".to_owned();
            report.errors.push(finding(slot.as_str(), "image_unknown", "", message));
        }
    }
    let uploaded_icon = design.images.get(&ImageSlot::Icon).is_some_and(|files| files.contains_key("icon.png"));
    if !uploaded_icon && !apple.template.files.iter().any(|f| f.name == "icon.png") {
        let message = "the card has no icon: upload one (Wallet refuses a pass without it)".to_owned();
        report.errors.push(finding("icon", "icon_missing", "", message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 0.01);
        assert!((contrast([28, 43, 74], [28, 43, 74]) - 1.0).abs() < 0.01);
        assert!(contrast([255, 255, 255], [255, 255, 0]) < MIN_CONTRAST);
        assert_eq!(rgb("rgb(28, 43, 74)"), Some([28, 43, 74]));
        assert_eq!(rgb("#1c2b4a"), None);
    }
}
