//! The e-mail outbox in the embedded store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{EmbeddedStore, sql};
use crate::domain::SerialNumber;
use crate::store::records::{from_millis, millis};
use crate::store::{MailState, MailStore, OutboxMail, StoreError, StoreResult};

const COLUMNS: &str =
    "id, kind, serial, recipient, locale, state, attempts, next_attempt_at, last_error, created_at, updated_at";

type MailRow = (String, String, String, String, String, String, u32, i64, Option<String>, i64, i64);

fn mail_row(r: &Row<'_>) -> rusqlite::Result<MailRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn mail(
    (id, kind, serial, recipient, locale, state, attempts, next, last_error, created, updated): MailRow,
) -> StoreResult<OutboxMail> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("mail {id}: {what}"));
    Ok(OutboxMail {
        serial: SerialNumber::parse(&serial).map_err(|e| corrupt(&e.to_string()))?,
        state: MailState::parse(&state).ok_or_else(|| corrupt("unknown state"))?,
        id,
        kind,
        recipient,
        locale,
        attempts,
        next_attempt_at: from_millis(next)?,
        last_error,
        created_at: from_millis(created)?,
        updated_at: from_millis(updated)?,
    })
}

#[async_trait]
impl MailStore for EmbeddedStore {
    async fn enqueue_mail(&self, m: &OutboxMail) -> StoreResult<()> {
        let m = m.clone();
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO mail_outbox ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    m.id,
                    m.kind,
                    m.serial.as_str(),
                    m.recipient,
                    m.locale,
                    m.state.as_str(),
                    m.attempts,
                    millis(m.next_attempt_at),
                    m.last_error,
                    millis(m.created_at),
                    millis(m.updated_at)
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn take_due_mail(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<OutboxMail>> {
        // One writer thread runs every write, so the select and the update cannot interleave
        // with another taker.
        let row = self
            .write(move |conn, _| {
                conn.query_row(
                    &format!(
                        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?2, updated_at = ?1 \
                         WHERE id = (SELECT id FROM mail_outbox WHERE state = 'pending' AND next_attempt_at <= ?1 \
                         ORDER BY next_attempt_at, id LIMIT 1) RETURNING {COLUMNS}"
                    ),
                    params![millis(now), millis(lease_until)],
                    mail_row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        row.map(mail).transpose()
    }

    async fn finish_mail(
        &self,
        id: &str,
        attempts: u32,
        state: MailState,
        next_attempt_at: DateTime<Utc>,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, last_error) = (id.to_owned(), last_error.map(str::to_owned));
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE mail_outbox SET state = ?3, next_attempt_at = ?4, last_error = ?5, updated_at = ?6 \
                     WHERE id = ?1 AND attempts = ?2 AND state = 'pending'",
                    params![id, attempts, state.as_str(), millis(next_attempt_at), last_error, millis(now)],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn mail(&self, id: &str) -> StoreResult<Option<OutboxMail>> {
        let id = id.to_owned();
        let row = self
            .read(move |conn| {
                conn.query_row(&format!("SELECT {COLUMNS} FROM mail_outbox WHERE id = ?1"), [id], mail_row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        row.map(mail).transpose()
    }

    async fn mails_in_state(&self, state: MailState, limit: usize) -> StoreResult<Vec<OutboxMail>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM mail_outbox WHERE state = ?1 ORDER BY updated_at DESC, id LIMIT ?2"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map(params![state.as_str(), limit], mail_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(mail).collect()
    }

    async fn retry_mail(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE mail_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2, updated_at = ?2 \
                     WHERE id = ?1 AND state = 'failed'",
                    params![id, millis(now)],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }
}
