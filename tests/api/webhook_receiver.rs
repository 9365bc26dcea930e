//! A CRM stand-in for the webhook tests: an HTTP server on a real socket that records every
//! request and answers as scripted (a status, or no answer for a while).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Waits this long before answering 200 (longer than the sender's time limit: a timeout).
    Hang(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub signature: String,
    pub event_id: String,
    pub event_type: String,
    /// The status it was answered with (0 for a hang).
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    /// Answered when the script is empty.
    otherwise: Option<u16>,
    received: Vec<Received>,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

async fn hook(req: HttpRequest, body: web::Bytes, inner: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let reply = {
        let mut inner = inner.lock().unwrap();
        inner.script.pop_front().unwrap_or(Reply::Status(inner.otherwise.unwrap_or(200)))
    };
    // A hang is recorded as answered 0: the sender gives up before the late 200.
    let answered = match reply {
        Reply::Status(s) => s,
        Reply::Hang(_) => 0,
    };
    inner.lock().unwrap().received.push(Received {
        body: String::from_utf8_lossy(&body).into_owned(),
        signature: header("loy-signature"),
        event_id: header("loy-event-id"),
        event_type: header("loy-event-type"),
        answered,
    });
    if let Reply::Hang(d) = reply {
        tokio::time::sleep(d).await;
        return HttpResponse::Ok().finish();
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let data = web::Data::new(inner.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).route("/hooks", web::post().to(hook)))
            .bind(("127.0.0.1", 0))
            .unwrap()
            .workers(2)
            .disable_signals()
            .shutdown_timeout(1);
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}/hooks"), inner, handle }
    }

    /// The next requests are answered like this, in order.
    pub fn script(&self, replies: &[Reply]) {
        self.inner.lock().unwrap().script.extend(replies.iter().copied());
    }

    /// Every request after the script is answered with `status`.
    pub fn otherwise(&self, status: u16) {
        self.inner.lock().unwrap().otherwise = Some(status);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Checks a `Loy-Signature` header as a receiver would: HMAC-SHA256 over `t.body`.
pub fn signature_valid(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}
