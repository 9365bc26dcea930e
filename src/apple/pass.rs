//! The pass builder: a card's state and the template → `pass.json` → manifest → signature →
//! `.pkpass` bytes.
//!
//! Only `pass.json` depends on the card: the template's images and strings were hashed once when
//! it was loaded, and a program's uploaded images once when its design was first used
//! (`design_files`), so a build hashes a few kilobytes and makes one RSA signature.

use serde_json::Value;

use super::bundle::{self, Entry, MANIFEST, PASS_JSON, SIGNATURE};
use super::certs::SigningIdentity;
use super::design_files::DesignFiles;
use super::rules::{self, Mode, Severity};
use super::signer;
use super::template::{Template, Values};
use crate::domain::{Card, Program};
use crate::programs::brand::form_path;

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("the rendered pass.json is invalid: {0}")]
    Invalid(String),
    #[error("signing the pass failed")]
    Sign(#[source] openssl::error::ErrorStack),
    #[error("zipping the pass failed")]
    Zip(#[source] zip::result::ZipError),
}

/// What every pass shares: who signs, with which design, and where Wallet asks for updates.
pub struct PassBuilder<'a> {
    pub identity: &'a SigningIdentity,
    pub template: &'a Template,
    /// `LOY_PUBLIC_URL` + `/passkit`.
    pub web_service_url: &'a str,
}

impl PassBuilder<'_> {
    /// `LOY_PUBLIC_URL`: the web service lives right under it.
    fn public_url(&self) -> &str {
        self.web_service_url.strip_suffix(super::WEB_SERVICE_PATH).unwrap_or(self.web_service_url)
    }

    /// `pass.json` of `card`: the template filled in, plus the keys loy owns.
    pub fn pass_json(&self, card: &Card, program: &Program) -> Result<Vec<u8>, PassError> {
        let mut pass = self.template.render(&values(card, program, self.public_url()));
        if let Some(stamps) = program.rules.stamp_rules() {
            super::stamps::adapt(&mut pass, card, program, stamps);
        }
        super::news::add(&mut pass, card);
        let object = pass.as_object_mut().ok_or_else(|| PassError::Invalid("not an object".to_owned()))?;
        for (key, value) in [
            ("formatVersion", Value::from(1)),
            ("passTypeIdentifier", Value::from(self.identity.pass_type_id.as_str())),
            ("teamIdentifier", Value::from(self.identity.team_id.as_str())),
            ("serialNumber", Value::from(card.serial.as_str())),
            ("authenticationToken", Value::from(card.auth_token.expose())),
            ("webServiceURL", Value::from(self.web_service_url)),
        ] {
            object.insert(key.to_owned(), value);
        }
        if !program.design.barcode {
            // The design has the till's QR code turned off: no barcode at all.
            object.remove("barcodes");
            object.remove("barcode");
        }
        if card.is_deleted() {
            // The customer was deleted: Wallet shows the pass as void and stops offering it.
            object.insert("voided".to_owned(), Value::from(true));
        }
        let errors: Vec<String> = rules::check_pass_json(&pass, Mode::Build)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.message)
            .collect();
        if !errors.is_empty() {
            return Err(PassError::Invalid(errors.join("; ")));
        }
        Ok(serde_json::to_vec(&pass).expect("a JSON value always serialises"))
    }

    /// The signed `.pkpass` of `card` with the template's own images.
    pub fn build(&self, card: &Card, program: &Program) -> Result<Vec<u8>, PassError> {
        self.build_with(card, program, &DesignFiles::default())
    }

    /// The signed `.pkpass` of `card`, the design's images replacing the template's files of the
    /// same name (`design` must be the files of `program.design`).
    pub fn build_with(&self, card: &Card, program: &Program, design: &DesignFiles) -> Result<Vec<u8>, PassError> {
        let pass_json = self.pass_json(card, program)?;
        let pass_sha1 = bundle::sha1_hex(&pass_json);
        let files = design.merge(&self.template.files);
        let manifest = bundle::manifest(
            std::iter::once((PASS_JSON, pass_sha1.as_str()))
                .chain(files.iter().map(|f| (f.name.as_str(), f.sha1.as_str()))),
        );
        let signature = signer::sign_manifest(self.identity, &manifest).map_err(PassError::Sign)?;
        let mut entries = Vec::with_capacity(files.len() + 3);
        entries.push(Entry { name: PASS_JSON, bytes: &pass_json, stored: false });
        entries.extend(files.iter().map(|f| Entry { name: &f.name, bytes: &f.bytes, stored: f.stored }));
        entries.push(Entry { name: MANIFEST, bytes: &manifest, stored: false });
        entries.push(Entry { name: SIGNATURE, bytes: &signature, stored: true });
        bundle::zip(&entries).map_err(PassError::Zip)
    }
}

/// The template values of a card (see `template::PLACEHOLDERS`). Texts that come from the
/// program follow the holder's language; a label the design leaves empty stays the template's
/// key, which Wallet localises through `pass.strings`.
pub fn values(card: &Card, program: &Program, public_url: &str) -> Values {
    let design = &program.design;
    let locale = card.locale();
    let tier = program.tier_name(&card.tier, locale);
    let or_key = |text: &str, key: &str| if text.trim().is_empty() { key.to_owned() } else { text.to_owned() };
    let (last, last_label, last_date) = match &card.last_entry {
        Some(entry) => (
            format!("{:+}", entry.points),
            format!("TX_{}", entry.kind.as_str().to_ascii_uppercase()),
            entry.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        None => (String::new(), String::new(), String::new()),
    };
    let labels = &design.labels;
    let logo_text = if design.logo_text.trim().is_empty() { program.name.as_str() } else { design.logo_text.trim() };
    let mut v = Values::new();
    for (name, value) in [
        ("program_name", Value::from(program.name.as_str())),
        ("logo_text", Value::from(logo_text)),
        ("balance_label", Value::from(or_key(labels.balance.get(locale), "BALANCE"))),
        ("tier_label", Value::from(or_key(labels.tier.get(locale), "TIER"))),
        ("member_label", Value::from(or_key(labels.member.get(locale), "MEMBER"))),
        ("card_number_label", Value::from(or_key(labels.card_number.get(locale), "CARD_NUMBER"))),
        ("terms_url", Value::from(design.terms_url.trim())),
        ("member_name", Value::from(card.display_name())),
        ("tier", Value::from(tier)),
        ("balance", Value::from(card.balance)),
        ("card_number", Value::from(card.card_number.grouped())),
        ("barcode", Value::from(card.barcode.as_str())),
        ("serial_number", Value::from(card.serial.as_str())),
        ("background_color", Value::from(design.background_color.as_str())),
        ("foreground_color", Value::from(design.foreground_color.as_str())),
        ("label_color", Value::from(design.label_color.as_str())),
        ("terms", Value::from(or_key(design.terms.get(locale), "TERMS_TEXT"))),
        ("how_to_earn", Value::from(or_key(design.how_to_earn.get(locale), "HOW_TO_EARN_TEXT"))),
        ("contacts", Value::from(design.contacts.get(locale))),
        ("last_transaction", Value::from(last)),
        ("last_transaction_label", Value::from(last_label)),
        ("last_transaction_date", Value::from(last_date)),
        ("referral_code", Value::from(card.referral_code.as_str())),
        (
            "referral_link",
            Value::from(format!("{public_url}{}?ref={}", form_path(&program.id), card.referral_code.as_str())),
        ),
    ] {
        v.insert(name, value);
    }
    v
}
