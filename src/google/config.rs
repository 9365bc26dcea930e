//! Google Wallet settings (`LOY_GOOGLE_*`) and the service-account key they name.
//!
//! Google Wallet is on when both `LOY_GOOGLE_ISSUER_ID` and `LOY_GOOGLE_SERVICE_ACCOUNT_KEY` are
//! set, and off (no button, no calls) when neither is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ConfigError, Environment, RawSettings, parse};

/// Where the Google Wallet REST API lives (the discovery document's `rootUrl` + `servicePath`).
pub const DEFAULT_API_BASE_URL: &str = "https://walletobjects.googleapis.com/walletobjects/v1";

/// Google's documented limit for the Wallet API is about 20 requests per second per issuer.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleSettings {
    /// The issuer id from the Google Pay & Wallet Console: the first half of every class and
    /// object id.
    pub issuer_id: String,
    /// The service-account JSON key (by convention in `certificates/google/`).
    pub service_account_key: PathBuf,
    /// The REST API base URL, without a trailing slash (tests point it at a local fake).
    pub api_base_url: String,
    /// How long one call to Google (API or token endpoint) may take.
    pub timeout: Duration,
    /// The most calls per second this process makes to the API.
    pub requests_per_second: u32,
    /// Where Google publishes the root keys that sign its save and delete callbacks.
    pub root_keys_url: String,
    /// How often the reconciliation reads a batch of Google objects (`None`: never).
    pub reconcile_interval: Option<Duration>,
    /// How many cards' objects one reconciliation round reads.
    pub reconcile_batch: usize,
}

impl GoogleSettings {
    /// Reads the `google_*` settings: `None` when Google Wallet is not configured.
    pub fn from_raw(raw: &RawSettings, environment: Environment) -> Result<Option<Self>, ConfigError> {
        let issuer_id = raw.parse_opt("google_issuer_id", |s| {
            if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit()) {
                Ok(s.to_owned())
            } else {
                Err(format!("`{s}` is not an issuer id (the number shown in the Google Pay & Wallet Console)"))
            }
        })?;
        let key = raw.parse_opt("google_service_account_key", |s| Ok(PathBuf::from(s)))?;
        let api_base_url =
            raw.parse_or("google_api_base_url", DEFAULT_API_BASE_URL.to_owned(), |s| parse_base_url(s, environment))?;
        let timeout = Duration::from_secs(raw.parse_or("google_timeout_secs", 10, parse::number(1, 120))?);
        let requests_per_second =
            raw.parse_or("google_requests_per_second", DEFAULT_REQUESTS_PER_SECOND, parse::number(1, 1000))?;
        let root_keys_url =
            raw.parse_or("google_root_keys_url", super::callbacks::GOOGLE_ROOT_KEYS_URL.to_owned(), |s| {
                parse_base_url(s, environment)
            })?;
        // 0 turns the reconciliation off; the default reads 20 objects a minute, a thousandth of
        // Google's request budget.
        let reconcile_secs: u64 = raw.parse_or("google_reconcile_interval_secs", 60, parse::number(0, 86_400))?;
        let reconcile_interval = (reconcile_secs > 0).then(|| Duration::from_secs(reconcile_secs));
        let reconcile_batch = raw.parse_or("google_reconcile_batch", 20, parse::number(1, 1000))?;
        match (issuer_id, key) {
            (Some(issuer_id), Some(service_account_key)) => Ok(Some(Self {
                issuer_id,
                service_account_key,
                api_base_url,
                timeout,
                requests_per_second,
                root_keys_url,
                reconcile_interval,
                reconcile_batch,
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError(format!(
                "{} is set but LOY_GOOGLE_SERVICE_ACCOUNT_KEY is not: set both to turn Google Wallet on, or neither",
                raw.origin("google_issuer_id")
            ))),
            (None, Some(_)) => Err(ConfigError(format!(
                "{} is set but LOY_GOOGLE_ISSUER_ID is not: set both to turn Google Wallet on, or neither",
                raw.origin("google_service_account_key")
            ))),
        }
    }
}

fn parse_base_url(s: &str, environment: Environment) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|_| format!("`{s}` is not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if environment == Environment::Development => {}
        "http" => return Err(format!("`{s}` must be an https:// URL in production")),
        _ => return Err(format!("`{s}` must be an http:// or https:// URL")),
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must be a URL with a host and without a query or fragment"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// A mistake in the Google Wallet set-up found at start-up, as one sentence naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GoogleSetupError(pub String);

/// The parsed service-account key. Its `Debug` shows only the account's e-mail, never the key.
#[derive(Clone)]
pub struct ServiceAccount {
    pub key: yup_oauth2::ServiceAccountKey,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("client_email", &self.key.client_email).finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads and checks the JSON key at `path`; every failure is one sentence that names
    /// `LOY_GOOGLE_SERVICE_ACCOUNT_KEY` and the file, never the key's content.
    pub fn load(path: &Path) -> Result<Self, GoogleSetupError> {
        let shown = path.display();
        let fail = |why: String| GoogleSetupError(format!("LOY_GOOGLE_SERVICE_ACCOUNT_KEY: {shown} {why}"));
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
        Self::parse(&text).map_err(fail)
    }

    /// Parses the content of a service-account JSON key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let key: yup_oauth2::ServiceAccountKey = serde_json::from_str(text).map_err(|e| {
            format!("is not a Google service-account JSON key ({})", serde_json_error_without_content(&e))
        })?;
        match key.key_type.as_deref() {
            None | Some("service_account") => {}
            Some(kind) => return Err(format!("is a `{kind}` key, not a `service_account` key")),
        }
        if !key.client_email.contains('@') {
            return Err("has no service-account e-mail in `client_email`".to_owned());
        }
        match url::Url::parse(&key.token_uri) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err("has no http(s) URL in `token_uri`".to_owned()),
        }
        super::jwt::rsa_encoding_key(&key.private_key)
            .map_err(|_| "has a `private_key` that is not an RSA private key in PEM form".to_owned())?;
        Ok(Self { key })
    }
}

/// serde_json's message without anything it may quote from the input (the key is a secret).
fn serde_json_error_without_content(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("not valid JSON at line {} column {}", e.line(), e.column())
        }
        Category::Data => {
            let message = e.to_string();
            // "missing field `client_email` at line 1 column 2" names a field, which is safe; an
            // "invalid type: string \"…\"" message could quote a value, which is not.
            if message.starts_with("missing field") {
                message
            } else {
                format!("a field has the wrong type at line {} column {}", e.line(), e.column())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KEYS;

    fn google(env: &[(&str, &str)]) -> Result<Option<GoogleSettings>, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        GoogleSettings::from_raw(&RawSettings::load(None, env, KEYS)?, Environment::Development)
    }

    #[test]
    fn google_wallet_is_off_unless_both_the_issuer_and_the_key_are_set() {
        assert_eq!(google(&[]).unwrap(), None);
        let on =
            google(&[("LOY_GOOGLE_ISSUER_ID", "3388000000012345678"), ("LOY_GOOGLE_SERVICE_ACCOUNT_KEY", "k.json")])
                .unwrap()
                .unwrap();
        assert_eq!(on.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(on.requests_per_second, 20);
        assert_eq!(on.timeout, Duration::from_secs(10));
        assert_eq!(on.root_keys_url, "https://pay.google.com/gp/m/issuer/keys");
        assert_eq!((on.reconcile_interval, on.reconcile_batch), (Some(Duration::from_secs(60)), 20));
        let err = google(&[("LOY_GOOGLE_ISSUER_ID", "3388000000012345678")]).unwrap_err();
        assert!(err.0.contains("LOY_GOOGLE_SERVICE_ACCOUNT_KEY is not"), "{err}");
        let err = google(&[("LOY_GOOGLE_SERVICE_ACCOUNT_KEY", "k.json")]).unwrap_err();
        assert!(err.0.contains("LOY_GOOGLE_ISSUER_ID is not"), "{err}");
    }

    #[test]
    fn bad_values_are_one_sentence_naming_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LOY_GOOGLE_ISSUER_ID", "abc")], "LOY_GOOGLE_ISSUER_ID: `abc` is not an issuer id"),
            (&[("LOY_GOOGLE_API_BASE_URL", "walletobjects")], "LOY_GOOGLE_API_BASE_URL: `walletobjects` is not"),
            (&[("LOY_GOOGLE_TIMEOUT_SECS", "0")], "LOY_GOOGLE_TIMEOUT_SECS"),
            (&[("LOY_GOOGLE_REQUESTS_PER_SECOND", "fast")], "LOY_GOOGLE_REQUESTS_PER_SECOND"),
        ];
        for (env, expected) in cases {
            let err = google(env).unwrap_err().0;
            assert!(err.contains(expected), "{env:?} gave {err:?}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn the_reconciliation_is_turned_off_with_an_interval_of_zero() {
        let base = [("LOY_GOOGLE_ISSUER_ID", "3388000000012345678"), ("LOY_GOOGLE_SERVICE_ACCOUNT_KEY", "k.json")];
        let off = google(&[base[0], base[1], ("LOY_GOOGLE_RECONCILE_INTERVAL_SECS", "0")]).unwrap().unwrap();
        assert_eq!(off.reconcile_interval, None);
        let err = google(&[base[0], base[1], ("LOY_GOOGLE_RECONCILE_BATCH", "0")]).unwrap_err();
        assert!(err.0.contains("LOY_GOOGLE_RECONCILE_BATCH"), "{err}");
        let err = google(&[base[0], base[1], ("LOY_GOOGLE_ROOT_KEYS_URL", "keys")]).unwrap_err();
        assert!(err.0.contains("LOY_GOOGLE_ROOT_KEYS_URL"), "{err}");
    }

    #[test]
    fn production_needs_an_https_api() {
        let env = [("LOY_GOOGLE_API_BASE_URL".to_owned(), "http://127.0.0.1:9/v1".to_owned())];
        let raw = RawSettings::load(None, env, KEYS).unwrap();
        assert!(GoogleSettings::from_raw(&raw, Environment::Production).unwrap_err().0.contains("https://"));
        assert!(GoogleSettings::from_raw(&raw, Environment::Development).is_ok());
    }

    #[test]
    fn a_key_file_that_does_not_parse_is_one_sentence_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("{ not json", "is not a Google service-account JSON key (not valid JSON"),
            (r#"{"private_key": "s3cret", "token_uri": "https://oauth2.googleapis.com/token"}"#, "missing field"),
            (r#"{"private_key": 12345, "client_email": "a@b", "token_uri": "x"}"#, "wrong type"),
            (
                r#"{"type": "service_account", "private_key": "s3cret", "client_email": "a@b.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"}"#,
                "not an RSA private key",
            ),
            (
                r#"{"type": "authorized_user", "private_key": "s3cret", "client_email": "a@b", "token_uri": "https://x"}"#,
                "not a `service_account` key",
            ),
        ];
        for (i, (content, expected)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("key{i}.json"));
            std::fs::write(&path, content).unwrap();
            let err = ServiceAccount::load(&path).unwrap_err().0;
            assert!(err.starts_with("LOY_GOOGLE_SERVICE_ACCOUNT_KEY: "), "{err}");
            assert!(err.contains(expected), "{content} gave {err}");
            assert!(!err.contains("s3cret") && !err.contains("12345"), "the key's content leaked: {err}");
            assert!(!err.contains('\n'));
        }
        let missing = ServiceAccount::load(&dir.path().join("absent.json")).unwrap_err().0;
        assert!(missing.contains("cannot be read"), "{missing}");
    }
}
