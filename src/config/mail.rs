//! E-mail settings: `LOY_SMTP_URL`, `LOY_MAIL_FROM`, `LOY_MAIL_MAX_ATTEMPTS`,
//! `LOY_MAIL_RETRY_SECS`, `LOY_SMTP_TIMEOUT_SECS`. No SMTP URL means e-mail is off.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::sources::{RawSettings, parse};

#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `smtps://user:pass@host:465`, `smtp://host:587?tls=required`, or `smtp://host:port`
    /// (no TLS, for a local relay). Holds a password, so it is secret.
    pub smtp_url: SecretString,
    /// The sender, `Name <address>` or `address`.
    pub from: lettre::message::Mailbox,
    /// After this many attempts a mail is marked failed.
    pub max_attempts: u32,
    /// The first retry's delay; it doubles per attempt, up to an hour.
    pub retry_base: Duration,
    /// One SMTP conversation's time limit.
    pub timeout: Duration,
}

fn parse_smtp_url(s: &str) -> Result<SecretString, String> {
    let shape = "must look like smtps://user:password@host:465, smtp://host:587?tls=required or smtp://host:25";
    let url = url::Url::parse(s).map_err(|_| shape.to_owned())?;
    if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none_or(str::is_empty) {
        return Err(shape.to_owned());
    }
    for (key, value) in url.query_pairs() {
        if key == "tls" && !matches!(value.as_ref(), "required" | "opportunistic") {
            return Err(format!("tls={value} is not `required` or `opportunistic`"));
        }
    }
    Ok(SecretString::from(s.to_owned()))
}

pub fn from_raw(raw: &RawSettings) -> Result<Option<MailSettings>, ConfigError> {
    let smtp_url = raw.parse_opt("smtp_url", parse_smtp_url)?;
    let from = raw.parse_opt("mail_from", |s| {
        s.parse::<lettre::message::Mailbox>()
            .map_err(|_| format!("`{s}` is not an address like loyalty@example.com or `Shop <loyalty@example.com>`"))
    })?;
    let max_attempts = raw.parse_or("mail_max_attempts", 8, parse::number(1, 100))?;
    let retry_base = Duration::from_secs(raw.parse_or("mail_retry_secs", 30, parse::number(1, 3600))?);
    let timeout = Duration::from_secs(raw.parse_or("smtp_timeout_secs", 30, parse::number(1, 600))?);
    match (smtp_url, from) {
        (None, _) => Ok(None),
        (Some(_), None) => Err(ConfigError(format!(
            "{} is set but LOY_MAIL_FROM is not: set the sender address too",
            raw.origin("smtp_url")
        ))),
        (Some(smtp_url), Some(from)) => Ok(Some(MailSettings { smtp_url, from, max_attempts, retry_base, timeout })),
    }
}
