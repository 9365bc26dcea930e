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

/// `GET /media/stamps/{program}/{revision}-{slots}-{filled}.png`: the strip of a stamps
/// program's cards with `filled` stamps, for the Google object's image module (see
/// `programs::stamp_strips::google_path`). Drawn from the program's current design.
pub async fn stamp_strip(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    use crate::programs::stamp_strips::StripKey;
    let (program_id, name) = path.into_inner();
    let parts: Option<Vec<i64>> =
        name.strip_suffix(".png").and_then(|n| n.split('-').map(str::parse).collect::<Result<_, _>>().ok());
    let not_found = || ApiError::not_found("No such image.");
    let Some([revision, slots, filled]) = parts.as_deref().and_then(|p| <[i64; 3]>::try_from(p).ok()) else {
        return Err(not_found());
    };
    let program = state.find_program(&program_id).await?.ok_or_else(not_found)?;
    let Some(rules) = program.rules.stamp_rules() else { return Err(not_found()) };
    if filled < 0 || filled > slots {
        return Err(not_found());
    }
    let png = state.strips.get(&state.store, StripKey::of(&program, rules, filled)).await?;
    // An address names its design: the current one may be kept; an older one is answered with
    // the current design, briefly.
    let current = revision == program.design.revision && slots == i64::from(rules.stamps_per_reward);
    let cache = if current { "public, max-age=86400" } else { "public, max-age=300" };
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(png.as_ref().clone()))
}
