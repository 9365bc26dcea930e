//! Messages to the cards on the phones (SPEC §4.5): staff (or an integration) write a short
//! text in Russian and English, choose an audience, and loy shows it on every card of it.
//!
//! - A message is kept in the store with its audience and where its fan-out is
//!   ([`crate::store::MessageStore`]). A runner ([`fanout`]) takes it with a lease when it is
//!   due, walks the program's cards in a stable order a batch at a time, and saves its cursor
//!   after each batch, so a crash or a restart resumes where it stopped.
//! - For each card of the audience it first writes the card's send record, then puts the text on
//!   the card as its news ([`crate::domain::CardNews`]) in a version bump that happens only if
//!   the card does not carry this message yet. A card therefore gets a message once, however
//!   often a batch is run again, and the push pipeline takes it from there.
//! - Apple: the pass's news back field changes to the text with `changeMessage: "%@"`, so the
//!   lock screen shows the text itself ([`crate::apple::news`]). Google: the worker adds the
//!   message to the object, announcing it while the card is within Google's notification budget
//!   ([`delivery`]); a message to every card of a program goes on the class once instead.
//! - Each wallet's state of a send moves once from queued to delivered or failed; their counts
//!   are the message's progress.

pub mod audience;
pub mod automatic;
pub mod compose;
pub mod delivery;
pub mod fanout;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Card, CardNews, LocalizedText};

pub use audience::Audience;

/// The longest title, and body, in characters (what a lock screen shows without cutting).
pub const MAX_TITLE: usize = 60;
pub const MAX_BODY: usize = 200;

/// A wallet a card can be in: the one wallet changes are recorded for.
pub use crate::store::wallet_events::Wallet;

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Waiting for its time.
    Scheduled,
    /// Being put on the cards.
    Sending,
    /// On every card of its audience; the wallets' deliveries may still be going on.
    Sent,
    Cancelled,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Scheduled, Self::Sending, Self::Sent, Self::Cancelled].into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the runner still has cards to give it.
    pub fn runnable(self) -> bool {
        matches!(self, Self::Scheduled | Self::Sending)
    }
}

/// What a message says, in both languages; a card shows the holder's one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageText {
    pub title: LocalizedText,
    pub body: LocalizedText,
    /// An address the pass links to, if any.
    pub link: Option<String>,
}

/// Why a message cannot be sent as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("write the text in at least one language")]
    Empty,
    #[error("the title is longer than {MAX_TITLE} characters")]
    TitleTooLong,
    #[error("the text is longer than {MAX_BODY} characters")]
    BodyTooLong,
    #[error("the text holds a character that cannot be shown")]
    Forbidden,
    #[error("the link must be an https:// address")]
    Link,
}

impl MessageText {
    /// Trims the texts and checks them.
    pub fn checked(mut self) -> Result<Self, TextProblem> {
        for text in [&mut self.title.ru, &mut self.title.en, &mut self.body.ru, &mut self.body.en] {
            *text = text.trim().to_owned();
            if crate::domain::text::check(text).is_err() {
                return Err(TextProblem::Forbidden);
            }
        }
        if self.body.ru.is_empty() && self.body.en.is_empty() {
            return Err(TextProblem::Empty);
        }
        if [&self.title.ru, &self.title.en].iter().any(|t| t.chars().count() > MAX_TITLE) {
            return Err(TextProblem::TitleTooLong);
        }
        if [&self.body.ru, &self.body.en].iter().any(|t| t.chars().count() > MAX_BODY) {
            return Err(TextProblem::BodyTooLong);
        }
        self.link = self.link.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
        if let Some(link) = &self.link {
            let ok = link.starts_with("https://") && link.len() <= 500 && !link.chars().any(char::is_whitespace);
            if !ok {
                return Err(TextProblem::Link);
            }
        }
        Ok(self)
    }
}

/// Cards a message went to, and cards of its audience it skipped (deleted meanwhile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOut {
    /// Cards of the program looked at so far.
    pub scanned: u64,
    /// Cards of the audience given the message.
    pub reached: u64,
}

/// One message to the cards of a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `msg_` and random letters.
    pub id: String,
    pub program_id: String,
    pub text: MessageText,
    pub audience: Audience,
    pub state: MessageState,
    /// When it goes out (its creation time when sent at once).
    pub send_at: DateTime<Utc>,
    /// Cards of the audience when it was written.
    pub audience_size: u64,
    /// Who wrote it: `staff:<id>` or `key:<id>`.
    pub author: String,
    /// Where the fan-out stopped: the last card done, as a customer-list cursor.
    pub cursor: Option<String>,
    pub fan_out: FanOut,
    /// Whether the message went on the program's Google class (audience: every card).
    pub class_sent: bool,
    /// Points (or stamps) credited with the message to each card, once per card and year
    /// (automatic birthday greetings); 0 for none.
    #[serde(default)]
    pub bonus: i64,
    pub attempts: u32,
    pub lease_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Message {
    pub fn new(
        program_id: &str,
        text: MessageText,
        audience: Audience,
        send_at: Option<DateTime<Utc>>,
        author: String,
        now: DateTime<Utc>,
    ) -> Self {
        let send_at = send_at.filter(|at| *at > now).unwrap_or(now);
        Self {
            id: format!("msg_{}", crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 20)),
            program_id: program_id.to_owned(),
            text,
            audience,
            state: if send_at > now { MessageState::Scheduled } else { MessageState::Sending },
            send_at,
            audience_size: 0,
            author,
            cursor: None,
            fan_out: FanOut::default(),
            class_sent: false,
            bonus: 0,
            attempts: 0,
            lease_until: now,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    /// The news `card` shows for this message, in its holder's language, at the card's next
    /// version.
    pub fn news_for(&self, card: &Card, now: DateTime<Utc>) -> CardNews {
        let locale = card.locale();
        CardNews {
            message_id: self.id.clone(),
            title: self.text.title.get(locale).to_owned(),
            body: self.text.body.get(locale).to_owned(),
            link: self.text.link.clone(),
            version: card.version + 1,
            google_object: !self.class_sent,
            at: now,
        }
    }
}
