//! Writing a message, the same for the staff console and the API: the text checked, the
//! audience checked against the program and counted, the message stored and, when it goes out
//! now, its fan-out started.

use actix_web::web;
use chrono::{DateTime, Utc};

use super::{Audience, Message, MessageText, TextProblem, fanout};
use crate::domain::Program;
use crate::state::AppState;
use crate::store::StoreError;

/// Why a message cannot be written as asked.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{0}")]
    Text(#[from] TextProblem),
    #[error("the program has no tier `{0}`")]
    UnknownTier(String),
    #[error("the number of days must be between 1 and 3650")]
    Days,
    #[error("the month must be between 1 and 12")]
    Month,
    #[error("no card of this program has this number")]
    UnknownCustomer,
    #[error("`{0}` is not a customer segment")]
    UnknownSegment(String),
    #[error("the time to send is more than a year ahead")]
    TooFar,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ComposeError {
    /// The field of the form or request the problem is in.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Text(TextProblem::TitleTooLong) => "title",
            Self::Text(TextProblem::Link) => "link",
            Self::Text(_) => "text",
            Self::UnknownTier(_) | Self::Days | Self::Month | Self::UnknownCustomer | Self::UnknownSegment(_) => {
                "audience"
            }
            Self::TooFar => "send_at",
            Self::Store(_) => "",
        }
    }
}

/// Checks an audience against `program`: a tier it has, a sensible number of days, a card of it.
pub async fn check_audience(state: &AppState, program: &Program, audience: &Audience) -> Result<(), ComposeError> {
    match audience {
        Audience::Tier { tier } if !program.rules.tiers.iter().any(|t| t.id == *tier) => {
            Err(ComposeError::UnknownTier(tier.clone()))
        }
        Audience::Inactive { days } if !(1..=3650).contains(days) => Err(ComposeError::Days),
        Audience::Segment { segment } if crate::segments::rfm::Segment::parse(segment).is_none() => {
            Err(ComposeError::UnknownSegment(segment.clone()))
        }
        Audience::Birthdays { month } if !(1..=12).contains(month) => Err(ComposeError::Month),
        Audience::Customer { serial } => {
            let card = match crate::domain::SerialNumber::parse(serial) {
                Ok(serial) => state.store.find_card(crate::store::CardLookup::Serial(&serial)).await?,
                Err(_) => None,
            };
            match card {
                Some(card) if card.program_id == program.id && !card.is_deleted() => Ok(()),
                _ => Err(ComposeError::UnknownCustomer),
            }
        }
        _ => Ok(()),
    }
}

/// Stores a new message of `program` and starts it when it is due now. `send_at` in the past
/// (or `None`) means now.
pub async fn compose(
    state: &web::Data<AppState>,
    program: &Program,
    text: MessageText,
    audience: Audience,
    send_at: Option<DateTime<Utc>>,
    author: String,
) -> Result<Message, ComposeError> {
    let text = text.checked()?;
    check_audience(state, program, &audience).await?;
    let now = state.clock.now();
    if send_at.is_some_and(|at| at > now + chrono::Duration::days(366)) {
        return Err(ComposeError::TooFar);
    }
    let mut message = Message::new(&program.id, text, audience, send_at, author, now);
    message.audience_size = message.audience.count(&state.store, &program.id, now).await?;
    state.store.insert_message(&message).await?;
    tracing::info!(message = %message.id, program = %program.id, audience = message.audience.kind(), cards = message.audience_size, "message written");
    if message.send_at <= now {
        fanout::start(state.clone());
    }
    Ok(message)
}
