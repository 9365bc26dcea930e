//! Google Wallet (SPEC §4.6): one loyalty class per program and one loyalty object per card,
//! kept through the Wallet REST API, and the "Add to Google Wallet" save link.
//!
//! [`GoogleWallet`] is the service the rest of loy calls; it exists only when Google Wallet is
//! configured (`AppState::google` is `None` otherwise, and nothing here runs). The push pipeline
//! calls [`GoogleWallet::sync_card`] for every card change, asking for a notification while
//! [`budget::notify_allowed`] says the card is within Google's budget.

pub mod auth;
pub mod budget;
pub mod callbacks;
pub mod client;
pub mod config;
pub mod error;
pub mod jwt;
pub mod objects;
pub mod rate_limit;
pub mod reconcile;
pub mod save_link;
pub mod stamps;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use budget::notify_allowed;
pub use error::GoogleError;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{Card, Locale, Program};
use auth::TokenSource;
use client::{Inserted, Patched, WalletClient};
use config::{GoogleSetupError, ServiceAccount};
use objects::{AddMessageRequest, LoyaltyClass, Message, MessageType};
use save_link::SaveLinkSigner;

pub struct GoogleWallet {
    issuer_id: String,
    public_url: String,
    default_locale: Locale,
    client: WalletClient,
    save_links: SaveLinkSigner,
    clock: Arc<dyn Clock>,
    /// The class body this process last wrote for each class id: a class is written once per
    /// process, and again only when the program (its name or design) changes.
    classes: tokio::sync::Mutex<HashMap<String, LoyaltyClass>>,
    /// Google's root keys, which sign the save and delete callbacks.
    root_keys: callbacks::RootKeys,
    /// The reconciliation's settings (`reconcile`).
    reconcile_interval: Option<Duration>,
    reconcile_batch: usize,
}

impl GoogleWallet {
    /// The service, when the settings turn Google Wallet on. Reads and checks the
    /// service-account key: a key that cannot be used is a start-up error naming the setting.
    pub async fn from_settings(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<Self>>, GoogleSetupError> {
        let Some(google) = &settings.google else { return Ok(None) };
        let account = ServiceAccount::load(&google.service_account_key)?;
        let save_links = SaveLinkSigner::new(&account, &settings.public_url)?;
        let tokens = TokenSource::new(&account, google.timeout).await?;
        let client = WalletClient::new(google, tokens)
            .map_err(|e| GoogleSetupError(format!("cannot set up the Google Wallet API client: {e}")))?;
        let root_keys = callbacks::RootKeys::new(&google.root_keys_url, google.timeout, Arc::clone(&clock))
            .map_err(|e| GoogleSetupError(format!("cannot set up the client of Google's root keys: {e}")))?;
        Ok(Some(Arc::new(Self {
            issuer_id: google.issuer_id.clone(),
            public_url: settings.public_url.clone(),
            default_locale: settings.default_locale,
            client,
            save_links,
            clock,
            classes: tokio::sync::Mutex::new(HashMap::new()),
            root_keys,
            reconcile_interval: google.reconcile_interval,
            reconcile_batch: google.reconcile_batch,
        })))
    }

    /// How often the reconciliation runs and how many objects a round reads (`None`: off).
    pub fn reconcile_schedule(&self) -> Option<(Duration, usize)> {
        self.reconcile_interval.map(|interval| (interval, self.reconcile_batch))
    }

    /// The issuer id: the first half of every class and object id.
    pub fn issuer_id(&self) -> &str {
        &self.issuer_id
    }

    /// Checks a save or delete callback's signature chain against Google's root keys (fetched
    /// and kept by [`callbacks::RootKeys`]) and reads it.
    pub async fn verify_callback(&self, body: &[u8]) -> Result<callbacks::Callback, callbacks::CallbackError> {
        self.root_keys.verify(body, &self.issuer_id).await
    }

    /// The serial of the card whose object is `object_id` (`{issuerId}.{serial}`), when the id
    /// is one of this issuer's.
    pub fn serial_of_object(&self, object_id: &str) -> Option<crate::domain::SerialNumber> {
        let serial = object_id.strip_prefix(&self.issuer_id)?.strip_prefix('.')?;
        crate::domain::SerialNumber::parse(serial).ok()
    }

    /// How long a call made now would wait for its turn under Google's rate limit.
    pub fn backlog(&self) -> std::time::Duration {
        self.client.backlog()
    }

    /// Calls a second this process makes to Google at most.
    pub fn requests_per_second(&self) -> u32 {
        self.client.requests_per_second()
    }

    /// `{issuerId}.{program}`.
    pub fn class_id(&self, program_id: &str) -> String {
        objects::class_id(&self.issuer_id, program_id)
    }

    /// `{issuerId}.{serial}`.
    pub fn object_id(&self, card: &Card) -> String {
        objects::object_id(&self.issuer_id, card)
    }

    /// Creates the program's class, or patches it when this process has not yet written its
    /// current form (at start-up, and after the program's name or design changed).
    pub async fn ensure_class(&self, program: &Program) -> Result<(), GoogleError> {
        let class = objects::loyalty_class(&self.issuer_id, program, &self.public_url, self.default_locale);
        // Held across the calls, so concurrent first uses write the class once.
        let mut written = self.classes.lock().await;
        if written.get(&class.id) == Some(&class) {
            return Ok(());
        }
        match self.client.insert_class(&class).await? {
            Inserted::Created => tracing::info!(class = %class.id, "Google Wallet class created"),
            Inserted::AlreadyExists => match self.client.patch_class(&class.id, &class).await? {
                Patched::Updated => tracing::info!(class = %class.id, "Google Wallet class updated"),
                Patched::NotFound => {
                    return Err(GoogleError::no_answer("the class disappeared between insert and patch"));
                }
            },
        }
        written.insert(class.id.clone(), class);
        Ok(())
    }

    /// Makes the card's object exist with the card's current state: insert, and when it exists
    /// already (`409`), patch the fields loy owns. The class is ensured first.
    pub async fn upsert_object(&self, program: &Program, card: &Card) -> Result<(), GoogleError> {
        self.ensure_class(program).await?;
        let object = objects::loyalty_object(&self.issuer_id, program, card, &self.public_url);
        match self.client.insert_object(&object).await? {
            Inserted::Created => Ok(()),
            Inserted::AlreadyExists => match self.client.patch_object(&object.id, &object).await? {
                Patched::Updated => Ok(()),
                Patched::NotFound => Err(GoogleError::no_answer("the object disappeared between insert and patch")),
            },
        }
    }

    /// Sends a card change: one PATCH of balance, tier, name and texts, with
    /// `notifyPreference: NOTIFY_ON_UPDATE` when `notify` (decide it with
    /// [`budget::notify_allowed`]). An object that was never created (Google was unreachable at
    /// enrollment) is created with the current state instead.
    pub async fn sync_card(&self, program: &Program, card: &Card, notify: bool) -> Result<(), GoogleError> {
        self.ensure_class(program).await?;
        let update = objects::object_update(program, card, notify, &self.public_url);
        match self.client.update_object(&self.object_id(card), &update).await? {
            Patched::Updated => Ok(()),
            Patched::NotFound => self.upsert_object(program, card).await,
        }
    }

    /// Shows a message on the card's pass, announcing it when `notify` (Google counts that
    /// against the card's notification budget). `id` identifies the message: adding the same
    /// one again is refused by Google as a conflict, which counts as done.
    pub async fn add_message(
        &self,
        card: &Card,
        id: &str,
        header: &str,
        body: &str,
        notify: bool,
    ) -> Result<(), GoogleError> {
        let request = AddMessageRequest {
            message: Message {
                id: id.to_owned(),
                header: header.to_owned(),
                body: body.to_owned(),
                message_type: if notify { MessageType::TextAndNotify } else { MessageType::Text },
                localized_header: None,
                localized_body: None,
            },
        };
        match self.client.add_object_message(&self.object_id(card), &request).await {
            Ok(Patched::Updated) => Ok(()),
            Err(e) if e.status() == Some(409) => Ok(()),
            Ok(Patched::NotFound) => Err(GoogleError::Permanent {
                status: Some(404),
                message: "the card has no Google Wallet object".to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Shows a message on every card of `program` at once, through its class, in both
    /// languages; announced to the holders.
    pub async fn add_class_message(
        &self,
        program: &Program,
        id: &str,
        text: &crate::messages::MessageText,
    ) -> Result<(), GoogleError> {
        self.ensure_class(program).await?;
        let default = program.locale_or(self.default_locale);
        let en_ru = |t: &crate::domain::LocalizedText| {
            objects::LocalizedString::en_ru(t.get(Locale::En), t.get(Locale::Ru), default)
        };
        let header = text.title.get(default);
        let request = AddMessageRequest {
            message: Message {
                id: id.to_owned(),
                header: if header.is_empty() { program.name.clone() } else { header.to_owned() },
                body: text.body.get(default).to_owned(),
                message_type: MessageType::TextAndNotify,
                localized_header: (!text.title.is_empty()).then(|| en_ru(&text.title)),
                localized_body: Some(en_ru(&text.body)),
            },
        };
        match self.client.add_class_message(&self.class_id(&program.id), &request).await {
            Ok(Patched::Updated) => Ok(()),
            Err(e) if e.status() == Some(409) => Ok(()),
            Ok(Patched::NotFound) => {
                Err(GoogleError::Permanent { status: Some(404), message: "the program has no Google class".to_owned() })
            }
            Err(e) => Err(e),
        }
    }

    /// The "Add to Google Wallet" link for `card`: `https://pay.google.com/gp/v/save/{jwt}`.
    /// The object must exist (see [`GoogleWallet::upsert_object`]).
    pub fn save_link(&self, card: &Card) -> Result<String, GoogleError> {
        self.save_links.link(&self.object_id(card), &self.class_id(&card.program_id), self.clock.now())
    }

    /// Why the most recent call to Google failed, if it did.
    pub fn last_failure(&self) -> Option<String> {
        self.client.last_failure()
    }

    /// The REST client, for calls the service does not wrap.
    pub fn client(&self) -> &WalletClient {
        &self.client
    }

    /// Creates the class in the background (at start-up), so the first enrollment finds it.
    pub fn prepare_in_background(self: &Arc<Self>, program: Program) {
        let google = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = google.ensure_class(&program).await {
                tracing::warn!(error = %e, "the Google Wallet class could not be written yet; it will be on first use");
            }
        });
    }

    /// Creates a new card's object without holding up the enrollment: a few attempts over some
    /// seconds; if Google stays unreachable, the card page's button creates it later.
    pub fn issue_in_background(self: &Arc<Self>, program: Program, card: Card) {
        let google = Arc::clone(self);
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=ISSUE_ATTEMPTS {
                match google.upsert_object(&program, &card).await {
                    Ok(()) => return,
                    Err(e) if e.is_retryable() && attempt < ISSUE_ATTEMPTS => {
                        tokio::time::sleep(e.retry_after().unwrap_or(delay).min(Duration::from_secs(30))).await;
                        delay *= 4;
                    }
                    Err(e) => {
                        tracing::warn!(serial = %card.serial, error = %e,
                            "the card's Google Wallet object was not created; the Add to Google Wallet button will create it");
                        return;
                    }
                }
            }
        });
    }
}

const ISSUE_ATTEMPTS: u32 = 3;

/// Hands a newly enrolled card to Google Wallet when it is configured (does nothing otherwise).
pub fn after_enrollment(google: Option<&Arc<GoogleWallet>>, program: &Program, card: &Card) {
    if let Some(google) = google {
        google.issue_in_background(program.clone(), card.clone());
    }
}
