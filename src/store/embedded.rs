//! The embedded store: SQLite in one file under `LOY_DATA_DIR`, in WAL mode.
//!
//! SQLite gives real ACID transactions, so every multi-step write here is one transaction:
//! a crash leaves either all of it or none of it. Writes go through one connection (SQLite
//! allows one writer at a time anyway) and reads through a small pool, so reads never wait for
//! a write to finish. The blocking calls run on Tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::records::{CardRecord, EntryRecord, RegistrationRecord};
use super::{Backend, CardLookup, Faults, Store, StoreError, StoreResult, UniqueKey};
use crate::domain::{
    Card, DeviceLibraryId, LedgerEntry, PassTypeId, Program, PushToken, RegisterOutcome, Registration, SerialNumber,
};

pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    synchronous_full: bool,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    faults: Arc<Faults>,
}

/// Schema changes, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE programs (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE cards (
    serial TEXT PRIMARY KEY,
    program_id TEXT NOT NULL,
    card_number TEXT NOT NULL UNIQUE,
    barcode TEXT NOT NULL UNIQUE,
    card_key TEXT NOT NULL UNIQUE,
    auth_token TEXT NOT NULL,
    referral_code TEXT NOT NULL,
    referred_by TEXT,
    first_name TEXT NOT NULL,
    last_name TEXT,
    phone TEXT NOT NULL,
    email TEXT,
    birthday TEXT,
    locale TEXT NOT NULL,
    consent_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    balance INTEGER NOT NULL,
    lifetime_earned INTEGER NOT NULL,
    tier TEXT NOT NULL,
    version INTEGER NOT NULL,
    pushed_version INTEGER NOT NULL,
    push_pending_since INTEGER,
    modified_at INTEGER NOT NULL,
    last_entry_kind TEXT,
    last_entry_points INTEGER,
    last_entry_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT cards_program_phone UNIQUE (program_id, phone),
    CONSTRAINT cards_program_referral_code UNIQUE (program_id, referral_code)
);
CREATE INDEX cards_push_pending ON cards (push_pending_since) WHERE push_pending_since IS NOT NULL;
CREATE TABLE ledger (
    id TEXT PRIMARY KEY,
    serial TEXT NOT NULL REFERENCES cards (serial),
    program_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    points INTEGER NOT NULL,
    purchase_amount INTEGER,
    balance_after INTEGER NOT NULL,
    lifetime_after INTEGER NOT NULL,
    tier_after TEXT NOT NULL,
    order_id TEXT,
    description TEXT,
    source TEXT NOT NULL,
    actor TEXT,
    idempotency_key TEXT,
    reverses TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (serial, seq)
);
CREATE UNIQUE INDEX ledger_reverses ON ledger (reverses) WHERE reverses IS NOT NULL;
"#,
    r#"
CREATE TABLE registrations (
    device_library_id TEXT NOT NULL,
    pass_type_id TEXT NOT NULL,
    serial TEXT NOT NULL REFERENCES cards (serial),
    push_token TEXT NOT NULL,
    pushed_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_library_id, pass_type_id, serial)
);
CREATE INDEX registrations_serial ON registrations (serial);
CREATE INDEX registrations_push_token ON registrations (push_token);
"#,
];

const CARD_COLUMNS: &str = "serial, program_id, card_number, barcode, card_key, auth_token, referral_code, \
    referred_by, first_name, last_name, phone, email, birthday, locale, consent_at, status, balance, \
    lifetime_earned, tier, version, pushed_version, push_pending_since, modified_at, last_entry_kind, \
    last_entry_points, last_entry_at, created_at, updated_at";

const ENTRY_COLUMNS: &str = "id, serial, program_id, seq, kind, points, purchase_amount, balance_after, \
    lifetime_after, tier_after, order_id, description, source, actor, idempotency_key, reverses, created_at";

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    pub fn open(path: &Path, synchronous_full: bool, faults: Arc<Faults>) -> anyhow::Result<Self> {
        use anyhow::Context;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("while creating the data directory {}", dir.display()))?;
        }
        let mut writer = open_connection(path, synchronous_full)
            .with_context(|| format!("while opening the database {}", path.display()))?;
        migrate(&mut writer).with_context(|| format!("while upgrading the schema of {}", path.display()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                synchronous_full,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                faults,
            }),
        })
    }

    pub fn faults(&self) -> &Arc<Faults> {
        &self.inner.faults
    }

    /// Runs `f` in one immediate (write-locking) transaction and commits it.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Faults) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        run_blocking(move || {
            inner.faults.step()?;
            let mut conn = inner.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
            let value = f(&tx, &inner.faults)?;
            inner.faults.step()?;
            tx.commit().map_err(sql)?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` on a pooled read connection.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        run_blocking(move || {
            inner.faults.step()?;
            let pooled = inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path, inner.synchronous_full).map_err(sql)?,
            };
            let result = f(&conn);
            let mut readers = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if readers.len() < 8 {
                readers.push(conn);
            }
            result
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(StoreError::unavailable)?
}

fn open_connection(path: &Path, synchronous_full: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit reaches the disk before it is acknowledged (no point is lost on power
    // failure). NORMAL: commits survive a crash of loy but the last ones may be lost on power
    // failure; the database stays consistent either way.
    conn.pragma_update(None, "synchronous", if synchronous_full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Maps SQLite errors: unique violations become [`StoreError::Duplicate`], the rest unavailable.
fn sql(e: rusqlite::Error) -> StoreError {
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

const REGISTRATION_COLUMNS: &str =
    "device_library_id, pass_type_id, serial, push_token, pushed_version, created_at, updated_at";

/// The card columns qualified with the table alias `c.`, for joins.
fn card_columns_of_c() -> String {
    CARD_COLUMNS.split(", ").map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

fn registration_from_row(row: &Row<'_>) -> rusqlite::Result<RegistrationRecord> {
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

fn card_from_row(row: &Row<'_>) -> rusqlite::Result<CardRecord> {
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
    })
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<EntryRecord> {
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
    })
}

fn insert_card_row(tx: &Transaction<'_>, r: &CardRecord) -> StoreResult<()> {
    tx.execute(
        &format!("INSERT INTO cards ({CARD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)"),
        params![
            r.serial, r.program_id, r.card_number, r.barcode, r.card_key, r.auth_token, r.referral_code,
            r.referred_by, r.first_name, r.last_name, r.phone, r.email, r.birthday, r.locale, r.consent_at,
            r.status, r.balance, r.lifetime_earned, r.tier, r.version, r.pushed_version, r.push_pending_since,
            r.modified_at, r.last_entry_kind, r.last_entry_points, r.last_entry_at, r.created_at, r.updated_at,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

pub(super) fn insert_entry_row(tx: &Transaction<'_>, e: &EntryRecord) -> StoreResult<()> {
    tx.execute(
        &format!("INSERT INTO ledger ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
        params![
            e.id, e.serial, e.program_id, e.seq, e.kind, e.points, e.purchase_amount, e.balance_after,
            e.lifetime_after, e.tier_after, e.order_id, e.description, e.source, e.actor, e.idempotency_key,
            e.reverses, e.created_at,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> Backend {
        Backend::Embedded
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(sql)).await
    }

    async fn ensure_program(&self, program: &Program) -> StoreResult<Program> {
        let doc = serde_json::to_string(program).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id = program.id.clone();
        self.write(move |tx, _| {
            tx.execute("INSERT INTO programs (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING", params![id, doc])
                .map_err(sql)?;
            let stored: String =
                tx.query_row("SELECT doc FROM programs WHERE id = ?1", [&id], |r| r.get(0)).map_err(sql)?;
            serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(format!("program {id}: {e}")))
        })
        .await
    }

    async fn program(&self, id: &str) -> StoreResult<Option<Program>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT doc FROM programs WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            doc.map(|d| serde_json::from_str(&d).map_err(|e| StoreError::Corrupt(format!("program {id}: {e}"))))
                .transpose()
        })
        .await
    }

    async fn insert_card(&self, card: &Card, first_entry: &LedgerEntry) -> StoreResult<()> {
        let card = CardRecord::from(card);
        let entry = EntryRecord::from(first_entry);
        self.write(move |tx, faults| {
            insert_card_row(tx, &card)?;
            faults.step()?;
            insert_entry_row(tx, &entry)
        })
        .await
    }

    async fn find_card(&self, by: CardLookup<'_>) -> StoreResult<Option<Card>> {
        let (condition, values): (&str, Vec<String>) = match by {
            CardLookup::Serial(s) => ("serial = ?1", vec![s.as_str().to_owned()]),
            CardLookup::Key(k) => ("card_key = ?1", vec![k.to_owned()]),
            CardLookup::Number(n) => ("card_number = ?1", vec![n.as_str().to_owned()]),
            CardLookup::Barcode(b) => ("barcode = ?1", vec![b.to_owned()]),
            CardLookup::Phone { program_id, phone } => {
                ("program_id = ?1 AND phone = ?2", vec![program_id.to_owned(), phone.as_str().to_owned()])
            }
            CardLookup::ReferralCode { program_id, code } => {
                ("program_id = ?1 AND referral_code = ?2", vec![program_id.to_owned(), code.as_str().to_owned()])
            }
        };
        let query = format!("SELECT {CARD_COLUMNS} FROM cards WHERE {condition}");
        let record = self
            .read(move |conn| {
                conn.query_row(&query, rusqlite::params_from_iter(values.iter()), card_from_row).optional().map_err(sql)
            })
            .await?;
        record.map(Card::try_from).transpose()
    }

    async fn update_card(&self, card: &Card, expected_version: i64) -> StoreResult<bool> {
        let r = CardRecord::from(card);
        self.write(move |tx, _| {
            let changed = tx
                .execute(
                    "UPDATE cards SET first_name = ?1, last_name = ?2, phone = ?3, email = ?4, birthday = ?5, locale = ?6, \
                     consent_at = ?7, status = ?8, balance = ?9, lifetime_earned = ?10, tier = ?11, version = ?12, \
                     push_pending_since = ?13, modified_at = ?14, last_entry_kind = ?15, last_entry_points = ?16, \
                     last_entry_at = ?17, updated_at = ?18 WHERE serial = ?19 AND version = ?20",
                    params![
                        r.first_name, r.last_name, r.phone, r.email, r.birthday, r.locale, r.consent_at, r.status,
                        r.balance, r.lifetime_earned, r.tier, r.version, r.push_pending_since, r.modified_at,
                        r.last_entry_kind, r.last_entry_points, r.last_entry_at, r.updated_at, r.serial,
                        expected_version,
                    ],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn register_device(&self, registration: &Registration) -> StoreResult<RegisterOutcome> {
        let r = RegistrationRecord::from(registration);
        self.write(move |tx, faults| {
            tx.execute(
                "UPDATE registrations SET push_token = ?1, updated_at = ?2 WHERE device_library_id = ?3",
                params![r.push_token, r.updated_at, r.device_library_id],
            )
            .map_err(sql)?;
            faults.step()?;
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO registrations ({REGISTRATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT (device_library_id, pass_type_id, serial) DO NOTHING"
                    ),
                    params![
                        r.device_library_id,
                        r.pass_type_id,
                        r.serial,
                        r.push_token,
                        r.pushed_version,
                        r.created_at,
                        r.updated_at,
                    ],
                )
                .map_err(sql)?;
            Ok(if inserted == 1 { RegisterOutcome::Created } else { RegisterOutcome::Updated })
        })
        .await
    }

    async fn unregister_device(
        &self,
        device: &DeviceLibraryId,
        pass_type: &PassTypeId,
        serial: &SerialNumber,
    ) -> StoreResult<bool> {
        let keys = [device.as_str().to_owned(), pass_type.as_str().to_owned(), serial.as_str().to_owned()];
        self.write(move |tx, _| {
            let deleted = tx
                .execute(
                    "DELETE FROM registrations WHERE device_library_id = ?1 AND pass_type_id = ?2 AND serial = ?3",
                    rusqlite::params_from_iter(keys.iter()),
                )
                .map_err(sql)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn device_cards(&self, device: &DeviceLibraryId, pass_type: &PassTypeId) -> StoreResult<Vec<Card>> {
        let keys = [device.as_str().to_owned(), pass_type.as_str().to_owned()];
        let query = format!(
            "SELECT {} FROM cards c JOIN registrations r ON r.serial = c.serial \
             WHERE r.device_library_id = ?1 AND r.pass_type_id = ?2 ORDER BY c.serial",
            card_columns_of_c()
        );
        let records = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&query).map_err(sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(keys.iter()), card_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(Card::try_from).collect()
    }

    async fn card_registrations(&self, serial: &SerialNumber) -> StoreResult<Vec<Registration>> {
        let serial = serial.as_str().to_owned();
        let records = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE serial = ?1 ORDER BY device_library_id"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([serial], registration_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(Registration::try_from).collect()
    }

    async fn delete_registrations_with_token(&self, token: &PushToken) -> StoreResult<u64> {
        let token = token.expose().to_owned();
        self.write(move |tx, _| {
            let deleted = tx.execute("DELETE FROM registrations WHERE push_token = ?1", [token]).map_err(sql)?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let serial = serial.as_str().to_owned();
        let before = before_seq.unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let records = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {ENTRY_COLUMNS} FROM ledger WHERE serial = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map(params![serial, before, limit], entry_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(LedgerEntry::try_from).collect()
    }
}
