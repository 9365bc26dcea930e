//! How a program's card looks: colours, texts in both languages, labels and images — what the
//! designer edits, the pass builder and the Google class read, and every published version keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Locale;

/// A text in Russian and English. Stored as `{"ru": …, "en": …}`; a plain string (how designs
/// were stored before texts had two languages) reads as the same text in both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TextRepr")]
pub struct LocalizedText {
    pub ru: String,
    pub en: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextRepr {
    Both {
        #[serde(default)]
        ru: String,
        #[serde(default)]
        en: String,
    },
    One(String),
}

impl From<TextRepr> for LocalizedText {
    fn from(repr: TextRepr) -> Self {
        match repr {
            TextRepr::Both { ru, en } => Self { ru, en },
            TextRepr::One(text) => Self { ru: text.clone(), en: text },
        }
    }
}

/// The same text in both languages.
impl From<&str> for LocalizedText {
    fn from(text: &str) -> Self {
        Self::new(text, text)
    }
}

impl LocalizedText {
    pub fn new(ru: &str, en: &str) -> Self {
        Self { ru: ru.to_owned(), en: en.to_owned() }
    }

    /// The text in `locale`, falling back to the other language when that one is empty.
    pub fn get(&self, locale: Locale) -> &str {
        let (first, second) = match locale {
            Locale::Ru => (&self.ru, &self.en),
            Locale::En => (&self.en, &self.ru),
        };
        if first.trim().is_empty() { second } else { first }
    }

    pub fn is_empty(&self) -> bool {
        self.ru.trim().is_empty() && self.en.trim().is_empty()
    }
}

/// Labels of the card's front fields; an empty one keeps Wallet's own translation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldLabels {
    pub balance: LocalizedText,
    pub tier: LocalizedText,
    pub member: LocalizedText,
    pub card_number: LocalizedText,
}

/// The images a design may replace, with the files each becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSlot {
    Logo,
    Icon,
    Strip,
    /// A stamps program's own stamp picture (drawn in each slot of the strip, never a pass file).
    Stamp,
}

impl ImageSlot {
    pub const ALL: [ImageSlot; 4] = [ImageSlot::Logo, ImageSlot::Icon, ImageSlot::Strip, ImageSlot::Stamp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logo => "logo",
            Self::Icon => "icon",
            Self::Strip => "strip",
            Self::Stamp => "stamp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|slot| slot.as_str() == s)
    }
}

/// The converted files of one uploaded image: the pass files (`logo.png`, `logo@2x.png`, …)
/// and the Google image (`google`), each the id of a PNG kept in the store (its SHA-256).
pub type ImageFiles = BTreeMap<String, String>;

/// The file name of an image set's Google variant.
pub const GOOGLE_IMAGE: &str = "google";

/// How the card looks and what its back says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgramDesign {
    /// `rgb(r, g, b)` colours as Apple's pass.json wants them.
    pub background_color: String,
    pub foreground_color: String,
    pub label_color: String,
    /// Beside the logo on the pass; empty = the program's name.
    pub logo_text: String,
    pub labels: FieldLabels,
    /// Shown on the back of the card.
    pub terms: LocalizedText,
    pub how_to_earn: LocalizedText,
    pub contacts: LocalizedText,
    /// The full terms of the program, linked from the form's consent and the card's back.
    pub terms_url: String,
    /// Show the till's QR code on the pass.
    pub barcode: bool,
    /// Uploaded images by slot; a slot without one uses the built-in design's.
    pub images: BTreeMap<ImageSlot, ImageFiles>,
    /// Stamps programs: the picture in each slot of the strip.
    pub stamp_icon: super::StampIcon,
    /// The published version this design is (0 for a draft never published). Part of the
    /// signed-pass cache key, and what the card's change of version is checked against.
    pub revision: i64,
}

impl Default for ProgramDesign {
    fn default() -> Self {
        Self {
            background_color: "rgb(28, 43, 74)".into(),
            foreground_color: "rgb(255, 255, 255)".into(),
            label_color: "rgb(244, 196, 98)".into(),
            logo_text: String::new(),
            labels: FieldLabels::default(),
            terms: LocalizedText::default(),
            how_to_earn: LocalizedText::default(),
            contacts: LocalizedText::default(),
            terms_url: String::new(),
            barcode: true,
            images: BTreeMap::new(),
            stamp_icon: super::StampIcon::default(),
            revision: 1,
        }
    }
}

/// A published design, kept so any earlier one can be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesignVersion {
    pub program_id: String,
    /// Equal to `design.revision`.
    pub revision: i64,
    pub design: ProgramDesign,
    pub published_at: chrono::DateTime<chrono::Utc>,
    /// The staff member's login, or `cli`.
    pub published_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_string_reads_as_both_languages_and_empty_falls_back() {
        let text: LocalizedText = serde_json::from_str("\"Условия\"").unwrap();
        assert_eq!(text, LocalizedText::new("Условия", "Условия"));
        let text: LocalizedText = serde_json::from_str(r#"{"ru":"Условия","en":""}"#).unwrap();
        assert_eq!(text.get(Locale::En), "Условия");
        assert_eq!(serde_json::to_string(&LocalizedText::new("а", "b")).unwrap(), r#"{"ru":"а","en":"b"}"#);
    }

    #[test]
    fn an_old_design_document_still_reads() {
        let old = r#"{"background_color":"rgb(1, 2, 3)","foreground_color":"rgb(255, 255, 255)",
            "label_color":"rgb(0, 0, 0)","terms":"T","how_to_earn":"","contacts":"","revision":3}"#;
        let design: ProgramDesign = serde_json::from_str(old).unwrap();
        assert_eq!(design.terms.en, "T");
        assert!(design.barcode);
        assert_eq!(design.revision, 3);
    }
}
