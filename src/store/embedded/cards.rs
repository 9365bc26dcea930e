//! Programs and cards in the embedded store.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{CARD_COLUMNS, EmbeddedStore, card_from_row, insert_card_row, insert_entry_row, sql, update_card_row};
use crate::domain::{Card, LedgerEntry, Program, SerialNumber};
use crate::store::records::{CardRecord, EntryRecord};
use crate::store::{Backend, CardLookup, CardStore, StoreError, StoreResult};

/// One card's lookup as a query, owned so it can move to a database thread.
pub(super) struct Lookup {
    query: String,
    values: Vec<String>,
}

impl Lookup {
    pub(super) fn of(by: CardLookup<'_>) -> Self {
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
        Self { query: format!("SELECT {CARD_COLUMNS} FROM cards WHERE {condition}"), values }
    }

    pub(super) fn card(&self, conn: &Connection) -> StoreResult<Option<CardRecord>> {
        conn.query_row(&self.query, rusqlite::params_from_iter(self.values.iter()), card_from_row)
            .optional()
            .map_err(sql)
    }
}

#[async_trait]
impl CardStore for EmbeddedStore {
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
        let events = crate::webhooks::events::new_card(card, first_entry);
        let card = CardRecord::from(card);
        let entry = EntryRecord::from(first_entry);
        self.write(move |tx, faults| {
            insert_card_row(tx, &card)?;
            faults.step()?;
            insert_entry_row(tx, &entry)?;
            super::webhooks::insert_event_rows(tx, &events)
        })
        .await
    }

    async fn find_card(&self, by: CardLookup<'_>) -> StoreResult<Option<Card>> {
        let lookup = Lookup::of(by);
        let record = self.read(move |conn| lookup.card(conn)).await?;
        record.map(Card::try_from).transpose()
    }

    async fn update_card(&self, card: &Card, expected_version: i64) -> StoreResult<bool> {
        let record = CardRecord::from(card);
        self.write(move |conn, _| update_card_row(conn, &record, expected_version)).await
    }

    /// Only these columns, so that the card's other indexes (name, balance, activity...) are
    /// left as they are: a full row update rewrites an entry in each.
    async fn put_news(&self, cards: &[(Card, i64)]) -> StoreResult<Vec<bool>> {
        if cards.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<(CardRecord, i64)> = cards.iter().map(|(c, v)| (CardRecord::from(c), *v)).collect();
        self.write(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE cards SET version = ?1, modified_at = ?2, push_pending_since = ?3, updated_at = ?4, \
                     news = ?5 WHERE serial = ?6 AND version = ?7",
                )
                .map_err(sql)?;
            records
                .iter()
                .map(|(r, expected)| {
                    let changed = stmt
                        .execute(params![
                            r.version,
                            r.modified_at,
                            r.push_pending_since,
                            r.updated_at,
                            r.news,
                            r.serial,
                            expected
                        ])
                        .map_err(sql)?;
                    Ok(changed == 1)
                })
                .collect()
        })
        .await
    }

    async fn cards_after(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<Card>> {
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let records = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {CARD_COLUMNS} FROM cards WHERE serial > ?1 ORDER BY serial LIMIT ?2"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map(params![after, limit], card_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(Card::try_from).collect()
    }
}
