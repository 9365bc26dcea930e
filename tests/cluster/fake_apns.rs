//! A stand-in for APNs that separate processes reach over TCP (`LOY_APNS_ENDPOINT`): it
//! answers `POST /3/device/{token}` with 200 after a set delay and counts the deliveries per
//! device token. It checks the request shape Apple requires of a Wallet update.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Default)]
pub struct Deliveries {
    per_token: Mutex<HashMap<String, u32>>,
    malformed: Mutex<Vec<String>>,
    delay_ms: std::sync::atomic::AtomicU64,
}

impl Deliveries {
    pub fn count(&self, token: &str) -> u32 {
        self.per_token.lock().unwrap().get(token).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.per_token.lock().unwrap().values().map(|n| u64::from(*n)).sum()
    }

    /// Forgets every delivery so far (the start of a new phase).
    pub fn reset(&self) {
        self.per_token.lock().unwrap().clear();
    }

    pub fn snapshot(&self) -> HashMap<String, u32> {
        self.per_token.lock().unwrap().clone()
    }

    pub fn malformed(&self) -> Vec<String> {
        self.malformed.lock().unwrap().clone()
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

pub struct FakeApns {
    pub url: String,
    pub deliveries: Arc<Deliveries>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeApns {
    pub fn start(topic: &'static str) -> Self {
        let deliveries = Arc::new(Deliveries::default());
        let shared = deliveries.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(shared.clone()))
                .app_data(web::Data::new(topic))
                .route("/3/device/{token}", web::post().to(deliver))
        })
        .workers(2)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}"), deliveries, handle }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn deliver(
    deliveries: web::Data<Deliveries>,
    topic: web::Data<&'static str>,
    token: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let problems: Vec<String> = [
        (header("apns-topic") != **topic).then(|| format!("apns-topic {}", header("apns-topic"))),
        (header("apns-push-type") != "background").then(|| "apns-push-type".to_owned()),
        (header("apns-priority") != "5").then(|| "apns-priority".to_owned()),
        header("apns-expiration").parse::<i64>().is_err().then(|| "apns-expiration".to_owned()),
        (body.as_ref() != b"{}").then(|| "payload".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !problems.is_empty() {
        deliveries.malformed.lock().unwrap().push(problems.join(", "));
        return HttpResponse::BadRequest().json(serde_json::json!({"reason": "BadTopic"}));
    }
    let delay = deliveries.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    *deliveries.per_token.lock().unwrap().entry(token.into_inner()).or_default() += 1;
    HttpResponse::Ok().finish()
}
