//! The application state every handler reaches (`web::Data<AppState>`), below the handlers:
//! handlers depend on this module, never on `startup.rs`, which wires the routes to them.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{Card, DEFAULT_PROGRAM_ID, Locale, Program};
use crate::google::GoogleWallet;
use crate::http::errors::ApiError;
use crate::http::pages::{Message, Pages};
use crate::metrics::Metrics;
use crate::push::gateway::PushGateway;
use crate::push::queue::PushQueue;
use crate::push::worker::Worker;
use crate::push::{ChangeNotifier, PushHealth};
use crate::store::{DynStore, StoreError};

/// What every request handler can reach, shared as `web::Data<AppState>`.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub pages: Arc<Pages>,
    /// The push queue: Redis when configured, else in-process.
    pub queue: Arc<dyn PushQueue>,
    /// Tells the push pipeline a card changed.
    pub changes: ChangeNotifier,
    pub metrics: Arc<Metrics>,
    pub push_health: Arc<PushHealth>,
    /// Google Wallet; `None` when it is not configured.
    pub google: Option<Arc<GoogleWallet>>,
    /// The queue of cards whose Google update waits for Google's rate (`push::google_lane`);
    /// `None` without Google.
    pub google_queue: Option<Arc<dyn PushQueue>>,
    /// Apple Wallet: signing identity, card design, signed-pass cache.
    pub apple: Arc<crate::apple::Apple>,
    /// Rate limits per client address, device and API key (`crate::rate_limit`).
    pub limits: Arc<crate::rate_limit::RateLimits>,
    /// E-mail through SMTP; `None` when it is not configured (nothing is sent or promised).
    pub mail: Option<Arc<crate::mail::Mail>>,
    /// Outgoing events: the sender's settings, queue and HTTP client.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Programs as this node last read them (`crate::programs`).
    pub programs: crate::programs::ProgramCache,
    /// Stamps programs' strips for Google Wallet, as this node drew them.
    pub strips: Arc<crate::programs::stamp_strips::GoogleStrips>,
}

impl AppState {
    /// The default program.
    pub async fn program(&self) -> Result<Program, ApiError> {
        self.program_by_id(DEFAULT_PROGRAM_ID).await
    }

    /// The program `id`, checked: a program that is missing, unreadable or whose rules fail
    /// validation is answered 503 with a message (and logged), never used half-broken.
    pub async fn program_by_id(&self, id: &str) -> Result<Program, ApiError> {
        let read = self.programs.get(&self.store, id).await.map(|p| p.map(|p| Program::clone(&p)));
        checked_program(id, read)
    }

    /// The program `id` read from the store itself, past this node's short cache, and checked
    /// like [`AppState::program_by_id`]: what a pass is signed with, so a card whose version a
    /// publish moved is never signed with the design before it.
    pub async fn fresh_program(&self, id: &str) -> Result<Program, ApiError> {
        checked_program(id, self.store.program(id).await)
    }

    /// The page for a visitor over a rate limit: 429 with `Retry-After`, and a link back to
    /// `link` labelled with the catalog text `link_text`.
    pub fn too_many_requests_page(
        &self,
        locale: Locale,
        throttled: &crate::rate_limit::Throttled,
        link: String,
        link_text: &str,
    ) -> HttpResponse {
        let t = self.pages.catalog(locale);
        let mut response = self.pages.respond(
            StatusCode::TOO_MANY_REQUESTS,
            "message.html",
            locale,
            Message {
                program_name: String::new(),
                brand: None,
                title: t.text("too_many_requests_title").to_owned(),
                text: t.text("too_many_requests_text").to_owned(),
                link: Some(link),
                link_text: Some(t.text(link_text).to_owned()),
            },
        );
        if let Ok(value) = throttled.retry_after_secs().to_string().try_into() {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
        }
        response
    }

    /// The address of the client that sent `req`, as the trusted proxies report it.
    pub fn client_addr(&self, req: &actix_web::HttpRequest) -> std::net::IpAddr {
        crate::http::client::client_addr(req, &self.settings.security.trusted_proxies)
    }

    /// Counts a request of `key` against `limit`; `Err` is the API's 429.
    pub async fn rate_limit(&self, limit: crate::rate_limit::Limit, key: &str) -> Result<(), ApiError> {
        self.limits.check(limit, key).await.map_err(ApiError::too_many_requests)
    }

    /// The absolute address of a card's page.
    pub fn card_url(&self, card: &Card) -> String {
        self.settings.url(&format!("/c/{}", card.card_key.expose()))
    }

    /// The program `id` when it exists (checked as [`Self::program_by_id`] does); `None` for an
    /// id no program has (an address or an API field naming a program).
    pub async fn find_program(&self, id: &str) -> Result<Option<Program>, ApiError> {
        match self.programs.get(&self.store, id).await {
            Ok(None) => Ok(None),
            Ok(Some(_)) => self.program_by_id(id).await.map(Some),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves an edited program if nobody saved it in between (`false` then), and drops this
    /// node's cached copy so the change shows at once.
    pub async fn save_program(&self, program: &Program, expected_version: i64) -> Result<bool, StoreError> {
        let saved = self.store.update_program(program, expected_version).await?;
        self.programs.invalidate(&program.id).await;
        Ok(saved)
    }

    /// A 404 page saying `title_key` and `text_key` (catalog keys), with a way back to the form.
    pub async fn not_found_page(&self, locale: Locale, title_key: &str, text_key: &str) -> HttpResponse {
        let t = self.pages.catalog(locale);
        let program_name = self.program().await.map(|p| p.name).unwrap_or_default();
        self.pages.respond(
            StatusCode::NOT_FOUND,
            "message.html",
            locale,
            Message {
                program_name,
                brand: None,
                title: t.text(title_key).to_owned(),
                text: t.text(text_key).to_owned(),
                link: Some(format!("/?lang={}", locale.code())),
                link_text: Some(t.text("back_to_form").to_owned()),
            },
        )
    }

    /// A "something went wrong, try again in a minute" page, 503 (the cause is already logged
    /// by the caller): what stops a page is the store or the program's settings, not the request.
    pub fn error_page(&self, locale: Locale) -> HttpResponse {
        let t = self.pages.catalog(locale);
        self.pages.respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "message.html",
            locale,
            Message {
                program_name: String::new(),
                brand: None,
                title: t.text("error_title").to_owned(),
                text: t.text("error_text").to_owned(),
                link: None,
                link_text: None,
            },
        )
    }
}

impl AppState {
    /// A push worker sharing this application's store, queue and metrics.
    pub fn worker(&self, gateway: Option<Arc<dyn PushGateway>>, topic: &str) -> Worker {
        Worker {
            store: self.store.clone(),
            queue: self.queue.clone(),
            gateway,
            topic: topic.to_owned(),
            settings: self.settings.push.clone(),
            metrics: self.metrics.clone(),
            health: self.push_health.clone(),
            clock: self.clock.clone(),
            google: self.google.clone(),
            google_lane: self.google_queue.clone(),
            programs: self.programs.clone(),
            webhooks: Some(self.webhooks.clone()),
        }
    }
}

/// A program as read, or the 503 every use of a missing, unreadable or invalid program answers
/// (logged with the reason).
fn checked_program(id: &str, read: Result<Option<Program>, StoreError>) -> Result<Program, ApiError> {
    let problem = match read {
        Ok(Some(program)) => match program.rules.validate() {
            Ok(()) => return Ok(program),
            Err(why) => format!("its rules are invalid: {why}"),
        },
        Ok(None) => "it is missing".to_owned(),
        Err(StoreError::Corrupt(why)) => format!("it cannot be read: {why}"),
        Err(e) => return Err(e.into()),
    };
    tracing::error!(program = id, problem = %problem, "the loyalty program cannot be used");
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "program_unavailable",
        "The loyalty program's settings are invalid, so nothing can be done with it until staff correct them.",
    ))
}
