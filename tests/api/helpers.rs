//! `spawn_app` and friends: the real application on a random port with a fresh database.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use loy::clock::TestClock;
use loy::config::{KEYS, RawSettings, Settings};
use loy::startup::{Application, connect_store};
use loy::state::AppState;
use loy::store::{DynStore, Faults};
use serde_json::{Value, json};

pub use crate::phone::unique_phone;

/// The public address test apps believe they have; requests go to `TestApp::address`.
pub const PUBLIC_URL: &str = "http://loy.test";

/// The `LOY_METRICS_TOKEN` of test apps: [`TestApp::get_internal`] sends it.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// Which store a test runs on.
#[derive(Debug, Clone)]
pub enum StoreKind {
    Embedded,
    Mongo { uri: String },
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

impl StoreKind {
    /// MongoDB from `LOY_TEST_MONGODB_URI`. Under CI a missing server is a failure; on a
    /// developer's machine the test says loudly that it skipped.
    pub fn mongo() -> Option<Self> {
        match std::env::var("LOY_TEST_MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => Some(Self::Mongo { uri }),
            _ if under_ci() => {
                panic!("LOY_TEST_MONGODB_URI is not set under CI: the MongoDB tests must run (use scripts/test)")
            }
            _ => {
                eprintln!("SKIPPED: MongoDB test (set LOY_TEST_MONGODB_URI or run scripts/test)");
                None
            }
        }
    }
}

/// Redis from `LOY_TEST_REDIS_URL`, with the same CI rule as MongoDB.
pub fn redis_url() -> Option<String> {
    match std::env::var("LOY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if under_ci() => {
            panic!("LOY_TEST_REDIS_URL is not set under CI: the Redis tests must run (use scripts/test)")
        }
        _ => {
            eprintln!("SKIPPED: Redis test (set LOY_TEST_REDIS_URL or run scripts/test)");
            None
        }
    }
}

pub fn random_suffix() -> String {
    loy::domain::tokens::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 12)
}

/// Runs `$name(StoreKind)` once per store, as `$name::embedded` and `$name::mongodb`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name($crate::helpers::StoreKind::Embedded).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mongodb() {
                    if let Some(kind) = $crate::helpers::StoreKind::mongo() {
                        super::$name(kind).await
                    }
                }
            }
        )*
    };
}

/// Settings for a test app: fresh data directory or database, one HTTP worker, random port.
pub struct TestEnv {
    pub vars: HashMap<String, String>,
    pub dir: Arc<tempfile::TempDir>,
}

impl TestEnv {
    pub fn new(kind: &StoreKind) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let mut vars = HashMap::new();
        let mut set = |k: &str, v: &str| vars.insert(k.to_owned(), v.to_owned());
        set("LOY_BIND", "127.0.0.1:0");
        set("LOY_PUBLIC_URL", PUBLIC_URL);
        set("LOY_HTTP_WORKERS", "1");
        set("LOY_DATA_DIR", &dir.path().display().to_string());
        set("LOY_LOG", "warn");
        set("LOY_DEFAULT_LOCALE", "en");
        set("LOY_SQLITE_SYNCHRONOUS", "normal");
        // Every rate limit off, so tests are not throttled by each other's requests; a test of
        // a limit turns it on with `env.set("LOY_RATE_LIMIT_…", …)`.
        set("LOY_METRICS_TOKEN", METRICS_TOKEN);
        for limit in loy::rate_limit::ALL {
            set(&format!("LOY_RATE_LIMIT_{}", limit.name.to_ascii_uppercase()), "off");
        }
        // Development certificates made once per test run, never in the working tree.
        set("LOY_APPLE_DEV_DIR", &crate::apple_support::shared_dev_dir().display().to_string());
        if let StoreKind::Mongo { uri } = kind {
            set("LOY_MONGODB_URI", uri);
            set("LOY_MONGODB_DATABASE", &format!("loy_test_{}", random_suffix()));
        }
        Self { vars, dir }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn settings(&self) -> Settings {
        let raw = RawSettings::load(None, self.vars.clone(), KEYS).expect("test settings load");
        Settings::from_raw(&raw).expect("test settings are valid")
    }
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener, when `LOY_METRICS_BIND` is set.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub store: DynStore,
    pub faults: Arc<Faults>,
    pub clock: Arc<TestClock>,
    pub env: TestEnv,
    /// The first-owner setup link the application printed at start (no staff account yet).
    pub setup_link: Option<String>,
    handle: ServerHandle,
    enrollment_key: tokio::sync::OnceCell<String>,
}

pub async fn spawn_app(kind: StoreKind) -> TestApp {
    spawn_app_in(TestEnv::new(&kind)).await
}

/// Starts the application with the given environment (to change settings or restart on the
/// same data).
pub async fn spawn_app_in(env: TestEnv) -> TestApp {
    loy::telemetry::init("warn", loy::config::LogFormat::Text);
    let settings = env.settings();
    let faults = Arc::new(Faults::default());
    let store = connect_store(&settings, faults.clone()).await.expect("the test store opens");
    let clock = Arc::new(TestClock::default());
    let app = Application::build_with(settings, store.clone(), clock.clone()).await.expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|port| format!("http://127.0.0.1:{port}"));
    let state = app.state();
    let handle = app.handle();
    let setup_link = app.setup_link().map(str::to_owned);
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp {
        address,
        metrics_address,
        client,
        state,
        store,
        faults,
        clock,
        env,
        handle,
        enrollment_key: tokio::sync::OnceCell::new(),
        setup_link,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops the server (in-flight requests finish) and returns its environment for a restart.
    pub async fn stop(self) -> TestEnv {
        self.handle.stop(true).await;
        self.env
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// A GET with the metrics token: `/metrics` and the detail of `/readyz`.
    pub async fn get_internal(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(METRICS_TOKEN).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("POST")
    }

    /// `POST /api/v1/enrollments` with this app's enrollment key (made on first use).
    pub async fn post_enrollment(&self, body: &Value) -> reqwest::Response {
        let key = self.enrollment_key().await;
        self.client.post(self.url("/api/v1/enrollments")).bearer_auth(key).json(body).send().await.expect("POST")
    }

    /// The `pos` API key the enrollment helpers send, created once per app.
    pub async fn enrollment_key(&self) -> String {
        self.enrollment_key.get_or_init(|| async { self.api_key(loy::domain::Scope::Pos).await }).await.clone()
    }

    /// Enrolls a customer with `phone` and returns the 201 body.
    pub async fn enroll(&self, first_name: &str, phone: &str) -> Value {
        let response = self.post_enrollment(&json!({"first_name": first_name, "phone": phone, "consent": true})).await;
        assert_eq!(response.status(), 201, "enrollment of {phone} failed");
        response.json().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).form(fields).send().await.expect("POST form")
    }
}

/// The path part of an absolute URL made with [`PUBLIC_URL`].
pub fn path_of(url: &str) -> &str {
    url.strip_prefix(PUBLIC_URL).unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"))
}

/// A POS call's outcome: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    /// A new API key of `scope`, stored directly (as `loy api-key create` does).
    pub async fn api_key(&self, scope: loy::domain::Scope) -> String {
        let (key, plaintext) = loy::domain::ApiKey::generate("test key", scope, chrono::Utc::now());
        self.store.insert_api_key(&key).await.unwrap();
        plaintext
    }

    /// A POS request with an optional API key and idempotency key.
    pub async fn pos(
        &self,
        method: reqwest::Method,
        path: &str,
        api_key: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("POS request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, body }
    }

    /// A POST with a fresh idempotency key.
    pub async fn pos_post(
        &self,
        path: impl AsRef<str>,
        api_key: &str,
        body: impl std::borrow::Borrow<Value>,
    ) -> Answer {
        self.pos(reqwest::Method::POST, path.as_ref(), Some(api_key), Some(&random_suffix()), Some(body.borrow())).await
    }

    pub async fn pos_get(&self, path: &str, api_key: &str) -> Answer {
        self.pos(reqwest::Method::GET, path, Some(api_key), None, None).await
    }

    /// Enrolls a customer and returns their card number.
    pub async fn new_card(&self) -> String {
        let body = self.enroll("Anna", &unique_phone()).await;
        body["card"]["card_number"].as_str().unwrap().to_owned()
    }

    /// A new card holding `balance` points (the welcome bonus topped up by an adjustment).
    pub async fn card_with_balance(&self, admin_key: &str, balance: i64) -> String {
        let number = self.new_card().await;
        let top_up = balance - 100;
        if top_up != 0 {
            let answer = self
                .pos_post(
                    &format!("/api/v1/cards/{number}/adjust"),
                    admin_key,
                    &serde_json::json!({"points": top_up, "reason": "test setup"}),
                )
                .await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        number
    }

    pub async fn balance(&self, number: &str) -> i64 {
        let card = self.card(number).await;
        card.balance
    }

    pub async fn card(&self, number: &str) -> loy::domain::Card {
        let number = loy::domain::CardNumber::parse(number).unwrap();
        self.store.find_card(loy::store::CardLookup::Number(&number)).await.unwrap().expect("the card exists")
    }

    /// Every ledger entry of a card, oldest first.
    pub async fn entries(&self, number: &str) -> Vec<loy::domain::LedgerEntry> {
        let card = self.card(number).await;
        let mut entries = self.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
        entries.reverse();
        entries
    }

    /// Runs the ledger check and asserts that it finds nothing wrong.
    pub async fn assert_ledger_consistent(&self) {
        let program = self.store.program("default").await.unwrap().unwrap();
        let report = loy::ledger::check::check_all(self.store.as_ref(), &program, chrono::Utc::now()).await.unwrap();
        assert!(report.mismatches.is_empty(), "ledger check failed: {:?}", report.mismatches);
        assert!(report.cards > 0);
    }
}

impl TestApp {
    /// The application's clock now.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use loy::clock::Clock;
        self.clock.now()
    }
}
