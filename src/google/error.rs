//! How a call to Google failed, classified for a caller that retries.

use std::time::Duration;

/// A failed call to Google Wallet (the REST API or the OAuth token endpoint).
///
/// `Retryable` failures may succeed later: retry with backoff (honouring `retry_after` when
/// Google sent one). `Permanent` failures will fail again as they are: record them as dead
/// letters with the message, which is Google's own explanation where it gave one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoogleError {
    /// 429, 5xx, a timeout or a connection failure.
    #[error("Google Wallet is unavailable for now{}: {message}", describe(*status))]
    Retryable { status: Option<u16>, message: String, retry_after: Option<Duration> },
    /// Any other 4xx (other than 409, which callers handle), or a refused credential.
    #[error("Google Wallet refused the request{}: {message}", describe(*status))]
    Permanent { status: Option<u16>, message: String },
}

fn describe(status: Option<u16>) -> String {
    status.map(|status| format!(" (HTTP {status})")).unwrap_or_default()
}

impl GoogleError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The HTTP status Google answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Retryable { status, .. } | Self::Permanent { status, .. } => *status,
        }
    }

    /// Google's explanation (or ours, when there was no answer).
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. } | Self::Permanent { message, .. } => message,
        }
    }

    /// How long Google asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            Self::Permanent { .. } => None,
        }
    }

    /// Classifies an HTTP answer that is not a success.
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        if status == 429 || status >= 500 {
            Self::Retryable { status: Some(status), message, retry_after }
        } else {
            Self::Permanent { status: Some(status), message }
        }
    }

    pub(crate) fn no_answer(message: impl Into<String>) -> Self {
        Self::Retryable { status: None, message: message.into(), retry_after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_retryable_other_client_errors_are_not() {
        for status in [429, 500, 502, 503, 504] {
            assert!(GoogleError::from_status(status, "x".into(), None).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!GoogleError::from_status(status, "x".into(), None).is_retryable(), "{status}");
        }
        let e = GoogleError::from_status(400, "Invalid loyaltyPoints".into(), None);
        assert_eq!(e.to_string(), "Google Wallet refused the request (HTTP 400): Invalid loyaltyPoints");
        assert_eq!(e.status(), Some(400));
    }
}
