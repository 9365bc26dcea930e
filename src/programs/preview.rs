//! The designer's preview of both wallets, made from exactly what the phones get: the Apple
//! pass front and back are read from the `pass.json` the pass builder writes for a sample card
//! (labels resolved through the template's `pass.strings` as Wallet does), and the Google card
//! from the class and object `crate::google::objects` builds — no second copy of the field logic.
//!
//! Colours reach the page through a stylesheet of its own ([`stylesheet`], served at
//! `/admin/design/colours.css`): the console's CSP allows neither inline styles nor `style`
//! attributes, and the stylesheet's address carries the three colours as checked hex values.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::check::{contrast, rgb};
use crate::apple::Apple;
use crate::domain::{ImageSlot, Locale, Program, ProgramDesign};
use crate::google::objects::{LocalizedString, LoyaltyPointsBalance, loyalty_class, loyalty_object};

/// Where the console shows the built-in template's images (for slots without an upload).
pub const TEMPLATE_FILES_PATH: &str = "/admin/design/pass-files";

/// A field as Wallet shows it: label above value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub key: String,
    pub label: String,
    pub value: String,
}

/// The Apple pass, front and back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplePreview {
    pub logo: Option<String>,
    pub logo_text: String,
    pub strip: Option<String>,
    pub header: Vec<Field>,
    pub primary: Vec<Field>,
    pub secondary: Vec<Field>,
    pub auxiliary: Vec<Field>,
    pub back: Vec<Field>,
    /// The barcode's text under the code, when the pass has one.
    pub barcode: Option<String>,
}

/// The Google Wallet card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GooglePreview {
    pub program_name: String,
    pub logo: String,
    pub hero: String,
    pub account_name: String,
    pub account_id: String,
    pub balance_label: String,
    pub balance: String,
    pub tier_label: String,
    pub tier: String,
    pub modules: Vec<Field>,
}

/// Everything the preview fragment draws.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub locale: &'static str,
    pub apple: ApplePreview,
    pub google: GooglePreview,
    /// The address of the stylesheet with the card's colours.
    pub stylesheet: String,
    /// Why the pass could not be built (the design is not publishable as it is).
    pub problem: Option<String>,
}

/// Where a preview finds what the builder and Google need besides the design.
pub struct Context<'a> {
    pub apple: &'a Apple,
    /// The Google issuer id, or a stand-in when Google Wallet is not configured.
    pub issuer_id: &'a str,
    /// `LOY_PUBLIC_URL`: image addresses under it are shown relative, from this server.
    pub public_url: &'a str,
}

/// Previews `design` as `program`'s card in `locale`.
pub fn preview(ctx: &Context<'_>, program: &Program, design: &ProgramDesign, locale: Locale) -> Preview {
    let mut program = program.clone();
    program.design = design.clone();
    let card = super::check::sample_card(&program, locale);
    let mut preview = Preview { locale: locale.code(), ..Preview::default() };
    let pass = match ctx.apple.builder().pass_json(&card, &program) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap_or_default(),
        Err(e) => {
            preview.problem = Some(e.to_string());
            Value::Null
        }
    };
    preview.apple = apple(ctx.apple, &pass, design, locale);
    let class = loyalty_class(ctx.issuer_id, &program, ctx.public_url, locale);
    let object = loyalty_object(ctx.issuer_id, &program, &card, ctx.public_url);
    let text = |s: &LocalizedString| pick(s, locale);
    let balance = |b: &LoyaltyPointsBalance| match b {
        LoyaltyPointsBalance::Int(n) => n.to_string(),
        LoyaltyPointsBalance::String(s) => s.clone(),
    };
    let fields = &object.fields;
    preview.google = GooglePreview {
        program_name: class.program_name.clone(),
        logo: relative(&class.program_logo.source_uri.uri, ctx.public_url),
        hero: relative(&class.hero_image.source_uri.uri, ctx.public_url),
        account_name: fields.account_name.clone(),
        account_id: fields.account_id.clone(),
        balance_label: text(&fields.loyalty_points.localized_label),
        balance: balance(&fields.loyalty_points.balance),
        tier_label: text(&fields.secondary_loyalty_points.localized_label),
        tier: balance(&fields.secondary_loyalty_points.balance),
        modules: class
            .text_modules_data
            .iter()
            .chain(&fields.text_modules_data)
            .map(|m| Field {
                key: m.id.clone(),
                label: text(&m.localized_header),
                value: m.localized_body.as_ref().map(text).or_else(|| m.body.clone()).unwrap_or_default(),
            })
            .collect(),
    };
    let colour = |key: &str, fallback: &str| {
        pass.get(key).and_then(Value::as_str).and_then(rgb).or_else(|| rgb(fallback)).unwrap_or([0, 0, 0])
    };
    let google_bg = class.hex_background_color.as_deref().and_then(parse_hex).unwrap_or([255, 255, 255]);
    preview.stylesheet = stylesheet_url(&Colours {
        background: colour("backgroundColor", &design.background_color),
        foreground: colour("foregroundColor", &design.foreground_color),
        label: colour("labelColor", &design.label_color),
        google: google_bg,
    });
    preview
}

/// The text of a Google localized string in `locale`.
fn pick(s: &LocalizedString, locale: Locale) -> String {
    s.translated_values
        .iter()
        .find(|t| t.language == locale.code())
        .map_or_else(|| s.default_value.value.clone(), |t| t.value.clone())
}

/// `uri` without the public address in front, so the console's CSP (`img-src 'self'`) lets the
/// browser load it from this server.
fn relative(uri: &str, public_url: &str) -> String {
    match uri.strip_prefix(public_url.trim_end_matches('/')) {
        Some(path) if path.starts_with('/') => path.to_owned(),
        _ => uri.to_owned(),
    }
}

fn apple(apple: &Apple, pass: &Value, design: &ProgramDesign, locale: Locale) -> ApplePreview {
    let strings = pass_strings(apple, locale);
    let resolve = |text: &str| strings.get(text).cloned().unwrap_or_else(|| text.to_owned());
    let card = pass.get("storeCard");
    let fields = |kind: &str, skip_empty: bool| -> Vec<Field> {
        card.and_then(|c| c.get(kind))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|f| Field {
                        key: f.get("key").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        label: resolve(f.get("label").and_then(Value::as_str).unwrap_or_default()),
                        value: match f.get("value") {
                            Some(Value::String(s)) if f.get("dateStyle").is_some() => date(s),
                            Some(Value::String(s)) => resolve(s),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        },
                    })
                    .filter(|f| !skip_empty || !f.value.trim().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let has_file = |name: &str| apple.template.files.iter().any(|f| f.name == name);
    let image = |slot: ImageSlot| -> Option<String> {
        let file = format!("{}@2x.png", slot.as_str());
        match design.images.get(&slot).and_then(|files| files.get(&file)) {
            Some(id) => Some(media_url(id)),
            None => has_file(&file).then(|| format!("{TEMPLATE_FILES_PATH}/{file}")),
        }
    };
    ApplePreview {
        logo: image(ImageSlot::Logo),
        logo_text: resolve(pass.get("logoText").and_then(Value::as_str).unwrap_or_default()),
        strip: image(ImageSlot::Strip),
        header: fields("headerFields", false),
        primary: fields("primaryFields", false),
        secondary: fields("secondaryFields", false),
        auxiliary: fields("auxiliaryFields", false),
        back: fields("backFields", true),
        barcode: pass
            .get("barcodes")
            .and_then(Value::as_array)
            .and_then(|b| b.first())
            .or_else(|| pass.get("barcode"))
            .map(|b| b.get("altText").and_then(Value::as_str).unwrap_or_default().to_owned()),
    }
}

/// A date field as Wallet shows it (day, month, year and time) rather than its ISO form.
fn date(value: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(value)
        .map_or_else(|_| value.to_owned(), |d| d.format("%d.%m.%Y %H:%M").to_string())
}

/// The address an image of the store is served at.
pub fn media_url(id: &str) -> String {
    format!("/media/{id}.png")
}

/// The template's `pass.strings` of `locale`, as Wallet would apply them.
fn pass_strings(apple: &Apple, locale: Locale) -> HashMap<String, String> {
    let name = format!("{}.lproj/pass.strings", locale.code());
    apple
        .template
        .files
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| std::str::from_utf8(&f.bytes).ok())
        .and_then(|text| crate::apple::strings::parse(text).ok())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

/// The colours the preview's stylesheet paints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colours {
    pub background: [u8; 3],
    pub foreground: [u8; 3],
    pub label: [u8; 3],
    /// The Google card's background (Google picks a readable text colour itself).
    pub google: [u8; 3],
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("{r:02x}{g:02x}{b:02x}")
}

/// `#1c2b4a` or `1c2b4a` → its channels.
pub fn parse_hex(text: &str) -> Option<[u8; 3]> {
    let digits = text.trim().trim_start_matches('#');
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |at: usize| u8::from_str_radix(&digits[at..at + 2], 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// `rgb(r, g, b)` → `#rrggbb` (what `<input type=color>` shows).
pub fn rgb_to_hex(colour: &str) -> Option<String> {
    rgb(colour).map(|c| format!("#{}", hex(c)))
}

/// `#rrggbb` → `rgb(r, g, b)` (what the pass wants); anything else is kept as typed, so the
/// check reports it against its field.
pub fn hex_to_rgb(colour: &str) -> String {
    match parse_hex(colour) {
        Some([r, g, b]) => format!("rgb({r}, {g}, {b})"),
        None => colour.trim().to_owned(),
    }
}

fn stylesheet_url(c: &Colours) -> String {
    format!(
        "/admin/design/colours.css?bg={}&fg={}&label={}&google={}",
        hex(c.background),
        hex(c.foreground),
        hex(c.label),
        hex(c.google)
    )
}

/// The stylesheet of [`stylesheet_url`]: the Apple pass in its three colours, the Google card on
/// its background with black or white text, whichever reads better.
pub fn stylesheet(c: &Colours) -> String {
    let google_text =
        if contrast(c.google, [255, 255, 255]) >= contrast(c.google, [0, 0, 0]) { "ffffff" } else { "000000" };
    format!(
        ".pv-apple{{background-color:#{bg};color:#{fg}}}\n\
         .pv-apple .pv-label{{color:#{label}}}\n\
         .pv-google-top{{background-color:#{google};color:#{google_text}}}\n",
        bg = hex(c.background),
        fg = hex(c.foreground),
        label = hex(c.label),
        google = hex(c.google),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_convert_between_the_form_and_the_pass() {
        assert_eq!(rgb_to_hex("rgb(28, 43, 74)").as_deref(), Some("#1c2b4a"));
        assert_eq!(hex_to_rgb("#1C2B4A"), "rgb(28, 43, 74)");
        assert_eq!(hex_to_rgb("blue"), "blue");
        assert_eq!(parse_hex("zz0000"), None);
    }

    #[test]
    fn the_stylesheet_only_carries_checked_hex_colours() {
        let css = stylesheet(&Colours {
            background: [28, 43, 74],
            foreground: [255, 255, 255],
            label: [244, 196, 98],
            google: [250, 250, 250],
        });
        assert!(css.contains(".pv-apple{background-color:#1c2b4a;color:#ffffff}"), "{css}");
        assert!(css.contains(".pv-google-top{background-color:#fafafa;color:#000000}"), "{css}");
    }

    #[test]
    fn public_addresses_become_paths_of_this_server() {
        assert_eq!(relative("https://loy.example/media/ab.png", "https://loy.example"), "/media/ab.png");
        assert_eq!(relative("https://cdn.example/x.png", "https://loy.example"), "https://cdn.example/x.png");
    }
}
