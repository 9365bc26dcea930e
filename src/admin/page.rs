//! The one way console pages are rendered: templates and catalogs from `admin/`, embedded in
//! the binary, the layout's navigation filtered by role, and a strict Content-Security-Policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use include_dir::{Dir, include_dir};
use serde::Serialize;
use sha2::{Digest, Sha384};

use crate::domain::{Locale, Role};
use crate::http::pages::Catalog;
use crate::state::AppState;

pub static ADMIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/admin");

/// Every console page carries this policy: scripts and styles only from files of this server
/// (no inline script, no `style` attribute), images also as `data:` (QR codes).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; media-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The cookie that keeps the language chosen with the switch in the header.
pub const LANG_COOKIE: &str = "loy_admin_lang";

/// A navigation entry and the least role that sees it.
struct NavEntry {
    key: &'static str,
    href: &'static str,
    least: Role,
}

const NAV: &[NavEntry] = &[
    NavEntry { key: "nav_home", href: "/admin", least: Role::Cashier },
    NavEntry { key: "nav_cashier", href: "/admin/cashier", least: Role::Cashier },
    NavEntry { key: "nav_customers", href: "/admin/customers", least: Role::Manager },
    NavEntry { key: "nav_segments", href: "/admin/segments", least: Role::Manager },
    NavEntry { key: "nav_programs", href: "/admin/programs", least: Role::Manager },
    NavEntry { key: "nav_staff", href: "/admin/staff", least: Role::Owner },
    NavEntry { key: "nav_keys", href: "/admin/keys", least: Role::Owner },
    NavEntry { key: "nav_webhooks", href: "/admin/webhooks", least: Role::Owner },
    NavEntry { key: "nav_messages", href: "/admin/messages", least: Role::Manager },
    NavEntry { key: "nav_mail", href: "/admin/mail", least: Role::Manager },
    NavEntry { key: "nav_audit", href: "/admin/audit", least: Role::Manager },
    NavEntry { key: "nav_data", href: "/admin/data", least: Role::Owner },
    NavEntry { key: "nav_account", href: "/admin/account", least: Role::Cashier },
];

/// Who is looking at a page: the navigation shows what their role may use, and forms carry
/// their session's CSRF token.
#[derive(Debug, Clone, Serialize)]
pub struct Viewer {
    pub email: String,
    pub role: Role,
    pub csrf: String,
}

#[derive(Serialize)]
struct NavItem {
    label: String,
    href: &'static str,
    active: bool,
}

/// A static file with its cache-busting version and subresource-integrity hash.
struct Asset {
    version: String,
    integrity: String,
}

pub struct AdminPages {
    env: minijinja::Environment<'static>,
    catalogs: HashMap<Locale, Catalog>,
}

static PAGES: LazyLock<AdminPages> =
    LazyLock::new(|| AdminPages::load().unwrap_or_else(|e| panic!("the console templates are broken: {e:#}")));

/// The console's templates, loaded once (a unit test loads them, so a broken one fails the build's tests).
pub fn pages() -> &'static AdminPages {
    &PAGES
}

impl AdminPages {
    pub fn load() -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        let templates = ADMIN.get_dir("templates").context("admin/templates is missing")?;
        for file in templates.files() {
            let name = file.path().file_name().and_then(|n| n.to_str()).context("template name")?.to_owned();
            let source = file.contents_utf8().with_context(|| format!("template {name} is not UTF-8"))?;
            env.add_template_owned(name.clone(), source.to_owned()).with_context(|| format!("template {name}"))?;
        }
        let mut assets = HashMap::new();
        let statics = ADMIN.get_dir("static").context("admin/static is missing")?;
        for file in statics.files() {
            let name = file.path().file_name().and_then(|n| n.to_str()).context("static file name")?.to_owned();
            let digest = Sha384::digest(file.contents());
            let asset = Asset {
                version: hex::encode(&digest[..6]),
                integrity: format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(digest)),
            };
            assets.insert(name, asset);
        }
        let assets = std::sync::Arc::new(assets);
        let for_url = assets.clone();
        env.add_function("asset", move |name: String| -> Result<String, minijinja::Error> {
            let asset = for_url.get(&name).ok_or_else(|| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("no static file {name}"))
            })?;
            Ok(format!("/admin/static/{name}?v={}", asset.version))
        });
        env.add_function("sri", move |name: String| -> String {
            assets.get(&name).map(|a| a.integrity.clone()).unwrap_or_default()
        });
        let mut catalogs = HashMap::new();
        for locale in Locale::ALL {
            let path = format!("i18n/{}.toml", locale.code());
            let text = ADMIN
                .get_file(&path)
                .and_then(|f| f.contents_utf8())
                .with_context(|| format!("admin/{path} is missing"))?;
            let catalog: Catalog = toml::from_str(text).with_context(|| format!("admin/{path}"))?;
            catalogs.insert(locale, catalog);
        }
        for name in templates.files().filter_map(|f| f.path().file_name().and_then(|n| n.to_str())) {
            env.get_template(name).with_context(|| format!("template {name}"))?;
        }
        Ok(Self { env, catalogs })
    }

    pub fn catalog(&self, locale: Locale) -> &Catalog {
        &self.catalogs[&locale]
    }

    fn render(
        &self,
        template: &str,
        locale: Locale,
        viewer: Option<&Viewer>,
        path: &str,
        ctx: impl Serialize,
    ) -> Result<String, minijinja::Error> {
        let t = self.catalog(locale);
        let nav: Vec<NavItem> = match viewer {
            Some(v) => NAV
                .iter()
                .filter(|e| v.role >= e.least)
                .map(|e| NavItem {
                    label: t.text(e.key).to_owned(),
                    href: e.href,
                    active: if e.href == "/admin" { path == "/admin" } else { path.starts_with(e.href) },
                })
                .collect(),
            None => Vec::new(),
        };
        let tmpl = self.env.get_template(template)?;
        tmpl.render(minijinja::context! {
            t => t,
            lang => locale.code(),
            viewer => viewer,
            csrf => viewer.map(|v| v.csrf.as_str()),
            nav => nav,
            path => path,
            ..minijinja::Value::from_serialize(ctx)
        })
    }
}

/// The console's language: `?lang=` (remembered in a cookie), then the cookie, then
/// `Accept-Language`, then `LOY_DEFAULT_LOCALE` — the customer pages' rules plus the switch.
pub fn locale(req: &HttpRequest) -> Locale {
    let default = req.app_data::<web::Data<AppState>>().map(|s| s.settings.default_locale).unwrap_or(Locale::Ru);
    query_locale(req)
        .or_else(|| req.cookie(LANG_COOKIE).and_then(|c| Locale::parse(c.value())))
        .unwrap_or_else(|| crate::http::pages::locale_of(req, default))
}

fn query_locale(req: &HttpRequest) -> Option<Locale> {
    req.query_string()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "lang")
        .and_then(|(_, v)| Locale::parse(v))
}

/// Renders a console page: `template` with `ctx`, plus `t` (the catalog), `lang`, `viewer`,
/// `csrf` and `nav` (the entries `viewer`'s role may use), with the console's security headers.
pub fn render(
    req: &HttpRequest,
    viewer: Option<&Viewer>,
    status: StatusCode,
    template: &str,
    ctx: impl Serialize,
) -> HttpResponse {
    let locale = locale(req);
    match pages().render(template, locale, viewer, req.path(), ctx) {
        Ok(html) => {
            let mut response = HttpResponse::build(status);
            secure_headers(&mut response);
            response.content_type("text/html; charset=utf-8");
            if let Some(chosen) = query_locale(req) {
                let mut cookie = Cookie::new(LANG_COOKIE, chosen.code());
                cookie.set_path("/admin");
                cookie.set_same_site(SameSite::Strict);
                cookie.set_max_age(actix_web::cookie::time::Duration::days(365));
                response.cookie(cookie);
            }
            response.body(html)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), template, "rendering a console page failed");
            error_response(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The console's headers: CSP, no sniffing, no framing, no caching of pages with personal data.
pub fn secure_headers(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("Cache-Control", "no-store"));
}

/// A bare error page in both languages, for when there is no request to take a language from.
pub fn error_response(status: StatusCode) -> HttpResponse {
    let html = pages()
        .env
        .get_template("error.html")
        .and_then(|t| t.render(minijinja::context! { status => status.as_u16() }))
        .unwrap_or_else(|_| "Internal error".to_owned());
    let mut response = HttpResponse::build(status);
    secure_headers(&mut response);
    response.content_type("text/html; charset=utf-8").body(html)
}

/// One option of a `<select>` (the `select` macro of `macros.html`).
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// Field errors of a form: field name → message key of the catalog's `[errors]`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message_key: &str) {
        self.0.entry(field.to_owned()).or_insert_with(|| message_key.to_owned());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A message page (`message.html`): a title and a sentence from the catalog, and a link.
#[derive(Serialize)]
pub struct Notice<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub link: Option<&'a str>,
}

/// Renders `message.html` with catalog keys `title` and `text`.
pub fn notice(req: &HttpRequest, viewer: Option<&Viewer>, status: StatusCode, notice: Notice<'_>) -> HttpResponse {
    render(req, viewer, status, "message.html", notice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_and_catalog_loads_and_both_languages_have_the_same_keys() {
        let pages = AdminPages::load().unwrap();
        let ru: Vec<&String> = pages.catalog(Locale::Ru).texts.keys().collect();
        let en: Vec<&String> = pages.catalog(Locale::En).texts.keys().collect();
        assert_eq!(ru, en);
        let ru_errors = pages.catalog(Locale::Ru).texts.get("errors").and_then(|e| e.as_table()).unwrap();
        let en_errors = pages.catalog(Locale::En).texts.get("errors").and_then(|e| e.as_table()).unwrap();
        assert_eq!(ru_errors.keys().collect::<Vec<_>>(), en_errors.keys().collect::<Vec<_>>());
    }

    #[test]
    fn the_policy_allows_no_inline_script_or_style() {
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe-inline"));
    }
}
