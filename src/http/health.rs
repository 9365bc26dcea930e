//! `/healthz` (the process answers) and `/readyz` (it can do its work: store and queue reachable,
//! the pass signing certificate valid). APNs and Google Wallet trouble is shown but does not make
//! the node unready: cards are still issued and served, and pushes catch up later.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::state::AppState;

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
    apns: Check,
    google: Check,
    apple_certificate: Check,
    /// What this node keeps to itself that a second node would not see (shown only).
    node_local: Check,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: 200 or 503. The JSON detail (which backend, what failed) only for whoever may
/// see the server's internals (`LOY_METRICS_TOKEN`, the metrics listener); everyone else, load
/// balancers included, gets a bare `ready` or `unavailable`.
pub async fn readyz(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let backend = state.store.backend().name();
    let store = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Check::up(backend),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "readiness: store check failed");
            Check::down(backend, "the database does not answer")
        }
        Err(_) => Check::down(backend, "the database did not answer within 2 s"),
    };
    let backend = state.queue.backend();
    let queue = match tokio::time::timeout(CHECK_TIMEOUT, state.queue.ping()).await {
        Ok(Ok(())) => Check::up(backend),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "readiness: queue check failed");
            Check::down(backend, "the queue does not answer")
        }
        Err(_) => Check::down(backend, "the queue did not answer within 2 s"),
    };
    // APNs trouble does not make this node unready (it still serves cards and the API), but it
    // is shown here so that monitoring sees it.
    let apns = if !state.push_health.apns_configured.load(std::sync::atomic::Ordering::Relaxed) {
        Check {
            status: "off",
            backend: None,
            detail: Some("APNs is not configured: passes are not pushed to iPhones".into()),
        }
    } else {
        match state.push_health.current_error() {
            Some(reason) => {
                Check { status: "error", backend: None, detail: Some(format!("APNs refuses our pushes: {reason}")) }
            }
            None => Check { status: "up", backend: None, detail: None },
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
    let apple_certificate = state.apple.readiness(state.clock.now());
    let ready = store.status == "up" && queue.status == "up" && apple_certificate.status == "up";
    let status = match (ready, apns.status) {
        (false, _) => "unavailable",
        (true, "error") => "degraded",
        (true, _) => "ready",
    };
    let mut response = if ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    if crate::http::Internals::of(&state, &req) != crate::http::Internals::Shown {
        return response.content_type("text/plain; charset=utf-8").body(if ready {
            "ready\n"
        } else {
            "unavailable\n"
        });
    }
    let node_local = node_local(&state.settings);
    response.json(Readiness { status, checks: Checks { store, queue, apple_certificate, apns, google, node_local } })
}

/// `shared` when everything a second node must see is shared (Redis and MongoDB), else
/// `node_local` naming what is not. Per-process caches that are safe on many nodes (signed
/// passes by card version, Google classes written) are not listed: `docs/architecture.md`.
pub fn node_local(settings: &crate::config::Settings) -> Check {
    let mut pieces = Vec::new();
    if settings.redis.is_none() {
        pieces.push("the push queue and the rate-limit counts are in this process (no LOY_REDIS_URL)");
    }
    if matches!(settings.store, crate::config::StoreSettings::Embedded { .. }) {
        pieces.push("the data is in this node's embedded store (no LOY_MONGODB_URI)");
    }
    if pieces.is_empty() {
        return Check { status: "shared", backend: None, detail: None };
    }
    Check { status: "node_local", backend: None, detail: Some(format!("{}: run one node only", pieces.join("; "))) }
}
