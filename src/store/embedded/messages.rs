//! Messages in the embedded store: the columns taking a message reads, the rest as JSON; one
//! row per card's send.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{EmbeddedStore, sql};
use crate::messages::{Message, MessageState, Wallet};
use crate::store::records::{from_millis, millis};
use crate::store::{MessageSend, MessageStore, Reach, SendCounts, SendState, StoreError, StoreResult};

type Row = (String, u32, i64, String);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// The message from its JSON, with the columns (which taking and cancelling change) laid over it.
fn message((state, attempts, lease_until, body): Row) -> StoreResult<Message> {
    let mut m: Message = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("message: {e}")))?;
    m.state = MessageState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("message state {state}")))?;
    m.attempts = attempts;
    m.lease_until = from_millis(lease_until)?;
    Ok(m)
}

fn body(m: &Message) -> StoreResult<String> {
    serde_json::to_string(m).map_err(|e| StoreError::Corrupt(format!("message: {e}")))
}

fn state(s: &str) -> rusqlite::Result<SendState> {
    SendState::parse(s).ok_or_else(|| rusqlite::Error::InvalidColumnType(0, s.to_owned(), rusqlite::types::Type::Text))
}

const COLUMNS: &str = "state, attempts, lease_until, body";

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn insert_message(&self, m: &Message) -> StoreResult<()> {
        let (m, body) = (m.clone(), body(m)?);
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO messages (id, program_id, state, attempts, lease_until, send_at, created_at, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    m.id,
                    m.program_id,
                    m.state.as_str(),
                    m.attempts,
                    millis(m.lease_until),
                    millis(m.send_at),
                    millis(m.created_at),
                    body
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn message(&self, id: &str) -> StoreResult<Option<Message>> {
        let id = id.to_owned();
        let found = self
            .read(move |conn| {
                conn.query_row(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"), [id], row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        found.map(message).transpose()
    }

    async fn messages(&self, program_id: Option<&str>, limit: usize) -> StoreResult<Vec<Message>> {
        let program_id = program_id.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM messages WHERE (?1 IS NULL OR program_id = ?1) \
                         ORDER BY created_at DESC, id DESC LIMIT ?2"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map(params![program_id, limit], row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(message).collect()
    }

    async fn take_message(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Message>> {
        // One writer thread runs every write: the select and the update cannot interleave.
        let found = self
            .write(move |conn, _| {
                conn.query_row(
                    &format!(
                        "UPDATE messages SET attempts = attempts + 1, lease_until = ?2 \
                         WHERE id = (SELECT id FROM messages WHERE state IN ('scheduled', 'sending') \
                         AND send_at <= ?1 AND lease_until <= ?1 ORDER BY lease_until, id LIMIT 1) \
                         RETURNING {COLUMNS}"
                    ),
                    params![millis(now), millis(lease_until)],
                    row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        found.map(message).transpose()
    }

    async fn save_message(&self, m: &Message) -> StoreResult<bool> {
        let (m, body) = (m.clone(), body(m)?);
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE messages SET state = ?2, lease_until = ?3, body = ?4 \
                     WHERE id = ?1 AND attempts = ?5 AND state != 'cancelled'",
                    params![m.id, m.state.as_str(), millis(m.lease_until), body, m.attempts],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn cancel_message(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let Some(mut m) = self.message(id).await? else { return Ok(false) };
        if !m.state.runnable() {
            return Ok(false);
        }
        m.state = MessageState::Cancelled;
        m.finished_at = Some(now);
        m.updated_at = now;
        let body = body(&m)?;
        let id = id.to_owned();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE messages SET state = 'cancelled', body = ?2 \
                     WHERE id = ?1 AND state IN ('scheduled', 'sending')",
                    params![id, body],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn record_sends(&self, sends: &[MessageSend]) -> StoreResult<()> {
        if sends.is_empty() {
            return Ok(());
        }
        let sends = sends.to_vec();
        self.write(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO message_sends (message_id, serial, apple, google, at) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (message_id, serial) DO NOTHING",
                )
                .map_err(sql)?;
            for s in &sends {
                stmt.execute(params![s.message_id, s.serial, s.apple.as_str(), s.google.as_str(), millis(s.at)])
                    .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn message_send(&self, message_id: &str, serial: &str) -> StoreResult<Option<MessageSend>> {
        let (message_id, serial) = (message_id.to_owned(), serial.to_owned());
        let found = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT message_id, serial, apple, google, at FROM message_sends \
                     WHERE message_id = ?1 AND serial = ?2",
                    [message_id, serial],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            state(&r.get::<_, String>(2)?)?,
                            state(&r.get::<_, String>(3)?)?,
                            r.get::<_, i64>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        found
            .map(|(message_id, serial, apple, google, at)| {
                Ok(MessageSend { message_id, serial, apple, google, at: from_millis(at)? })
            })
            .transpose()
    }

    async fn settle_send(&self, message_id: &str, serial: &str, wallet: Wallet, to: SendState) -> StoreResult<bool> {
        let (message_id, serial) = (message_id.to_owned(), serial.to_owned());
        // The column name comes from the enum, never from input.
        let column = wallet.as_str();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    &format!(
                        "UPDATE message_sends SET {column} = ?3 \
                         WHERE message_id = ?1 AND serial = ?2 AND {column} = 'queued'"
                    ),
                    params![message_id, serial, to.as_str()],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn send_counts(&self, message_id: &str) -> StoreResult<SendCounts> {
        let message_id = message_id.to_owned();
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT apple, google, COUNT(*) FROM message_sends WHERE message_id = ?1 GROUP BY apple, google",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([message_id], |r| {
                        Ok((state(&r.get::<_, String>(0)?)?, state(&r.get::<_, String>(1)?)?, r.get::<_, i64>(2)?))
                    })
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        let mut counts = SendCounts::default();
        for (apple, google, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            counts.cards += n;
            counts.add(Wallet::Apple, apple, n);
            counts.add(Wallet::Google, google, n);
        }
        Ok(counts)
    }

    async fn reach(&self, serials: &[&str]) -> StoreResult<HashMap<String, Reach>> {
        if serials.is_empty() {
            return Ok(HashMap::new());
        }
        let serials: Vec<String> = serials.iter().map(|s| (*s).to_owned()).collect();
        self.read(move |conn| {
            let marks = vec!["?"; serials.len()].join(", ");
            let mut reach: HashMap<String, Reach> = HashMap::new();
            let mut devices = conn
                .prepare(&format!(
                    "SELECT serial, COUNT(*) FROM registrations WHERE serial IN ({marks}) GROUP BY serial"
                ))
                .map_err(sql)?;
            let rows = devices
                .query_map(rusqlite::params_from_iter(&serials), |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql)?;
            for row in rows {
                let (serial, n) = row.map_err(sql)?;
                reach.entry(serial).or_default().devices = u64::try_from(n).unwrap_or(0);
            }
            let mut google = conn
                .prepare(&format!("SELECT serial FROM google_sync WHERE version > 0 AND serial IN ({marks})"))
                .map_err(sql)?;
            let rows =
                google.query_map(rusqlite::params_from_iter(&serials), |r| r.get::<_, String>(0)).map_err(sql)?;
            for row in rows {
                reach.entry(row.map_err(sql)?).or_default().google_object = true;
            }
            let mut saved = conn
                .prepare(&format!("SELECT serial FROM google_wallet_state WHERE saved = 1 AND serial IN ({marks})"))
                .map_err(sql)?;
            let rows = saved.query_map(rusqlite::params_from_iter(&serials), |r| r.get::<_, String>(0)).map_err(sql)?;
            for row in rows {
                reach.entry(row.map_err(sql)?).or_default().google_saved = true;
            }
            Ok(reach)
        })
        .await
    }
}
