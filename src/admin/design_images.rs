//! The designer's images (owners): an upload per slot (logo, icon, strip) is checked and
//! converted by `crate::programs::images` and put into the draft; "remove" puts the slot back to
//! the built-in image. Each change is saved to the draft at once (on the program as just read,
//! so a concurrent edit is never undone) and recorded in the audit log.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AdminError;
use super::audit::{self, actions};
use super::design::{DesignForm, Extras, back_to, load, not_found, render, working_design};
use super::imports::{UploadProblem, read_upload};
use super::session::{CsrfForm, NoFields, Owner, StaffSession};
use crate::domain::{ImageSlot, Program, ProgramDesign};
use crate::programs::images::{ImageError, MAX_UPLOAD_BYTES, store_upload};
use crate::state::AppState;

/// The catalog key (`design` table) of an upload's refusal.
fn refusal(e: &ImageError) -> &'static str {
    match e {
        ImageError::TooLarge => "image_too_large",
        ImageError::NotAnImage => "image_not_image",
        ImageError::TooManyPixels => "image_too_many_pixels",
        ImageError::Unreadable(_) | ImageError::Store(_) => "image_unreadable",
    }
}

/// Saves `program` with its draft changed by `change`; `false` when someone saved in between.
async fn save_draft(
    state: &AppState,
    program: &Program,
    change: impl FnOnce(&mut ProgramDesign),
) -> Result<bool, AdminError> {
    let mut next = program.clone();
    let mut draft = working_design(program).clone();
    change(&mut draft);
    next.draft = Some(draft);
    next.version = program.version + 1;
    next.updated_at = state.clock.now();
    Ok(state.save_program(&next, program.version).await?)
}

/// The designer page again with an upload's refusal next to its slot.
async fn refused(
    state: &AppState,
    session: &StaffSession<Owner>,
    req: &HttpRequest,
    program: &Program,
    slot: ImageSlot,
    key: &'static str,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let form = DesignForm::of(working_design(program), program.version);
    let extras = Extras { image_error: Some((slot, key)), ..Extras::default() };
    render(state, session, req, status, program, form, extras).await
}

/// `POST /admin/programs/{slug}/design/images/{slot}` (multipart: `csrf`, `file`).
pub async fn upload(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let header_token = req.headers().get(super::session::CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (field_token, upload) = read_upload(&req, payload, MAX_UPLOAD_BYTES).await;
    if !header_token.or(field_token).is_some_and(|p| session.csrf_matches(&p)) {
        tracing::warn!(path = req.path(), "a designer upload came without its session's CSRF token");
        return Err(super::session::forbidden(&req, Some(&session.viewer()), "csrf_text"));
    }
    let (slug, slot) = path.into_inner();
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let Some(slot) = ImageSlot::parse(&slot) else { return Ok(not_found(&req, &session.viewer())) };
    let bytes = match upload {
        Ok(upload) => upload.bytes,
        Err(problem) => {
            let key = match problem {
                UploadProblem::TooLarge => "image_too_large",
                UploadProblem::NoFile | UploadProblem::Empty => "image_no_file",
                UploadProblem::NotMultipart => "image_not_image",
            };
            return Ok(refused(&state, &session, &req, &program, slot, key, problem.status()).await?);
        }
    };
    let files = match store_upload(&state.store, slot, bytes).await {
        Ok(files) => files,
        Err(ImageError::Store(e)) => return Err(AdminError::from(e).into()),
        Err(e) => {
            let status = if matches!(e, ImageError::TooLarge) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            return Ok(refused(&state, &session, &req, &program, slot, refusal(&e), status).await?);
        }
    };
    let ids: Vec<String> = files.values().cloned().collect();
    if !save_draft(&state, &program, |draft| {
        draft.images.insert(slot, files);
    })
    .await?
    {
        return Ok(refused(&state, &session, &req, &program, slot, "image_conflict", StatusCode::CONFLICT).await?);
    }
    let details = serde_json::json!({ "slot": slot.as_str(), "images": ids });
    audit::record(&state, &session, actions::DESIGN_IMAGE_UPLOADED, Some(&program.id), details).await;
    Ok(back_to(&program.id, "uploaded"))
}

/// `POST /admin/programs/{slug}/design/images/{slot}/remove`: back to the built-in image.
pub async fn remove(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let (slug, slot) = path.into_inner();
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let Some(slot) = ImageSlot::parse(&slot) else { return Ok(not_found(&req, &session.viewer())) };
    if !save_draft(&state, &program, |draft| {
        draft.images.remove(&slot);
    })
    .await?
    {
        return refused(&state, &session, &req, &program, slot, "image_conflict", StatusCode::CONFLICT).await;
    }
    let details = serde_json::json!({ "slot": slot.as_str() });
    audit::record(&state, &session, actions::DESIGN_IMAGE_REMOVED, Some(&program.id), details).await;
    Ok(back_to(&program.id, "removed"))
}

/// The address of the designer's preview strip: the design as typed (colours, stamp picture)
/// with `filled` stamps.
pub fn stamp_strip_url(slug: &str, design: &ProgramDesign, filled: u32) -> String {
    let image = crate::programs::stamp_strips::stamp_image(&design.images).unwrap_or_default();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("bg", &design.background_color)
        .append_pair("fg", &design.foreground_color)
        .append_pair("label", &design.label_color)
        .append_pair("icon", design.stamp_icon.as_str())
        .append_pair("image", &image)
        .append_pair("filled", &filled.to_string())
        .finish();
    format!("/admin/programs/{slug}/design/stamps.png?{query}")
}

#[derive(Debug, serde::Deserialize)]
pub struct StripQuery {
    #[serde(default)]
    bg: String,
    #[serde(default)]
    fg: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    icon: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    filled: u32,
}

/// `GET /admin/programs/{slug}/design/stamps.png?…` (owners and managers): a stamps program's
/// strip as the designer's preview shows it, drawn from the query (nothing is stored).
pub async fn stamp_strip(
    state: web::Data<AppState>,
    session: StaffSession<crate::admin::session::Manager>,
    req: HttpRequest,
    slug: web::Path<String>,
    query: web::Query<StripQuery>,
) -> Result<HttpResponse, AdminError> {
    use crate::domain::StampIcon;
    use crate::programs::stamp_strips::{StripKey, render};
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let Some(rules) = program.rules.stamp_rules() else { return Ok(not_found(&req, &session.viewer())) };
    let image = crate::programs::images::is_image_id(&query.image).then(|| query.image.clone());
    let key = StripKey {
        program_id: program.id.clone(),
        revision: 0,
        slots: rules.stamps_per_reward,
        filled: query.filled.min(rules.stamps_per_reward),
        icon: StampIcon::parse(&query.icon).unwrap_or_default(),
        image,
        colours: [query.bg.clone(), query.fg.clone(), query.label.clone()],
    };
    let png = render(&state.store, &key, &[(750, 288)]).await?.pop().unwrap_or_default();
    Ok(HttpResponse::Ok().content_type("image/png").insert_header(("Cache-Control", "private, max-age=60")).body(png))
}
