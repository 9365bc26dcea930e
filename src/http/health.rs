//! `/healthz` (the process answers) and `/readyz` (it can do its work: store and queue reachable;
//! Google Wallet's state is shown but does not make the node unready, since cards are issued
//! and updated without it and caught up later).

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

    /// A feature that is not configured.
    pub fn off() -> Self {
        Self { status: "off", backend: None, detail: None }
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
    google: Check,
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
    let google = match &state.google {
        None => Check::off(),
        Some(google) => match google.last_failure() {
            None => Check::up("walletobjects"),
            Some(failure) => Check {
                status: "degraded",
                backend: Some("walletobjects"),
                detail: Some(format!("the last call failed: {failure}")),
            },
        },
    };
    let ready = store.status == "up" && queue.status == "up";
    let body =
        Readiness { status: if ready { "ready" } else { "unavailable" }, checks: Checks { store, queue, google } };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
