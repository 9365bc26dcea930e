//! The route table: every address of the application and the handler behind it.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::errors::ApiError;
use crate::http::pages::locale_of;
use crate::http::{OPENAPI, assets, get_only, health, media, not_allowed};
use crate::state::AppState;
use crate::{apple, card_page, enrollment};

/// Every route of the application.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|_, _| ApiError::not_found("No such resource.").into()))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request("invalid_query", format!("The query string is invalid: {e}.")).into()
        }))
        .service(get_only("/healthz", web::get().to(health::healthz)))
        .service(get_only("/readyz", web::get().to(health::readyz)))
        .service(get_only("/api/openapi.json", web::get().to(openapi)))
        .service(get_only("/metrics", web::get().to(crate::http::metrics)))
        .service(
            web::scope("/api/v1")
                .service(
                    web::resource("/enrollments")
                        .route(web::post().to(enrollment::api::create))
                        .default_service(not_allowed("POST")),
                )
                .configure(crate::pos::routes)
                .default_service(web::to(api_not_found)),
        )
        .service(
            web::resource("/")
                .route(web::get().to(enrollment::form::show))
                .route(web::post().to(enrollment::form::submit))
                .default_service(not_allowed("GET, HEAD, POST")),
        )
        .service(
            web::resource("/recover")
                .route(web::get().to(enrollment::recover::show))
                .route(web::post().to(enrollment::recover::submit))
                .default_service(not_allowed("GET, HEAD, POST")),
        )
        .service(
            web::resource("/p/{slug}")
                .route(web::get().to(enrollment::form::show_program))
                .route(web::post().to(enrollment::form::submit_program))
                .default_service(not_allowed("GET, HEAD, POST")),
        )
        .service(
            web::resource("/p/{slug}/recover")
                .route(web::get().to(enrollment::recover::show_program))
                .route(web::post().to(enrollment::recover::submit_program))
                .default_service(not_allowed("GET, HEAD, POST")),
        )
        .service(
            web::resource(crate::google::objects::CALLBACK_PATH)
                .route(web::post().to(crate::google::callbacks::receive::callback))
                .default_service(not_allowed("POST")),
        )
        .configure(card_page::routes)
        .configure(apple::routes)
        .configure(crate::admin::routes)
        .service(get_only("/static/{path:.*}", web::get().to(assets::static_file)))
        .service(get_only("/media/{name}", web::get().to(media::image)))
        .service(get_only("/media/stamps/{program}/{name}", web::get().to(media::stamp_strip)))
        .default_service(web::to(fallback));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(OPENAPI)
}

async fn api_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("No such API endpoint."))
}

/// Unknown addresses: JSON for API-looking paths, a page for people.
async fn fallback(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        return actix_web::ResponseError::error_response(&ApiError::not_found("No such API endpoint."));
    }
    let locale = locale_of(&req, state.settings.default_locale);
    state.not_found_page(locale, "page_not_found_title", "page_not_found_text").await
}
