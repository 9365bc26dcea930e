//! `/admin/messages` (owners and managers): write a message to the cards of a program, see how
//! many cards it reaches and how it looks on both wallets, send it now or at a time, watch its
//! progress, cancel it while it goes out. The work is in `crate::messages`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AdminError;
use super::audit::{self, actions};
use super::page::{Choice, FieldErrors};
use super::session::{CsrfForm, Manager, NoFields, StaffSession};
use crate::domain::{Locale, LocalizedText, Program, TimeZone};
use crate::messages::compose::{ComposeError, check_audience, compose};
use crate::messages::{Audience, Message, MessageText, Wallet};
use crate::state::AppState;
use crate::store::SendCounts;

pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::http::not_allowed;
    cfg.service(
        web::resource("/messages/automatic")
            .route(web::get().to(super::messages_auto::show))
            .route(web::post().to(super::messages_auto::save))
            .default_service(not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/messages")
            .route(web::get().to(list))
            .route(web::post().to(submit))
            .default_service(not_allowed("GET, HEAD, POST")),
    )
    .service(web::resource("/messages/{id}").route(web::get().to(show)).default_service(not_allowed("GET, HEAD")))
    .service(
        web::resource("/messages/{id}/progress")
            .route(web::get().to(progress))
            .default_service(not_allowed("GET, HEAD")),
    )
    .service(web::resource("/messages/{id}/cancel").route(web::post().to(cancel)).default_service(not_allowed("POST")));
}

/// The compose form as typed.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Draft {
    program: String,
    title_ru: String,
    title_en: String,
    text_ru: String,
    text_en: String,
    link: String,
    audience: String,
    tier: String,
    days: String,
    wallet: String,
    segment: String,
    card: String,
    send_at: String,
    /// `preview` or `send`.
    action: String,
}

#[derive(Serialize)]
struct Row {
    id: String,
    created_at: String,
    title: String,
    audience: String,
    audience_size: u64,
    state: &'static str,
    percent: u64,
}

/// How the message looks on each wallet, in each language.
#[derive(Serialize)]
struct Preview {
    cards: u64,
    program_name: String,
    ru: (String, String),
    en: (String, String),
    link: String,
}

#[derive(Serialize)]
struct ListPage {
    program: String,
    programs: Vec<Choice>,
    tiers: Vec<Choice>,
    segments: Vec<Choice>,
    messages: Vec<Row>,
    values: Draft,
    errors: FieldErrors,
    preview: Option<Preview>,
    max_title: usize,
    max_body: usize,
    /// The program's time zone: the times shown and typed are its clock's.
    time_zone: &'static str,
}

/// `t` as the clocks of `zone` show it.
fn when(zone: TimeZone, t: chrono::DateTime<Utc>) -> String {
    zone.format(t, "%Y-%m-%d %H:%M")
}

/// The audience in words, for the list and the message's page.
fn describe(audience: &Audience, program: &Program, locale: Locale) -> String {
    let ru = locale == Locale::Ru;
    match audience {
        Audience::All => (if ru { "все карты" } else { "every card" }).to_owned(),
        Audience::Tier { tier } => {
            let name =
                program.rules.tiers.iter().find(|t| t.id == *tier).map_or(tier.clone(), |t| tier_label(t, locale));
            if ru { format!("уровень {name}") } else { format!("tier {name}") }
        }
        Audience::Inactive { days } => {
            if ru {
                format!("без покупок {days} дн.")
            } else {
                format!("inactive for {days} days")
            }
        }
        Audience::Birthdays { month } => {
            if ru {
                format!("дни рождения в месяце {month}")
            } else {
                format!("birthdays in month {month}")
            }
        }
        Audience::Wallet { wallet: Wallet::Apple } => "Apple Wallet".to_owned(),
        Audience::Wallet { wallet: Wallet::Google } => "Google Wallet".to_owned(),
        Audience::Customer { .. } => (if ru { "один клиент" } else { "one customer" }).to_owned(),
        Audience::Segment { segment } => {
            let name = segment_name(locale, segment);
            if ru { format!("сегмент «{name}»") } else { format!("segment “{name}”") }
        }
        Audience::BirthdayOn { month, day } => {
            if ru {
                format!("день рождения {day:02}.{month:02}")
            } else {
                format!("birthday on {month:02}-{day:02}")
            }
        }
        Audience::LastActivityOn { date, .. } => {
            if ru {
                format!("последняя покупка {date}")
            } else {
                format!("last purchase on {date}")
            }
        }
        Audience::PointsExpiringOn { date, .. } => {
            if ru {
                format!("баллы сгорают {date}")
            } else {
                format!("points expiring on {date}")
            }
        }
    }
}

async fn render(
    state: &AppState,
    session: &StaffSession<Manager>,
    req: &HttpRequest,
    status: StatusCode,
    program: &Program,
    (values, errors, preview): (Draft, FieldErrors, Option<Preview>),
) -> Result<HttpResponse, AdminError> {
    let locale = super::page::locale(req);
    let mut messages = Vec::new();
    for m in state.store.messages(Some(&program.id), 50).await? {
        let counts = state.store.send_counts(&m.id).await?;
        messages.push(Row {
            created_at: when(program.time_zone, m.created_at),
            title: title_of(&m, locale),
            audience: describe(&m.audience, program, locale),
            audience_size: m.audience_size,
            state: m.state.as_str(),
            percent: percent(&m, &counts),
            id: m.id,
        });
    }
    let programs = state.store.programs().await?.into_iter().map(|p| Choice { label: p.name, value: p.id }).collect();
    let tiers =
        program.rules.tiers.iter().map(|t| Choice { value: t.id.clone(), label: tier_label(t, locale) }).collect();
    let counts = state.store.segment_counts(&program.id).await?;
    let segments = crate::segments::rfm::Segment::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            Choice { value: s.as_str().to_owned(), label: format!("{} ({n})", segment_name(locale, s.as_str())) }
        })
        .collect();
    let page = ListPage {
        program: program.id.clone(),
        programs,
        tiers,
        segments,
        messages,
        values,
        errors,
        preview,
        max_title: crate::messages::MAX_TITLE,
        max_body: crate::messages::MAX_BODY,
        time_zone: program.time_zone.name(),
    };
    Ok(session.page_with(req, status, "messages.html", page))
}

/// A segment's name as the segments page says it (`champions` → "Champions", "Чемпионы").
fn segment_name(locale: Locale, segment: &str) -> String {
    super::page::pages().catalog(locale).in_section("seg", &format!("name_{segment}"))
}

fn tier_label(t: &crate::domain::TierRule, locale: Locale) -> String {
    if locale == Locale::Ru { t.name_ru.clone() } else { t.name_en.clone() }
}

fn title_of(m: &Message, locale: Locale) -> String {
    let title = m.text.title.get(locale);
    if title.is_empty() { m.text.body.get(locale).chars().take(60).collect() } else { title.to_owned() }
}

/// Whole percent of the sends settled, both wallets together (100 once nothing is left).
fn percent(m: &Message, counts: &SendCounts) -> u64 {
    if m.state.runnable() {
        let reached = m.fan_out.reached.min(m.audience_size);
        return (reached * 100).checked_div(m.audience_size).unwrap_or(0).min(99);
    }
    let total = counts.apple.total() + counts.google.total();
    let settled = total - counts.apple.queued - counts.google.queued;
    (settled * 100).checked_div(total).unwrap_or(100)
}

#[derive(Debug, Default, Deserialize)]
pub struct ProgramQuery {
    #[serde(default)]
    program: String,
}

/// `GET /admin/messages[?program=…]`.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    query: web::Query<ProgramQuery>,
) -> Result<HttpResponse, AdminError> {
    let program = super::chosen_program(&state, &query.program).await?;
    let values = Draft { audience: "all".to_owned(), ..Draft::default() };
    render(&state, &session, &req, StatusCode::OK, &program, (values, FieldErrors::default(), None)).await
}

/// The form's audience, or the field and catalog key of what is wrong with it.
async fn audience_of(state: &AppState, program: &Program, d: &Draft) -> Result<Audience, (&'static str, &'static str)> {
    Ok(match d.audience.as_str() {
        "tier" => Audience::Tier { tier: d.tier.clone() },
        "inactive" => match d.days.trim().parse::<u32>() {
            Ok(days) if (1..=3650).contains(&days) => Audience::Inactive { days },
            _ => return Err(("days", "message_days")),
        },
        "birthdays" => Audience::birthdays_this_month(program.time_zone, state.clock.now()),
        "segment" => match crate::segments::rfm::Segment::parse(&d.segment) {
            Some(segment) => Audience::Segment { segment: segment.as_str().to_owned() },
            None => return Err(("segment", "message_segment")),
        },
        "wallet" => match Wallet::parse(&d.wallet) {
            Some(wallet) => Audience::Wallet { wallet },
            None => return Err(("wallet", "message_wallet")),
        },
        "customer" => {
            let found = crate::customers::find_for_till(
                state.store.as_ref(),
                &program.id,
                &d.card,
                state.settings.default_phone_region,
            )
            .await
            .ok()
            .flatten();
            match found {
                Some(card) if card.program_id == program.id => {
                    Audience::Customer { serial: card.serial.as_str().to_owned() }
                }
                _ => return Err(("card", "message_customer")),
            }
        }
        _ => Audience::All,
    })
}

/// The form's time to send (`datetime-local`), read on the clocks of `zone`, the program's;
/// `None` for now.
fn send_at_of(d: &Draft, zone: TimeZone) -> Result<Option<chrono::DateTime<Utc>>, ()> {
    let raw = d.send_at.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let parsed = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M"))
        .map_err(|_| ())?;
    Ok(Some(zone.instant_of(parsed)))
}

fn text_of(d: &Draft) -> MessageText {
    MessageText {
        title: LocalizedText::new(&d.title_ru, &d.title_en),
        body: LocalizedText::new(&d.text_ru, &d.text_en),
        link: Some(d.link.clone()),
    }
}

fn compose_error_key(e: &ComposeError) -> &'static str {
    use crate::messages::TextProblem;
    match e {
        ComposeError::Text(TextProblem::Empty) => "message_empty",
        ComposeError::Text(TextProblem::TitleTooLong) => "message_title_long",
        ComposeError::Text(TextProblem::BodyTooLong) => "message_text_long",
        ComposeError::Text(TextProblem::Forbidden) => "message_forbidden",
        ComposeError::Text(TextProblem::Link) => "message_link",
        ComposeError::UnknownTier(_) => "message_tier",
        ComposeError::Days => "message_days",
        ComposeError::Month | ComposeError::UnknownCustomer => "message_customer",
        ComposeError::UnknownSegment(_) => "message_segment",
        ComposeError::TooFar => "message_send_at",
        ComposeError::Store(_) => "message_store",
    }
}

/// `POST /admin/messages`: "Preview" counts the audience and shows the message on both wallets;
/// "Send" writes it and opens its page.
pub async fn submit(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    form: CsrfForm<Draft>,
) -> Result<HttpResponse, AdminError> {
    let draft = form.0;
    let program = super::chosen_program(&state, &draft.program).await?;
    let mut errors = FieldErrors::default();
    let audience = match audience_of(&state, &program, &draft).await {
        Ok(audience) => Some(audience),
        Err((field, key)) => {
            errors.add(field, key);
            None
        }
    };
    let send_at = send_at_of(&draft, program.time_zone).unwrap_or_else(|()| {
        errors.add("send_at", "message_send_at");
        None
    });
    let text = match text_of(&draft).checked() {
        Ok(text) => Some(text),
        Err(e) => {
            let e = ComposeError::Text(e);
            errors.add(e.field(), compose_error_key(&e));
            None
        }
    };
    let (Some(audience), Some(text), true) = (audience, text, errors.is_empty()) else {
        return render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, &program, (draft, errors, None)).await;
    };
    if draft.action != "send" {
        if let Err(e) = check_audience(&state, &program, &audience).await {
            errors.add(e.field(), compose_error_key(&e));
            return render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, &program, (draft, errors, None))
                .await;
        }
        let cards = audience.count(&state.store, &program.id, state.clock.now()).await?;
        let preview = Preview {
            cards,
            program_name: program.name.clone(),
            ru: (text.title.get(Locale::Ru).to_owned(), text.body.get(Locale::Ru).to_owned()),
            en: (text.title.get(Locale::En).to_owned(), text.body.get(Locale::En).to_owned()),
            link: text.link.clone().unwrap_or_default(),
        };
        return render(&state, &session, &req, StatusCode::OK, &program, (draft, errors, Some(preview))).await;
    }
    let author = format!("staff:{}", session.staff.id);
    match compose(&state, &program, text, audience, send_at, author).await {
        Ok(message) => {
            audit::record(
                &state,
                &session,
                actions::MESSAGE_SENT,
                Some(&message.id),
                json!({ "program": program.id, "audience": message.audience, "cards": message.audience_size,
                        "send_at": message.send_at }),
            )
            .await;
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/admin/messages/{}", message.id)))
                .finish())
        }
        Err(ComposeError::Store(e)) => Err(e.into()),
        Err(e) => {
            errors.add(e.field(), compose_error_key(&e));
            render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, &program, (draft, errors, None)).await
        }
    }
}

#[derive(Serialize)]
struct Detail {
    id: String,
    /// The program's time zone, whose clocks the times are.
    time_zone: &'static str,
    program: String,
    state: &'static str,
    running: bool,
    cancellable: bool,
    title: LocalizedText,
    body: LocalizedText,
    link: String,
    audience: String,
    audience_size: u64,
    reached: u64,
    send_at: String,
    created_at: String,
    finished_at: String,
    author: String,
    percent: u64,
    counts: SendCounts,
}

async fn detail(state: &AppState, req: &HttpRequest, id: &str) -> Result<Option<Detail>, AdminError> {
    let Some(m) = state.store.message(id).await? else { return Ok(None) };
    let program = super::chosen_program(state, &m.program_id).await?;
    let counts = state.store.send_counts(&m.id).await?;
    let locale = super::page::locale(req);
    let running = m.state.runnable() || counts.apple.queued + counts.google.queued > 0;
    Ok(Some(Detail {
        percent: percent(&m, &counts),
        running,
        cancellable: m.state.runnable(),
        state: m.state.as_str(),
        audience: describe(&m.audience, &program, locale),
        audience_size: m.audience_size,
        reached: m.fan_out.reached,
        send_at: when(program.time_zone, m.send_at),
        created_at: when(program.time_zone, m.created_at),
        finished_at: m.finished_at.map(|t| when(program.time_zone, t)).unwrap_or_default(),
        time_zone: program.time_zone.name(),
        author: m.author.clone(),
        link: m.text.link.clone().unwrap_or_default(),
        title: m.text.title,
        body: m.text.body,
        program: program.name,
        counts,
        id: m.id,
    }))
}

fn not_found(session: &StaffSession<Manager>, req: &HttpRequest) -> HttpResponse {
    super::page::notice(
        req,
        Some(&session.viewer()),
        StatusCode::NOT_FOUND,
        super::page::Notice { title: "not_found_title", text: "message_not_found_text", link: Some("/admin/messages") },
    )
}

/// `GET /admin/messages/{id}`.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    detail_page(&state, &session, &req, &id, "message_detail.html").await
}

/// `GET /admin/messages/{id}/progress`: the progress panel, which htmx polls while it moves.
pub async fn progress(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    detail_page(&state, &session, &req, &id, "message_progress.html").await
}

/// The message's whole page, or its progress panel alone.
async fn detail_page(
    state: &AppState,
    session: &StaffSession<Manager>,
    req: &HttpRequest,
    id: &str,
    template: &str,
) -> Result<HttpResponse, AdminError> {
    match detail(state, req, id).await? {
        Some(d) => Ok(session.page(req, template, json!({ "m": d }))),
        None => Ok(not_found(session, req)),
    }
}

/// `POST /admin/messages/{id}/cancel`: the cards not reached yet never get it.
pub async fn cancel(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    id: web::Path<String>,
    req: HttpRequest,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    if state.store.message(&id).await?.is_none() {
        return Ok(not_found(&session, &req));
    }
    if state.store.cancel_message(&id, state.clock.now()).await? {
        audit::record(&state, &session, actions::MESSAGE_CANCELLED, Some(&id), json!({})).await;
    }
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/admin/messages/{id}"))).finish())
}
