//! Consistent copies of the embedded store while it is in use (`loy backup`, `loy restore`).
//!
//! A copy goes through SQLite's online backup API in a single step: the whole database is read
//! inside one read transaction, so the copy is one consistent moment of the store however much
//! the running server writes meanwhile (in WAL mode a reader never blocks the writer, and a
//! one-step backup never restarts). The copy is written to a temporary file beside the target
//! and renamed into place only once complete and checked, so a half-written file never looks
//! like a backup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::MIGRATIONS;

/// What a copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub cards: i64,
    pub entries: i64,
    pub bytes: u64,
}

/// Copies the database at `source` into the new file `target` (which must not exist).
pub fn backup(source: &Path, target: &Path) -> anyhow::Result<CopyReport> {
    if !source.exists() {
        bail!("there is no embedded store at {} (LOY_DATA_DIR)", source.display());
    }
    if target.exists() {
        bail!("{} exists already: a backup never overwrites a file", target.display());
    }
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("while opening {}", source.display()))?;
    from.busy_timeout(Duration::from_secs(30))?;
    copy(&from, target)
}

/// Restores the backup `file` as the database `target`, which must not exist yet.
pub fn restore(file: &Path, target: &Path) -> anyhow::Result<CopyReport> {
    if target.exists() {
        bail!(
            "{} exists already: restore into an empty LOY_DATA_DIR (move the current store away first)",
            target.display()
        );
    }
    let from = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("while opening {}", file.display()))?;
    let version: usize = from
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .with_context(|| format!("{} is not a loy backup (not an SQLite database)", file.display()))?;
    let has_cards: bool = from
        .query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'cards'", [], |r| r.get(0))
        .with_context(|| format!("{} is not a loy backup", file.display()))?;
    if !has_cards || version == 0 {
        bail!("{} is not a loy backup (no loy tables in it)", file.display());
    }
    if version > MIGRATIONS.len() {
        bail!("{} comes from a newer loy (schema {version}); upgrade loy before restoring it", file.display());
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
    }
    copy(&from, target)
}

/// Copies `from` into `target` through a temporary file, checks the copy, renames it in place.
fn copy(from: &Connection, target: &Path) -> anyhow::Result<CopyReport> {
    let partial = partial_path(target);
    let _ = std::fs::remove_file(&partial);
    {
        let mut to = Connection::open(&partial).with_context(|| format!("while creating {}", partial.display()))?;
        let backup = Backup::new(from, &mut to).context("while starting the copy")?;
        loop {
            // -1: every page in one step, inside one read transaction of the source.
            match backup.step(-1).context("while copying")? {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(50)),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    let report = check(&partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, target).with_context(|| format!("while moving the copy to {}", target.display()))?;
    Ok(report)
}

/// Checks a copy page by page and counts what it holds.
fn check(path: &Path) -> anyhow::Result<CopyReport> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        bail!("the copy failed its integrity check: {verdict}");
    }
    let cards = conn.query_row("SELECT count(*) FROM cards", [], |r| r.get(0))?;
    let entries = conn.query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))?;
    let bytes = std::fs::metadata(path)?.len();
    Ok(CopyReport { cards, entries, bytes })
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    target.with_file_name(name)
}
