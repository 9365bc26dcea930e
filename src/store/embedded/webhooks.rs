//! Outgoing events in the embedded store: endpoints, the event outbox (written in the
//! transaction of the change) and deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{EmbeddedStore, sql, update_card_row};
use crate::domain::{Card, SerialNumber};
use crate::store::records::{CardRecord, from_millis, millis};
use crate::store::{
    DeliveryAttempt, DeliveryState, StoreError, StoreResult, WebhookDelivery, WebhookEndpoint, WebhookEvent,
    WebhookStore,
};

/// The schema step that adds the tables (appended to the migrations in `mod.rs`).
pub(super) const SCHEMA: &str = r#"
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    type TEXT NOT NULL,
    position INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX webhook_events_position ON webhook_events (position, id);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    type TEXT NOT NULL,
    position INTEGER NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    give_up_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_card ON webhook_deliveries (serial, state, position);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, position);
"#;

/// Adds events to the outbox inside the caller's transaction.
pub(super) fn insert_event_rows(conn: &Connection, events: &[WebhookEvent]) -> StoreResult<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO webhook_events (id, serial, type, position, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(sql)?;
    for e in events {
        stmt.execute(params![e.id, e.serial.as_str(), e.kind, e.position, millis(e.created_at), e.body])
            .map_err(sql)?;
    }
    Ok(())
}

pub(in crate::store) const ENDPOINT_COLUMNS: &str = "id, url, events, secret, enabled, created_at";

pub(in crate::store) fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, bool, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

pub(in crate::store) fn endpoint(
    (id, url, events, secret, enabled, created): (String, String, String, String, bool, i64),
) -> StoreResult<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id,
        url,
        events: events.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        secret,
        enabled,
        created_at: from_millis(created)?,
    })
}

pub(in crate::store) const DELIVERY_COLUMNS: &str = "id, event_id, endpoint_id, serial, type, position, body, state, attempts, \
    next_attempt_at, give_up_at, last_status, last_error, created_at, updated_at";

pub(in crate::store) struct DeliveryRow {
    id: String,
    event_id: String,
    endpoint_id: String,
    serial: String,
    kind: String,
    position: i64,
    body: String,
    state: String,
    attempts: u32,
    next: i64,
    give_up: i64,
    last_status: Option<u16>,
    last_error: Option<String>,
    created: i64,
    updated: i64,
}

pub(in crate::store) fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        serial: r.get(3)?,
        kind: r.get(4)?,
        position: r.get(5)?,
        body: r.get(6)?,
        state: r.get(7)?,
        attempts: r.get(8)?,
        next: r.get(9)?,
        give_up: r.get(10)?,
        last_status: r.get(11)?,
        last_error: r.get(12)?,
        created: r.get(13)?,
        updated: r.get(14)?,
    })
}

pub(in crate::store) fn delivery(r: DeliveryRow) -> StoreResult<WebhookDelivery> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("delivery {}: {what}", r.id));
    Ok(WebhookDelivery {
        serial: SerialNumber::parse(&r.serial).map_err(|e| corrupt(&e.to_string()))?,
        state: DeliveryState::parse(&r.state).ok_or_else(|| corrupt("unknown state"))?,
        next_attempt_at: from_millis(r.next)?,
        give_up_at: from_millis(r.give_up)?,
        created_at: from_millis(r.created)?,
        updated_at: from_millis(r.updated)?,
        id: r.id,
        event_id: r.event_id,
        endpoint_id: r.endpoint_id,
        kind: r.kind,
        position: r.position,
        body: r.body,
        attempts: r.attempts,
        last_status: r.last_status,
        last_error: r.last_error,
    })
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, i64, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn insert_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<()> {
        let e = e.clone();
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![e.id, e.url, e.events.join(","), e.secret, e.enabled, millis(e.created_at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        let id = id.to_owned();
        let row = self
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"),
                    [id],
                    endpoint_row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        row.map(endpoint).transpose()
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at DESC, id"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([], endpoint_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(endpoint).collect()
    }

    async fn remove_webhook_endpoint(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            let removed = conn.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [&id]).map_err(sql)?;
            conn.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1", [&id]).map_err(sql)?;
            Ok(removed == 1)
        })
        .await
    }

    async fn update_card_emitting(
        &self,
        card: &Card,
        expected_version: i64,
        events: &[WebhookEvent],
    ) -> StoreResult<bool> {
        let record = CardRecord::from(card);
        let events = events.to_vec();
        self.write(move |conn, _| {
            if !update_card_row(conn, &record, expected_version)? {
                return Ok(false);
            }
            insert_event_rows(conn, &events)?;
            Ok(true)
        })
        .await
    }

    async fn record_events(&self, events: &[WebhookEvent]) -> StoreResult<()> {
        let events = events.to_vec();
        self.write(move |conn, _| insert_event_rows(conn, &events)).await
    }

    async fn events_to_fan_out(&self, limit: usize) -> StoreResult<Vec<WebhookEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, serial, type, position, created_at, body FROM webhook_events \
                         ORDER BY position, id LIMIT ?1",
                    )
                    .map_err(sql)?;
                let rows = stmt.query_map([limit], event_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter()
            .map(|(id, serial, kind, position, created, body)| {
                Ok(WebhookEvent {
                    serial: SerialNumber::parse(&serial)
                        .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?,
                    id,
                    kind,
                    position,
                    created_at: from_millis(created)?,
                    body,
                })
            })
            .collect()
    }

    async fn fan_out(&self, batch: &[(WebhookEvent, Vec<WebhookDelivery>)]) -> StoreResult<()> {
        let batch = batch.to_vec();
        // One transaction for the whole batch: the deliveries and the outbox move together.
        self.write(move |conn, _| {
            let mut insert = conn
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ))
                .map_err(sql)?;
            let mut remove = conn.prepare_cached("DELETE FROM webhook_events WHERE id = ?1").map_err(sql)?;
            for (event, deliveries) in &batch {
                for d in deliveries {
                    insert
                        .execute(params![
                            d.id,
                            d.event_id,
                            d.endpoint_id,
                            d.serial.as_str(),
                            d.kind,
                            d.position,
                            d.body,
                            d.state.as_str(),
                            d.attempts,
                            millis(d.next_attempt_at),
                            millis(d.give_up_at),
                            d.last_status,
                            d.last_error,
                            millis(d.created_at),
                            millis(d.updated_at)
                        ])
                        .map_err(sql)?;
                }
                remove.execute([&event.id]).map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn card_pending_deliveries(&self, serial: &SerialNumber) -> StoreResult<Vec<WebhookDelivery>> {
        let serial = serial.as_str().to_owned();
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE serial = ?1 AND state = 'pending' \
                         ORDER BY position, id"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([serial], delivery_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(delivery).collect()
    }

    async fn cards_with_due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<SerialNumber>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT DISTINCT serial FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?1 \
                         LIMIT ?2",
                    )
                    .map_err(sql)?;
                let rows = stmt.query_map(params![millis(now), limit], |r| r.get::<_, String>(0)).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.iter()
            .map(|s| SerialNumber::parse(s).map_err(|e| StoreError::Corrupt(format!("delivery serial: {e}"))))
            .collect()
    }

    async fn finish_delivery(&self, id: &str, attempts: u32, o: &DeliveryAttempt) -> StoreResult<bool> {
        let (id, o) = (id.to_owned(), o.clone());
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE webhook_deliveries SET state = ?3, attempts = ?2, next_attempt_at = ?4, last_status = ?5, \
                     last_error = ?6, updated_at = ?7 WHERE id = ?1 AND attempts = ?2 - 1 AND state = 'pending'",
                    params![
                        id,
                        attempts,
                        o.state.as_str(),
                        millis(o.next_attempt_at),
                        o.last_status,
                        o.last_error,
                        millis(o.at)
                    ],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn webhook_delivery(&self, id: &str) -> StoreResult<Option<WebhookDelivery>> {
        let id = id.to_owned();
        let row = self
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1"),
                    [id],
                    delivery_row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        row.map(delivery).transpose()
    }

    async fn endpoint_deliveries(
        &self,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let endpoint_id = endpoint_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = ?1 \
                         AND (?2 IS NULL OR state = ?2) ORDER BY position DESC, id DESC LIMIT ?3"
                    ))
                    .map_err(sql)?;
                let rows = stmt
                    .query_map(params![endpoint_id, state.map(DeliveryState::as_str), limit], delivery_row)
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(delivery).collect()
    }

    async fn replay_delivery(&self, id: &str, now: DateTime<Utc>, give_up_at: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2, \
                     give_up_at = ?3, updated_at = ?2 WHERE id = ?1 AND state = 'failed'",
                    params![id, millis(now), millis(give_up_at)],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }
}
