//! Automatic messages, each optional per program and off by default: a birthday greeting (with
//! an optional bonus, credited once a year through the ledger), a win-back note N days after a
//! customer's last purchase, and a note N days before points expire.
//!
//! Once a day, at the chosen hour in the program's time zone (the first maintenance round from
//! then on), loy writes, per program and kind, one ordinary message whose audience is that day's
//! cards, the day as it is in that zone; its id is made of the program, the kind and the date,
//! so several nodes, or a restart, write it once. The fan-out and delivery are those of every
//! message, and the day's message is in the console's history.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Audience, Message, MessageText};
use crate::domain::{Program, TimeZone};
use crate::store::{Store, StoreError};

/// The birthday greeting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birthday {
    pub text: MessageText,
    /// Points (or stamps) credited with it, once a year; 0 for none.
    #[serde(default)]
    pub bonus: i64,
}

/// A message `days` days after, or before, something.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    pub text: MessageText,
    pub days: u32,
}

/// A program's automatic messages; `None` is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoMessages {
    #[serde(default)]
    pub birthday: Option<Birthday>,
    /// `days` after the last purchase.
    #[serde(default)]
    pub win_back: Option<Timed>,
    /// `days` before points expire (programs whose points expire).
    #[serde(default)]
    pub expiry_note: Option<Timed>,
    /// The hour (0–23, in the program's time zone) from which the day's messages go out.
    #[serde(default = "default_hour")]
    pub hour: u32,
}

/// The hour automatic messages go out unless staff choose another: morning, not the middle of
/// the night, on the lock screen.
pub const DEFAULT_HOUR: u32 = 10;

fn default_hour() -> u32 {
    DEFAULT_HOUR
}

impl Default for AutoMessages {
    fn default() -> Self {
        Self { birthday: None, win_back: None, expiry_note: None, hour: DEFAULT_HOUR }
    }
}

impl AutoMessages {
    /// The date in `zone` at `now` once the hour has come there that day; `None` before.
    pub fn day_due(&self, zone: TimeZone, now: DateTime<Utc>) -> Option<NaiveDate> {
        (zone.hour_of(now) >= self.hour).then(|| zone.date_of(now))
    }
}

/// The kinds, as they appear in message ids and forms.
pub const BIRTHDAY: &str = "birthday";
pub const WIN_BACK: &str = "win_back";
pub const EXPIRY_NOTE: &str = "expiry_note";

/// The id of a program's automatic message of `kind` for `day`.
pub fn message_id(program_id: &str, kind: &str, day: NaiveDate) -> String {
    format!("msg_auto_{kind}_{program_id}_{}", day.format("%Y%m%d"))
}

/// The entry id of a card's birthday bonus for `year`: one per card and year.
pub fn birthday_entry_id(serial: &crate::domain::SerialNumber, year: i32) -> String {
    format!("bday{year}_{serial}")
}

/// The messages of `program` due on its day `today`: (kind, text, audience, bonus).
fn due(program: &Program, today: NaiveDate) -> Vec<(&'static str, MessageText, Audience, i64)> {
    let auto = &program.auto_messages;
    let zone = program.time_zone;
    let mut due = Vec::new();
    if let Some(b) = &auto.birthday {
        due.push((BIRTHDAY, b.text.clone(), Audience::BirthdayOn { month: today.month(), day: today.day() }, b.bonus));
    }
    if let Some(w) = &auto.win_back {
        let date = today - chrono::Duration::days(i64::from(w.days));
        due.push((WIN_BACK, w.text.clone(), Audience::LastActivityOn { date, zone }, 0));
    }
    if let (Some(e), Some(expiry_days)) = (&auto.expiry_note, program.rules.expiry_days) {
        if program.rules.stamp_rules().is_none() {
            let date = today + chrono::Duration::days(i64::from(e.days));
            due.push((EXPIRY_NOTE, e.text.clone(), Audience::PointsExpiringOn { date, expiry_days, zone }, 0));
        }
    }
    due
}

/// Writes the automatic messages due today (once the program's hour has come) that are not
/// written yet; returns how many it wrote. The fan-out runner sends them.
pub async fn write_due(store: &dyn Store, program: &Program, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let Some(today) = program.auto_messages.day_due(program.time_zone, now) else { return Ok(0) };
    let mut written = 0;
    for (kind, text, audience, bonus) in due(program, today) {
        let id = message_id(&program.id, kind, today);
        if store.message(&id).await?.is_some() {
            continue;
        }
        let Ok(text) = text.checked() else {
            tracing::warn!(program = %program.id, kind, "an automatic message's text cannot be sent; it is skipped");
            continue;
        };
        let mut message = Message::new(&program.id, text, audience, None, format!("auto:{kind}"), now);
        message.id = id;
        message.bonus = bonus;
        match store.insert_message(&message).await {
            Ok(()) => written += 1,
            // Another node wrote it first.
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
