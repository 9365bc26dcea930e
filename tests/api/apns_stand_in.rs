//! The APNs stand-in of `LOY_APNS_ENDPOINT=http://…` (outside production): the request a2 sends
//! Apple, over HTTP/1.1, and APNs's answers mapped as a2's are.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use loy::push::apns_test::TestApnsGateway;
use loy::push::gateway::{PushGateway, PushOutcome, WalletPush};

type Seen = Arc<Mutex<Vec<(String, String, String, String, String)>>>;

async fn answer(seen: web::Data<Seen>, token: web::Path<String>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    seen.lock().unwrap().push((
        token.clone(),
        header("apns-topic"),
        format!("{} {}", header("apns-push-type"), header("apns-priority")),
        header("apns-expiration"),
        String::from_utf8_lossy(&body).into_owned(),
    ));
    match token.as_str() {
        "gone" => HttpResponse::Gone().json(serde_json::json!({"reason": "Unregistered"})),
        "busy" => HttpResponse::TooManyRequests().json(serde_json::json!({"reason": "TooManyRequests"})),
        "topic" => HttpResponse::BadRequest().json(serde_json::json!({"reason": "TopicDisallowed"})),
        _ => HttpResponse::Ok().finish(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_receives_apples_request_and_its_answers_map_like_apns() {
    let seen: Seen = Arc::default();
    let data = web::Data::new(seen.clone());
    let server =
        HttpServer::new(move || App::new().app_data(data.clone()).route("/3/device/{token}", web::post().to(answer)))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
    let url = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    let gateway = TestApnsGateway::new(&url, Duration::from_secs(5)).unwrap();
    let push = |token| WalletPush { device_token: token, topic: "pass.dev.loy.loyalty" };

    assert_eq!(gateway.send(push("abc123")).await, PushOutcome::Delivered);
    assert!(matches!(gateway.send(push("gone")).await, PushOutcome::DeadToken(r) if r.contains("Unregistered")));
    assert!(matches!(gateway.send(push("busy")).await, PushOutcome::Retry(_)));
    assert!(matches!(gateway.send(push("topic")).await, PushOutcome::ConfigError(_)));
    let (token, topic, kind, expiration, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (token.as_str(), topic.as_str(), kind.as_str(), body.as_str()),
        ("abc123", "pass.dev.loy.loyalty", "background 5", "{}")
    );
    assert!(expiration.parse::<i64>().unwrap() > chrono::Utc::now().timestamp());

    handle.stop(false).await;
    match gateway.send(push("abc123")).await {
        PushOutcome::Retry(reason) => assert!(!reason.contains("abc123"), "the push token stays out of it: {reason}"),
        other => panic!("no answer is retried, not {other:?}"),
    }
}
