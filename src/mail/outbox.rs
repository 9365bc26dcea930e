//! The sender: takes due mails from the outbox with a lease, renders and sends them, and records
//! the outcome. Safe on several nodes at once: the store hands each attempt to one taker, and a
//! taker that dies leaves the mail to be taken again when its lease ends.

use std::time::Duration;

use super::render::MailContext;
use super::smtp::SendError;
use super::{Mail, MailKind};
use crate::domain::{Card, Locale, SerialNumber};
use crate::state::AppState;
use crate::store::{CardLookup, MailState, OutboxMail, StoreError};
use crate::telemetry::error_chain;

/// What one step of the sender did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due (or e-mail is off).
    Idle,
    Sent,
    /// Not sent this time; tried again later.
    WillRetry,
    /// Failed for good: shown to owners and managers in the console.
    Failed,
}

/// How long after `attempts` attempts the next one is due: `base`, doubling, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// Takes one due mail and tries to send it.
pub async fn try_send_one(state: &AppState) -> Result<Outcome, StoreError> {
    let Some(mail) = state.mail.as_deref() else { return Ok(Outcome::Idle) };
    let now = state.clock.now();
    // The lease outlasts one SMTP conversation, so a slow send is not taken twice.
    let lease = chrono::Duration::from_std(mail.settings.timeout * 2 + Duration::from_secs(30))
        .unwrap_or_else(|_| chrono::Duration::minutes(5));
    let Some(row) = state.store.take_due_mail(now, now + lease).await? else { return Ok(Outcome::Idle) };
    let result = send(state, mail, &row).await;
    let now = state.clock.now();
    let (outcome, next, error) = match result {
        Ok(()) => (Outcome::Sent, now, None),
        Err(e) if e.is_permanent() || row.attempts >= mail.settings.max_attempts => {
            (Outcome::Failed, now, Some(e.to_string()))
        }
        Err(e) => {
            let delay = backoff(mail.settings.retry_base, row.attempts);
            (Outcome::WillRetry, now + chrono::Duration::from_std(delay).unwrap_or_default(), Some(e.to_string()))
        }
    };
    let state_after = match outcome {
        Outcome::Sent => MailState::Sent,
        Outcome::Failed => MailState::Failed,
        _ => MailState::Pending,
    };
    let recorded = state.store.finish_mail(&row.id, row.attempts, state_after, next, error.as_deref(), now).await?;
    match (outcome, &error) {
        (Outcome::Sent, _) => tracing::info!(mail = %row.id, serial = %row.serial, kind = %row.kind, "mail sent"),
        (Outcome::Failed, Some(e)) => {
            tracing::warn!(mail = %row.id, serial = %row.serial, attempts = row.attempts, error = %e, "mail failed for good")
        }
        (_, e) => tracing::info!(mail = %row.id, attempts = row.attempts, error = ?e, "mail not sent yet; will retry"),
    }
    if !recorded {
        tracing::warn!(mail = %row.id, "a mail's lease ran out while it was being sent; it may go out twice");
    }
    Ok(outcome)
}

/// Sends every mail due now; returns how many steps it made.
pub async fn deliver_due(state: &AppState) -> Result<usize, StoreError> {
    let mut steps = 0;
    while try_send_one(state).await? != Outcome::Idle {
        steps += 1;
    }
    Ok(steps)
}

/// Sends due mails whenever one is queued, and at least every `poll`, until dropped.
pub async fn run_forever(state: actix_web::web::Data<AppState>, poll: Duration) {
    let Some(mail) = state.mail.clone() else { return };
    loop {
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "sending mails failed; trying again shortly");
        }
        let _ = tokio::time::timeout(poll, mail.wake.notified()).await;
    }
}

async fn send(state: &AppState, mail: &Mail, row: &OutboxMail) -> Result<(), SendError> {
    let gone = || SendError::Permanent("the card or its holder was removed".into());
    let kind = MailKind::parse(&row.kind).ok_or_else(|| SendError::Permanent("unknown kind of mail".into()))?;
    let card = card(state, &row.serial).await.map_err(|e| {
        tracing::warn!(error = %error_chain(&e), "reading the card of a mail failed");
        SendError::Transient("the store did not answer".into())
    })?;
    let Some(card) = card.filter(|c| c.holder.is_some()) else { return Err(gone()) };
    let locale = Locale::parse(&row.locale).unwrap_or(state.settings.default_locale);
    let ctx = context(state, &card).await.map_err(|_| SendError::Transient("the program cannot be read".into()))?;
    let rendered = mail.templates.render(kind, locale, &ctx).map_err(|e| {
        tracing::error!(error = %e, kind = kind.as_str(), "rendering a mail failed");
        SendError::Permanent("the mail could not be rendered".into())
    })?;
    let to = row.recipient.parse().map_err(|_| SendError::Permanent("the address is not valid".into()))?;
    let message = rendered
        .message(&mail.settings.from, to)
        .map_err(|_| SendError::Permanent("the message could not be built".into()))?;
    mail.smtp.send(message).await
}

async fn card(state: &AppState, serial: &SerialNumber) -> Result<Option<Card>, StoreError> {
    state.store.find_card(CardLookup::Serial(serial)).await
}

/// What the mails of `card` show: the card page, both wallet links, the program's look.
pub async fn context(state: &AppState, card: &Card) -> Result<MailContext, crate::http::errors::ApiError> {
    let program = state.program_by_id(&card.program_id).await?;
    let card_url = state.card_url(card);
    // The brand's colours are checked `rgb(…)` triples: they go into the mail's style attributes.
    let brand = crate::programs::brand::Brand::of(&program);
    Ok(MailContext {
        program_name: program.name,
        member_name: card.holder.as_ref().map(|h| h.first_name.to_string()).unwrap_or_default(),
        background_color: brand.background,
        foreground_color: brand.foreground,
        logo_url: brand.logo_url.map(|path| state.settings.url(&path)),
        apple_url: state.settings.url(&crate::card_page::apple::pass_path(&card.card_key)),
        google_url: state
            .google
            .as_ref()
            .map(|_| state.settings.url(&crate::card_page::google::add_path(&card.card_key))),
        card_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }
}
