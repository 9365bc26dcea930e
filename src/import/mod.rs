//! CSV import and export of customers (SPEC §4.10).
//!
//! An import reads the whole file first ([`parse::parse_file`]): every bad line is reported
//! with its number and reason, and nothing is written for it. Each good line then becomes a
//! card whose first ledger entry is an `import` entry holding the opening balance, inserted
//! together with the card in one atomic store call. The entry's id is derived from the
//! program and the phone, and a phone that already has a card is skipped, so running the same
//! file again changes nothing, and running it again after a crash finishes the lines the crash
//! left without writing any twice.
//!
//! From the console, a file is uploaded and checked and imported in the background
//! ([`jobs`]); the customers an import created can then be sent their card link ([`links`]).

pub mod export;
pub mod jobs;
pub mod links;
pub mod parse;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::domain::card::{stored_precision, whole_second};
use crate::domain::{
    AuthToken, BarcodeValue, Card, CardKey, CardNumber, Customer, EntryKind, EntrySource, LastEntry, LedgerEntry,
    PhoneRegion, Program, ReferralCode, SerialNumber,
};
use crate::store::faults::points;
use crate::store::{CardLookup, Store, StoreError, StoreResult, UniqueKey};

pub use parse::{FileError, FileShape, ImportRow, LineError, ParsedFile, parse_file};

/// How many lines are written at once: the embedded store commits concurrent writes together,
/// so this is what batches them.
const CONCURRENCY: usize = 128;

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    /// The data lines of the file (blank lines not counted).
    pub lines: u64,
    pub created: u64,
    /// Cards found by phone whose holder gained details they lacked (an e-mail, a birthday, a
    /// last name). Their balance is never changed.
    pub updated: u64,
    /// Cards found by phone with nothing to add.
    pub skipped: u64,
    /// Bad lines, in line order.
    pub errors: Vec<LineError>,
    pub shape: Option<FileShape>,
}

/// What happened to one line.
enum Outcome {
    Created,
    Updated,
    Skipped,
    Failed(LineError),
    /// Not attempted: an earlier line's store call failed.
    NotRun,
}

/// Who runs the import, for the ledger entries it writes.
#[derive(Debug, Clone)]
pub struct ImportActor {
    pub source: EntrySource,
    /// The staff id, when staff run it from the console.
    pub id: Option<String>,
}

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The region of phone numbers written without a country code.
    pub region: PhoneRegion,
    /// Check and count only; write nothing.
    pub dry_run: bool,
    pub actor: ImportActor,
    pub now: DateTime<Utc>,
    /// The console import this run belongs to: named in each `import` entry's description, so
    /// the customers it created can be found again (to send them their card link).
    pub job: Option<String>,
}

/// Imports (or, with `dry_run`, only checks) a customer CSV file. `progress` is called with
/// (lines done, lines to do) as lines finish.
pub async fn import_customers(
    store: &dyn Store,
    program: &Program,
    bytes: &[u8],
    options: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ImportReport, ImportError> {
    let ImportOptions { region, dry_run, ref actor, now, ref job } = *options;
    let job = job.as_deref();
    let parsed = parse_file(bytes, program, region, now)?;
    let total = parsed.rows.len() as u64;
    let mut report = ImportReport {
        dry_run,
        lines: total + parsed.errors.len() as u64,
        shape: Some(parsed.shape),
        errors: parsed.errors,
        ..ImportReport::default()
    };
    let done = AtomicU64::new(0);
    // Progress about every 1 % of the file, and at least every 1000 lines.
    let step = (total / 100).clamp(1, 1000);
    // Once a line fails, no further line starts, and the lines in flight are let finish (a
    // store call dropped halfway is the one thing the MongoDB driver does not take well); the
    // first failure is then returned.
    let stopping = AtomicBool::new(false);
    let mut outcomes = futures_util::stream::iter(parsed.rows)
        .map(|row| {
            let (done, stopping) = (&done, &stopping);
            async move {
                if stopping.load(Ordering::SeqCst) {
                    return Ok(Outcome::NotRun);
                }
                let outcome = import_row(store, program, row, dry_run, actor, job, now).await;
                if outcome.is_err() {
                    stopping.store(true, Ordering::SeqCst);
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % step == 0 || n == total {
                    progress(n, total);
                }
                outcome
            }
        })
        .buffer_unordered(CONCURRENCY);
    let mut failure = None;
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(Outcome::Created) => report.created += 1,
            Ok(Outcome::Updated) => report.updated += 1,
            Ok(Outcome::Skipped) => report.skipped += 1,
            Ok(Outcome::Failed(e)) => report.errors.push(e),
            Ok(Outcome::NotRun) => {}
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    report.errors.sort_by_key(|e| e.line);
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("the store failed during the import; run it again to finish it")]
    Store(#[from] StoreError),
}

async fn import_row(
    store: &dyn Store,
    program: &Program,
    row: ImportRow,
    dry_run: bool,
    actor: &ImportActor,
    job: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<Outcome> {
    let line = row.line;
    let taken = |what: &str| Outcome::Failed(LineError { line, reason: format!("the {what} belongs to another card") });
    if dry_run {
        let lookup = CardLookup::Phone { program_id: &program.id, phone: &row.holder.phone };
        if let Some(card) = store.find_card(lookup).await? {
            return fill_in(store, card, &row.holder, true, now).await;
        }
        if let Some(number) = &row.card_number {
            if store.find_card(CardLookup::Number(number)).await?.is_some() {
                return Ok(taken("card number"));
            }
        }
        return Ok(Outcome::Created);
    }
    store.checkpoint(points::IMPORT_LINE)?;
    // Most lines are new customers: insert first (one store call) and look the phone up only
    // when it turns out to have a card already.
    let holder = row.holder.clone();
    let (card, entry) = imported_card(program, row, actor, job, now);
    match store.insert_card(&card, &entry).await {
        Ok(()) => Ok(Outcome::Created),
        Err(StoreError::Duplicate(UniqueKey::Phone)) => {
            let lookup = CardLookup::Phone { program_id: &program.id, phone: &holder.phone };
            match store.find_card(lookup).await? {
                Some(existing) => fill_in(store, existing, &holder, false, now).await,
                None => Ok(Outcome::Skipped),
            }
        }
        Err(StoreError::Duplicate(UniqueKey::CardNumber)) => Ok(taken("card number")),
        Err(StoreError::Duplicate(UniqueKey::Other)) => Ok(Outcome::Failed(LineError {
            line,
            reason: "this phone's card was imported before and its customer since deleted".into(),
        })),
        Err(e) => Err(e),
    }
}

/// Adds to an existing card's holder what the file knows and the card lacks; never changes the
/// balance or anything the card already has.
async fn fill_in(
    store: &dyn Store,
    card: Card,
    from: &Customer,
    dry_run: bool,
    now: DateTime<Utc>,
) -> StoreResult<Outcome> {
    let Some(holder) = &card.holder else { return Ok(Outcome::Skipped) };
    let mut filled = holder.clone();
    if filled.email.is_none() {
        filled.email.clone_from(&from.email);
    }
    if filled.birthday.is_none() {
        filled.birthday = from.birthday;
    }
    if filled.last_name.is_none() {
        filled.last_name.clone_from(&from.last_name);
    }
    if &filled == holder {
        return Ok(Outcome::Skipped);
    }
    if dry_run {
        return Ok(Outcome::Updated);
    }
    let next = Card { holder: Some(filled), ..card.bumped(now) };
    if store.update_card(&next, card.version).await? {
        Ok(Outcome::Updated)
    } else {
        // The card changed meanwhile; a re-run of the import fills it in then.
        Ok(Outcome::Skipped)
    }
}

/// The id of the `import` entry of the card for this phone: the same on every run.
pub fn import_entry_id(program_id: &str, phone: &str) -> String {
    let digest = Sha256::digest(format!("import\n{program_id}\n{phone}").as_bytes());
    format!("tx_imp_{}", &hex::encode(digest)[..32])
}

/// The description of the `import` entry of a line: `CSV import, line 12`, or with the console
/// import's id, `CSV import imp_…, line 12`.
pub fn entry_description(job: Option<&str>, line: u64) -> String {
    match job {
        Some(job) => format!("CSV import {job}, line {line}"),
        None => format!("CSV import, line {line}"),
    }
}

/// Whether an `import` entry's description names the console import `job`.
pub fn written_by_job(description: Option<&str>, job: &str) -> bool {
    description
        .and_then(|d| d.strip_prefix("CSV import "))
        .and_then(|d| d.strip_prefix(job))
        .is_some_and(|rest| rest.starts_with(','))
}

/// A new card for an imported line, with its opening balance as its first (`import`) entry.
pub fn imported_card(
    program: &Program,
    row: ImportRow,
    actor: &ImportActor,
    job: Option<&str>,
    now: DateTime<Utc>,
) -> (Card, LedgerEntry) {
    let now = stored_precision(now);
    let created_at = row.registered_at.map_or(now, stored_precision);
    let serial = SerialNumber::generate();
    let entry = LedgerEntry {
        id: import_entry_id(&program.id, row.holder.phone.as_str()),
        serial: serial.clone(),
        program_id: program.id.clone(),
        seq: 1,
        kind: EntryKind::Import,
        points: row.balance,
        rewards: 0,
        rewards_after: 0,
        purchase_amount: None,
        balance_after: row.balance,
        lifetime_after: row.lifetime,
        tier_after: row.tier.clone(),
        order_id: None,
        description: Some(entry_description(job, row.line)),
        source: actor.source,
        actor: actor.id.clone(),
        idempotency_key: None,
        reverses: None,
        created_at: now,
    };
    let card = Card {
        serial,
        program_id: program.id.clone(),
        card_number: row.card_number.unwrap_or_else(CardNumber::generate),
        barcode: BarcodeValue::generate(),
        card_key: CardKey::generate(),
        auth_token: AuthToken::generate(),
        referral_code: ReferralCode::generate(),
        referred_by: None,
        holder: Some(row.holder),
        status: row.status,
        balance: row.balance,
        lifetime_earned: row.lifetime,
        rewards: 0,
        tier: row.tier,
        version: 1,
        pushed_version: 1,
        push_pending_since: None,
        modified_at: whole_second(now),
        last_entry: Some(LastEntry { kind: EntryKind::Import, points: row.balance, at: now }),
        news: None,
        created_at,
        updated_at: now,
    };
    (card, entry)
}
