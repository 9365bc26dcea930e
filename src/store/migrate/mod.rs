//! `loy migrate --to-mongodb`: copies every table of the embedded store into an empty MongoDB
//! database, as the documents the MongoDB store itself writes, then verifies the copy.
//!
//! The source file is opened read-only and read inside one read transaction, so the copy is
//! one consistent moment of the store. The target must be empty (nothing is ever overwritten
//! or merged); its indexes are created first, exactly as the MongoDB store does when it opens,
//! so the unique keys are enforced while the documents go in. Documents go in with
//! `insert_many`, [`BATCH`] at a time, while the next batch is being read.

mod outgoing;
mod read;
mod verify;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

pub use read::table_names;
pub use verify::LedgerCheck;

use super::Faults;
use super::mongo::MongoStore;

/// Every table of the embedded store and the MongoDB collection it is copied into. A table not
/// listed here would be left behind: the migrator refuses a store with a table it does not
/// know, and a test compares this list with the tables of a freshly created embedded store.
/// `data_steps` become `step:` documents of `meta`, as the MongoDB store keeps them, and
/// `webhook_events` (events not fanned out yet) go onto their cards' `events` lists.
pub const TABLES: &[(&str, &str)] = &[
    ("programs", "programs"),
    ("cards", "cards"),
    ("ledger", "ledger"),
    ("registrations", "registrations"),
    ("idempotency", "idempotency"),
    ("api_keys", "api_keys"),
    ("webhook_sources", "webhook_sources"),
    ("dead_letters", "dead_letters"),
    ("google_sync", "google_sync"),
    ("data_steps", "meta"),
    ("staff", "staff"),
    ("staff_sessions", "staff_sessions"),
    ("login_failures", "login_failures"),
    ("setup_tokens", "setup_tokens"),
    ("audit", "audit"),
    ("mail_outbox", "mail_outbox"),
    ("webhook_endpoints", "webhook_endpoints"),
    ("webhook_events", "cards"),
    ("webhook_deliveries", "webhook_deliveries"),
    ("import_jobs", "import_jobs"),
    ("import_files", "import_files"),
    ("design_versions", "design_versions"),
    ("images", "images"),
    ("card_segments", "card_segments"),
    ("segment_runs", "segment_runs"),
    ("wallet_events", "wallet_events"),
    ("google_wallet_state", "google_wallet_state"),
    ("messages", "messages"),
    ("message_sends", "message_sends"),
    ("day_stats", "day_stats"),
    ("stats_snapshots", "stats_snapshots"),
];

/// Documents per `insert_many`.
pub const BATCH: usize = 1000;

/// `insert_many` calls in flight at once.
const IN_FLIGHT: usize = 4;

/// One table and what arrived of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub collection: &'static str,
    pub source: u64,
    pub target: u64,
}

#[derive(Debug)]
pub struct Report {
    pub tables: Vec<Copied>,
    /// Idempotency records not copied because their window had passed.
    pub expired_idempotency: u64,
    pub ledger: LedgerCheck,
    pub source_balance_sum: i64,
    pub copy_time: Duration,
    pub verify_time: Duration,
}

impl Report {
    /// Whether every count matches, the balances add up to the source's, and every card's
    /// balance equals its ledger on the target.
    pub fn is_verified(&self) -> bool {
        self.tables.iter().all(|t| t.source == t.target)
            && self.ledger.mismatches.is_empty()
            && self.ledger.balance_sum == self.source_balance_sum
    }
}

/// Copies the embedded store at `source` into the empty MongoDB database `database` at `uri`
/// and verifies it. `progress` receives a line now and then (the command prints them on stderr).
pub async fn to_mongodb(
    source: &Path,
    uri: &str,
    database: &str,
    now: DateTime<Utc>,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Report> {
    let path = source.to_owned();
    let conn = tokio::task::spawn_blocking(move || read::open(&path)).await??;
    let db = connect(uri, database).await?;
    refuse_non_empty(&db).await?;
    progress("creating the collections and indexes");
    // Opening the store creates its indexes and records its schema version, as on any start.
    MongoStore::connect(uri, database, Arc::new(Faults::default()))
        .await
        .context("while preparing the MongoDB database")?;

    let started = Instant::now();
    let (batches, mut incoming) = tokio::sync::mpsc::channel::<read::Batch>(4);
    let now_ms = now.timestamp_millis();
    let reader = tokio::task::spawn_blocking(move || {
        let mut send =
            |batch: read::Batch| batches.blocking_send(batch).map_err(|_| anyhow::anyhow!("the MongoDB side stopped"));
        read::read_all(&conn, now_ms, &mut send)
    });
    let mut written: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut last_report = Instant::now();
    let batches = futures_util::stream::poll_fn(|cx| incoming.poll_recv(cx));
    let written_ok = batches
        .map(|batch| {
            let collection = db.collection::<Document>(batch.collection);
            async move {
                let n = batch.docs.len() as u64;
                collection
                    .insert_many(batch.docs)
                    .await
                    .with_context(|| format!("while inserting into {}", batch.collection))?;
                anyhow::Ok((batch.collection, n))
            }
        })
        .buffered(IN_FLIGHT)
        .try_for_each(|(collection, n)| {
            let total = written.entry(collection).or_default();
            *total += n;
            if last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                progress(&format!("{collection}: {total} documents copied"));
            }
            std::future::ready(Ok(()))
        })
        .await;
    // Dropping the receiver stops the reader if the writing side failed.
    drop(incoming);
    let counts = reader.await.context("the reader stopped")?;
    written_ok?;
    let counts = counts?;
    let copy_time = started.elapsed();
    progress(&format!("copied in {:.1} s; verifying", copy_time.as_secs_f64()));

    let started = Instant::now();
    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, collection) in TABLES {
        let target = if *collection == "meta" {
            db.collection::<Document>("meta").count_documents(doc! { "done_at": { "$exists": true } }).await?
        } else if *table == "webhook_events" {
            verify::card_events(&db).await?
        } else {
            db.collection::<Document>(collection).count_documents(doc! {}).await?
        };
        tables.push(Copied { table, collection, source: counts.rows[table], target });
    }
    let ledger = verify::ledger(&db, progress).await?;
    Ok(Report {
        tables,
        expired_idempotency: counts.expired_idempotency,
        ledger,
        source_balance_sum: counts.balance_sum,
        copy_time,
        verify_time: started.elapsed(),
    })
}

async fn connect(uri: &str, database: &str) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(uri).await.context("while reading the MongoDB connection string")?;
    options.app_name.get_or_insert_with(|| "loy-migrate".to_owned());
    options.server_selection_timeout.get_or_insert(Duration::from_secs(5));
    let client = Client::with_options(options).context("while configuring the MongoDB client")?;
    let db = client.database(database);
    db.run_command(doc! { "ping": 1 }).await.context("while contacting MongoDB")?;
    Ok(db)
}

/// Refuses a database that holds any document: a migration never merges into or overwrites data.
async fn refuse_non_empty(db: &Database) -> anyhow::Result<()> {
    let mut filled = Vec::new();
    for name in db.list_collection_names().await.context("while listing the target's collections")? {
        if db.collection::<Document>(&name).find_one(doc! {}).await?.is_some() {
            filled.push(name);
        }
    }
    if !filled.is_empty() {
        filled.sort();
        bail!(
            "the MongoDB database `{}` is not empty (documents in: {}): loy migrate only writes into an empty \
             database; choose another --database or drop this one",
            db.name(),
            filled.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_embedded_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loy.sqlite3");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            super::super::embedded::EmbeddedStore::open(&path, false, Arc::new(Faults::default())).unwrap();
        });
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut tables = table_names(&conn).unwrap();
        tables.sort();
        let mut listed: Vec<String> = TABLES.iter().map(|(t, _)| (*t).to_owned()).collect();
        listed.sort();
        assert_eq!(
            tables, listed,
            "a table of the embedded store is missing from migrate::TABLES (or gone from the schema)"
        );
    }
}
