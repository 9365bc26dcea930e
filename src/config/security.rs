//! Settings that protect the server from its clients: trusted proxies (`LOY_TRUSTED_PROXIES`,
//! `LOY_CLIENT_ADDRESS_HEADER`), rate limits (`LOY_RATE_LIMIT_*`), who may read the metrics
//! (`LOY_METRICS_TOKEN`, `LOY_METRICS_BIND`) and how many devices one pass may have
//! (`LOY_MAX_DEVICES_PER_PASS`).

use std::net::SocketAddr;

use secrecy::SecretString;

use super::ConfigError;
use super::sources::{RawSettings, parse};
use crate::http::client::TrustedProxies;
use crate::rate_limit::{ALL, Rate, RateLimitSettings};

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub trusted_proxies: TrustedProxies,
    pub rate_limits: RateLimitSettings,
    /// `Authorization: Bearer <token>` opens `/metrics` and the detail of `/readyz`.
    pub metrics_token: Option<SecretString>,
    /// A second listener serving `/metrics`, `/readyz` and `/healthz` without a token.
    pub metrics_bind: Option<SocketAddr>,
    /// Devices one pass may be registered on (Apple Wallet on a phone and a watch, a spare phone).
    pub max_devices_per_pass: u32,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            rate_limits: RateLimitSettings::off(),
            metrics_token: None,
            metrics_bind: None,
            max_devices_per_pass: 10,
        }
    }
}

pub fn from_raw(raw: &RawSettings) -> Result<SecuritySettings, ConfigError> {
    let header = raw.parse_opt("client_address_header", parse::string)?;
    let list = raw.get("trusted_proxies").map(|v| v.value.clone()).unwrap_or_default();
    let trusted_proxies = TrustedProxies::parse(&list, header.as_deref()).map_err(|why| {
        let key = if why.contains("header") { "client_address_header" } else { "trusted_proxies" };
        ConfigError(format!("{}: {why}", raw.origin(key)))
    })?;
    let mut rate_limits = RateLimitSettings::default();
    for limit in ALL {
        let key = format!("rate_limit_{}", limit.name);
        let default = Rate::parse(limit.default).expect("the built-in rates parse");
        rate_limits.rates.insert(limit.name, raw.parse_or(&key, default, Rate::parse)?);
    }
    let metrics_token = raw.parse_opt("metrics_token", |s| {
        if s.len() >= 16 && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(SecretString::from(s.to_owned()))
        } else {
            Err("use at least 16 printable characters without spaces".to_owned())
        }
    })?;
    let metrics_bind = raw
        .parse_opt("metrics_bind", |s| s.parse().map_err(|_| format!("`{s}` is not an address like 127.0.0.1:9100")))?;
    let max_devices_per_pass = raw.parse_or("max_devices_per_pass", 10, parse::number(1, 1000))?;
    Ok(SecuritySettings { trusted_proxies, rate_limits, metrics_token, metrics_bind, max_devices_per_pass })
}
