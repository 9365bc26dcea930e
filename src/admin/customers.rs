//! `/admin/customers` (managers and owners): search and the sorted list; the detail of one
//! customer with their card, devices, Google object and ledger; and the actions on them —
//! adjust the balance with a reason (previewed before it applies), block and unblock, show the
//! card link, and for owners delete the customer's personal data and export their data.
//! Every action is recorded in the audit log with the values before and after.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit;
use super::page::FieldErrors;
use super::session::{CsrfForm, Manager, RoleRequirement, StaffSession};
use super::{AdminError, ledger_failed};
use crate::customers::till::{self, TillOperation, TillOutcome};
use crate::domain::{Card, CardStatus, Locale, Program, Role, SerialNumber};
use crate::http::{get_only, post_only};
use crate::ledger::rules::MAX_POINTS;
use crate::state::AppState;
use crate::store::{CardLookup, CustomerCursor, CustomerListQuery, CustomerSort};

/// Rows per page of the list and of a ledger.
const PAGE: usize = 25;

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

#[derive(Serialize)]
struct Row {
    serial: String,
    name: String,
    phone: String,
    email: String,
    card_number: String,
    balance: i64,
    status: &'static str,
    registered: String,
    last_activity: String,
}

fn row(card: &Card) -> Row {
    let h = card.holder.as_ref();
    Row {
        serial: card.serial.to_string(),
        name: h.map(|h| h.full_name()).unwrap_or_default(),
        phone: h.map(|h| h.phone.as_str().to_owned()).unwrap_or_default(),
        email: h.and_then(|h| h.email.as_ref()).map(|e| e.as_str().to_owned()).unwrap_or_default(),
        card_number: card.card_number.grouped(),
        balance: card.balance,
        status: card.status.as_str(),
        registered: when(card.created_at),
        last_activity: when(card.last_entry.as_ref().map_or(card.created_at, |e| e.at)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    after: String,
}

#[derive(Serialize)]
struct ListPage {
    q: String,
    searched: bool,
    rows: Vec<Row>,
    limited: bool,
    sort: &'static str,
    order: &'static str,
    /// The link of the next page, when there is one.
    next: Option<String>,
    first: Option<String>,
}

/// `GET /admin/customers[?q=…][&sort=registered|balance|activity&order=desc|asc&after=…]`.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AdminError> {
    let program = state.program().await.map_err(ledger_failed)?;
    let sort = CustomerSort::parse(&query.sort).unwrap_or(CustomerSort::Registered);
    let descending = query.order != "asc";
    let order = if descending { "desc" } else { "asc" };
    if !query.q.trim().is_empty() {
        let cards =
            crate::customers::search(state.store.as_ref(), &program.id, &query.q, state.settings.default_phone_region)
                .await?;
        let page = ListPage {
            q: query.q.clone(),
            searched: true,
            limited: cards.len() >= crate::customers::SEARCH_LIMIT,
            rows: cards.iter().map(row).collect(),
            sort: sort.as_str(),
            order,
            next: None,
            first: None,
        };
        return Ok(session.page(&req, "customers.html", page));
    }
    let after = CustomerCursor::decode(&query.after);
    let list = CustomerListQuery { program_id: &program.id, sort, descending, after: after.clone(), limit: PAGE + 1 };
    let mut cards = state.store.list_cards(&list).await?;
    let more = cards.len() > PAGE;
    cards.truncate(PAGE);
    let link = |after: Option<&CustomerCursor>| {
        let mut link = format!("/admin/customers?sort={}&order={order}", sort.as_str());
        if let Some(after) = after {
            link.push_str("&after=");
            link.push_str(&after.encode());
        }
        link
    };
    let next = if more { cards.last().map(|c| link(Some(&CustomerCursor::after(c, sort)))) } else { None };
    let page = ListPage {
        q: String::new(),
        searched: false,
        limited: false,
        rows: cards.iter().map(row).collect(),
        sort: sort.as_str(),
        order,
        next,
        first: after.is_some().then(|| link(None)),
    };
    Ok(session.page(&req, "customers.html", page))
}

#[derive(Serialize)]
struct Contact {
    first_name: String,
    last_name: String,
    phone: String,
    email: String,
    birthday: String,
    locale: &'static str,
}

#[derive(Serialize)]
struct CardInfo {
    serial: String,
    card_number: String,
    tier: String,
    balance: i64,
    lifetime: i64,
    status: &'static str,
    registered: String,
    devices: u64,
    /// `not_configured`, `never`, `synced` or `expired`.
    google: &'static str,
    google_version: i64,
}

#[derive(Serialize)]
struct EntryRow {
    when: String,
    kind: &'static str,
    /// Signed: `+45`, `-100`.
    points: String,
    balance_after: i64,
    source: String,
    note: String,
}

#[derive(Serialize, Default)]
pub(super) struct AdjustValues {
    points: String,
    reason: String,
}

#[derive(Serialize)]
struct DetailPage {
    name: String,
    contact: Option<Contact>,
    card: CardInfo,
    entries: Vec<EntryRow>,
    older: Option<String>,
    newest: Option<String>,
    done: String,
    values: AdjustValues,
    errors: FieldErrors,
    form_id: String,
    is_owner: bool,
    deleted: bool,
}

fn tier_name(program: &Program, card: &Card, locale: Locale) -> String {
    program
        .rules
        .tier(&card.tier)
        .map(|t| if locale == Locale::Ru { t.name_ru.clone() } else { t.name_en.clone() })
        .unwrap_or_else(|| card.tier.clone())
}

pub(super) async fn card_of(state: &AppState, serial: &str) -> Result<Option<Card>, AdminError> {
    match SerialNumber::parse(serial) {
        Ok(serial) => Ok(state.store.find_card(CardLookup::Serial(&serial)).await?),
        Err(_) => Ok(None),
    }
}

pub(super) fn not_found<R: RoleRequirement>(req: &HttpRequest, session: &StaffSession<R>) -> HttpResponse {
    super::page::notice(
        req,
        Some(&session.viewer()),
        StatusCode::NOT_FOUND,
        super::page::Notice {
            title: "customer_not_found_title",
            text: "customer_not_found_text",
            link: Some("/admin/customers"),
        },
    )
}

pub(super) fn back_to(serial: &str, done: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/admin/customers/{serial}?done={done}")))
        .finish()
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    done: String,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn render_detail<R: RoleRequirement>(
    state: &AppState,
    session: &StaffSession<R>,
    req: &HttpRequest,
    card: &Card,
    before: Option<i64>,
    done: &str,
    status: StatusCode,
    values: AdjustValues,
    errors: FieldErrors,
) -> Result<HttpResponse, AdminError> {
    let program = state.program_by_id(&card.program_id).await.map_err(ledger_failed)?;
    let locale = super::page::locale(req);
    let mut entries = state.store.card_entries(&card.serial, before.filter(|b| *b > 0), PAGE + 1).await?;
    let more = entries.len() > PAGE;
    entries.truncate(PAGE);
    let older =
        if more { entries.last().map(|e| format!("/admin/customers/{}?before={}", card.serial, e.seq)) } else { None };
    let devices = state.store.count_card_devices(card.serial.as_str()).await?;
    let (google, google_version) = if card.is_deleted() {
        ("expired", 0)
    } else if state.google.is_none() {
        ("not_configured", 0)
    } else {
        let sync = state.store.google_sync(&card.serial).await?;
        if sync.version == 0 { ("never", 0) } else { ("synced", sync.version) }
    };
    let page = DetailPage {
        name: card.holder.as_ref().map(|h| h.full_name()).unwrap_or_default(),
        contact: card.holder.as_ref().map(|h| Contact {
            first_name: h.first_name.to_string(),
            last_name: h.last_name.as_ref().map(ToString::to_string).unwrap_or_default(),
            phone: h.phone.as_str().to_owned(),
            email: h.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
            birthday: h.birthday.map(|d| d.to_string()).unwrap_or_default(),
            locale: h.locale.code(),
        }),
        card: CardInfo {
            serial: card.serial.to_string(),
            card_number: card.card_number.grouped(),
            tier: tier_name(&program, card, locale),
            balance: card.balance,
            lifetime: card.lifetime_earned,
            status: card.status.as_str(),
            registered: when(card.created_at),
            devices,
            google,
            google_version,
        },
        entries: entries
            .into_iter()
            .map(|e| EntryRow {
                when: when(e.created_at),
                kind: e.kind.as_str(),
                points: format!("{:+}", e.points),
                balance_after: e.balance_after,
                source: e.source.as_str().to_owned(),
                note: e.description.unwrap_or_default(),
            })
            .collect(),
        older,
        newest: before.is_some().then(|| format!("/admin/customers/{}", card.serial)),
        done: done.to_owned(),
        values,
        errors,
        form_id: till::new_form_id(),
        is_owner: session.staff.role == Role::Owner,
        deleted: card.is_deleted(),
    };
    Ok(session.page_with(req, status, "customer.html", page))
}

/// `GET /admin/customers/{serial}[?before=seq]`.
pub async fn detail(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    query: web::Query<DetailQuery>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await? else { return Ok(not_found(&req, &session)) };
    let done = match query.done.as_str() {
        d @ ("adjusted" | "blocked" | "unblocked" | "deleted") => d,
        _ => "",
    };
    render_detail(
        &state,
        &session,
        &req,
        &card,
        query.before,
        done,
        StatusCode::OK,
        AdjustValues::default(),
        FieldErrors::default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct AdjustForm {
    #[serde(default)]
    points: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    form_id: String,
    /// Set by the confirmation page: apply. Absent: show the resulting balance first.
    #[serde(default)]
    confirm: String,
}

#[derive(Serialize)]
struct AdjustConfirmPage {
    serial: String,
    name: String,
    points: i64,
    points_text: String,
    reason: String,
    before: i64,
    after: i64,
    form_id: String,
}

/// `POST /admin/customers/{serial}/adjust`: first the preview of the resulting balance, then
/// (with `confirm`) the adjustment, under the form's idempotency key.
pub async fn adjust(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    form: CsrfForm<AdjustForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await? else { return Ok(not_found(&req, &session)) };
    let mut errors = FieldErrors::default();
    if card.is_deleted() {
        errors.add("points", "card_deleted");
    }
    let points =
        form.points.trim().replace(['+', ' '], "").parse::<i64>().ok().filter(|p| *p != 0 && p.abs() <= MAX_POINTS);
    if points.is_none() {
        errors.add("points", "points_invalid");
    }
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        errors.add("reason", "reason_required");
    }
    if let Some(p) = points {
        if card.balance + p < 0 {
            errors.add("points", "insufficient_points");
        }
    }
    let values = AdjustValues { points: form.points.clone(), reason: form.reason.clone() };
    let (Some(points), true) = (points, errors.is_empty()) else {
        return render_detail(
            &state,
            &session,
            &req,
            &card,
            None,
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            values,
            errors,
        )
        .await;
    };
    let Some(key) = till::form_key(&session.staff.id, &form.form_id) else {
        return Ok(super::bad_form(&req, &session.viewer()));
    };
    if form.confirm != "yes" {
        let page = AdjustConfirmPage {
            serial: card.serial.to_string(),
            name: card.display_name(),
            points,
            points_text: format!("{points:+}"),
            reason,
            before: card.balance,
            after: card.balance + points,
            form_id: form.form_id.clone(),
        };
        return Ok(session.page(&req, "customer_adjust.html", page));
    }
    let outcome =
        till::write(&state, &session.staff.id, key, &card, TillOperation::Adjust { points, reason: reason.clone() })
            .await
            .map_err(ledger_failed)?;
    match outcome {
        TillOutcome::Done(done) => {
            if !done.replayed {
                audit::record(
                    &state,
                    &session,
                    "adjust",
                    Some(card.serial.as_str()),
                    json!({
                        "card_number": card.card_number.as_str(),
                        "transaction_id": done.transaction_id,
                        "points": points,
                        "reason": reason,
                        "balance_before": card.balance,
                        "balance_after": done.balance,
                    }),
                )
                .await;
            }
            Ok(back_to(card.serial.as_str(), "adjusted"))
        }
        TillOutcome::Refused { code, .. } => {
            let mut errors = FieldErrors::default();
            let key = match code.as_str() {
                "insufficient_points" | "form_used" | "in_progress" => code.as_str(),
                _ => "points_invalid",
            };
            errors.add("points", key);
            let values = AdjustValues { points: form.points.clone(), reason: form.reason.clone() };
            render_detail(&state, &session, &req, &card, None, "", StatusCode::UNPROCESSABLE_ENTITY, values, errors)
                .await
        }
    }
}

/// Moves a card to `status` (block/unblock), retried against concurrent writers; the card
/// before and after, or `None` when it is deleted.
async fn set_status(state: &AppState, card: Card, status: CardStatus) -> Result<Option<(Card, Card)>, AdminError> {
    let mut card = card;
    loop {
        if card.is_deleted() {
            return Ok(None);
        }
        if card.status == status {
            return Ok(Some((card.clone(), card)));
        }
        let mut next = card.bumped(state.clock.now());
        next.status = status;
        if state
            .store
            .update_card_emitting(
                &next,
                card.version,
                &crate::webhooks::events::status_change(&card, &next, next.updated_at),
            )
            .await?
        {
            state.changes.card_changed(&card.serial);
            return Ok(Some((card, next)));
        }
        match state.store.find_card(CardLookup::Serial(&card.serial)).await? {
            Some(again) => card = again,
            None => return Ok(None),
        }
    }
}

async fn change_status(
    state: &AppState,
    session: &StaffSession<Manager>,
    req: &HttpRequest,
    serial: &str,
    status: CardStatus,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(state, serial).await? else { return Ok(not_found(req, session)) };
    let Some((before, after)) = set_status(state, card.clone(), status).await? else {
        let mut errors = FieldErrors::default();
        errors.add("status", "card_deleted");
        return render_detail(
            state,
            session,
            req,
            &card,
            None,
            "",
            StatusCode::CONFLICT,
            AdjustValues::default(),
            errors,
        )
        .await;
    };
    let action = if status == CardStatus::Blocked { "block" } else { "unblock" };
    if before.version != after.version {
        audit::record(
            state,
            session,
            action,
            Some(card.serial.as_str()),
            json!({ "card_number": card.card_number.as_str(), "status_before": before.status.as_str(), "status_after": after.status.as_str() }),
        )
        .await;
    }
    Ok(back_to(card.serial.as_str(), if status == CardStatus::Blocked { "blocked" } else { "unblocked" }))
}

/// `POST /admin/customers/{serial}/block`.
pub async fn block(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    _form: CsrfForm<super::session::NoFields>,
) -> Result<HttpResponse, AdminError> {
    change_status(&state, &session, &req, &serial, CardStatus::Blocked).await
}

/// `POST /admin/customers/{serial}/unblock`.
pub async fn unblock(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    _form: CsrfForm<super::session::NoFields>,
) -> Result<HttpResponse, AdminError> {
    change_status(&state, &session, &req, &serial, CardStatus::Active).await
}

#[derive(Serialize)]
struct LinkPage {
    serial: String,
    name: String,
    url: String,
    qr: String,
    /// The masked address the link was mailed to, when it was.
    mailed_to: Option<String>,
    /// Whether e-mail is on (else the page says why nothing was sent).
    mail_on: bool,
}

/// `POST /admin/customers/{serial}/link`: "resend the card link". The link is mailed when
/// e-mail is on and the card has an address; the link and its QR code are shown to staff either
/// way, to hand over.
pub async fn link(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    _form: CsrfForm<super::session::NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await?.filter(|c| !c.is_deleted()) else {
        return Ok(not_found(&req, &session));
    };
    let url = state.card_url(&card);
    let qr = crate::card_page::qr_svg(&url)
        .map(|svg| {
            use base64::Engine;
            format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
        })
        .unwrap_or_default();
    audit::record(
        &state,
        &session,
        "card_link_shown",
        Some(card.serial.as_str()),
        json!({ "card_number": card.card_number.as_str() }),
    )
    .await;
    let mailed_to = match crate::mail::queue(
        state.store.as_ref(),
        state.mail.as_deref(),
        crate::mail::MailKind::CardLink,
        &card,
        state.clock.now(),
    )
    .await?
    {
        Some(email) => {
            audit::record(&state, &session, audit::actions::CARD_LINK_MAILED, Some(card.serial.as_str()), json!({}))
                .await;
            Some(crate::mail::mask(email.as_str()))
        }
        None => None,
    };
    let page = LinkPage {
        serial: card.serial.to_string(),
        name: card.display_name(),
        url,
        qr,
        mailed_to,
        mail_on: state.mail.is_some(),
    };
    Ok(session.page(&req, "customer_link.html", page))
}

/// The customers screens' routes, inside `/admin`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/customers", web::get().to(list)))
        .service(get_only("/customers/{serial}", web::get().to(detail)))
        .service(post_only("/customers/{serial}/adjust", web::post().to(adjust)))
        .service(post_only("/customers/{serial}/block", web::post().to(block)))
        .service(post_only("/customers/{serial}/unblock", web::post().to(unblock)))
        .service(post_only("/customers/{serial}/link", web::post().to(link)))
        .service(post_only("/customers/{serial}/delete", web::post().to(super::customer_data::delete)))
        .service(get_only("/customers/{serial}/export", web::get().to(super::customer_data::export)));
}
