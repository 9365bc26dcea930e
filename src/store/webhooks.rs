//! Outgoing events (SPEC §4.10): the endpoints an owner configured, the events waiting to be
//! fanned out to them, and one delivery per (event, endpoint).
//!
//! Events are written in the same atomic step as the change they describe: inside the SQLite
//! transaction, or pushed onto the card document by the same MongoDB update (`events`), so a
//! change that committed always has its event. Fanning out copies an event into a delivery per
//! subscribed endpoint (ids `{event}.{endpoint}`, so doing it twice changes nothing) and only
//! then removes it from the outbox. See `docs/architecture.md` and `crate::webhooks`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{Card, SerialNumber};

/// A configured receiver of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `we_…`
    pub id: String,
    pub url: String,
    /// The event types sent there; empty means every type.
    pub events: Vec<String>,
    /// The HMAC key deliveries are signed with (kept so the server can sign; shown once).
    pub secret: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// Whether events of `kind` go to this endpoint.
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && (self.events.is_empty() || self.events.iter().any(|e| e == kind))
    }
}

/// An event waiting to be fanned out to the endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `ev_…`, also the body's `id` and the `Loy-Event-Id` header.
    pub id: String,
    pub serial: SerialNumber,
    /// `card.created`, `balance.changed`, …
    pub kind: String,
    /// Orders a card's events: milliseconds of `created_at` × 1000 plus the ledger entry's
    /// place within its write.
    pub position: i64,
    pub created_at: DateTime<Utc>,
    /// The JSON body sent to receivers.
    pub body: String,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after the retry period; can be replayed.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// `{event id}.{endpoint id}`
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub serial: SerialNumber,
    pub kind: String,
    pub position: i64,
    pub body: String,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is next due (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// After this a failing delivery is given up (24 h after the event, or after a replay).
    pub give_up_at: DateTime<Utc>,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// The last failure in a few words (a status, a timeout, a refused address).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookDelivery {
    /// The delivery of `event` to `endpoint`, due now.
    pub fn of(event: &WebhookEvent, endpoint: &WebhookEndpoint, give_up_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("{}.{}", event.id, endpoint.id),
            event_id: event.id.clone(),
            endpoint_id: endpoint.id.clone(),
            serial: event.serial.clone(),
            kind: event.kind.clone(),
            position: event.position,
            body: event.body.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            give_up_at,
            last_status: None,
            last_error: None,
            created_at: event.created_at,
            updated_at: now,
        }
    }
}

/// The outcome of one attempt, recorded with [`WebhookStore::finish_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub state: DeliveryState,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn insert_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> StoreResult<()>;

    async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>>;

    /// Every endpoint, newest first.
    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>>;

    /// Removes an endpoint and its deliveries; `false` when there is no such endpoint.
    async fn remove_webhook_endpoint(&self, id: &str) -> StoreResult<bool>;

    /// Like [`super::CardStore::update_card`], recording `events` in the same atomic step.
    async fn update_card_emitting(
        &self,
        card: &Card,
        expected_version: i64,
        events: &[WebhookEvent],
    ) -> StoreResult<bool>;

    /// Records events of a change stored by another call (a device registration).
    async fn record_events(&self, events: &[WebhookEvent]) -> StoreResult<()>;

    /// Events not fanned out yet, each card's in order, at most about `limit`.
    async fn events_to_fan_out(&self, limit: usize) -> StoreResult<Vec<WebhookEvent>>;

    /// For each event of the batch, stores its deliveries (those that exist already are kept as
    /// they are), then removes the events from the outbox: deliveries first, so a failure in
    /// between leaves events to fan out again, never events lost.
    async fn fan_out(&self, batch: &[(WebhookEvent, Vec<WebhookDelivery>)]) -> StoreResult<()>;

    /// [`WebhookStore::fan_out`] for one event.
    async fn fan_out_event(&self, event: &WebhookEvent, deliveries: &[WebhookDelivery]) -> StoreResult<()> {
        self.fan_out(&[(event.clone(), deliveries.to_vec())]).await
    }

    /// A card's pending deliveries, in event order.
    async fn card_pending_deliveries(&self, serial: &SerialNumber) -> StoreResult<Vec<WebhookDelivery>>;

    /// Cards with a pending delivery due at `now`, at most `limit`.
    async fn cards_with_due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<SerialNumber>>;

    /// Records attempt number `attempts` of a pending delivery; `false` (nothing changed) when
    /// the delivery is no longer pending at `attempts - 1` attempts.
    async fn finish_delivery(&self, id: &str, attempts: u32, outcome: &DeliveryAttempt) -> StoreResult<bool>;

    async fn webhook_delivery(&self, id: &str) -> StoreResult<Option<WebhookDelivery>>;

    /// An endpoint's deliveries, newest event first, only those in `state` when given.
    async fn endpoint_deliveries(
        &self,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>>;

    /// Puts a failed delivery back, due at `now`, attempts reset, given up at `give_up_at`;
    /// `false` when there is no such failed delivery.
    async fn replay_delivery(&self, id: &str, now: DateTime<Utc>, give_up_at: DateTime<Utc>) -> StoreResult<bool>;
}
