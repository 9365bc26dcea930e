//! The card designer at `/admin/programs/{slug}/design`: owners edit the program's draft
//! design (colours, texts, labels, images) beside a live preview of both wallets, save it, and
//! publish it; managers see the page read-only. Publishing, restoring and the fan-out's
//! progress are in `design_publish.rs`, images in `design_images.rs`.
//!
//! The preview follows the form as the staff member types (htmx posts the form to
//! `/design/preview` and swaps the fragment), and without JavaScript the "Preview" button
//! re-renders the whole page with the submitted values — nothing is saved either way.

use std::collections::BTreeMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::audit::{self, actions};
use super::design_publish;
use super::session::{CsrfForm, Manager, Owner, RoleRequirement, StaffSession};
use crate::domain::design::{FieldLabels, LocalizedText};
use crate::domain::{ImageSlot, Locale, Program, ProgramDesign, Role, StampIcon};
use crate::programs::check::{DesignReport, Finding};
use crate::programs::preview::{self, Colours, Preview, hex_to_rgb, parse_hex, rgb_to_hex};
use crate::state::AppState;

/// Design versions listed in the history.
const HISTORY: usize = 50;

/// The designer form as it is posted (and drawn again): colours as `#rrggbb`, texts per language.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DesignForm {
    /// The program's version the form was drawn from (saving is conditional on it).
    pub version: i64,
    /// `preview`, `save` or `publish`.
    pub action: String,
    /// The preview's language: `ru` or `en`.
    pub preview_lang: String,
    pub background_color: String,
    pub foreground_color: String,
    pub label_color: String,
    pub logo_text: String,
    pub label_balance_ru: String,
    pub label_balance_en: String,
    pub label_tier_ru: String,
    pub label_tier_en: String,
    pub label_member_ru: String,
    pub label_member_en: String,
    pub label_card_number_ru: String,
    pub label_card_number_en: String,
    pub terms_ru: String,
    pub terms_en: String,
    pub how_to_earn_ru: String,
    pub how_to_earn_en: String,
    pub contacts_ru: String,
    pub contacts_en: String,
    pub terms_url: String,
    /// A ticked checkbox sends `on`; an unticked one nothing.
    pub barcode: Option<String>,
    /// Stamps programs: `cup`, `star`, `scissors`, `car` or `uploaded`.
    pub stamp_icon: String,
}

fn text(ru: &str, en: &str) -> LocalizedText {
    LocalizedText::new(ru.trim(), en.trim())
}

impl DesignForm {
    /// The form showing `design`, drawn at `version`.
    pub fn of(design: &ProgramDesign, version: i64) -> Self {
        let colour = |c: &str| rgb_to_hex(c).unwrap_or_else(|| c.to_owned());
        let l = &design.labels;
        Self {
            version,
            action: String::new(),
            preview_lang: String::new(),
            background_color: colour(&design.background_color),
            foreground_color: colour(&design.foreground_color),
            label_color: colour(&design.label_color),
            logo_text: design.logo_text.clone(),
            label_balance_ru: l.balance.ru.clone(),
            label_balance_en: l.balance.en.clone(),
            label_tier_ru: l.tier.ru.clone(),
            label_tier_en: l.tier.en.clone(),
            label_member_ru: l.member.ru.clone(),
            label_member_en: l.member.en.clone(),
            label_card_number_ru: l.card_number.ru.clone(),
            label_card_number_en: l.card_number.en.clone(),
            terms_ru: design.terms.ru.clone(),
            terms_en: design.terms.en.clone(),
            how_to_earn_ru: design.how_to_earn.ru.clone(),
            how_to_earn_en: design.how_to_earn.en.clone(),
            contacts_ru: design.contacts.ru.clone(),
            contacts_en: design.contacts.en.clone(),
            terms_url: design.terms_url.clone(),
            barcode: design.barcode.then(|| "on".to_owned()),
            stamp_icon: design.stamp_icon.as_str().to_owned(),
        }
    }

    /// `base` with this form's values (its images and revision stay).
    pub fn apply(&self, base: &ProgramDesign) -> ProgramDesign {
        ProgramDesign {
            background_color: hex_to_rgb(&self.background_color),
            foreground_color: hex_to_rgb(&self.foreground_color),
            label_color: hex_to_rgb(&self.label_color),
            logo_text: self.logo_text.trim().to_owned(),
            labels: FieldLabels {
                balance: text(&self.label_balance_ru, &self.label_balance_en),
                tier: text(&self.label_tier_ru, &self.label_tier_en),
                member: text(&self.label_member_ru, &self.label_member_en),
                card_number: text(&self.label_card_number_ru, &self.label_card_number_en),
            },
            terms: text(&self.terms_ru, &self.terms_en),
            how_to_earn: text(&self.how_to_earn_ru, &self.how_to_earn_en),
            contacts: text(&self.contacts_ru, &self.contacts_en),
            terms_url: self.terms_url.trim().to_owned(),
            barcode: self.barcode.is_some(),
            images: base.images.clone(),
            stamp_icon: StampIcon::parse(&self.stamp_icon).unwrap_or(base.stamp_icon),
            revision: base.revision,
        }
    }

    fn preview_locale(&self, req: &HttpRequest) -> Locale {
        Locale::parse(&self.preview_lang).unwrap_or_else(|| super::page::locale(req))
    }
}

/// The design the designer edits: the draft, else the published design.
pub fn working_design(program: &Program) -> &ProgramDesign {
    program.draft.as_ref().unwrap_or(&program.design)
}

/// The program `slug` read from the store (not the cache: an edit must start from the latest).
pub async fn load(state: &AppState, slug: &str) -> Result<Option<Program>, AdminError> {
    if Program::check_slug(slug).is_err() {
        return Ok(None);
    }
    Ok(state.store.program(slug).await?)
}

/// The console's 404 page for an unknown program.
pub fn not_found(req: &HttpRequest, viewer: &super::page::Viewer) -> HttpResponse {
    super::page::notice(
        req,
        Some(viewer),
        StatusCode::NOT_FOUND,
        super::page::Notice { title: "not_found_title", text: "design_program_not_found_text", link: Some("/admin") },
    )
}

/// The preview of `design` as `program`'s card in `locale`.
pub fn preview_of(state: &AppState, program: &Program, design: &ProgramDesign, locale: Locale) -> Preview {
    let issuer_id = state.settings.google.as_ref().map_or("preview", |g| g.issuer_id.as_str());
    let ctx = preview::Context { apple: &state.apple, issuer_id, public_url: &state.settings.public_url };
    let mut shown = preview::preview(&ctx, program, design, locale);
    if let Some(stamps) = program.rules.stamp_rules() {
        // The strip is drawn from the design as typed, with the sample card's stamps.
        let filled = stamps.stamps_per_reward.saturating_sub(1).min(4);
        let strip = super::design_images::stamp_strip_url(&program.id, design, filled);
        shown.apple.strip = Some(strip.clone());
        shown.google.hero = strip;
    }
    shown
}

/// Problems of a design by form field (the template words each by its code).
type ByField = BTreeMap<&'static str, Vec<Finding>>;

fn by_field(list: &[Finding]) -> ByField {
    let mut map = ByField::new();
    for finding in list {
        map.entry(finding.field).or_default().push(finding.clone());
    }
    map
}

#[derive(Serialize)]
struct ImageView {
    slot: &'static str,
    /// The image the pass shows now (uploaded, or the built-in one).
    current: Option<String>,
    uploaded: bool,
    /// A catalog key of the `design` table: why the last upload was refused.
    error: Option<&'static str>,
}

#[derive(Serialize)]
struct HistoryRow {
    revision: i64,
    published_at: String,
    published_by: String,
    live: bool,
}

/// What the page shows besides the form: set by the handler that draws it.
#[derive(Default)]
pub struct Extras {
    pub report: DesignReport,
    /// Slot → catalog key of the upload's refusal.
    pub image_error: Option<(ImageSlot, &'static str)>,
    /// A catalog key of the `design` table for a notice above the form.
    pub problem: Option<&'static str>,
}

#[derive(Serialize)]
struct DesignPage {
    program_id: String,
    program_name: String,
    can_edit: bool,
    has_draft: bool,
    /// A stamps program: the stamp picture is chosen and the strip drawn.
    stamps: bool,
    revision: i64,
    form: DesignForm,
    preview: Preview,
    errors: ByField,
    warnings: ByField,
    images: Vec<ImageView>,
    history: Vec<HistoryRow>,
    progress: design_publish::ProgressView,
    done: Option<String>,
    problem: Option<&'static str>,
}

/// Draws the designer page for `program` with `form`'s values.
#[allow(clippy::too_many_arguments)]
pub async fn render<R: RoleRequirement>(
    state: &AppState,
    session: &StaffSession<R>,
    req: &HttpRequest,
    status: StatusCode,
    program: &Program,
    form: DesignForm,
    extras: Extras,
) -> Result<HttpResponse, AdminError> {
    let design = form.apply(working_design(program));
    let report = extras.report;
    let preview = preview_of(state, program, &design, form.preview_locale(req));
    let stamps = program.rules.stamp_rules().is_some();
    let images = ImageSlot::ALL
        .into_iter()
        // A stamp card draws its strip from the stamp picture; other cards have no stamp picture.
        .filter(|slot| if stamps { *slot != ImageSlot::Strip } else { *slot != ImageSlot::Stamp })
        .map(|slot| ImageView {
            slot: slot.as_str(),
            current: preview_image(&preview, &design, slot),
            uploaded: design.images.contains_key(&slot),
            error: extras.image_error.filter(|(s, _)| *s == slot).map(|(_, key)| key),
        })
        .collect();
    let history = state
        .store
        .design_versions(&program.id, HISTORY)
        .await?
        .into_iter()
        .map(|v| HistoryRow {
            revision: v.revision,
            published_at: program.time_zone.format(v.published_at, "%Y-%m-%d %H:%M %Z"),
            published_by: v.published_by,
            live: v.revision == program.design.revision,
        })
        .collect();
    let progress = design_publish::progress_view(state, program).await?;
    let page = DesignPage {
        program_id: program.id.clone(),
        program_name: program.name.clone(),
        can_edit: session.staff.role >= Role::Owner,
        has_draft: program.draft.is_some(),
        stamps,
        revision: program.design.revision,
        form,
        preview,
        errors: by_field(&report.errors),
        warnings: by_field(&report.warnings),
        images,
        history,
        progress,
        done: done_of(req),
        problem: extras.problem,
    };
    Ok(session.page_with(req, status, "design.html", page))
}

/// The image a slot shows on the pass preview.
fn preview_image(preview: &Preview, design: &ProgramDesign, slot: ImageSlot) -> Option<String> {
    match slot {
        ImageSlot::Logo => preview.apple.logo.clone(),
        ImageSlot::Strip => preview.apple.strip.clone(),
        ImageSlot::Icon => match design.images.get(&slot).and_then(|f| f.get("icon@2x.png")) {
            Some(id) => Some(preview::media_url(id)),
            None => Some(format!("{}/icon@2x.png", preview::TEMPLATE_FILES_PATH)),
        },
        ImageSlot::Stamp => {
            crate::programs::stamp_strips::stamp_image(&design.images).map(|id| preview::media_url(&id))
        }
    }
}

/// The `?done=` notice after a redirect (one of the known ones).
fn done_of(req: &HttpRequest) -> Option<String> {
    const KNOWN: &[&str] = &["saved", "published", "restored", "uploaded", "removed"];
    let query = web::Query::<BTreeMap<String, String>>::from_query(req.query_string()).ok()?;
    query.get("done").filter(|d| KNOWN.contains(&d.as_str())).cloned()
}

/// 303 to the designer page with a `?done=` notice.
pub fn back_to(slug: &str, done: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/admin/programs/{slug}/design?done={done}")))
        .finish()
}

/// `GET /admin/programs/{slug}/design` (owners edit, managers read).
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let mut form = DesignForm::of(working_design(&program), program.version);
    if let Ok(query) = web::Query::<BTreeMap<String, String>>::from_query(req.query_string()) {
        form.preview_lang = query.get("preview").cloned().unwrap_or_default();
    }
    let report = crate::programs::check::check(&state.apple, &program, &form.apply(working_design(&program)));
    let extras = Extras { report: DesignReport { errors: Vec::new(), warnings: report.warnings }, ..Extras::default() };
    render(&state, &session, &req, StatusCode::OK, &program, form, extras).await
}

/// `POST /admin/programs/{slug}/design`: "Preview", "Save draft" or "Publish" (owners).
pub async fn submit(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    slug: web::Path<String>,
    form: CsrfForm<DesignForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let form = form.0;
    let design = form.apply(working_design(&program));
    let report = crate::programs::check::check(&state.apple, &program, &design);
    match form.action.as_str() {
        "save" => {
            if form.version != program.version {
                let extras = Extras { report, problem: Some("conflict"), ..Extras::default() };
                return render(&state, &session, &req, StatusCode::CONFLICT, &program, form, extras).await;
            }
            let mut next = program.clone();
            next.draft = Some(design);
            next.version = program.version + 1;
            next.updated_at = state.clock.now();
            if !state.save_program(&next, program.version).await? {
                let extras = Extras { report, problem: Some("conflict"), ..Extras::default() };
                return render(&state, &session, &req, StatusCode::CONFLICT, &program, form, extras).await;
            }
            audit::record(&state, &session, actions::DESIGN_DRAFT_SAVED, Some(&program.id), serde_json::json!({}))
                .await;
            Ok(back_to(&program.id, "saved"))
        }
        "publish" => design_publish::publish(&state, &session, &req, program, form, design, report).await,
        _ => {
            render(&state, &session, &req, StatusCode::OK, &program, form, Extras { report, ..Extras::default() }).await
        }
    }
}

/// `POST /admin/programs/{slug}/design/preview` (htmx, as the form is typed in): the preview
/// fragment for the posted values; nothing is saved.
pub async fn preview_fragment(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    slug: web::Path<String>,
    form: CsrfForm<DesignForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let design = form.apply(working_design(&program));
    let preview = preview_of(&state, &program, &design, form.preview_locale(&req));
    Ok(session.page(&req, "design_preview.html", serde_json::json!({ "preview": preview })))
}

#[derive(Deserialize)]
pub struct ColoursQuery {
    bg: String,
    fg: String,
    label: String,
    google: String,
}

/// `GET /admin/design/colours.css?bg=…&fg=…&label=…&google=…`: the preview's colours as a
/// stylesheet (the CSP forbids inline styles). Only six-digit hex colours are accepted.
pub async fn colours_css(query: web::Query<ColoursQuery>) -> HttpResponse {
    let colours = (|| {
        Some(Colours {
            background: parse_hex(&query.bg)?,
            foreground: parse_hex(&query.fg)?,
            label: parse_hex(&query.label)?,
            google: parse_hex(&query.google)?,
        })
    })();
    match colours {
        Some(colours) => HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(preview::stylesheet(&colours)),
        None => HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body("Bad colours"),
    }
}

/// `GET /admin/design/pass-files/{name}`: an image of the built-in pass design, for the
/// preview of slots without an upload (staff only).
pub async fn pass_file(
    state: web::Data<AppState>,
    _session: StaffSession<Manager>,
    name: web::Path<String>,
) -> HttpResponse {
    let name = name.into_inner();
    match state.apple.template.files.iter().find(|f| f.name == name && name.ends_with(".png") && !name.contains('/')) {
        Some(file) => HttpResponse::Ok()
            .content_type("image/png")
            .insert_header(("Cache-Control", "private, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(file.bytes.clone()),
        None => HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("Not found"),
    }
}

/// The designer's routes, inside the console's scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::http::{get_only, not_allowed, post_only};
    cfg.service(
        web::resource("/programs/{slug}/design")
            .route(web::get().to(show))
            .route(web::post().to(submit))
            .default_service(not_allowed("GET, HEAD, POST")),
    )
    .service(post_only("/programs/{slug}/design/preview", web::post().to(preview_fragment)))
    .service(get_only("/programs/{slug}/design/progress", web::get().to(design_publish::progress)))
    .service(post_only("/programs/{slug}/design/history/{revision}/restore", web::post().to(design_publish::restore)))
    .service(post_only("/programs/{slug}/design/images/{slot}", web::post().to(super::design_images::upload)))
    .service(post_only("/programs/{slug}/design/images/{slot}/remove", web::post().to(super::design_images::remove)))
    .service(get_only("/programs/{slug}/design/stamps.png", web::get().to(super::design_images::stamp_strip)))
    .service(get_only("/design/colours.css", web::get().to(colours_css)))
    .service(get_only("/design/pass-files/{name}", web::get().to(pass_file)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_design_survives_the_form_both_ways() {
        let mut design = ProgramDesign {
            logo_text: "Кофейня".into(),
            terms: LocalizedText::new("Условия", "Terms"),
            terms_url: "https://shop.example/terms".into(),
            barcode: false,
            revision: 7,
            ..ProgramDesign::default()
        };
        design.labels.balance = LocalizedText::new("Штампы", "Stamps");
        design.images.insert(ImageSlot::Logo, [("logo.png".to_owned(), "ab".repeat(32))].into());
        let form = DesignForm::of(&design, 3);
        assert_eq!(form.background_color, "#1c2b4a");
        assert_eq!(form.barcode, None);
        assert_eq!(form.apply(&design), design, "images and revision come from the base");
    }

    #[test]
    fn typed_values_are_trimmed_and_a_ticked_barcode_is_on() {
        let form = DesignForm {
            background_color: "#FFFFFF".into(),
            foreground_color: "#000000".into(),
            label_color: "not a colour".into(),
            logo_text: "  Bakery ".into(),
            barcode: Some("on".into()),
            ..DesignForm::default()
        };
        let design = form.apply(&ProgramDesign::default());
        assert_eq!(design.background_color, "rgb(255, 255, 255)");
        assert_eq!(design.label_color, "not a colour", "kept as typed, so the check names it");
        assert_eq!(design.logo_text, "Bakery");
        assert!(design.barcode);
    }
}
