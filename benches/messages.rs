//! A message to 100 000 cards: how long the fan-out takes to put it on every card and hand the
//! cards to the push queue, how fast one worker then pushes them through a fake APNs, and how
//! the calls for cards on Google are paced.
//!
//!     cargo bench --bench messages                                      # in-process queue
//!     LOY_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench messages
//!
//! Every card has one registered iPhone and a Google Wallet object (as every card gets at
//! enrollment when Google is configured). Phase 1 sends a message to every card: its fan-out
//! runs alone, then one worker pushes the cards through a fake APNs that takes 20 ms per push;
//! Google gets the message once, on the class. Phase 2 sends a message to the Gold tier: each
//! Gold card is one `addMessage` on its object, paced at Google's 20 requests a second, while
//! the iPhones are pushed at APNs's pace (the Google lane). A fake Google (OAuth token endpoint
//! and Wallet API over HTTP) records when each call arrives.
//!
//! Knobs: LOY_BENCH_CARDS (default 100000), LOY_BENCH_GOLD_CARDS (of them in the Gold tier,
//! default 600), LOY_BENCH_APNS_MS (default 20), LOY_BENCH_CONCURRENCY (push jobs in flight,
//! default 256), LOY_BENCH_CARDS_PER_SECOND (the fan-out's pace, default 100000, the highest it takes: to
//! measure what it can do; the server's default is 500).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use loy::domain::{DeviceLibraryId, LocalizedText, PassTypeId, PushToken, Registration};
use loy::messages::{Audience, MessageState, MessageText, Wallet};
use loy::push::PushRuntime;
use loy::state::AppState;
use serde_json::json;

#[allow(dead_code)] // the helpers of the other benchmarks
mod support;

use support::{SlowApns, env_or};

const TOPIC: &str = "pass.bench.loy";
const ISSUER: &str = "3388000000022222222";

/// The Wallet API's calls as they arrived: method, path, when.
type Calls = Arc<Mutex<Vec<(String, String, Instant)>>>;

/// A stand-in for Google: the OAuth token endpoint (`POST /token`, a JWT-bearer grant) and the
/// Wallet API (`/walletobjects/v1/...`), which takes every call that carries the token it
/// issued and records it.
fn fake_google(calls: Calls) -> String {
    async fn token() -> HttpResponse {
        HttpResponse::Ok().json(json!({"access_token": "ya29.bench", "token_type": "Bearer", "expires_in": 3599}))
    }
    async fn api(req: HttpRequest, calls: web::Data<Calls>) -> HttpResponse {
        let authorized = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer ya29.bench");
        if !authorized {
            return HttpResponse::Unauthorized().json(json!({"error": {"code": 401, "message": "no token"}}));
        }
        let path = req.path().trim_start_matches("/walletobjects/v1/").to_owned();
        calls.lock().unwrap().push((req.method().to_string(), path, Instant::now()));
        HttpResponse::Ok().json(json!({}))
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(calls.clone()))
            .route("/token", web::post().to(token))
            .default_service(web::to(api))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    base
}

/// A service-account key file for the fake, with a fresh RSA key.
fn service_account(dir: &std::path::Path, token_uri: &str) -> String {
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let file = json!({
        "type": "service_account",
        "project_id": "loy-bench",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "loy-bench@loy-bench.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    });
    let path = dir.join("google-service-account.json");
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    path.display().to_string()
}

fn text(en: &str, ru: &str) -> MessageText {
    MessageText { title: LocalizedText::new("Новости", "News"), body: LocalizedText::new(ru, en), link: None }
}

/// Writes a message of the default program to `audience`; its fan-out starts at once.
async fn send(state: &web::Data<AppState>, audience: Audience, body: &str) -> String {
    let program = state.store.program("default").await.unwrap().unwrap();
    let message =
        loy::messages::compose::compose(state, &program, text(body, body), audience, None, "bench".into()).await;
    message.unwrap().id
}

/// Waits until the message is on every card of its audience and every card is in the queue.
async fn fanned_out(state: &AppState, id: &str) {
    while state.store.message(id).await.unwrap().unwrap().state != MessageState::Sent {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(state.changes.flush(Duration::from_secs(60)).await);
}

/// Waits until no send of the message is queued for `wallet` any more.
async fn settled(state: &AppState, id: &str, wallet: Wallet) -> loy::store::SendCounts {
    loop {
        let counts = state.store.send_counts(id).await.unwrap();
        let queued = match wallet {
            Wallet::Apple => counts.apple.queued,
            Wallet::Google => counts.google.queued,
        };
        if queued == 0 {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The most calls that arrived within any one second.
fn busiest_second(times: &[Instant]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, t) in times.iter().enumerate() {
        while t.duration_since(times[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[tokio::main]
async fn main() {
    let cards = env_or("LOY_BENCH_CARDS", 100_000);
    let gold = env_or("LOY_BENCH_GOLD_CARDS", 600).min(cards);
    let latency = Duration::from_millis(env_or("LOY_BENCH_APNS_MS", 20) as u64);
    let concurrency = env_or("LOY_BENCH_CONCURRENCY", 256);
    let pace = env_or("LOY_BENCH_CARDS_PER_SECOND", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let calls: Calls = Arc::default();
    let google = fake_google(calls.clone());
    let mut vars = vec![
        ("LOY_PUSH_CONCURRENCY".to_owned(), concurrency.to_string()),
        ("LOY_PUSH_POLL_MS".to_owned(), "5".to_owned()),
        ("LOY_MESSAGE_CARDS_PER_SECOND".to_owned(), pace.to_string()),
        ("LOY_GOOGLE_ISSUER_ID".to_owned(), ISSUER.to_owned()),
        ("LOY_GOOGLE_SERVICE_ACCOUNT_KEY".to_owned(), service_account(dir.path(), &format!("{google}/token"))),
        ("LOY_GOOGLE_API_BASE_URL".to_owned(), format!("{google}/walletobjects/v1")),
    ];
    if let Ok(url) = std::env::var("LOY_BENCH_REDIS_URL") {
        vars.push(("LOY_REDIS_URL".to_owned(), url));
        vars.push(("LOY_REDIS_PREFIX".to_owned(), format!("loybench{}", std::process::id())));
    }
    let (_base, state, store) = support::start(dir.path(), vars).await;
    println!(
        "queue: {}; {cards} cards with an iPhone and a Google object each, {gold} of them Gold; fake APNs {latency:?} a push; \
         {concurrency} push jobs in flight; fan-out pace {pace} cards/s",
        state.queue.backend()
    );

    let started = Instant::now();
    let mut program = store.program("default").await.unwrap().unwrap();
    if !program.rules.tiers.iter().any(|t| t.id == "gold") {
        program.rules.tiers.push(loy::domain::TierRule {
            id: "gold".into(),
            name_en: "Gold".into(),
            name_ru: "Золото".into(),
            threshold: 1_000_000,
            cashback_bp: 500,
        });
        assert!(state.save_program(&program, program.version).await.unwrap());
    }
    program.rules.validate().expect("the program's rules are valid");
    let now = loy::domain::card::stored_precision(chrono::Utc::now());
    futures_util::stream::iter(0..cards)
        .map(|i| {
            let (store, program) = (store.clone(), program.clone());
            async move {
                let holder = loy::domain::Customer {
                    first_name: loy::domain::PersonName::parse("Bench").unwrap(),
                    last_name: None,
                    phone: loy::domain::Phone::parse(&format!("+7900{i:07}"), loy::domain::PhoneRegion::RU).unwrap(),
                    email: None,
                    birthday: None,
                    locale: if i % 2 == 0 { loy::domain::Locale::En } else { loy::domain::Locale::Ru },
                    consent_at: now,
                };
                let (mut card, welcome) = loy::domain::Card::enroll(&program, holder, None, now);
                card.pushed_version = card.version;
                card.push_pending_since = None;
                if i < gold {
                    card.tier = "gold".into();
                }
                store.insert_card(&card, &welcome).await.unwrap();
                let registration = Registration {
                    device_library_id: DeviceLibraryId::parse(&format!("phone{i}")).unwrap(),
                    pass_type_id: PassTypeId::parse(TOPIC).unwrap(),
                    serial: card.serial.clone(),
                    push_token: PushToken::parse(&format!("{i:064x}")).unwrap(),
                    pushed_version: card.version,
                    created_at: now,
                    updated_at: now,
                };
                store.register_device(&registration, 10).await.unwrap();
                store.record_google_sync(&card.serial, card.version, card.balance, None).await.unwrap();
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    println!("seeded in {:.1} s (not part of the figures)", started.elapsed().as_secs_f64());
    calls.lock().unwrap().clear();

    // Phase 1: every card. The fan-out alone, then the pushes.
    let started = Instant::now();
    let everyone = send(&state, Audience::All, "We open at 8 tomorrow").await;
    fanned_out(&state, &everyone).await;
    let fan_out = started.elapsed();
    println!(
        "phase 1, every card: fan-out put the message on {cards} cards and queued them in {:.2} s = {:.0} cards/s",
        fan_out.as_secs_f64(),
        cards as f64 / fan_out.as_secs_f64()
    );
    let apns = Arc::new(SlowApns::new(latency, false));
    let started = Instant::now();
    let runtime = PushRuntime::start(Arc::new(state.worker(Some(apns.clone()), TOPIC)), 1);
    while apns.delivered() < cards {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pushed = started.elapsed();
    let counts = settled(&state, &everyone, Wallet::Apple).await;
    let recorded = started.elapsed();
    println!(
        "phase 1: {cards} APNs pushes in {:.2} s = {:.0} pushes/s from one worker; every send recorded delivered \
         after {:.2} s ({} delivered, {} failed); Google: {} on the class",
        pushed.as_secs_f64(),
        cards as f64 / pushed.as_secs_f64(),
        recorded.as_secs_f64(),
        counts.apple.delivered,
        counts.apple.failed,
        counts.google_class
    );
    let phase1: Vec<String> = calls.lock().unwrap().drain(..).map(|(m, p, _)| format!("{m} {p}")).collect();
    println!("phase 1: {} Google calls: {phase1:?}", phase1.len());

    // Phase 2: the Gold cards, one object call each at Google's pace, the iPhones at APNs's.
    let before = apns.delivered();
    let started = Instant::now();
    let to_gold = send(&state, Audience::Tier { tier: "gold".into() }, "Double points this weekend").await;
    fanned_out(&state, &to_gold).await;
    while apns.delivered() < before + gold {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let iphones = started.elapsed();
    let counts = settled(&state, &to_gold, Wallet::Google).await;
    let elapsed = started.elapsed();
    runtime.stop().await;
    let calls = calls.lock().unwrap().clone();
    let times: Vec<Instant> = calls.iter().map(|(_, _, at)| *at).collect();
    let span = match (times.first(), times.last()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    let add_message = calls.iter().filter(|(m, p, _)| m == "POST" && p.ends_with("/addMessage")).count();
    println!(
        "phase 2, the {gold} Gold cards: every iPhone pushed after {:.2} s; Google {} delivered, {} failed after {:.1} s; \
         {} Wallet API calls ({add_message} addMessage, {:.2} per card), {:.1} calls/s from the first to the last, \
         at most {} in any one second",
        iphones.as_secs_f64(),
        counts.google.delivered,
        counts.google.failed,
        elapsed.as_secs_f64(),
        calls.len(),
        calls.len() as f64 / gold.max(1) as f64,
        (calls.len().saturating_sub(1)) as f64 / span.max(f64::EPSILON),
        busiest_second(&times)
    );
}
