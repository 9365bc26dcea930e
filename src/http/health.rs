//! `/healthz` (the process answers) and `/readyz` (it can do its work: store and queue reachable,
//! the pass signing certificate valid).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::startup::AppState;

#[derive(Serialize)]
struct Alive {
    status: &'static str,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

#[derive(Serialize)]
pub struct Check {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    pub fn up(backend: &'static str) -> Self {
        Self { status: "up", backend: Some(backend), detail: None }
    }

    pub fn down(backend: &'static str, detail: impl Into<String>) -> Self {
        Self { status: "down", backend: Some(backend), detail: Some(detail.into()) }
    }
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    store: Check,
    queue: Check,
    apple_certificate: Check,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let backend = state.store.backend().name();
    let store = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Check::up(backend),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "readiness: store check failed");
            Check::down(backend, "the database does not answer")
        }
        Err(_) => Check::down(backend, "the database did not answer within 2 s"),
    };
    let queue = match &state.redis {
        None => Check::up("in-process"),
        Some(redis) => {
            let mut conn = redis.clone();
            let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
            match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
                Ok(Ok(_)) => Check::up("redis"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: Redis check failed");
                    Check::down("redis", "Redis does not answer")
                }
                Err(_) => Check::down("redis", "Redis did not answer within 2 s"),
            }
        }
    };
    let apple_certificate = state.apple.readiness(state.clock.now());
    let ready = store.status == "up" && queue.status == "up" && apple_certificate.status == "up";
    let checks = Checks { store, queue, apple_certificate };
    let body = Readiness { status: if ready { "ready" } else { "unavailable" }, checks };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
