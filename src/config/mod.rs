//! Typed settings, read once at start-up and passed to whoever needs them.

pub mod admin;
pub mod apple;
pub mod mail;
pub mod push;
pub mod security;
pub mod webhooks;

pub use push::PushSettings;
mod sources;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

pub use sources::RawSettings;
pub(crate) use sources::parse;

use crate::domain::{Currency, Locale, PhoneRegion};
use crate::google::config::GoogleSettings;

/// A mistake in the settings, as one sentence that names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The embedded store's file name inside `LOY_DATA_DIR`.
pub const EMBEDDED_FILE: &str = "loy.sqlite3";

/// Where data lives.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// The embedded database file (no server needed).
    Embedded { path: PathBuf, synchronous_full: bool },
    /// A MongoDB deployment.
    Mongo { uri: SecretString, database: String },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub bind: SocketAddr,
    /// HTTP worker threads (default: one per CPU core).
    pub http_workers: usize,
    /// The address customers and Wallet reach the server at, without a trailing slash.
    pub public_url: String,
    pub data_dir: PathBuf,
    pub store: StoreSettings,
    pub redis: Option<RedisSettings>,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub default_locale: Locale,
    /// The country a phone number typed without a country code belongs to.
    pub default_phone_region: PhoneRegion,
    /// Used when the default program is first created.
    pub program_name: String,
    pub currency: Currency,
    /// Replaces the built-in consent sentence on the registration form.
    pub consent_text: Option<String>,
    /// Used when the default program is first created: credit the welcome bonus at the first
    /// purchase rather than at registration (scripted registrations then collect nothing).
    pub welcome_at_first_purchase: bool,
    /// How often `serve` expires due points and purges old idempotency records.
    pub maintenance_interval: std::time::Duration,
    /// How long a node keeps a program it read from the store (`LOY_PROGRAM_CACHE_MS`, default
    /// 2000): a change saved on another node is seen within this time; 0 reads the store every time.
    pub program_cache: std::time::Duration,
    pub push: push::PushSettings,
    /// Google Wallet, when configured (`None` = off: no button, no calls).
    pub google: Option<GoogleSettings>,
    /// Apple Wallet: signing certificate, pass type and team, card design.
    pub apple: apple::AppleSettings,
    /// Trusted proxies, rate limits, metrics access, devices per pass.
    pub security: security::SecuritySettings,
    /// The staff console: session lifetimes, second factor.
    pub admin: admin::AdminSettings,
    /// E-mail through SMTP, when configured (`None` = off: nothing is sent or promised).
    pub mail: Option<mail::MailSettings>,
    /// Outgoing events to configured endpoints (delivery limits, private addresses).
    pub webhooks: webhooks::WebhookSettings,
    /// How many app nodes the operator runs (`LOY_NODES`, default 1). More than one in
    /// production needs Redis and MongoDB, which every node shares (`docs/architecture.md`).
    pub nodes: usize,
    /// When and over what customer segments are computed.
    pub segments: SegmentSettings,
}

/// Customer segments (`segments`): computed every `every_hours` (0: only on demand) over the
/// purchases of the last `window_days`, reading and writing `batch` cards at a time.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSettings {
    pub every_hours: u32,
    pub window_days: u32,
    pub batch: usize,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Prepended to every key, so several installs (or test runs) can share one Redis.
    pub prefix: String,
}

/// Every setting name, lower case, without the `LOY_` prefix.
pub const KEYS: &[&str] = &[
    "env",
    "bind",
    "http_workers",
    "public_url",
    "data_dir",
    "mongodb_uri",
    "mongodb_database",
    "sqlite_synchronous",
    "redis_url",
    "redis_prefix",
    "log",
    "log_format",
    "default_locale",
    "default_phone_region",
    "program_name",
    "currency",
    "consent_text",
    "welcome_bonus_at",
    "maintenance_interval_secs",
    "program_cache_ms",
    "workers",
    "message_cards_per_second",
    "push_concurrency",
    "push_coalesce_ms",
    "push_sweep_ms",
    "push_grace_ms",
    "push_lease_ms",
    "push_poll_ms",
    "push_backoff_ms",
    "push_max_attempts",
    "push_max_age_secs",
    "push_timeout_ms",
    "apns",
    "apns_key",
    "apns_key_id",
    "apns_team_id",
    "apns_endpoint",
    "google_issuer_id",
    "google_service_account_key",
    "google_api_base_url",
    "google_timeout_secs",
    "google_requests_per_second",
    "google_root_keys_url",
    "google_reconcile_interval_secs",
    "google_reconcile_batch",
    "apple_pass_type_id",
    "apple_team_id",
    "apple_certificate",
    "apple_certificate_password",
    "apple_key",
    "apple_wwdr",
    "apple_dev_dir",
    "apple_template",
    "apple_pass_cache_mb",
    "trusted_proxies",
    "client_address_header",
    "rate_limit_enroll",
    "rate_limit_passkit_log",
    "rate_limit_passkit_register",
    "rate_limit_pos",
    "metrics_token",
    "metrics_bind",
    "max_devices_per_pass",
    "admin_session_idle",
    "admin_session_max",
    "require_2fa",
    "smtp_url",
    "mail_from",
    "mail_max_attempts",
    "mail_retry_secs",
    "smtp_timeout_secs",
    "rate_limit_recover",
    "rate_limit_recover_card",
    "webhook_timeout_ms",
    "webhook_retry_base_ms",
    "webhook_max_age_secs",
    "webhook_poll_ms",
    "webhook_allow_private",
    "shutdown_grace",
    "nodes",
    "segments_every_hours",
    "segments_window_days",
    "segments_batch",
];

impl Settings {
    /// Reads the settings from the process environment and the optional file named by
    /// `--config` or `LOY_CONFIG`.
    pub fn load(config_file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let from_env = std::env::var_os("LOY_CONFIG").map(PathBuf::from);
        let file = config_file.map(Path::to_path_buf).or(from_env);
        let raw = RawSettings::load(file.as_deref(), std::env::vars(), KEYS)?;
        let warnings = raw
            .unknown_env
            .iter()
            .map(|name| format!("{name} is set but is not a loy setting (see .env.example)"))
            .collect();
        Ok((Self::from_raw(&raw)?, warnings))
    }

    /// Parses and checks layered raw values, applying the built-in defaults.
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let environment = raw.parse_or("env", Environment::Development, |s| match s {
            "development" | "dev" => Ok(Environment::Development),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(format!("`{s}` is not `development` or `production`")),
        })?;
        let bind = raw.parse_or("bind", SocketAddr::from(([127, 0, 0, 1], 8080)), |s| {
            s.parse().map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8080 or 0.0.0.0:8080"))
        })?;
        let default_workers = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
        let http_workers = raw.parse_or("http_workers", default_workers, parse::number(1, 256))?;
        let public_url = raw.parse_or("public_url", "http://127.0.0.1:8080".to_owned(), parse_public_url)?;
        if environment == Environment::Production && !public_url.starts_with("https://") {
            return Err(ConfigError(format!(
                "{} must start with https:// in production (Apple Wallet only talks to HTTPS servers)",
                raw.origin("public_url")
            )));
        }
        let data_dir = raw.parse_or("data_dir", PathBuf::from("./data"), |s| Ok(PathBuf::from(s)))?;
        let synchronous_full = raw.parse_or("sqlite_synchronous", true, |s| match s.to_ascii_lowercase().as_str() {
            "full" => Ok(true),
            "normal" => Ok(false),
            _ => Err(format!("`{s}` is not `full` or `normal`")),
        })?;
        let mongodb_uri = raw.parse_opt("mongodb_uri", |s| {
            if s.starts_with("mongodb://") || s.starts_with("mongodb+srv://") {
                Ok(SecretString::from(s.to_owned()))
            } else {
                Err("must start with mongodb:// or mongodb+srv://".to_owned())
            }
        })?;
        let database = raw.parse_or("mongodb_database", "loy".to_owned(), parse_database_name)?;
        if raw.get("mongodb_database").is_some() && mongodb_uri.is_none() {
            return Err(ConfigError(format!(
                "{} is set but LOY_MONGODB_URI is not: set both to use MongoDB, or neither for the embedded store",
                raw.origin("mongodb_database")
            )));
        }
        let store = match mongodb_uri {
            Some(uri) => StoreSettings::Mongo { uri, database },
            None => StoreSettings::Embedded { path: data_dir.join(EMBEDDED_FILE), synchronous_full },
        };
        let redis_url = raw.parse_opt("redis_url", |s| {
            if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("unix://") {
                Ok(SecretString::from(s.to_owned()))
            } else {
                Err("must start with redis://, rediss:// or unix://".to_owned())
            }
        })?;
        let prefix = raw.parse_or("redis_prefix", "loy".to_owned(), |s| {
            if s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
                Ok(s.to_owned())
            } else {
                Err("use up to 64 letters, digits, '-', '_', '.' or ':'".to_owned())
            }
        })?;
        let log_filter = raw.parse_or("log", "info".to_owned(), |s| {
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_owned())
                .map_err(|e| format!("not a log filter: {e}"))
        })?;
        let log_format = raw.parse_or("log_format", LogFormat::Json, |s| match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("`{s}` is not `json` or `text`")),
        })?;
        let default_locale = raw.parse_or("default_locale", Locale::Ru, |s| match s {
            "ru" => Ok(Locale::Ru),
            "en" => Ok(Locale::En),
            _ => Err(format!("`{s}` is not `ru` or `en`")),
        })?;
        let default_phone_region = raw.parse_or("default_phone_region", PhoneRegion::RU, PhoneRegion::parse)?;
        let program_name = raw.parse_or("program_name", "Loyalty Card".to_owned(), |s| {
            if s.chars().count() <= 64 { Ok(s.to_owned()) } else { Err("is longer than 64 characters".to_owned()) }
        })?;
        let currency = raw.parse_or("currency", Currency::parse("RUB").expect("RUB is a currency"), Currency::parse)?;
        let consent_text = raw.parse_opt("consent_text", parse::string)?;
        let welcome_at_first_purchase = raw.parse_or("welcome_bonus_at", false, |s| match s {
            "registration" => Ok(false),
            "first_purchase" => Ok(true),
            _ => Err(format!("`{s}` is not `registration` or `first_purchase`")),
        })?;
        let push = push::from_raw(raw)?;
        let maintenance_interval = std::time::Duration::from_secs(raw.parse_or(
            "maintenance_interval_secs",
            3600,
            parse::number(10, 86_400),
        )?);
        let program_cache =
            std::time::Duration::from_millis(raw.parse_or("program_cache_ms", 2000, parse::number(0, 60_000))?);
        let google = GoogleSettings::from_raw(raw, environment)?;
        let apple = apple::from_raw(raw)?;
        let security = security::from_raw(raw)?;
        let admin = admin::from_raw(raw)?;
        let mail = mail::from_raw(raw)?;
        let webhooks = webhooks::from_raw(raw, environment)?;
        let nodes = raw.parse_or("nodes", 1, parse::number(1, 1024))?;
        let segments = SegmentSettings {
            every_hours: raw.parse_or("segments_every_hours", 24, parse::number(0, 24 * 31))?,
            window_days: raw.parse_or("segments_window_days", 365, parse::number(7, 3650))?,
            batch: raw.parse_or("segments_batch", 1000, parse::number(1, 100_000))?,
        };
        if environment == Environment::Production {
            check_production_topology(nodes, redis_url.is_some(), matches!(store, StoreSettings::Embedded { .. }))?;
            if push.apns.test_url.is_some() {
                return Err(ConfigError(format!(
                    "{} names a test stand-in for APNs, which production never uses: set production or sandbox",
                    raw.origin("apns_endpoint")
                )));
            }
        }
        if environment == Environment::Production && apple.signer.is_none() {
            return Err(ConfigError(
                "LOY_APPLE_CERTIFICATE must be set in production: development certificates make passes no iPhone accepts"
                    .into(),
            ));
        }
        Ok(Settings {
            environment,
            bind,
            http_workers,
            public_url,
            data_dir,
            store,
            redis: redis_url.map(|url| RedisSettings { url, prefix }),
            log_filter,
            log_format,
            default_locale,
            default_phone_region,
            program_name,
            currency,
            consent_text,
            welcome_at_first_purchase,
            maintenance_interval,
            program_cache,
            push,
            google,
            apple,
            security,
            admin,
            mail,
            webhooks,
            nodes,
            segments,
        })
    }

    /// The absolute URL of a path on this server (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Whether the public address is HTTPS (console cookies are then `Secure`).
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The embedded store's file: the configured one, or where it would be in `LOY_DATA_DIR`
    /// (what `loy migrate` reads, also once LOY_MONGODB_URI is set).
    pub fn embedded_store_path(&self) -> std::path::PathBuf {
        match &self.store {
            StoreSettings::Embedded { path, .. } => path.clone(),
            StoreSettings::Mongo { .. } => self.data_dir.join(EMBEDDED_FILE),
        }
    }

    /// A description of the store for logs, without credentials.
    pub fn store_description(&self) -> String {
        match &self.store {
            StoreSettings::Embedded { path, .. } => format!("embedded database {}", path.display()),
            StoreSettings::Mongo { uri, database } => {
                format!("MongoDB {} database {database}", redact_url(uri.expose_secret()))
            }
        }
    }
}

/// Several app nodes work only on what they all share: the push queue and rate limits in Redis,
/// the data in MongoDB. A production install that declares more than one node without them
/// would lose pushes between nodes and count limits per node, so it does not start.
fn check_production_topology(nodes: usize, redis: bool, embedded: bool) -> Result<(), ConfigError> {
    if nodes <= 1 {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !redis {
        missing.push("LOY_REDIS_URL (the push queue and rate limits every node shares)");
    }
    if embedded {
        missing.push("LOY_MONGODB_URI (the embedded store lives in one node's data directory)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ConfigError(format!(
        "LOY_NODES={nodes} in production needs {}; set them, or LOY_NODES=1 for a single node",
        missing.join(" and ")
    )))
}

fn parse_public_url(s: &str) -> Result<String, String> {
    let url =
        url::Url::parse(s).map_err(|_| format!("`{s}` is not an absolute URL like https://loyalty.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{s}` must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must not have a query or fragment"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn parse_database_name(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a database name (letters, digits, '_' and '-', up to 63)"))
    }
}

/// `scheme://user:password@host/…` → `scheme://***@host/…`, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://***@{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawSettings::load(None, env, KEYS)?)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert!(matches!(s.store, StoreSettings::Embedded { .. }));
        assert!(s.redis.is_none());
        assert_eq!(s.default_locale, Locale::Ru);
        assert_eq!(s.default_phone_region, PhoneRegion::RU);
        assert_eq!(s.environment, Environment::Development);
    }

    #[test]
    fn environment_variables_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loy.toml");
        std::fs::write(&file, "bind = \"0.0.0.0:9000\"\npublic_url = \"https://file.example\"\n").unwrap();
        let env = [("LOY_PUBLIC_URL".to_owned(), "https://env.example/".to_owned())];
        let raw = RawSettings::load(Some(&file), env, KEYS).unwrap();
        let s = Settings::from_raw(&raw).unwrap();
        assert_eq!(s.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(s.public_url, "https://env.example");
    }

    #[test]
    fn mongodb_uri_selects_mongodb() {
        let s = settings(&[("LOY_MONGODB_URI", "mongodb://u:p@db:27017"), ("LOY_MONGODB_DATABASE", "shop")]).unwrap();
        match &s.store {
            StoreSettings::Mongo { database, .. } => assert_eq!(database, "shop"),
            other => panic!("expected MongoDB, got {other:?}"),
        }
        assert_eq!(s.store_description(), "MongoDB mongodb://***@db:27017 database shop");
        assert!(!format!("{s:?}").contains("u:p"), "the URI is a secret");
    }

    #[test]
    fn each_mistake_is_one_sentence_naming_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LOY_BIND", "localhost")], "LOY_BIND: `localhost` is not an address"),
            (&[("LOY_PUBLIC_URL", "example.com")], "LOY_PUBLIC_URL: `example.com` is not an absolute URL"),
            (&[("LOY_PUBLIC_URL", "ftp://x")], "must be an http:// or https:// URL"),
            (&[("LOY_MONGODB_URI", "postgres://x")], "LOY_MONGODB_URI: must start with mongodb://"),
            (&[("LOY_MONGODB_DATABASE", "x")], "LOY_MONGODB_DATABASE is set but LOY_MONGODB_URI is not"),
            (&[("LOY_REDIS_URL", "localhost:6379")], "LOY_REDIS_URL: must start with redis://"),
            (&[("LOY_DEFAULT_LOCALE", "de")], "LOY_DEFAULT_LOCALE: `de` is not `ru` or `en`"),
            (&[("LOY_DEFAULT_PHONE_REGION", "Russia")], "LOY_DEFAULT_PHONE_REGION: `Russia` is not a two-letter"),
            (&[("LOY_LOG_FORMAT", "xml")], "LOY_LOG_FORMAT"),
            (&[("LOY_CURRENCY", "RUBLE")], "LOY_CURRENCY"),
            (&[("LOY_ENV", "production")], "LOY_PUBLIC_URL must start with https:// in production"),
            (
                &[("LOY_ENV", "production"), ("LOY_PUBLIC_URL", "https://loy.example")],
                "LOY_APPLE_CERTIFICATE must be set in production",
            ),
        ];
        for (env, expected) in cases {
            let err = settings(env).unwrap_err().0;
            assert!(err.contains(expected), "{env:?} gave {err:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_and_in_the_environment_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loy.toml");
        std::fs::write(&file, "bnd = \"0.0.0.0:9000\"\n").unwrap();
        let err = RawSettings::load(Some(&file), [], KEYS).unwrap_err();
        assert!(err.0.contains("`bnd` is not a setting"), "{err}");
        let raw = RawSettings::load(
            None,
            [("LOY_BNID".to_owned(), "x".to_owned()), ("LOY_TEST_REDIS_URL".to_owned(), "x".to_owned())],
            KEYS,
        )
        .unwrap();
        assert_eq!(raw.unknown_env, ["LOY_BNID"]);
    }

    #[test]
    fn blank_values_mean_unset() {
        let s = settings(&[("LOY_MONGODB_URI", ""), ("LOY_REDIS_URL", " ")]).unwrap();
        assert!(matches!(s.store, StoreSettings::Embedded { .. }));
        assert!(s.redis.is_none());
    }
    #[test]
    fn several_production_nodes_need_redis_and_mongodb_and_never_a_test_apns() {
        let base = [("LOY_ENV", "production"), ("LOY_PUBLIC_URL", "https://loy.example"), ("LOY_NODES", "2")];
        let e = settings(&base).unwrap_err().0;
        assert!(e.contains("LOY_NODES=2") && e.contains("LOY_REDIS_URL") && e.contains("LOY_MONGODB_URI"), "{e}");
        let mut shared = base.to_vec();
        shared.extend([("LOY_REDIS_URL", "redis://127.0.0.1:6379"), ("LOY_MONGODB_URI", "mongodb://127.0.0.1")]);
        let e = settings(&shared).unwrap_err().0;
        assert!(e.contains("LOY_APPLE_CERTIFICATE"), "the topology is accepted, the next check speaks: {e}");
        shared.push(("LOY_APNS_ENDPOINT", "http://127.0.0.1:9"));
        assert!(settings(&shared).unwrap_err().0.contains("LOY_APNS_ENDPOINT"));
        let dev = settings(&[("LOY_NODES", "2"), ("LOY_APNS_ENDPOINT", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(dev.push.apns.test_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(dev.push.shutdown_grace, std::time::Duration::from_secs(25));
    }
}
