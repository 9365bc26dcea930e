//! The staff console at `/admin`: server-rendered pages (templates in `admin/templates`,
//! catalogs in `admin/i18n`, static files in `admin/static`, all embedded in the binary), one
//! file per screen.
//!
//! Building blocks every screen uses:
//! - [`session::StaffSession<R>`] — the signed-in staff member, with `R` the least role
//!   ([`session::Cashier`]/[`session::AnyStaff`], [`session::Manager`], [`session::Owner`]);
//! - [`session::CsrfForm<T>`] — a form body checked against the session's CSRF token;
//! - [`page::render`] and `StaffSession::page` — the layout, navigation and security headers;
//! - [`audit::record`] — the audit log;
//! - [`client_address`] — the address a request came from.

pub mod account;
pub mod audit;
pub mod cashier;
pub mod customer_actions;
pub mod customer_data;
mod customer_wallets;
pub mod customers;
pub mod dashboard;
pub mod data;
pub mod design;
pub mod design_images;
pub mod design_publish;
pub mod home;
pub mod imports;
pub mod keys;
pub mod login;
pub mod mail;
pub mod messages;
pub mod messages_auto;
pub mod page;
pub mod password;
pub mod programs;
pub mod programs_rules;
pub mod programs_stamps;
pub mod segments;
pub mod session;
pub mod setup;
pub mod staff;
pub mod totp;
pub mod webhooks;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::http::{get_only, not_allowed, post_only};
use crate::state::AppState;
use crate::store::StoreError;

/// The console's routes, mounted at the root of the application.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .service(web::resource("").route(web::get().to(home::show)).default_service(not_allowed("GET, HEAD")))
            .service(web::resource("/").route(web::get().to(home::show)).default_service(not_allowed("GET, HEAD")))
            .service(
                web::resource("/login")
                    .route(web::get().to(login::show))
                    .route(web::post().to(login::submit))
                    .default_service(not_allowed("GET, HEAD, POST")),
            )
            .service(
                web::resource("/login/code")
                    .route(web::get().to(login::show_code))
                    .route(web::post().to(login::submit_code))
                    .default_service(not_allowed("GET, HEAD, POST")),
            )
            .service(web::resource("/logout").route(web::post().to(login::logout)).default_service(not_allowed("POST")))
            .service(
                web::resource("/setup/{token}")
                    .route(web::get().to(setup::show))
                    .route(web::post().to(setup::submit))
                    .default_service(not_allowed("GET, HEAD, POST")),
            )
            .service(
                web::resource("/account").route(web::get().to(account::show)).default_service(not_allowed("GET, HEAD")),
            )
            .service(get_only("/dashboard.csv", web::get().to(dashboard::csv)))
            .service(post_only("/dashboard/refresh", web::post().to(dashboard::refresh)))
            .service(web::resource("/data").route(web::get().to(data::show)).default_service(not_allowed("GET, HEAD")))
            .service(get_only("/data/customers.csv", web::get().to(data::customers)))
            .service(get_only("/data/transactions.csv", web::get().to(data::transactions)))
            .service(post_only("/data/import", web::post().to(imports::upload)))
            .service(get_only("/data/imports/{id}", web::get().to(imports::show)))
            .service(get_only("/data/imports/{id}/progress", web::get().to(imports::progress)))
            .service(get_only("/data/imports/{id}/errors.csv", web::get().to(imports::errors)))
            .service(post_only("/data/imports/{id}/import", web::post().to(imports::confirm)))
            .service(post_only("/data/imports/{id}/links", web::post().to(imports::send_links)))
            .service(post_only("/account/totp", web::post().to(account::enable_totp)))
            .service(post_only("/account/totp/disable", web::post().to(account::disable_totp)))
            .service(
                web::resource("/staff")
                    .route(web::get().to(staff::list))
                    .route(web::post().to(staff::add))
                    .default_service(not_allowed("GET, HEAD, POST")),
            )
            .service(post_only("/staff/{id}/disable", web::post().to(staff::disable)))
            .service(post_only("/staff/{id}/enable", web::post().to(staff::enable)))
            .service(post_only("/staff/{id}/role", web::post().to(staff::change_role)))
            .service(post_only("/staff/{id}/password", web::post().to(staff::reset_password)))
            .service(post_only("/staff/{id}/totp/reset", web::post().to(staff::reset_totp)))
            .service(
                web::resource("/keys")
                    .route(web::get().to(keys::list))
                    .route(web::post().to(keys::create_key))
                    .default_service(not_allowed("GET, HEAD, POST")),
            )
            .service(post_only("/keys/{id}/revoke", web::post().to(keys::revoke_key)))
            .service(post_only("/webhook-sources", web::post().to(keys::create_source)))
            .service(post_only("/webhook-sources/{id}/revoke", web::post().to(keys::revoke_source)))
            .service(web::resource("/mail").route(web::get().to(mail::list)).default_service(not_allowed("GET, HEAD")))
            .service(post_only("/mail/{id}/retry", web::post().to(mail::retry)))
            .service(
                web::resource("/webhooks")
                    .route(web::get().to(webhooks::list))
                    .route(web::post().to(webhooks::add))
                    .default_service(not_allowed("GET, HEAD, POST")),
            )
            .service(get_only("/webhooks/{id}", web::get().to(webhooks::deliveries)))
            .service(post_only("/webhooks/{id}/remove", web::post().to(webhooks::remove)))
            .service(post_only("/webhooks/{id}/replay-failed", web::post().to(webhooks::replay_failed)))
            .service(post_only("/webhooks/{id}/deliveries/{delivery}/replay", web::post().to(webhooks::replay)))
            .service(
                web::resource("/audit").route(web::get().to(audit::list)).default_service(not_allowed("GET, HEAD")),
            )
            .service(get_only("/static/{path:.*}", web::get().to(static_file)))
            .configure(cashier::routes)
            .configure(customers::routes)
            .configure(design::routes)
            .configure(programs::routes)
            .configure(messages::routes)
            .configure(segments::routes),
    );
}

/// The address a request came from, as the audit log and login throttling see it: the peer, or
/// what a proxy in `LOY_TRUSTED_PROXIES` forwarded (never a header from anyone else).
pub fn client_address(req: &HttpRequest) -> String {
    match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.client_addr(req).to_string(),
        None => req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// A console handler's failure: the store failed (500, logged with its cause).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Store(e) => tracing::error!(error = %crate::telemetry::error_chain(e), "a console request failed"),
            Self::Internal(e) => tracing::error!(error = %e, "a console request failed"),
        }
        page::error_response(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// A ledger or POS-path failure seen by a console screen (refusals are answers, not errors:
/// what reaches here is a store failure or a bug), logged with its cause.
pub fn ledger_failed(e: crate::http::errors::ApiError) -> AdminError {
    AdminError::Internal(e.to_string())
}

/// The program a page's `?program=` (or form field) names; the default program for an empty or
/// unknown id.
pub async fn chosen_program(state: &AppState, id: &str) -> Result<crate::domain::Program, AdminError> {
    let id = if id.trim().is_empty() { crate::domain::DEFAULT_PROGRAM_ID } else { id.trim() };
    match state.find_program(id).await.map_err(ledger_failed)? {
        Some(program) => Ok(program),
        None => state.program().await.map_err(ledger_failed),
    }
}

/// The "form could not be read" page (a tampered or truncated form), 400.
pub fn bad_form(req: &HttpRequest, viewer: &page::Viewer) -> HttpResponse {
    page::notice(
        req,
        Some(viewer),
        StatusCode::BAD_REQUEST,
        page::Notice { title: "bad_form_title", text: "bad_form_text", link: Some("/admin") },
    )
}

impl From<anyhow::Error> for AdminError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(format!("{e:#}"))
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// `GET /admin/static/{path}`: the console's CSS and scripts. Pages link them with a content
/// version (`?v=`), so browsers may keep them for a year.
async fn static_file(path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    if path.contains("..") {
        return HttpResponse::NotFound().finish();
    }
    match page::ADMIN.get_file(format!("static/{path}")) {
        Some(file) => HttpResponse::Ok()
            .content_type(content_type(&path))
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(file.contents()),
        None => HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("Not found"),
    }
}
