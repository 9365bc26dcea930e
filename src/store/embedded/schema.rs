//! The embedded store's schema: every change in order, and applying those a file lacks.

use rusqlite::{Connection, TransactionBehavior};

use super::webhooks;

/// Schema changes, applied in order; `PRAGMA user_version` records how many ran.
pub(in crate::store) const MIGRATIONS: &[&str] = &[
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
    r#"
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    status INTEGER,
    body TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_expires ON idempotency (expires_at);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE webhook_sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
"#,
    r#"
-- Every card's ledger starts with its welcome entry: cards from before the ledger get one
-- holding their balance, so the balance equals the sum of the entries from the start.
INSERT INTO ledger (id, serial, program_id, seq, kind, points, purchase_amount, balance_after, lifetime_after,
                    tier_after, order_id, description, source, actor, idempotency_key, reverses, created_at)
SELECT 'tx_opening_' || c.serial, c.serial, c.program_id, 0, 'welcome', c.balance, NULL, c.balance,
       c.lifetime_earned, c.tier, NULL, 'Opening balance', 'system', NULL, NULL, NULL, c.created_at
FROM cards c WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.serial = c.serial);
"#,
    r#"
CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    version INTEGER NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failure_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX dead_letters_created ON dead_letters (created_at);
"#,
    r#"
CREATE TABLE google_sync (
    serial TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    balance INTEGER,
    notified TEXT NOT NULL
);
"#,
    r#"
-- One-time data steps run at start (such as re-normalising stored phone numbers), by name.
CREATE TABLE data_steps (
    name TEXT PRIMARY KEY,
    done_at INTEGER NOT NULL
);
"#,
    r#"
-- The staff console: accounts, sessions (by the hash of their id), login throttling, the
-- first-owner setup token, the append-only audit log, and when each API key was last used.
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL,
    totp_secret TEXT,
    recovery_codes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_login_at INTEGER
);
CREATE TABLE staff_sessions (
    id_hash TEXT PRIMARY KEY,
    staff_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    mfa_pending INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
CREATE TABLE setup_tokens (
    hash TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    staff_id TEXT,
    staff_email TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    details TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_staff_at ON audit (staff_id, at, id);
CREATE INDEX audit_action_at ON audit (action, at, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
"#,
    // The staff console's customer search and list (see `store::customers` for which index
    // serves which query). `name_key` and `surname_key` are filled by `backfill_name_keys` right
    // after this migration (SQLite's lower() knows only ASCII); `activity_at` here.
    r#"
ALTER TABLE cards ADD COLUMN name_key TEXT;
ALTER TABLE cards ADD COLUMN surname_key TEXT;
ALTER TABLE cards ADD COLUMN activity_at INTEGER NOT NULL DEFAULT 0;
UPDATE cards SET activity_at = COALESCE(last_entry_at, created_at);
CREATE INDEX cards_program_email ON cards (program_id, email, created_at) WHERE email IS NOT NULL;
CREATE INDEX cards_program_name ON cards (program_id, name_key, serial);
CREATE INDEX cards_program_surname ON cards (program_id, surname_key, serial) WHERE surname_key IS NOT NULL;
CREATE INDEX cards_program_created ON cards (program_id, created_at, serial);
CREATE INDEX cards_program_balance ON cards (program_id, balance, serial);
CREATE INDEX cards_program_activity ON cards (program_id, activity_at, serial);
"#,
    // The e-mail outbox (`store::outbox`): due mails are found by state and next attempt time.
    r#"
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    serial TEXT NOT NULL,
    recipient TEXT NOT NULL,
    locale TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
CREATE INDEX mail_outbox_state_updated ON mail_outbox (state, updated_at);
"#,
    // Outgoing events: endpoints, the event outbox and deliveries (`store::webhooks`).
    webhooks::SCHEMA,
    // A card's push generation (`store::PushStore::mark_card_pushed`): moved on whenever the card
    // is made owed a push again, so that a job already running does not mark it pushed.
    r#"
ALTER TABLE cards ADD COLUMN push_generation INTEGER NOT NULL DEFAULT 0;
"#,
    // Imports started from the console (`store::imports`): the job (its report as JSON) and the
    // uploaded file in chunks until the import is done.
    r#"
CREATE TABLE import_jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX import_jobs_due ON import_jobs (state, lease_until);
CREATE INDEX import_jobs_created ON import_jobs (created_at);
CREATE TABLE import_files (
    job_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, n)
);
"#,
    // Programs edited in the panel (`store::programs`): published designs, the images designs
    // use (PNG by SHA-256), and cards by program for a publish's fan-out.
    r#"
CREATE TABLE design_versions (
    program_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (program_id, revision)
);
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    png BLOB NOT NULL
);
CREATE INDEX cards_program_serial ON cards (program_id, serial);
ALTER TABLE api_keys ADD COLUMN program_id TEXT;
"#,
    // Stamp cards (`domain::stamps`): the rewards waiting on a card, and what each entry did to them.
    r#"
ALTER TABLE cards ADD COLUMN rewards INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN rewards INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN rewards_after INTEGER NOT NULL DEFAULT 0;
"#,
    // Messages to the cards (`store::messages`): the message (its texts, audience and progress
    // as JSON), one send record per card, and the latest message on the card itself.
    r#"
ALTER TABLE cards ADD COLUMN news TEXT;
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    program_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    send_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX messages_due ON messages (state, send_at);
CREATE INDEX messages_program_created ON messages (program_id, created_at);
CREATE TABLE message_sends (
    message_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    apple TEXT NOT NULL,
    google TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (message_id, serial)
) WITHOUT ROWID;
"#,
    // Customer segments (`store::segments`): each computation's rows under its own time, the
    // program's current time, counts and computing lease in `segment_runs`.
    r#"
CREATE TABLE card_segments (
    serial TEXT NOT NULL,
    computed_at INTEGER NOT NULL,
    program_id TEXT NOT NULL,
    segment TEXT NOT NULL,
    r INTEGER NOT NULL,
    f INTEGER NOT NULL,
    m INTEGER NOT NULL,
    PRIMARY KEY (serial, computed_at)
);
CREATE INDEX card_segments_members ON card_segments (program_id, computed_at, segment, serial);
CREATE TABLE segment_runs (
    program_id TEXT PRIMARY KEY,
    computed_at INTEGER,
    took_ms INTEGER NOT NULL DEFAULT 0,
    cards INTEGER NOT NULL DEFAULT 0,
    counts TEXT NOT NULL DEFAULT '{}',
    requested_at INTEGER,
    lease_holder TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0
);
"#,
    // The dashboard (`store::stats`): a row per program and day adding up its ledger, read by
    // day; the present's counts as one JSON snapshot per program; the ledger by program and time
    // (a day is a range read) and cards by program and tier (each tier an indexed count).
    r#"
CREATE TABLE day_stats (
    program_id TEXT NOT NULL,
    day TEXT NOT NULL,
    registrations INTEGER NOT NULL,
    issued INTEGER NOT NULL,
    redeemed INTEGER NOT NULL,
    rewards_issued INTEGER NOT NULL,
    rewards_redeemed INTEGER NOT NULL,
    purchases INTEGER NOT NULL,
    revenue INTEGER NOT NULL,
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (program_id, day)
);
CREATE TABLE stats_snapshots (
    program_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE INDEX ledger_program_created ON ledger (program_id, created_at);
CREATE INDEX cards_program_tier ON cards (program_id, tier, status);
"#,
    // Passes added to and removed from the wallets (`store::wallet_events`): the append-only
    // record, read per program and day for the charts, and what Google last said per card.
    r#"
CREATE TABLE wallet_events (
    id TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    program_id TEXT NOT NULL,
    wallet TEXT NOT NULL,
    change TEXT NOT NULL,
    at INTEGER NOT NULL,
    day TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX wallet_events_program_day ON wallet_events (program_id, day, wallet, change);
CREATE INDEX wallet_events_serial_at ON wallet_events (serial, at);
CREATE TABLE google_wallet_state (
    serial TEXT PRIMARY KEY,
    saved INTEGER NOT NULL,
    at INTEGER NOT NULL
);
"#,
    // The day rows add up the day's wallet changes too. A row from before has none (NULL) and
    // counts as never computed, so the background task computes its day again.
    r#"
ALTER TABLE day_stats ADD COLUMN apple_installed INTEGER;
ALTER TABLE day_stats ADD COLUMN apple_removed INTEGER;
ALTER TABLE day_stats ADD COLUMN google_installed INTEGER;
ALTER TABLE day_stats ADD COLUMN google_removed INTEGER;
"#,
    // Days are the program's own, in its time zone: a day row records the zone it was computed
    // in (NULL, from before: UTC), and one of another zone is computed again. A day is a range
    // of time, so the wallet changes are read by program and time, as the ledger is.
    r#"
ALTER TABLE day_stats ADD COLUMN time_zone TEXT;
CREATE INDEX wallet_events_program_at ON wallet_events (program_id, at, wallet, change);
DROP INDEX wallet_events_program_day;
"#,
];

/// Marks the migration after which the name keys of existing cards are computed in Rust.
const NAME_KEYS_MARK: &str = "ADD COLUMN name_key";

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        if sql.contains(NAME_KEYS_MARK) {
            super::customers::backfill_name_keys(&tx)?;
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
