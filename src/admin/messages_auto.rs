//! `/admin/messages/automatic` (owners and managers): a program's automatic messages — the
//! birthday greeting with its bonus, the win-back note and the expiry note — each off until
//! switched on, and the hour they go out at in the program's time zone. Saving is conditional on the
//! program's version, and audited.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AdminError;
use super::audit::{self, actions};
use super::page::{Choice, FieldErrors};
use super::session::{CsrfForm, Manager, StaffSession};
use crate::domain::{LocalizedText, Program};
use crate::messages::MessageText;
use crate::messages::automatic::{AutoMessages, Birthday, Timed};
use crate::state::AppState;

/// The form, one block per kind.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoForm {
    program: String,
    version: String,
    birthday_on: String,
    birthday_text_ru: String,
    birthday_text_en: String,
    birthday_bonus: String,
    win_back_on: String,
    win_back_days: String,
    win_back_text_ru: String,
    win_back_text_en: String,
    expiry_on: String,
    expiry_days: String,
    expiry_text_ru: String,
    expiry_text_en: String,
    hour: String,
}

impl AutoForm {
    fn of(program: &Program) -> Self {
        let a = &program.auto_messages;
        let on = |b: bool| if b { "on".to_owned() } else { String::new() };
        let birthday = a.birthday.clone().unwrap_or_default();
        let win_back = a.win_back.clone().unwrap_or(Timed { days: 60, ..Timed::default() });
        let expiry = a.expiry_note.clone().unwrap_or(Timed { days: 7, ..Timed::default() });
        Self {
            program: program.id.clone(),
            version: program.version.to_string(),
            birthday_on: on(a.birthday.is_some()),
            birthday_text_ru: birthday.text.body.ru,
            birthday_text_en: birthday.text.body.en,
            birthday_bonus: birthday.bonus.to_string(),
            win_back_on: on(a.win_back.is_some()),
            win_back_days: win_back.days.to_string(),
            win_back_text_ru: win_back.text.body.ru,
            win_back_text_en: win_back.text.body.en,
            expiry_on: on(a.expiry_note.is_some()),
            expiry_days: expiry.days.to_string(),
            expiry_text_ru: expiry.text.body.ru,
            expiry_text_en: expiry.text.body.en,
            hour: a.hour.to_string(),
        }
    }

    /// The settings the form says, or the problems next to their fields.
    fn parse(&self) -> Result<AutoMessages, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut text = |field: &str, ru: &str, en: &str| -> MessageText {
            let text = MessageText { body: LocalizedText::new(ru, en), ..MessageText::default() };
            match text.clone().checked() {
                Ok(text) => text,
                Err(crate::messages::TextProblem::BodyTooLong) => {
                    errors.add(field, "message_text_long");
                    text
                }
                Err(_) => {
                    errors.add(field, "message_empty");
                    text
                }
            }
        };
        let birthday = (self.birthday_on == "on").then(|| Birthday {
            text: text("birthday_text", &self.birthday_text_ru, &self.birthday_text_en),
            bonus: 0,
        });
        let win_back = (self.win_back_on == "on")
            .then(|| Timed { text: text("win_back_text", &self.win_back_text_ru, &self.win_back_text_en), days: 0 });
        let expiry = (self.expiry_on == "on")
            .then(|| Timed { text: text("expiry_text", &self.expiry_text_ru, &self.expiry_text_en), days: 0 });
        let days = |errors: &mut FieldErrors, field: &str, raw: &str| match raw.trim().parse::<u32>() {
            Ok(days) if (1..=365).contains(&days) => days,
            _ => {
                errors.add(field, "auto_days");
                0
            }
        };
        let birthday = match birthday {
            Some(mut b) => {
                match self.birthday_bonus.trim() {
                    "" => {}
                    raw => match raw.parse::<i64>() {
                        Ok(bonus) if (0..=1_000_000).contains(&bonus) => b.bonus = bonus,
                        _ => errors.add("birthday_bonus", "auto_bonus"),
                    },
                }
                Some(b)
            }
            None => None,
        };
        let win_back = win_back.map(|mut w| {
            w.days = days(&mut errors, "win_back_days", &self.win_back_days);
            w
        });
        let expiry_note = expiry.map(|mut e| {
            e.days = days(&mut errors, "expiry_days", &self.expiry_days);
            e
        });
        let hour = match self.hour.trim().parse::<u32>() {
            Ok(hour) if hour < 24 => hour,
            _ => {
                errors.add("hour", "auto_hour");
                0
            }
        };
        if errors.is_empty() { Ok(AutoMessages { birthday, win_back, expiry_note, hour }) } else { Err(errors) }
    }
}

#[derive(Serialize)]
struct AutoPage<'a> {
    values: &'a AutoForm,
    errors: FieldErrors,
    hours: Vec<Choice>,
    program_name: &'a str,
    time_zone: &'static str,
    expires: bool,
    saved: bool,
    conflict: bool,
}

#[allow(clippy::too_many_arguments)]
fn render(
    session: &StaffSession<Manager>,
    req: &HttpRequest,
    status: StatusCode,
    program: &Program,
    values: &AutoForm,
    errors: FieldErrors,
    saved: bool,
    conflict: bool,
) -> HttpResponse {
    let hours = (0..24).map(|h| Choice { value: h.to_string(), label: format!("{h:02}:00") }).collect();
    let page = AutoPage {
        values,
        errors,
        hours,
        program_name: &program.name,
        time_zone: program.time_zone.name(),
        expires: program.rules.expiry_days.is_some() && program.rules.stamp_rules().is_none(),
        saved,
        conflict,
    };
    session.page_with(req, status, "messages_auto.html", page)
}

#[derive(Debug, Default, Deserialize)]
pub struct Query {
    #[serde(default)]
    program: String,
    #[serde(default)]
    saved: String,
}

/// `GET /admin/messages/automatic[?program=…]`.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    query: web::Query<Query>,
) -> Result<HttpResponse, AdminError> {
    let program = super::chosen_program(&state, &query.program).await?;
    let values = AutoForm::of(&program);
    Ok(render(
        &session,
        &req,
        StatusCode::OK,
        &program,
        &values,
        FieldErrors::default(),
        !query.saved.is_empty(),
        false,
    ))
}

/// `POST /admin/messages/automatic`.
pub async fn save(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    form: CsrfForm<AutoForm>,
) -> Result<HttpResponse, AdminError> {
    let values = form.0;
    let program = super::chosen_program(&state, &values.program).await?;
    let settings = match values.parse() {
        Ok(settings) => settings,
        Err(errors) => {
            return Ok(render(
                &session,
                &req,
                StatusCode::UNPROCESSABLE_ENTITY,
                &program,
                &values,
                errors,
                false,
                false,
            ));
        }
    };
    if values.version.trim() != program.version.to_string() {
        return Ok(render(
            &session,
            &req,
            StatusCode::CONFLICT,
            &program,
            &values,
            FieldErrors::default(),
            false,
            true,
        ));
    }
    let before = program.auto_messages.clone();
    let next = super::programs::next_version(&program, state.clock.now(), |p| p.auto_messages = settings.clone());
    if !state.save_program(&next, program.version).await? {
        return Ok(render(
            &session,
            &req,
            StatusCode::CONFLICT,
            &program,
            &values,
            FieldErrors::default(),
            false,
            true,
        ));
    }
    let details = json!({ "before": before, "after": settings });
    audit::record(&state, &session, actions::AUTO_MESSAGES_CHANGED, Some(&program.id), details).await;
    let location = format!("/admin/messages/automatic?program={}&saved=1", program.id);
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish())
}
