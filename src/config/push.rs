//! The push pipeline's settings (`LOY_WORKERS`, `LOY_PUSH_*`) and APNs's (`LOY_APNS_*`).

use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::sources::{RawSettings, parse};

/// How the push workers run (SPEC §4.5).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Worker loops `serve` runs beside the HTTP server (0: none; run `loy worker` instead).
    pub workers: usize,
    /// Jobs one worker runs at once.
    pub concurrency: usize,
    /// Changes to a card within this window become one push.
    pub coalesce: Duration,
    /// How often the sweeper looks for cards owed a push.
    pub sweep_interval: Duration,
    /// A card owed a push for longer than this is re-enqueued by the sweeper.
    pub grace: Duration,
    /// A job not acknowledged within this time goes back to the queue.
    pub lease: Duration,
    /// How often an idle worker looks for due jobs.
    pub poll: Duration,
    /// The first retry's delay; it doubles per attempt (with jitter), up to five minutes.
    pub backoff_base: Duration,
    /// After this many failed attempts, or `max_age` after the first failure, a push is given up
    /// into the dead letters.
    pub max_attempts: u32,
    pub max_age: Duration,
    /// One APNs request's time limit.
    pub send_timeout: Duration,
    /// On SIGTERM, how long the jobs in hand may take to finish before they are released to
    /// another worker (`LOY_SHUTDOWN_GRACE`, seconds); also how long `serve` lets requests in
    /// flight finish.
    pub shutdown_grace: Duration,
    /// How many cards a message is put on per second (`LOY_MESSAGE_CARDS_PER_SECOND`, default
    /// 500): the fan-out's pace, so that a message to every card does not crowd out the pushes
    /// of purchases.
    pub message_cards_per_second: u32,
    pub apns: ApnsSettings,
}

/// How loy authenticates to APNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApnsAuth {
    /// With the Pass Type ID certificate that signs the passes (`LOY_APPLE_CERTIFICATE`).
    Certificate,
    /// With a `.p8` token key of the team that owns the pass type.
    Token { key: PathBuf, key_id: String, team_id: Option<String> },
    /// Not at all: passes are not pushed to iPhones.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApnsMode {
    /// Token auth when a key is configured, else certificate auth with a real certificate, else off.
    Auto,
    Certificate,
    Token,
    Off,
}

#[derive(Debug, Clone)]
pub struct ApnsSettings {
    pub mode: ApnsMode,
    pub key: Option<PathBuf>,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    /// Apple's development servers instead of production (Wallet's tokens are production ones).
    pub sandbox: bool,
    /// A stand-in for APNs at this address (`LOY_APNS_ENDPOINT=http://…`), never in production:
    /// the same requests over HTTP/1.1 without Apple's authentication, for tests that run
    /// separate processes ([`crate::push::apns_test`]).
    pub test_url: Option<String>,
}

pub fn from_raw(raw: &RawSettings) -> Result<PushSettings, ConfigError> {
    let ms = |key: &str, default: u64, min: u64, max: u64| -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(raw.parse_or(key, default, parse::number(min, max))?))
    };
    let mode = raw.parse_or("apns", ApnsMode::Auto, |s| match s {
        "auto" => Ok(ApnsMode::Auto),
        "certificate" => Ok(ApnsMode::Certificate),
        "token" => Ok(ApnsMode::Token),
        "off" => Ok(ApnsMode::Off),
        _ => Err(format!("`{s}` is not auto, certificate, token or off")),
    })?;
    let key = raw.parse_opt("apns_key", |s| Ok(PathBuf::from(s)))?;
    let key_id = raw.parse_opt("apns_key_id", |s| {
        if s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(s.to_owned())
        } else {
            Err(format!("`{s}` is not an APNs key id (10 letters and digits, shown with the key in Apple's portal)"))
        }
    })?;
    let team_id = raw.parse_opt("apns_team_id", |s| {
        if s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(s.to_owned())
        } else {
            Err(format!("`{s}` is not a team id (10 letters and digits)"))
        }
    })?;
    let (sandbox, test_url) = raw.parse_or("apns_endpoint", (false, None), |s| match s {
        "production" => Ok((false, None)),
        "sandbox" | "development" => Ok((true, None)),
        _ if s.starts_with("http://") || s.starts_with("https://") => {
            let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not an address: {e}"))?;
            Ok((false, Some(url.as_str().trim_end_matches('/').to_owned())))
        }
        _ => Err(format!("`{s}` is not production, sandbox or the http:// address of a test stand-in")),
    })?;
    if (key.is_some() || mode == ApnsMode::Token) && key_id.is_none() {
        return Err(ConfigError(format!(
            "{} needs LOY_APNS_KEY_ID (the 10-character id of the .p8 key)",
            raw.origin("apns_key")
        )));
    }
    if mode == ApnsMode::Token && key.is_none() {
        return Err(ConfigError("LOY_APNS=token needs LOY_APNS_KEY (the path of the .p8 key)".into()));
    }
    Ok(PushSettings {
        workers: raw.parse_or("workers", 1, parse::number(0, 64))?,
        message_cards_per_second: raw.parse_or("message_cards_per_second", 500, parse::number(1, 100_000))?,
        concurrency: raw.parse_or("push_concurrency", 64, parse::number(1, 4096))?,
        coalesce: ms("push_coalesce_ms", 50, 0, 60_000)?,
        sweep_interval: ms("push_sweep_ms", 5_000, 50, 3_600_000)?,
        grace: ms("push_grace_ms", 10_000, 0, 3_600_000)?,
        lease: ms("push_lease_ms", 60_000, 100, 3_600_000)?,
        poll: ms("push_poll_ms", 20, 1, 10_000)?,
        backoff_base: ms("push_backoff_ms", 1_000, 1, 600_000)?,
        max_attempts: raw.parse_or("push_max_attempts", 12, parse::number(1, 1000))?,
        max_age: Duration::from_secs(raw.parse_or("push_max_age_secs", 3_600, parse::number(1, 7 * 86_400))?),
        send_timeout: ms("push_timeout_ms", 10_000, 10, 120_000)?,
        shutdown_grace: Duration::from_secs(raw.parse_or("shutdown_grace", 25, parse::number(0, 3_600))?),
        apns: ApnsSettings { mode, key, key_id, team_id, sandbox, test_url },
    })
}
