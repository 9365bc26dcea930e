//! Rendering mails from `templates/email/` (embedded in the binary): an HTML part and a
//! plain-text part per kind, texts from the language's catalog, the program's name and colours.

use include_dir::{Dir, include_dir};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use super::MailKind;
use crate::domain::Locale;
use crate::http::pages::Catalog;

static EMAIL: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/email");

/// What a mail shows; one struct feeds both parts.
#[derive(Debug, Clone, Serialize)]
pub struct MailContext {
    pub program_name: String,
    pub member_name: String,
    pub background_color: String,
    pub foreground_color: String,
    /// The program's uploaded logo (absolute address), when it has one.
    pub logo_url: Option<String>,
    /// The card page.
    pub card_url: String,
    /// The Apple Wallet pass download.
    pub apple_url: String,
    /// "Add to Google Wallet", when Google Wallet is on.
    pub google_url: Option<String>,
}

pub struct Templates {
    html: minijinja::Environment<'static>,
    text: minijinja::Environment<'static>,
    catalogs: std::collections::HashMap<Locale, Catalog>,
}

/// A rendered mail: subject and both parts.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl Templates {
    pub fn load() -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut html = minijinja::Environment::new();
        html.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        let mut text = minijinja::Environment::new();
        text.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for file in EMAIL.files() {
            let name = file.path().to_str().context("template name")?.to_owned();
            let source = file.contents_utf8().with_context(|| format!("mail template {name} is not UTF-8"))?;
            if name.ends_with(".html") {
                html.add_template_owned(name.clone(), source.to_owned())
                    .with_context(|| format!("mail template {name}"))?;
            } else if name.ends_with(".txt") {
                text.add_template_owned(name.clone(), source.to_owned())
                    .with_context(|| format!("mail template {name}"))?;
            }
        }
        let mut catalogs = std::collections::HashMap::new();
        for locale in Locale::ALL {
            let path = format!("{}.toml", locale.code());
            let source = EMAIL
                .get_file(&path)
                .and_then(|f| f.contents_utf8())
                .with_context(|| format!("templates/email/{path} is missing"))?;
            catalogs.insert(locale, toml::from_str(source).with_context(|| format!("templates/email/{path}"))?);
        }
        let templates = Self { html, text, catalogs };
        // Render every mail once now, so a template mistake stops the start, not a send.
        let sample = MailContext {
            program_name: "Sample".into(),
            member_name: "Anna".into(),
            background_color: "rgb(0,0,0)".into(),
            foreground_color: "rgb(255,255,255)".into(),
            logo_url: Some("https://example.com/media/logo.png".into()),
            card_url: "https://example.com/c/x".into(),
            apple_url: "https://example.com/c/x/card.pkpass".into(),
            google_url: Some("https://example.com/c/x/google".into()),
        };
        for locale in Locale::ALL {
            for kind in [MailKind::Welcome, MailKind::CardLink] {
                templates.render(kind, locale, &sample).with_context(|| format!("mail {}", kind.as_str()))?;
            }
        }
        Ok(templates)
    }

    pub fn render(&self, kind: MailKind, locale: Locale, ctx: &MailContext) -> Result<Rendered, minijinja::Error> {
        let t = &self.catalogs[&locale];
        let values = minijinja::context! { t => t, lang => locale.code(), ..minijinja::Value::from_serialize(ctx) };
        let subject_key = format!("{}_subject", kind.as_str());
        let subject = self.text.render_str(t.text(&subject_key), values.clone())?;
        let html = self.html.get_template(&format!("{}.html", kind.as_str()))?.render(values.clone())?;
        let text = self.text.get_template(&format!("{}.txt", kind.as_str()))?.render(values)?;
        Ok(Rendered { subject, html, text })
    }
}

impl Rendered {
    /// The message with both parts (`multipart/alternative`, plain text first).
    pub fn message(self, from: &Mailbox, to: Mailbox) -> Result<Message, lettre::error::Error> {
        Message::builder().from(from.clone()).to(to).subject(self.subject).multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(self.text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(self.html)),
        )
    }
}
