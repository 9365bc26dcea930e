//! The SMTP client: lettre's async transport built from `LOY_SMTP_URL`.

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::mail::MailSettings;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

/// Why a mail was not accepted, without the address or the server's text (which may repeat it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A 5xx answer: sending the same mail again will not help.
    #[error("SMTP refused the mail for good ({0})")]
    Permanent(String),
    /// A 4xx answer, a timeout, a broken or refused connection: try again later.
    #[error("SMTP did not take the mail ({0})")]
    Transient(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        use anyhow::Context;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose_secret())
            .context("while reading LOY_SMTP_URL")?
            .timeout(Some(settings.timeout))
            .build();
        Ok(Self { transport })
    }

    /// Hands one message to the server.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| c.to_string());
    if e.is_permanent() {
        SendError::Permanent(format!("reply {}", code.unwrap_or_else(|| "5xx".into())))
    } else if e.is_transient() {
        SendError::Transient(format!("reply {}", code.unwrap_or_else(|| "4xx".into())))
    } else if e.is_timeout() {
        SendError::Transient("timed out".into())
    } else if e.is_tls() {
        SendError::Transient("TLS failed".into())
    } else {
        SendError::Transient("connection failed".into())
    }
}
