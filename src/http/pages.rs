//! Server-rendered pages: templates and message catalogs from `public/`, embedded in the binary.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use include_dir::{Dir, include_dir};
use serde::Serialize;

use crate::domain::Locale;

pub static PUBLIC: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/public");

/// The message catalog of one language: top-level texts and `[errors]`.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct Catalog {
    #[serde(flatten)]
    pub texts: BTreeMap<String, toml::Value>,
}

impl Catalog {
    pub fn text<'a>(&'a self, key: &'a str) -> &'a str {
        self.texts.get(key).and_then(toml::Value::as_str).unwrap_or(key)
    }

    pub fn error(&self, code: &str) -> String {
        self.in_section("errors", code)
    }

    /// The text of `key` in the catalog's `[section]`; the key itself when it has none.
    pub fn in_section(&self, section: &str, key: &str) -> String {
        self.texts.get(section).and_then(|s| s.get(key)).and_then(toml::Value::as_str).unwrap_or(key).to_owned()
    }
}

pub struct Pages {
    env: minijinja::Environment<'static>,
    catalogs: HashMap<Locale, Catalog>,
}

impl Pages {
    /// Loads every template and catalog; a broken one is a start-up error, not a runtime one.
    pub fn load() -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        let templates = PUBLIC.get_dir("templates").context("public/templates is missing")?;
        for file in templates.files() {
            let name = file.path().file_name().and_then(|n| n.to_str()).context("template name")?.to_owned();
            let source = file.contents_utf8().with_context(|| format!("template {name} is not UTF-8"))?;
            env.add_template_owned(name.clone(), source.to_owned()).with_context(|| format!("template {name}"))?;
        }
        let mut catalogs = HashMap::new();
        for locale in Locale::ALL {
            let path = format!("i18n/{}.toml", locale.code());
            let text = PUBLIC
                .get_file(&path)
                .and_then(|f| f.contents_utf8())
                .with_context(|| format!("public/{path} is missing"))?;
            let catalog: Catalog = toml::from_str(text).with_context(|| format!("public/{path}"))?;
            catalogs.insert(locale, catalog);
        }
        Ok(Self { env, catalogs })
    }

    pub fn catalog(&self, locale: Locale) -> &Catalog {
        &self.catalogs[&locale]
    }

    /// Renders `template` with `ctx` plus `t` (the catalog) and `lang`.
    pub fn render(&self, template: &str, locale: Locale, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        let tmpl = self.env.get_template(template)?;
        tmpl.render(minijinja::context! { t => self.catalog(locale), lang => locale.code(), ..minijinja::Value::from_serialize(ctx) })
    }

    /// An HTML response; a template failure becomes a plain 500 (and a log line).
    pub fn respond(&self, status: StatusCode, template: &str, locale: Locale, ctx: impl Serialize) -> HttpResponse {
        match self.render(template, locale, ctx) {
            Ok(html) => HttpResponse::build(status)
                // The security headers (CSP, nosniff, …) come from `crate::http::security`.
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(e) => {
                tracing::error!(error = %e, template, "rendering a page failed");
                HttpResponse::InternalServerError().content_type("text/plain; charset=utf-8").body("Internal error")
            }
        }
    }
}

/// The page language: `?lang=` first, then `Accept-Language`, then the configured default.
pub fn locale_of(req: &HttpRequest, default: Locale) -> Locale {
    let from_query = req
        .query_string()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "lang")
        .and_then(|(_, v)| Locale::parse(v));
    from_query
        .or_else(|| {
            req.headers()
                .get(actix_web::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Locale::negotiate)
        })
        .unwrap_or(default)
}

/// The context of `message.html`: a title, a sentence and an optional link.
#[derive(Serialize)]
pub struct Message {
    pub program_name: String,
    /// The program's logo and colours; `None` shows the plain header.
    pub brand: Option<crate::programs::brand::Brand>,
    pub title: String,
    pub text: String,
    pub link: Option<String>,
    pub link_text: Option<String>,
}
