//! Apple Wallet: the card as a signed `.pkpass`, and Apple's PassKit web service that keeps it
//! up to date on the phone (SPEC §4.2, §4.3).
//!
//! - `template` (the card design), `design_files` (a program's uploaded images, loaded once per
//!   design revision), `pass` (card → `pass.json` → bundle), `bundle` (manifest, zip), `signer`
//!   (PKCS#7), `cache` (signed passes by serial, card version and design revision);
//! - `certs` (load and check the Pass Type ID certificate), `dev_certs` (throwaway ones);
//! - `webservice` (the PassKit endpoints), `auth` (`ApplePassAuth`), `tag` (the update tag),
//!   `download` (the card page's "Add to Apple Wallet");
//! - `lint` (`loy pass lint`), with `rules` (what Wallet requires of `pass.json`).

pub mod auth;
pub mod bundle;
pub mod cache;
pub mod certs;
pub mod der;
pub mod design_files;
pub mod dev_certs;
pub mod lint;
pub mod news;
pub mod pass;
pub mod rules;
pub mod signer;
pub mod stamps;
pub mod strings;
pub mod tag;
pub mod template;
pub mod tools;
pub mod webservice;

use std::sync::Arc;

use actix_web::http::header::{self, HttpDate};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::domain::{Card, PassTypeId, Program};
use crate::http::errors::ApiError;
use crate::state::AppState;
use cache::{PassCache, SignedPass};
use certs::SigningIdentity;
use design_files::{DesignFileCache, DesignFiles};
use pass::{PassBuilder, PassError};
use template::Template;

/// The path under `LOY_PUBLIC_URL` that passes name as their `webServiceURL`.
pub const WEB_SERVICE_PATH: &str = "/passkit";

/// The media type of a pass.
pub const PKPASS_TYPE: &str = "application/vnd.apple.pkpass";

/// Everything needed to issue passes: the signing identity, the design, and the cache.
pub struct Apple {
    pub identity: SigningIdentity,
    pub template: Template,
    web_service_url: String,
    cache: PassCache,
    designs: DesignFileCache,
}

impl Apple {
    /// Loads and checks the certificate (generating development ones when none is configured)
    /// and the card design. Blocking: call it off the async runtime.
    pub fn load(settings: &Settings) -> anyhow::Result<Self> {
        let identity = certs::load(&settings.apple)?;
        let template = match &settings.apple.template {
            Some(dir) => Template::from_dir(dir)?,
            None => Template::builtin()?,
        };
        Ok(Self::new(identity, template, settings.url(WEB_SERVICE_PATH), settings.apple.pass_cache_bytes))
    }

    pub fn new(identity: SigningIdentity, template: Template, web_service_url: String, cache_bytes: usize) -> Self {
        Self {
            identity,
            template,
            web_service_url,
            cache: PassCache::new(cache_bytes),
            designs: DesignFileCache::default(),
        }
    }

    pub fn pass_type_id(&self) -> &PassTypeId {
        &self.identity.pass_type_id
    }

    pub fn builder(&self) -> PassBuilder<'_> {
        PassBuilder { identity: &self.identity, template: &self.template, web_service_url: &self.web_service_url }
    }

    /// For `/readyz`: the signing certificate is still valid (it was checked at start-up, but a
    /// server can outlive it).
    pub fn readiness(&self, now: DateTime<Utc>) -> crate::http::health::Check {
        use crate::http::health::Check;
        let kind = if self.identity.is_development() { "development" } else { "configured" };
        if now < self.identity.not_after {
            Check::up(kind)
        } else {
            let date = self.identity.not_after.format("%Y-%m-%d");
            Check::down(kind, format!("the Pass Type ID certificate expired on {date}"))
        }
    }

    /// The uploaded images of `program`'s design, read from the store the first time this
    /// process needs that design revision.
    pub async fn design_files(
        &self,
        store: &crate::store::DynStore,
        program: &Program,
    ) -> crate::store::StoreResult<Arc<DesignFiles>> {
        self.designs.get(store, program).await
    }

    /// Builds and signs the card's pass with the design's files (no cache: see
    /// [`signed_pass`]).
    pub fn build(&self, card: &Card, program: &Program, design: &DesignFiles) -> Result<Arc<SignedPass>, PassError> {
        let bytes = self.builder().build_with(card, program, design)?;
        Ok(Arc::new(SignedPass { bytes: bytes.into(), version: card.version, modified_at: card.modified_at }))
    }
}

/// The card's current signed pass: from the cache, or built on a blocking thread (signing is
/// CPU work that must not stall the server's event loop). Requests for a version being signed
/// wait for that signature (`loy_pass_builds_total` counts the signatures).
///
/// The program is read from the store, not through the node's short program cache: a card
/// whose version a publish moved must never be signed with the design before it, which another
/// node's cache may still hold for a moment. The design's revision is part of the cache key.
pub async fn signed_pass(state: &AppState, card: Card) -> Result<Arc<SignedPass>, ApiError> {
    let program = state.fresh_program(&card.program_id).await?;
    let serial = card.serial.as_str().to_owned();
    let (version, revision) = (card.version, program.design.revision);
    let build = async {
        let design = state.apple.designs.for_card(&state.store, &program, &card).await?;
        let apple = state.apple.clone();
        state.metrics.pass_builds.inc();
        tokio::task::spawn_blocking(move || apple.build(&card, &program, &design))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| ApiError::internal(&e))
    };
    state.apple.cache.get_or_build(&serial, version, revision, build).await.map_err(|e| (*e).clone())
}

fn http_date(t: DateTime<Utc>) -> HttpDate {
    HttpDate::from(std::time::SystemTime::from(t))
}

/// A `.pkpass` answer. Passes hold the card's authentication token, so nothing on the way may
/// store them. `filename` makes it a download (the card page's button).
pub fn pkpass_response(pass: &SignedPass, filename: Option<&str>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .content_type(PKPASS_TYPE)
        .insert_header(header::LastModified(http_date(pass.modified_at)))
        .insert_header((header::CACHE_CONTROL, "private, no-store"));
    if let Some(name) = filename {
        response.insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")));
    }
    response.body(pass.bytes.clone())
}

/// 304 for a pass unchanged since the device's copy.
pub fn not_modified(modified_at: DateTime<Utc>) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header(header::LastModified(http_date(modified_at)))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .finish()
}

/// The routes: the PassKit web service under `/passkit` (the card page's download is in
/// [`crate::card_page`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(WEB_SERVICE_PATH).configure(webservice::routes).default_service(web::to(webservice::not_found)),
    );
}
