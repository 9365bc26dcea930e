//! Outgoing events: `LOY_WEBHOOK_TIMEOUT_MS`, `LOY_WEBHOOK_RETRY_BASE_MS`,
//! `LOY_WEBHOOK_MAX_AGE_SECS`, `LOY_WEBHOOK_POLL_MS`, `LOY_WEBHOOK_ALLOW_PRIVATE`.

use std::time::Duration;

use super::sources::{RawSettings, parse};
use super::{ConfigError, Environment};

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// One delivery's time limit (connect, send, answer).
    pub timeout: Duration,
    /// The first retry's delay; it doubles per attempt, up to an hour.
    pub retry_base: Duration,
    /// How long a failing delivery is retried before it is kept as failed.
    pub max_age: Duration,
    /// How often the sender looks for events to fan out and deliveries due.
    pub poll: Duration,
    /// Whether endpoints may resolve to loopback, private, link-local, unique-local or
    /// unspecified addresses: refused in production unless allowed, allowed in development.
    pub allow_private: bool,
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("`{s}` is not `true` or `false`")),
    }
}

pub fn from_raw(raw: &RawSettings, environment: Environment) -> Result<WebhookSettings, ConfigError> {
    Ok(WebhookSettings {
        timeout: Duration::from_millis(raw.parse_or("webhook_timeout_ms", 10_000, parse::number(100, 120_000))?),
        retry_base: Duration::from_millis(raw.parse_or(
            "webhook_retry_base_ms",
            30_000,
            parse::number(10, 3_600_000),
        )?),
        max_age: Duration::from_secs(raw.parse_or("webhook_max_age_secs", 86_400, parse::number(1, 30 * 86_400))?),
        poll: Duration::from_millis(raw.parse_or("webhook_poll_ms", 1_000, parse::number(10, 60_000))?),
        allow_private: raw.parse_or("webhook_allow_private", environment != Environment::Production, parse_bool)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)], environment: Environment) -> Result<WebhookSettings, ConfigError> {
        let vars = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        from_raw(&RawSettings::load(None, vars, super::super::KEYS)?, environment)
    }

    #[test]
    fn private_addresses_are_refused_in_production_unless_allowed() {
        assert!(!settings(&[], Environment::Production).unwrap().allow_private);
        assert!(settings(&[("LOY_WEBHOOK_ALLOW_PRIVATE", "true")], Environment::Production).unwrap().allow_private);
        assert!(settings(&[], Environment::Development).unwrap().allow_private);
        assert!(!settings(&[("LOY_WEBHOOK_ALLOW_PRIVATE", "false")], Environment::Development).unwrap().allow_private);
        assert!(settings(&[("LOY_WEBHOOK_ALLOW_PRIVATE", "maybe")], Environment::Production).is_err());
    }

    #[test]
    fn defaults_are_ten_seconds_and_a_day() {
        let s = settings(&[], Environment::Production).unwrap();
        assert_eq!((s.timeout, s.max_age), (Duration::from_secs(10), Duration::from_secs(86_400)));
    }
}
