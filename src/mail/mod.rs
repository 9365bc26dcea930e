//! E-mail to customers (SPEC §4.10): the welcome mail and the card link, through an outbox in
//! the store and SMTP.
//!
//! A request that wants a mail only adds it to the outbox ([`queue`]); the sender
//! ([`outbox`]) takes due mails with a lease, renders them ([`render`]) and hands them to the
//! SMTP server ([`smtp`]), retrying with backoff. Addresses and contents never go to the log.

pub mod outbox;
pub mod render;
pub mod smtp;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::mail::MailSettings;
use crate::domain::{Card, Email};
use crate::store::{MailState, OutboxMail, Store, StoreResult};

/// What a mail says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// After registration: the card link and the wallet buttons.
    Welcome,
    /// The card link again (recovery, a duplicate registration, staff).
    CardLink,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::CardLink => "card_link",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "welcome" => Some(Self::Welcome),
            "card_link" => Some(Self::CardLink),
            _ => None,
        }
    }
}

/// E-mail when it is configured: the SMTP client, the templates, and a bell that wakes the
/// sender when a mail is queued.
pub struct Mail {
    pub settings: MailSettings,
    pub smtp: smtp::Mailer,
    pub templates: render::Templates,
    pub wake: tokio::sync::Notify,
}

impl Mail {
    /// Builds the SMTP client and loads the templates (a broken one is a start-up error).
    pub fn from_settings(settings: &MailSettings) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            smtp: smtp::Mailer::new(settings)?,
            templates: render::Templates::load()?,
            settings: settings.clone(),
            wake: tokio::sync::Notify::new(),
        }))
    }
}

/// The address of a card's holder, if it has one.
pub fn email_of(card: &Card) -> Option<&Email> {
    card.holder.as_ref().and_then(|h| h.email.as_ref())
}

/// Adds a mail of `kind` for `card` to the outbox when e-mail is on and the card has an
/// address; returns that address. Nothing is sent here.
pub async fn queue(
    store: &dyn Store,
    mail: Option<&Mail>,
    kind: MailKind,
    card: &Card,
    now: DateTime<Utc>,
) -> StoreResult<Option<Email>> {
    let Some(mail) = mail else { return Ok(None) };
    let id = format!("ml_{}", crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 20));
    let Some(row) = outbox_row(id, kind, card, now) else { return Ok(None) };
    store.enqueue_mail(&row).await?;
    tracing::info!(serial = %card.serial, mail = %row.id, kind = kind.as_str(), "mail queued");
    mail.wake.notify_one();
    Ok(email_of(card).cloned())
}

/// Adds a mail of `kind` for `card` to the outbox under `id`, once: `false` when the card has no
/// address or a mail with this id was queued before (so repeating an action sends nothing twice).
pub async fn queue_once(
    store: &dyn Store,
    mail: &Mail,
    id: String,
    kind: MailKind,
    card: &Card,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let Some(row) = outbox_row(id, kind, card, now) else { return Ok(false) };
    match store.enqueue_mail(&row).await {
        Ok(()) => {}
        Err(crate::store::StoreError::Duplicate(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    tracing::info!(serial = %card.serial, mail = %row.id, kind = kind.as_str(), "mail queued");
    mail.wake.notify_one();
    Ok(true)
}

/// The outbox row of a mail to the holder of `card`; `None` when it has no address.
fn outbox_row(id: String, kind: MailKind, card: &Card, now: DateTime<Utc>) -> Option<OutboxMail> {
    let holder = card.holder.as_ref()?;
    let email = holder.email.as_ref()?;
    Some(OutboxMail {
        id,
        kind: kind.as_str().to_owned(),
        serial: card.serial.clone(),
        recipient: email.as_str().to_owned(),
        locale: holder.locale.code().to_owned(),
        state: MailState::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        updated_at: now,
    })
}

/// An address with most of its local part hidden: `a***@mail.ru`.
pub fn mask(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Queues the card link to the holder's address when e-mail is on and the card has one, at most
/// as often as the per-card limit allows (over it, the link sent moments ago still stands).
/// Returns the masked address the link goes to, or `None`: then only staff can help.
pub async fn send_card_link(state: &crate::state::AppState, card: &Card) -> Option<String> {
    let mail = state.mail.as_deref()?;
    let email = email_of(card)?;
    let masked = mask(email.as_str());
    if state.limits.check(crate::rate_limit::RECOVER_CARD, card.serial.as_str()).await.is_err() {
        tracing::info!(serial = %card.serial, "card link not queued again: the card's limit is reached");
        return Some(masked);
    }
    match queue(state.store.as_ref(), Some(mail), MailKind::CardLink, card, state.clock.now()).await {
        Ok(Some(_)) => Some(masked),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(serial = %card.serial, error = %crate::telemetry::error_chain(&e), "queueing a card link failed");
            None
        }
    }
}

/// Queues the welcome mail of a new card; a failure is logged and never fails the registration.
pub async fn send_welcome(state: &crate::state::AppState, card: &Card) -> bool {
    match queue(state.store.as_ref(), state.mail.as_deref(), MailKind::Welcome, card, state.clock.now()).await {
        Ok(queued) => queued.is_some(),
        Err(e) => {
            tracing::error!(serial = %card.serial, error = %crate::telemetry::error_chain(&e), "queueing the welcome mail failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_first_letter_and_the_domain() {
        assert_eq!(mask("anna.petrova@mail.ru"), "a***@mail.ru");
        assert_eq!(mask("я@почта.рф"), "я***@почта.рф");
        assert_eq!(mask("nonsense"), "***");
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [MailKind::Welcome, MailKind::CardLink] {
            assert_eq!(MailKind::parse(kind.as_str()), Some(kind));
        }
    }
}
