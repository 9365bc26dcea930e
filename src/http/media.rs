//! `GET /media/{id}.png`: the images designs use, from the store, for Google Wallet (which
//! fetches a class's logo and hero image from loy) and the pages. An image id is the SHA-256 of
//! its bytes, so the answer under one address never changes and may be cached for good.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::errors::ApiError;
use crate::programs::images::is_image_id;
use crate::state::AppState;

/// The address path of a stored image.
pub fn path(id: &str) -> String {
    format!("/media/{id}.png")
}

pub async fn image(state: web::Data<AppState>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = name.strip_suffix(".png").filter(|id| is_image_id(id));
    let png = match id {
        Some(id) => state.store.image(id).await?,
        None => None,
    };
    let Some(png) = png else { return Err(ApiError::not_found("No such image.")) };
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(png))
}
