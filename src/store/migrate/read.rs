//! Reading the embedded store for `loy migrate`: one read-only connection, one read
//! transaction (so the copy is one consistent moment of the store), every table turned into
//! the documents the MongoDB store writes, in batches.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use bson::{Bson, Document, doc};
use rusqlite::{Connection, OpenFlags, Row};

use super::{BATCH, TABLES};
use crate::domain::{Program, SerialNumber};
use crate::store::embedded::{
    CARD_COLUMNS, ENTRY_COLUMNS, MIGRATIONS, REGISTRATION_COLUMNS, card_from_row, entry_from_row, registration_from_row,
};
use crate::store::mongo::{RECENT_ENTRIES, event_doc, record_id};
use crate::store::records::{ApiKeyRecord, EntryRecord, WebhookSourceRecord, from_millis};
use crate::store::staff_records::{AuditRecord, SessionRecord, StaffRecord};
use crate::store::{IdempotencyKey, StoreError, WebhookEvent};

/// Documents for one collection.
pub struct Batch {
    pub collection: &'static str,
    pub docs: Vec<Document>,
}

/// What the source holds, counted inside the same read transaction as the copy.
#[derive(Debug, Default, Clone)]
pub struct SourceCounts {
    /// Rows per table (idempotency: only the records still within their window).
    pub rows: BTreeMap<&'static str, u64>,
    /// Idempotency records left behind because their window has passed.
    pub expired_idempotency: u64,
    /// The sum of every card's balance.
    pub balance_sum: i64,
}

/// Opens the embedded store at `path` read-only and checks that this loy knows every table in it.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        bail!("there is no embedded store at {} (LOY_DATA_DIR)", path.display());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("while opening {} read-only", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != MIGRATIONS.len() {
        bail!(
            "the embedded store {} has schema version {version}, this loy expects {}: start this version of \
             `loy serve` on it once (it upgrades the schema), stop it, then migrate",
            path.display(),
            MIGRATIONS.len()
        );
    }
    let tables = table_names(&conn)?;
    let unknown: Vec<&str> =
        tables.iter().map(String::as_str).filter(|t| !TABLES.iter().any(|(name, _)| name == t)).collect();
    if !unknown.is_empty() {
        bail!("the embedded store has tables loy migrate does not know how to copy: {}", unknown.join(", "));
    }
    Ok(conn)
}

/// The names of the tables of an SQLite database, SQLite's own excepted.
pub fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?;
    statement.query_map([], |r| r.get(0))?.collect()
}

/// Reads every table inside one read transaction and hands its documents to `send` in batches.
pub fn read_all(
    conn: &Connection,
    now_ms: i64,
    send: &mut dyn FnMut(Batch) -> anyhow::Result<()>,
) -> anyhow::Result<SourceCounts> {
    conn.execute_batch("BEGIN")?;
    let result = read_in_transaction(conn, now_ms, send);
    // Ending a read transaction changes nothing; if it fails, the connection is dropped next.
    if let Err(e) = conn.execute_batch("COMMIT") {
        tracing::debug!(error = %e, "ending the read transaction failed");
    }
    result
}

fn read_in_transaction(
    conn: &Connection,
    now_ms: i64,
    send: &mut dyn FnMut(Batch) -> anyhow::Result<()>,
) -> anyhow::Result<SourceCounts> {
    let mut counts = SourceCounts::default();
    for (table, _) in TABLES {
        let filter = if *table == "idempotency" { " WHERE expires_at > ?1" } else { "" };
        let sql = format!("SELECT count(*) FROM {table}{filter}");
        let n: i64 = if filter.is_empty() {
            conn.query_row(&sql, [], |r| r.get(0))?
        } else {
            conn.query_row(&sql, [now_ms], |r| r.get(0))?
        };
        counts.rows.insert(table, u64::try_from(n).unwrap_or(0));
    }
    let all_idempotency: i64 = conn.query_row("SELECT count(*) FROM idempotency", [], |r| r.get(0))?;
    counts.expired_idempotency = u64::try_from(all_idempotency).unwrap_or(0).saturating_sub(counts.rows["idempotency"]);
    counts.balance_sum = conn.query_row("SELECT COALESCE(sum(balance), 0) FROM cards", [], |r| r.get(0))?;

    copy(conn, "SELECT id, doc FROM programs ORDER BY id", [], "programs", send, program_doc)?;
    cards_and_ledger(conn, send)?;
    registrations(conn, send)?;
    copy(
        conn,
        "SELECT scope, key, request_hash, entry_id, lease_until, status, body, created_at, expires_at \
         FROM idempotency WHERE expires_at > ?1 ORDER BY scope, key",
        [now_ms],
        "idempotency",
        send,
        idempotency_doc,
    )?;
    copy(
        conn,
        "SELECT id, name, scope, secret_hash, created_at, revoked_at, last_used_at, program_id FROM api_keys ORDER BY id",
        [],
        "api_keys",
        send,
        |r| {
            serialise(&ApiKeyRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                scope: r.get(2)?,
                secret_hash: r.get(3)?,
                created_at: r.get(4)?,
                revoked_at: r.get(5)?,
                last_used_at: r.get(6)?,
                program_id: r.get(7)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT id, name, secret, created_at, revoked_at FROM webhook_sources ORDER BY id",
        [],
        "webhook_sources",
        send,
        |r| {
            serialise(&WebhookSourceRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                secret: r.get(2)?,
                created_at: r.get(3)?,
                revoked_at: r.get(4)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT id, serial, version, target, reason, attempts, first_failure_at, created_at FROM dead_letters ORDER BY id",
        [],
        "dead_letters",
        send,
        |r| {
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "serial": r.get::<_, String>(1)?, "version": r.get::<_, i64>(2)?,
                "target": r.get::<_, String>(3)?, "reason": r.get::<_, String>(4)?, "attempts": r.get::<_, i64>(5)?,
                "first_failure_at": r.get::<_, i64>(6)?, "created_at": r.get::<_, i64>(7)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT serial, version, balance, notified FROM google_sync ORDER BY serial",
        [],
        "google_sync",
        send,
        |r| {
            let notified: String = r.get(3)?;
            let notified: Vec<i64> = serde_json::from_str(&notified)
                .map_err(|e| StoreError::Corrupt(format!("google_sync.notified: {e}")))?;
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "version": r.get::<_, i64>(1)?,
                "balance": r.get::<_, Option<i64>>(2)?.map_or(Bson::Null, Bson::Int64), "notified": notified,
            })
        },
    )?;
    copy(conn, "SELECT name, done_at FROM data_steps ORDER BY name", [], "meta", send, |r| {
        Ok(doc! { "_id": format!("step:{}", r.get::<_, String>(0)?), "done_at": r.get::<_, i64>(1)? })
    })?;
    staff_tables(conn, send)?;
    super::outgoing::webhooks(conn, send)?;
    super::outgoing::imports(conn, send)?;
    super::outgoing::designs(conn, send)?;
    super::outgoing::segments(conn, send)?;
    super::outgoing::wallets(conn, send)?;
    super::outgoing::messages(conn, send)?;
    super::outgoing::stats(conn, send)?;
    copy(
        conn,
        "SELECT id, kind, serial, recipient, locale, state, attempts, next_attempt_at, last_error, created_at, \
         updated_at FROM mail_outbox ORDER BY id",
        [],
        "mail_outbox",
        send,
        |r| {
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "kind": r.get::<_, String>(1)?, "serial": r.get::<_, String>(2)?,
                "recipient": r.get::<_, String>(3)?, "locale": r.get::<_, String>(4)?,
                "state": r.get::<_, String>(5)?, "attempts": r.get::<_, i64>(6)?,
                "next_attempt_at": r.get::<_, i64>(7)?,
                "last_error": r.get::<_, Option<String>>(8)?.map_or(Bson::Null, Bson::String),
                "created_at": r.get::<_, i64>(9)?, "updated_at": r.get::<_, i64>(10)?,
            })
        },
    )?;
    Ok(counts)
}

/// Runs `sql` and sends one document per row, `BATCH` at a time.
pub(super) fn copy<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    collection: &'static str,
    send: &mut dyn FnMut(Batch) -> anyhow::Result<()>,
    mut to_doc: impl FnMut(&Row<'_>) -> anyhow::Result<Document>,
) -> anyhow::Result<()> {
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query(params)?;
    let mut docs = Vec::with_capacity(BATCH);
    while let Some(row) = rows.next()? {
        docs.push(to_doc(row).with_context(|| format!("while reading a row for {collection}"))?);
        if docs.len() == BATCH {
            send(Batch { collection, docs: std::mem::replace(&mut docs, Vec::with_capacity(BATCH)) })?;
        }
    }
    if !docs.is_empty() {
        send(Batch { collection, docs })?;
    }
    Ok(())
}

fn serialise<T: serde::Serialize>(record: &T) -> anyhow::Result<Document> {
    Ok(bson::to_document(record)?)
}

fn program_doc(r: &Row<'_>) -> anyhow::Result<Document> {
    let id: String = r.get(0)?;
    let text: String = r.get(1)?;
    let program: Program = serde_json::from_str(&text).with_context(|| format!("program {id}"))?;
    Ok(doc! { "_id": id, "program": bson::to_document(&program)? })
}

fn idempotency_doc(r: &Row<'_>) -> anyhow::Result<Document> {
    let key = IdempotencyKey { scope: r.get(0)?, key: r.get(1)? };
    let expires_at: i64 = r.get(8)?;
    Ok(doc! {
        "_id": record_id(&key),
        "scope": &key.scope,
        "key": &key.key,
        "request_hash": r.get::<_, String>(2)?,
        "entry_id": r.get::<_, String>(3)?,
        "lease_until": r.get::<_, i64>(4)?,
        "status": r.get::<_, Option<i64>>(5)?.map_or(Ok(Bson::Null), |s| i32::try_from(s).map(Bson::Int32))?,
        "body": r.get::<_, Option<String>>(6)?.map_or(Bson::Null, Bson::String),
        "created_at": r.get::<_, i64>(7)?,
        // A date, so that MongoDB's TTL index expires the record by itself.
        "expires_at": bson::DateTime::from_millis(expires_at),
    })
}

/// Cards with their ledgers, read side by side in serial order. A card document carries what
/// the MongoDB store's guarded commit needs: no pending entries, the ids of its last entries
/// (`recent`, which tells a retried write whether it was committed) and the transactions
/// reversed on it (`reversed`, which keeps a second reversal out), its push generation, and the
/// outgoing events not fanned out yet (`events`, where the MongoDB store keeps them until the
/// sender moves them into deliveries; the embedded store keeps them in `webhook_events`).
fn cards_and_ledger(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut card_statement = conn.prepare(&format!(
        "SELECT {CARD_COLUMNS}, name_key, surname_key, activity_at, push_generation FROM cards ORDER BY serial"
    ))?;
    let mut entry_statement = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM ledger ORDER BY serial, seq"))?;
    let mut event_statement = conn.prepare(
        "SELECT id, serial, type, position, created_at, body FROM webhook_events ORDER BY serial, position, id",
    )?;
    let mut cards = card_statement.query([])?;
    let mut entries = entry_statement.query([])?;
    let mut events = event_statement.query([])?;
    let mut next_entry: Option<EntryRecord> = entries.next()?.map(entry_from_row).transpose()?;
    let mut next_event: Option<WebhookEvent> = events.next()?.map(event_from_row).transpose()?;
    let (mut card_docs, mut entry_docs) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    while let Some(row) = cards.next()? {
        let mut card = card_from_row(row)?;
        // The columns after CARD_COLUMNS (which `card_from_row` reads) come in the order selected.
        let after = CARD_COLUMNS.split(',').count();
        card.name_key = row.get(after)?;
        card.surname_key = row.get(after + 1)?;
        card.activity_at = row.get(after + 2)?;
        let push_generation: i64 = row.get(after + 3)?;
        let mut ids = Vec::new();
        let mut reversed = Vec::new();
        while let Some(entry) = next_entry.take() {
            if entry.serial < card.serial {
                bail!("ledger entry {} belongs to no card ({})", entry.id, entry.serial);
            }
            if entry.serial > card.serial {
                next_entry = Some(entry);
                break;
            }
            ids.push(entry.id.clone());
            if let Some(reverses) = &entry.reverses {
                reversed.push(reverses.clone());
            }
            entry_docs.push(serialise(&entry)?);
            if entry_docs.len() == BATCH {
                send(Batch {
                    collection: "ledger",
                    docs: std::mem::replace(&mut entry_docs, Vec::with_capacity(BATCH)),
                })?;
            }
            next_entry = entries.next()?.map(entry_from_row).transpose()?;
        }
        let mut pending_events = Vec::new();
        while let Some(event) = next_event.take() {
            if event.serial.as_str() < card.serial.as_str() {
                bail!("outgoing event {} belongs to no card ({})", event.id, event.serial);
            }
            if event.serial.as_str() > card.serial.as_str() {
                next_event = Some(event);
                break;
            }
            pending_events.push(event_doc(&event));
            next_event = events.next()?.map(event_from_row).transpose()?;
        }
        let recent = ids.split_off(ids.len().saturating_sub(RECENT_ENTRIES as usize));
        let mut document = serialise(&card)?;
        document.insert("pending", Bson::Array(Vec::new()));
        document.insert("recent", recent);
        if !reversed.is_empty() {
            document.insert("reversed", reversed);
        }
        document.insert("push_generation", push_generation);
        if !pending_events.is_empty() {
            document.insert("events", pending_events);
        }
        card_docs.push(document);
        if card_docs.len() == BATCH {
            send(Batch { collection: "cards", docs: std::mem::replace(&mut card_docs, Vec::with_capacity(BATCH)) })?;
        }
    }
    if let Some(entry) = next_entry {
        bail!("ledger entry {} belongs to no card ({})", entry.id, entry.serial);
    }
    if let Some(event) = next_event {
        bail!("outgoing event {} belongs to no card ({})", event.id, event.serial);
    }
    if !card_docs.is_empty() {
        send(Batch { collection: "cards", docs: card_docs })?;
    }
    if !entry_docs.is_empty() {
        send(Batch { collection: "ledger", docs: entry_docs })?;
    }
    Ok(())
}

fn event_from_row(r: &Row<'_>) -> anyhow::Result<WebhookEvent> {
    let id: String = r.get(0)?;
    let serial: String = r.get(1)?;
    Ok(WebhookEvent {
        serial: SerialNumber::parse(&serial).with_context(|| format!("outgoing event {id}"))?,
        kind: r.get(2)?,
        position: r.get(3)?,
        created_at: from_millis(r.get(4)?)?,
        body: r.get(5)?,
        id,
    })
}

/// Device registrations. The MongoDB store holds its cap on devices per pass by `_id` slots
/// `"{serial}#{n}"`; the registrations of a pass take the slots from 0 in the order they were made.
fn registrations(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut slot = (String::new(), 0_u32);
    copy(
        conn,
        &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations ORDER BY serial, created_at, device_library_id"),
        [],
        "registrations",
        send,
        |r| {
            let record = registration_from_row(r)?;
            if slot.0 == record.serial {
                slot.1 += 1;
            } else {
                slot = (record.serial.clone(), 0);
            }
            let mut document = serialise(&record)?;
            document.insert("_id", format!("{}#{}", record.serial, slot.1));
            Ok(document)
        },
    )
}

/// Staff accounts (password hashes and TOTP secrets as they are), console sessions, login
/// throttling, setup tokens and the audit log.
fn staff_tables(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT id, email, role, password_hash, disabled, totp_secret, recovery_codes, created_at, last_login_at \
         FROM staff ORDER BY id",
        [],
        "staff",
        send,
        |r| {
            let codes: String = r.get(6)?;
            serialise(&StaffRecord {
                id: r.get(0)?,
                email: r.get(1)?,
                role: r.get(2)?,
                password_hash: r.get(3)?,
                disabled: r.get(4)?,
                totp_secret: r.get(5)?,
                recovery_codes: serde_json::from_str(&codes).context("staff recovery codes")?,
                created_at: r.get(7)?,
                last_login_at: r.get(8)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT id_hash, staff_id, csrf, mfa_pending, created_at, last_seen_at FROM staff_sessions ORDER BY id_hash",
        [],
        "staff_sessions",
        send,
        |r| {
            serialise(&SessionRecord {
                id_hash: r.get(0)?,
                staff_id: r.get(1)?,
                csrf: r.get(2)?,
                mfa_pending: r.get(3)?,
                created_at: r.get(4)?,
                last_seen_at: r.get(5)?,
            })
        },
    )?;
    copy(conn, "SELECT key, at FROM login_failures ORDER BY key, at", [], "login_failures", send, |r| {
        Ok(doc! { "key": r.get::<_, String>(0)?, "at": r.get::<_, i64>(1)? })
    })?;
    copy(conn, "SELECT hash, expires_at FROM setup_tokens ORDER BY hash", [], "setup_tokens", send, |r| {
        Ok(doc! { "_id": r.get::<_, String>(0)?, "expires_at": r.get::<_, i64>(1)? })
    })?;
    copy(
        conn,
        "SELECT id, at, staff_id, staff_email, address, action, target, details FROM audit ORDER BY at, id",
        [],
        "audit",
        send,
        |r| {
            serialise(&AuditRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                staff_id: r.get(2)?,
                staff_email: r.get(3)?,
                address: r.get(4)?,
                action: r.get(5)?,
                target: r.get(6)?,
                details: r.get(7)?,
            })
        },
    )
}
