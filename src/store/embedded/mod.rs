//! The embedded store: SQLite in one file under `LOY_DATA_DIR`, in WAL mode.
//!
//! SQLite gives real ACID transactions, so every multi-step write here is one transaction:
//! a crash leaves either all of it or none of it. Writes go to one writer thread that owns the
//! only write connection (SQLite allows one writer at a time anyway) and commits them in groups:
//! each write runs inside its own savepoint, and the writes waiting at that moment share one
//! commit and so one disk flush. A write is acknowledged only after its group is durable. Reads
//! go through a small pool of connections on Tokio's blocking pool and never wait for a write.

mod access;
pub mod backup;
mod cards;
mod customers;
mod devices;
mod imports;
mod ledger;
mod messages;
mod outbox;
mod phones;
mod programs;
mod push;
mod schema;
mod segments;
mod staff;
mod stats;
mod wallet_events;
mod webhooks;

pub(super) use schema::MIGRATIONS;
use schema::migrate;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Row, params};

pub(super) use webhooks::{DELIVERY_COLUMNS, ENDPOINT_COLUMNS, delivery, delivery_row, endpoint, endpoint_row};

use super::records::{CardRecord, EntryRecord, RegistrationRecord};
use super::{Faults, StoreError, StoreResult, UniqueKey};

pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    synchronous_full: bool,
    jobs: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per read connection: a read waits for a connection of the pool rather than
    /// opening one of its own (which reads the whole schema and is closed again after).
    read_slots: Arc<tokio::sync::Semaphore>,
    faults: Arc<Faults>,
}

/// Read connections kept open: reads beyond this many at once wait for one.
const READERS: usize = 8;

/// SQLite's page cache per connection, in KiB (SQLite's default is 2 MiB): the writer walks the
/// indexes of every table it writes, and a cache that holds their upper levels saves a `pread`
/// per page. The cache fills only as pages are read.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
const READER_CACHE_KIB: i64 = 16 * 1024;

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// WAL pages after which the writer checkpoints itself (about 40 MB), should the checkpointer
/// fall behind; SQLite's default is 1000.
const WRITER_AUTOCHECKPOINT: i64 = 10_000;

/// A write waiting for the writer thread: it runs inside a savepoint and says whether it
/// succeeded, and how to deliver its result once the group's commit is known.
type Job = Box<dyn FnOnce(&Connection, &Faults) -> Ran + Send>;

struct Ran {
    ok: bool,
    deliver: Box<dyn FnOnce(Result<(), CommitFailure>) + Send>,
}

/// Why a group's commit failed, handed to every write of the group.
#[derive(Debug, Clone)]
enum CommitFailure {
    Injected(u64),
    Sql(String),
}

impl From<CommitFailure> for StoreError {
    fn from(f: CommitFailure) -> Self {
        match f {
            CommitFailure::Injected(n) => StoreError::Injected(n),
            CommitFailure::Sql(message) => StoreError::unavailable(anyhow::anyhow!("commit failed: {message}")),
        }
    }
}

/// At most this many writes share one commit.
const MAX_GROUP: usize = 128;

pub(super) const CARD_COLUMNS: &str = "serial, program_id, card_number, barcode, card_key, auth_token, referral_code, \
    referred_by, first_name, last_name, phone, email, birthday, locale, consent_at, status, balance, \
    lifetime_earned, tier, version, pushed_version, push_pending_since, modified_at, last_entry_kind, \
    last_entry_points, last_entry_at, created_at, updated_at, rewards, news";

pub(super) const ENTRY_COLUMNS: &str = "id, serial, program_id, seq, kind, points, purchase_amount, balance_after, \
    lifetime_after, tier_after, order_id, description, source, actor, idempotency_key, reverses, created_at, \
    rewards, rewards_after";

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    pub fn open(path: &Path, synchronous_full: bool, faults: Arc<Faults>) -> anyhow::Result<Self> {
        use anyhow::Context;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("while creating the data directory {}", dir.display()))?;
        }
        let mut writer = open_connection(path, synchronous_full, WRITER_CACHE_KIB)
            .with_context(|| format!("while opening the database {}", path.display()))?;
        migrate(&mut writer).with_context(|| format!("while upgrading the schema of {}", path.display()))?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)
            .context("while setting the writer's checkpoint threshold")?;
        // The statement journals of the writes' savepoints in memory: on disk, each is a file
        // created and deleted again within a group. The writer runs no large sorts.
        writer.pragma_update(None, "temp_store", "MEMORY").context("while setting the writer's temporary store")?;
        let checkpointer = open_connection(path, synchronous_full, 0)
            .with_context(|| format!("while opening the database {}", path.display()))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let writer_faults = faults.clone();
        std::thread::Builder::new()
            .name("loy-sqlite-writer".into())
            .spawn(move || run_writer(writer, queue, writer_faults))
            .context("while starting the database writer thread")?;
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            synchronous_full,
            jobs,
            readers: Mutex::new(Vec::new()),
            read_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
            faults,
        });
        let alive = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("loy-sqlite-checkpoint".into())
            .spawn(move || run_checkpointer(checkpointer, alive))
            .context("while starting the database checkpoint thread")?;
        Ok(Self { inner })
    }

    /// Runs `f` atomically on the write connection and returns its result once committed. When
    /// `f` fails, everything it did is rolled back.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Faults) -> StoreResult<T> + Send + 'static,
    {
        self.inner.faults.step()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn, faults| {
            let result = f(conn, faults);
            Ran {
                ok: result.is_ok(),
                deliver: Box::new(move |commit| {
                    let _ = reply.send(match commit {
                        Ok(()) => result,
                        Err(failure) => Err(failure.into()),
                    });
                }),
            }
        });
        let lost = || StoreError::unavailable(anyhow::anyhow!("the database write did not complete"));
        self.inner.jobs.send(job).map_err(|_| lost())?;
        answer.await.map_err(|_| lost())?
    }

    /// Runs `f` on a pooled read connection.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        // Held until the connection is back in the pool, even if the caller stops waiting.
        let slot = self.inner.read_slots.clone().acquire_owned().await.map_err(StoreError::unavailable)?;
        run_blocking(move || {
            let _slot = slot;
            inner.faults.step()?;
            // With a permit held there is a pooled connection, or fewer than READERS exist.
            let pooled = inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path, inner.synchronous_full, READER_CACHE_KIB).map_err(sql)?,
            };
            let result = f(&conn);
            inner.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(StoreError::unavailable)?
}

/// The writer thread: takes the writes waiting, runs each in a savepoint, commits them together.
fn run_writer(conn: Connection, queue: mpsc::Receiver<Job>, faults: Arc<Faults>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Nothing runs; dropping the writes tells their callers they did not complete.
            tracing::error!(error = %e, "the database refused to start a transaction");
            continue;
        }
        let mut delivered = Vec::with_capacity(group.len());
        for job in group {
            let ran = conn.execute_batch("SAVEPOINT write").map_err(|e| e.to_string()).and_then(|()| {
                std::panic::catch_unwind(AssertUnwindSafe(|| job(&conn, &faults)))
                    .map_err(|_| "a write panicked".to_owned())
            });
            match ran {
                Ok(ran) => {
                    let end = if ran.ok { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
                    if let Err(e) = conn.execute_batch(end) {
                        tracing::error!(error = %e, "ending a savepoint failed");
                    }
                    delivered.push(ran.deliver);
                }
                Err(message) => {
                    tracing::error!(error = %message, "a database write could not run");
                    let _ = conn.execute_batch("ROLLBACK TO write; RELEASE write");
                }
            }
        }
        let commit = match faults.step() {
            Err(StoreError::Injected(n)) => Err(CommitFailure::Injected(n)),
            _ => conn.execute_batch("COMMIT").map_err(|e| CommitFailure::Sql(e.to_string())),
        };
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for deliver in delivered {
            deliver(commit.clone());
        }
    }
}

/// The checkpointer thread: copies the write-ahead log into the database file every
/// [`CHECKPOINT_EVERY`] (a passive checkpoint, which never blocks the writer or a reader), so
/// that the writer's commits do not do it (with its writes and flushes) themselves. Stops once
/// the store is dropped.
fn run_checkpointer(conn: Connection, alive: std::sync::Weak<Inner>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if alive.strong_count() == 0 {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "a checkpoint of the database's write-ahead log failed");
        }
    }
}

fn open_connection(path: &Path, synchronous_full: bool, cache_kib: i64) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    if cache_kib > 0 {
        // Negative: a size in KiB rather than in pages.
        conn.pragma_update(None, "cache_size", -cache_kib)?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit reaches the disk before it is acknowledged (no point is lost on power
    // failure). NORMAL: commits survive a crash of loy but the last ones may be lost on power
    // failure; the database stays consistent either way.
    conn.pragma_update(None, "synchronous", if synchronous_full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Maps SQLite errors: unique violations become [`StoreError::Duplicate`], the rest unavailable.
pub(super) fn sql(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, Some(message)) = &e {
        if code.code == rusqlite::ErrorCode::ConstraintViolation {
            let key = if message.contains("cards.phone") {
                Some(UniqueKey::Phone)
            } else if message.contains("cards.card_number") {
                Some(UniqueKey::CardNumber)
            } else if message.contains("cards.barcode") {
                Some(UniqueKey::Barcode)
            } else if message.contains("cards.card_key") {
                Some(UniqueKey::CardKey)
            } else if message.contains("cards.referral_code") {
                Some(UniqueKey::ReferralCode)
            } else if message.contains("cards.serial") {
                Some(UniqueKey::Serial)
            } else if message.starts_with("UNIQUE constraint failed") {
                Some(UniqueKey::Other)
            } else {
                None
            };
            if let Some(key) = key {
                return StoreError::Duplicate(key);
            }
        }
    }
    StoreError::unavailable(e)
}

pub(super) const REGISTRATION_COLUMNS: &str =
    "device_library_id, pass_type_id, serial, push_token, pushed_version, created_at, updated_at";

/// The card columns qualified with the table alias `c.`, for joins.
pub(super) fn card_columns_of_c() -> String {
    CARD_COLUMNS.split(", ").map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

pub(super) fn registration_from_row(row: &Row<'_>) -> rusqlite::Result<RegistrationRecord> {
    Ok(RegistrationRecord {
        device_library_id: row.get(0)?,
        pass_type_id: row.get(1)?,
        serial: row.get(2)?,
        push_token: row.get(3)?,
        pushed_version: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

pub(super) fn card_from_row(row: &Row<'_>) -> rusqlite::Result<CardRecord> {
    Ok(CardRecord {
        serial: row.get(0)?,
        program_id: row.get(1)?,
        card_number: row.get(2)?,
        barcode: row.get(3)?,
        card_key: row.get(4)?,
        auth_token: row.get(5)?,
        referral_code: row.get(6)?,
        referred_by: row.get(7)?,
        first_name: row.get(8)?,
        last_name: row.get(9)?,
        phone: row.get(10)?,
        email: row.get(11)?,
        birthday: row.get(12)?,
        locale: row.get(13)?,
        consent_at: row.get(14)?,
        status: row.get(15)?,
        balance: row.get(16)?,
        lifetime_earned: row.get(17)?,
        tier: row.get(18)?,
        version: row.get(19)?,
        pushed_version: row.get(20)?,
        push_pending_since: row.get(21)?,
        modified_at: row.get(22)?,
        last_entry_kind: row.get(23)?,
        last_entry_points: row.get(24)?,
        last_entry_at: row.get(25)?,
        created_at: row.get(26)?,
        updated_at: row.get(27)?,
        rewards: row.get(28)?,
        news: row.get(29)?,
        // Written, never read back (see `CardRecord::name_key`).
        name_key: None,
        surname_key: None,
        activity_at: 0,
    })
}

pub(super) fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<EntryRecord> {
    Ok(EntryRecord {
        id: row.get(0)?,
        serial: row.get(1)?,
        program_id: row.get(2)?,
        seq: row.get(3)?,
        kind: row.get(4)?,
        points: row.get(5)?,
        purchase_amount: row.get(6)?,
        balance_after: row.get(7)?,
        lifetime_after: row.get(8)?,
        tier_after: row.get(9)?,
        order_id: row.get(10)?,
        description: row.get(11)?,
        source: row.get(12)?,
        actor: row.get(13)?,
        idempotency_key: row.get(14)?,
        reverses: row.get(15)?,
        created_at: row.get(16)?,
        rewards: row.get(17)?,
        rewards_after: row.get(18)?,
    })
}

pub(super) fn insert_card_row(tx: &Connection, r: &CardRecord) -> StoreResult<()> {
    tx.execute(
        &format!("INSERT INTO cards ({CARD_COLUMNS}, name_key, surname_key, activity_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)"),
        params![
            r.serial, r.program_id, r.card_number, r.barcode, r.card_key, r.auth_token, r.referral_code,
            r.referred_by, r.first_name, r.last_name, r.phone, r.email, r.birthday, r.locale, r.consent_at,
            r.status, r.balance, r.lifetime_earned, r.tier, r.version, r.pushed_version, r.push_pending_since,
            r.modified_at, r.last_entry_kind, r.last_entry_points, r.last_entry_at, r.created_at, r.updated_at,
            r.rewards, r.news, r.name_key, r.surname_key, r.activity_at,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

pub(super) fn insert_entry_row(tx: &Connection, e: &EntryRecord) -> StoreResult<()> {
    tx.execute(
        &format!("INSERT INTO ledger ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"),
        params![
            e.id, e.serial, e.program_id, e.seq, e.kind, e.points, e.purchase_amount, e.balance_after,
            e.lifetime_after, e.tier_after, e.order_id, e.description, e.source, e.actor, e.idempotency_key,
            e.reverses, e.created_at, e.rewards, e.rewards_after,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

/// Writes the changeable columns of a card if its version is still `expected_version`.
pub(super) fn update_card_row(conn: &Connection, r: &CardRecord, expected_version: i64) -> StoreResult<bool> {
    let changed = conn
        .execute(
            "UPDATE cards SET first_name = ?1, last_name = ?2, phone = ?3, email = ?4, birthday = ?5, locale = ?6, \
             consent_at = ?7, status = ?8, balance = ?9, lifetime_earned = ?10, tier = ?11, version = ?12, \
             push_pending_since = ?13, modified_at = ?14, last_entry_kind = ?15, last_entry_points = ?16, \
             last_entry_at = ?17, updated_at = ?18, name_key = ?21, surname_key = ?22, activity_at = ?23, \
             rewards = ?24, news = ?25 \
             WHERE serial = ?19 AND version = ?20",
            params![
                r.first_name,
                r.last_name,
                r.phone,
                r.email,
                r.birthday,
                r.locale,
                r.consent_at,
                r.status,
                r.balance,
                r.lifetime_earned,
                r.tier,
                r.version,
                r.push_pending_since,
                r.modified_at,
                r.last_entry_kind,
                r.last_entry_points,
                r.last_entry_at,
                r.updated_at,
                r.serial,
                expected_version,
                r.name_key,
                r.surname_key,
                r.activity_at,
                r.rewards,
                r.news,
            ],
        )
        .map_err(sql)?;
    Ok(changed == 1)
}
