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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KEYS, Settings};

    fn settings(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawSettings::load(None, env, KEYS)?)
    }

    #[test]
    fn defaults_limit_every_surface_and_trust_no_proxy() {
        let s = settings(&[]).unwrap().security;
        assert!(s.trusted_proxies.is_empty());
        for limit in ALL {
            let rate = s.rate_limits.rate(*limit).unwrap_or_else(|| panic!("{} is on by default", limit.name));
            assert_eq!(Some(rate), Rate::parse(limit.default).unwrap());
        }
        assert_eq!(s.max_devices_per_pass, 10);
        assert!(s.metrics_token.is_none() && s.metrics_bind.is_none());
    }

    #[test]
    fn every_limit_has_its_setting() {
        for limit in ALL {
            let key = format!("rate_limit_{}", limit.name);
            assert!(KEYS.contains(&key.as_str()), "LOY_{} is missing from KEYS", key.to_ascii_uppercase());
        }
        let s = settings(&[("LOY_RATE_LIMIT_POS", "off"), ("LOY_RATE_LIMIT_ENROLL", "5/s burst 20")]).unwrap();
        assert_eq!(s.security.rate_limits.rate(crate::rate_limit::POS), None);
        assert_eq!(s.security.rate_limits.rate(crate::rate_limit::ENROLL).unwrap().burst.get(), 20);
    }

    #[test]
    fn mistakes_name_their_setting() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LOY_TRUSTED_PROXIES", "proxy.local")], "LOY_TRUSTED_PROXIES: `proxy.local` is not an IP address"),
            (&[("LOY_CLIENT_ADDRESS_HEADER", "X Real IP")], "LOY_CLIENT_ADDRESS_HEADER"),
            (&[("LOY_RATE_LIMIT_ENROLL", "ten")], "LOY_RATE_LIMIT_ENROLL: `ten` is not a rate"),
            (&[("LOY_METRICS_TOKEN", "short")], "LOY_METRICS_TOKEN: use at least 16"),
            (&[("LOY_METRICS_BIND", "localhost")], "LOY_METRICS_BIND"),
            (&[("LOY_MAX_DEVICES_PER_PASS", "0")], "LOY_MAX_DEVICES_PER_PASS"),
        ];
        for (env, expected) in cases {
            let err = settings(env).unwrap_err().0;
            assert!(err.contains(expected), "{env:?} gave {err:?}");
        }
    }
}
