//! Reading outgoing events and console imports for `loy migrate`: webhook endpoints and
//! deliveries become the documents the MongoDB store writes (through its own document
//! functions), and import jobs with their file chunks. Events not yet fanned out are not here:
//! the MongoDB store keeps them on their card's document, so they travel with the cards.

use bson::spec::BinarySubtype;
use bson::{Binary, doc};
use rusqlite::Connection;

use super::read::{Batch, copy};
use crate::store::embedded::{DELIVERY_COLUMNS, ENDPOINT_COLUMNS, delivery, delivery_row, endpoint, endpoint_row};
use crate::store::mongo::{delivery_doc, endpoint_doc};

/// File chunks per `insert_many` are bounded by their size, not their count (a chunk is up to
/// [`crate::store::FILE_CHUNK_BYTES`]).
const FILE_BATCH_BYTES: usize = 16 * 1024 * 1024;

pub fn webhooks(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"),
        [],
        "webhook_endpoints",
        send,
        |r| Ok(endpoint_doc(&endpoint(endpoint_row(r)?)?)),
    )?;
    copy(
        conn,
        &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries ORDER BY id"),
        [],
        "webhook_deliveries",
        send,
        |r| Ok(delivery_doc(&delivery(delivery_row(r)?)?)),
    )
}

/// Import jobs (state, attempts and lease as fields, the rest as the same JSON) and their files.
pub fn imports(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT id, state, attempts, lease_until, created_at, body FROM import_jobs ORDER BY id",
        [],
        "import_jobs",
        send,
        |r| {
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "state": r.get::<_, String>(1)?, "attempts": r.get::<_, i64>(2)?,
                "lease_until": r.get::<_, i64>(3)?, "created_at": r.get::<_, i64>(4)?, "body": r.get::<_, String>(5)?,
            })
        },
    )?;
    let mut statement = conn.prepare("SELECT job_id, n, data FROM import_files ORDER BY job_id, n")?;
    let mut rows = statement.query([])?;
    let (mut docs, mut bytes) = (Vec::new(), 0);
    while let Some(r) = rows.next()? {
        let (job_id, n, data): (String, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        bytes += data.len();
        let data = Binary { subtype: BinarySubtype::Generic, bytes: data };
        docs.push(doc! { "_id": format!("{job_id}:{n}"), "job_id": job_id, "n": n, "data": data });
        if bytes >= FILE_BATCH_BYTES {
            send(Batch { collection: "import_files", docs: std::mem::take(&mut docs) })?;
            bytes = 0;
        }
    }
    if !docs.is_empty() {
        send(Batch { collection: "import_files", docs })?;
    }
    Ok(())
}

/// Published designs (the same JSON) and the images they use.
pub fn designs(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT program_id, revision, published_at, body FROM design_versions ORDER BY program_id, revision",
        [],
        "design_versions",
        send,
        |r| {
            let (program_id, revision): (String, i64) = (r.get(0)?, r.get(1)?);
            Ok(doc! {
                "_id": format!("{program_id}:{revision}"), "program_id": program_id, "revision": revision,
                "published_at": r.get::<_, i64>(2)?, "body": r.get::<_, String>(3)?,
            })
        },
    )?;
    copy(conn, "SELECT id, png FROM images ORDER BY id", [], "images", send, |r| {
        let bytes: Vec<u8> = r.get(1)?;
        Ok(doc! { "_id": r.get::<_, String>(0)?, "png": Binary { subtype: BinarySubtype::Generic, bytes } })
    })
}

/// Customer segments: every computation's rows (the `_id` the MongoDB store gives them) and
/// each program's run, its lease given up (no node of the old store computes on the new one).
pub fn segments(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT serial, computed_at, program_id, segment, r, f, m FROM card_segments ORDER BY serial, computed_at",
        [],
        "card_segments",
        send,
        |r| {
            let (serial, at): (String, i64) = (r.get(0)?, r.get(1)?);
            Ok(doc! {
                "_id": format!("{serial}@{at}"), "serial": serial, "computed_at": at,
                "program_id": r.get::<_, String>(2)?, "segment": r.get::<_, String>(3)?,
                "r": r.get::<_, i64>(4)?, "f": r.get::<_, i64>(5)?, "m": r.get::<_, i64>(6)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT program_id, computed_at, took_ms, cards, counts, requested_at FROM segment_runs ORDER BY program_id",
        [],
        "segment_runs",
        send,
        |r| {
            let optional = |v: Option<i64>| v.map_or(bson::Bson::Null, bson::Bson::Int64);
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "computed_at": optional(r.get(1)?), "took_ms": r.get::<_, i64>(2)?,
                "cards": r.get::<_, i64>(3)?, "counts": r.get::<_, String>(4)?, "requested_at": optional(r.get(5)?),
                "lease_holder": bson::Bson::Null, "lease_until": 0_i64,
            })
        },
    )
}

/// Wallet changes and each card's Google state, as the MongoDB store writes them.
pub fn wallets(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT id, serial, program_id, wallet, change, at, day, source FROM wallet_events ORDER BY id",
        [],
        "wallet_events",
        send,
        |r| {
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "serial": r.get::<_, String>(1)?,
                "program_id": r.get::<_, String>(2)?, "wallet": r.get::<_, String>(3)?,
                "change": r.get::<_, String>(4)?, "at": r.get::<_, i64>(5)?, "day": r.get::<_, String>(6)?,
                "source": r.get::<_, String>(7)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT serial, saved, at FROM google_wallet_state ORDER BY serial",
        [],
        "google_wallet_state",
        send,
        |r| Ok(doc! { "_id": r.get::<_, String>(0)?, "saved": r.get::<_, bool>(1)?, "at": r.get::<_, i64>(2)? }),
    )
}

/// Messages (state, attempts, lease and times as fields, the rest as the same JSON) and their
/// sends, keyed as the MongoDB store keys them.
pub fn messages(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT id, program_id, state, attempts, lease_until, send_at, created_at, body FROM messages ORDER BY id",
        [],
        "messages",
        send,
        |r| {
            Ok(doc! {
                "_id": r.get::<_, String>(0)?, "program_id": r.get::<_, String>(1)?, "state": r.get::<_, String>(2)?,
                "attempts": r.get::<_, i64>(3)?, "lease_until": r.get::<_, i64>(4)?, "send_at": r.get::<_, i64>(5)?,
                "created_at": r.get::<_, i64>(6)?, "body": r.get::<_, String>(7)?,
            })
        },
    )?;
    copy(
        conn,
        "SELECT message_id, serial, apple, google, at FROM message_sends ORDER BY message_id, serial",
        [],
        "message_sends",
        send,
        |r| {
            let (message_id, serial): (String, String) = (r.get(0)?, r.get(1)?);
            Ok(doc! {
                "_id": format!("{message_id}:{serial}"), "message_id": message_id, "serial": serial,
                "apple": r.get::<_, String>(2)?, "google": r.get::<_, String>(3)?, "at": r.get::<_, i64>(4)?,
            })
        },
    )
}

/// The dashboard's day rows and snapshots, as the MongoDB store writes them (the background
/// task would compute them again, but a migrated node shows its figures at once).
pub fn stats(conn: &Connection, send: &mut dyn FnMut(Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
    copy(
        conn,
        "SELECT program_id, day, registrations, issued, redeemed, rewards_issued, rewards_redeemed, purchases, \
         revenue, computed_at, apple_installed, apple_removed, google_installed, google_removed, time_zone \
         FROM day_stats ORDER BY program_id, day",
        [],
        "day_stats",
        send,
        |r| {
            let (program_id, day): (String, String) = (r.get(0)?, r.get(1)?);
            let mut row = doc! {
                "_id": format!("{program_id}/{day}"), "program_id": program_id, "day": day,
                "registrations": r.get::<_, i64>(2)?, "issued": r.get::<_, i64>(3)?, "redeemed": r.get::<_, i64>(4)?,
                "rewards_issued": r.get::<_, i64>(5)?, "rewards_redeemed": r.get::<_, i64>(6)?,
                "purchases": r.get::<_, i64>(7)?, "revenue": r.get::<_, i64>(8)?, "computed_at": r.get::<_, i64>(9)?,
            };
            // A row without the wallet counts stays without them: its day is computed again.
            let wallets = ["apple_installed", "apple_removed", "google_installed", "google_removed"];
            for (i, key) in wallets.into_iter().enumerate() {
                if let Some(n) = r.get::<_, Option<i64>>(10 + i)? {
                    row.insert(key, n);
                }
            }
            // A row without a zone was computed in UTC, as the MongoDB store reads one without.
            if let Some(zone) = r.get::<_, Option<String>>(14)? {
                row.insert("time_zone", zone);
            }
            Ok(row)
        },
    )?;
    copy(conn, "SELECT program_id, body FROM stats_snapshots ORDER BY program_id", [], "stats_snapshots", send, |r| {
        Ok(doc! { "_id": r.get::<_, String>(0)?, "body": r.get::<_, String>(1)? })
    })
}
