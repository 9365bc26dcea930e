//! What the benchmarks share: settings on a fresh data directory, the application on a free
//! port, cards and an API key.

use std::sync::Arc;

use loy::config::{KEYS, RawSettings, Settings};
use loy::domain::{ApiKey, Card, Customer, Locale, PersonName, Phone, Scope};
use loy::startup::{Application, connect_store};
use loy::state::AppState;
use loy::store::{DynStore, Faults};

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The application started on a free port with the embedded defaults in `dir` and `vars` on
/// top; returns its base URL, state and store.
pub async fn start(
    dir: &std::path::Path,
    vars: Vec<(String, String)>,
) -> (String, actix_web::web::Data<AppState>, DynStore) {
    let mut all = vec![
        ("LOY_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("LOY_DATA_DIR".to_owned(), dir.display().to_string()),
        ("LOY_APPLE_DEV_DIR".to_owned(), dir.join("certificates").display().to_string()),
        ("LOY_LOG".to_owned(), "error".to_owned()),
    ];
    // A benchmark is one client sending as fast as it can: no rate limits.
    all.extend(
        loy::rate_limit::ALL
            .iter()
            .map(|l| (format!("LOY_RATE_LIMIT_{}", l.name.to_ascii_uppercase()), "off".to_owned())),
    );
    all.extend(vars);
    let settings = Settings::from_raw(&RawSettings::load(None, all, KEYS).unwrap()).unwrap();
    println!("store: {}", settings.store_description());
    let store = connect_store(&settings, Arc::new(Faults::default())).await.unwrap();
    let app = Application::build_with(settings, store.clone(), Arc::new(loy::clock::SystemClock)).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    (base, state, store)
}

/// `count` new cards of the default program.
pub async fn cards(store: &DynStore, count: usize) -> Vec<Card> {
    let program = store.program("default").await.unwrap().unwrap();
    let now = loy::domain::card::stored_precision(chrono::Utc::now());
    let mut cards = Vec::with_capacity(count);
    for i in 0..count {
        let holder = Customer {
            first_name: PersonName::parse("Bench").unwrap(),
            last_name: None,
            phone: Phone::parse(&format!("+7900{i:07}"), loy::domain::PhoneRegion::RU).unwrap(),
            email: None,
            birthday: None,
            locale: Locale::En,
            consent_at: now,
        };
        let (card, welcome) = Card::enroll(&program, holder, None, now);
        store.insert_card(&card, &welcome).await.unwrap();
        cards.push(card);
    }
    cards
}

/// A POS API key's plaintext.
pub async fn pos_key(store: &DynStore) -> String {
    let (key, plaintext) = ApiKey::generate("bench", Scope::Pos, chrono::Utc::now());
    store.insert_api_key(&key).await.unwrap();
    plaintext
}

/// APNs as seen from a data centre: every push takes `latency`, then succeeds. With
/// `arrivals`, it also keeps when each device token's last push arrived.
pub struct SlowApns {
    latency: std::time::Duration,
    delivered: std::sync::atomic::AtomicUsize,
    arrivals: Option<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

impl SlowApns {
    pub fn new(latency: std::time::Duration, arrivals: bool) -> Self {
        Self { latency, delivered: Default::default(), arrivals: arrivals.then(Default::default) }
    }

    /// Pushes delivered so far.
    pub fn delivered(&self) -> usize {
        self.delivered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the last push to `token` arrived (only when kept).
    pub fn arrived(&self, token: &str) -> Option<std::time::Instant> {
        self.arrivals.as_ref()?.lock().unwrap().get(token).copied()
    }
}

#[async_trait::async_trait]
impl loy::push::gateway::PushGateway for SlowApns {
    async fn send(&self, push: loy::push::gateway::WalletPush<'_>) -> loy::push::gateway::PushOutcome {
        tokio::time::sleep(self.latency).await;
        self.delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(arrivals) = &self.arrivals {
            arrivals.lock().unwrap().insert(push.device_token.to_owned(), std::time::Instant::now());
        }
        loy::push::gateway::PushOutcome::Delivered
    }
}
