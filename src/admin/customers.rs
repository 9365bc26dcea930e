//! `/admin/customers` (managers and owners): search and the sorted list; the detail of one
//! customer with their card, wallets (devices, Google object, installs and removals) and ledger; and the actions on them —
//! adjust the balance with a reason (previewed before it applies), block and unblock, show the
//! card link, and for owners delete the customer's personal data and export their data.
//! Every action is recorded in the audit log with the values before and after.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::customer_actions;
use super::page::FieldErrors;
use super::session::{Manager, RoleRequirement, StaffSession};
use super::{AdminError, ledger_failed};
use crate::customers::till;
use crate::domain::{Card, Locale, Program, Role, SerialNumber};
use crate::http::{get_only, post_only};
use crate::segments::rfm::Segment;
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
    /// A segment's name: only its cards, in serial order.
    #[serde(default)]
    segment: String,
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
    /// The segment filter ("" for every customer) and the segments to choose from.
    segment: &'static str,
    segments: Vec<&'static str>,
}

fn segment_names() -> Vec<&'static str> {
    Segment::ALL.iter().map(|s| s.as_str()).collect()
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
            segment: "",
            segments: segment_names(),
        };
        return Ok(session.page(&req, "customers.html", page));
    }
    if let Some(segment) = Segment::parse(&query.segment) {
        return segment_list(&state, &session, &req, &program, segment, &query.after).await;
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
        segment: "",
        segments: segment_names(),
    };
    Ok(session.page(&req, "customers.html", page))
}

/// The list filtered to one segment's cards (as of its last computation), paged by serial.
async fn segment_list(
    state: &AppState,
    session: &StaffSession<Manager>,
    req: &HttpRequest,
    program: &Program,
    segment: Segment,
    after: &str,
) -> Result<HttpResponse, AdminError> {
    let after = (!after.is_empty()).then_some(after);
    let mut serials = state.store.segment_members(&program.id, segment, after, PAGE + 1).await?;
    let more = serials.len() > PAGE;
    serials.truncate(PAGE);
    let mut cards = Vec::with_capacity(serials.len());
    for serial in &serials {
        if let Some(card) = state.store.find_card(CardLookup::Serial(serial)).await? {
            cards.push(card);
        }
    }
    let link = |after: Option<&SerialNumber>| {
        let mut link = format!("/admin/customers?segment={}", segment.as_str());
        if let Some(after) = after {
            link.push_str("&after=");
            link.push_str(after.as_str());
        }
        link
    };
    let page = ListPage {
        q: String::new(),
        searched: false,
        limited: false,
        rows: cards.iter().map(row).collect(),
        sort: CustomerSort::Registered.as_str(),
        order: "desc",
        next: if more { serials.last().map(|s| link(Some(s))) } else { None },
        first: after.is_some().then(|| link(None)),
        segment: segment.as_str(),
        segments: segment_names(),
    };
    Ok(session.page(req, "customers.html", page))
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
    /// Stamps programs: the round's size and the rewards waiting (`balance` is the stamps).
    stamps: Option<(u32, i64)>,
    status: &'static str,
    registered: String,
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
    pub(super) points: String,
    pub(super) reason: String,
}

/// A card's segment as the customer page shows it.
#[derive(Serialize)]
struct SegmentInfo {
    program_id: String,
    segment: &'static str,
    r: u8,
    f: u8,
    m: u8,
    computed_at: String,
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
    segment: Option<SegmentInfo>,
    wallets: super::customer_wallets::Wallets,
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
    let (google, google_version) = if card.is_deleted() {
        ("expired", 0)
    } else if state.google.is_none() {
        ("not_configured", 0)
    } else {
        let sync = state.store.google_sync(&card.serial).await?;
        if sync.version == 0 { ("never", 0) } else { ("synced", sync.version) }
    };
    let segment = state.store.card_segment(&card.serial).await?.map(|s| SegmentInfo {
        program_id: s.program_id.clone(),
        segment: s.segment.as_str(),
        r: s.scores.r,
        f: s.scores.f,
        m: s.scores.m,
        computed_at: when(s.computed_at),
    });
    let page = DetailPage {
        segment,
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
            stamps: program.rules.stamp_rules().map(|s| (s.stamps_per_reward, card.rewards)),
            status: card.status.as_str(),
            registered: when(card.created_at),
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
        wallets: super::customer_wallets::wallets(state, card).await?,
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

/// The customers screens' routes, inside `/admin`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/customers", web::get().to(list)))
        .service(get_only("/customers/{serial}", web::get().to(detail)))
        .service(post_only("/customers/{serial}/adjust", web::post().to(customer_actions::adjust)))
        .service(post_only("/customers/{serial}/block", web::post().to(customer_actions::block)))
        .service(post_only("/customers/{serial}/unblock", web::post().to(customer_actions::unblock)))
        .service(post_only("/customers/{serial}/link", web::post().to(customer_actions::link)))
        .service(post_only("/customers/{serial}/delete", web::post().to(super::customer_data::delete)))
        .service(get_only("/customers/{serial}/export", web::get().to(super::customer_data::export)));
}
