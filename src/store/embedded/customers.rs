//! The staff console's customer search and list in the embedded store (indexes: see
//! `store::customers`).

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{CARD_COLUMNS, EmbeddedStore, card_from_row, sql};
use crate::domain::{Card, Email};
use crate::store::customers::{CustomerListQuery, CustomerSort, CustomerStore, merge_by_name, prefix_end};
use crate::store::records::{CardRecord, name_keys};
use crate::store::{StoreError, StoreResult};

/// Computes `name_key` and `surname_key` of every card that has none (the cards from before
/// the column), inside the migration's transaction.
pub(super) fn backfill_name_keys(tx: &Connection) -> rusqlite::Result<()> {
    let mut read =
        tx.prepare("SELECT serial, first_name, last_name FROM cards WHERE name_key IS NULL AND status != 'deleted'")?;
    let rows = read
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut write = tx.prepare("UPDATE cards SET name_key = ?1, surname_key = ?2 WHERE serial = ?3")?;
    for (serial, first, last) in rows {
        let (name, surname) = name_keys(&first, last.as_deref());
        write.execute(params![name, surname, serial])?;
    }
    Ok(())
}

fn cards(conn: &Connection, query: &str, values: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<CardRecord>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql)?;
    let rows = stmt.query_map(values, card_from_row).map_err(sql)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn parse(records: Vec<CardRecord>) -> StoreResult<Vec<Card>> {
    records.into_iter().map(Card::try_from).collect()
}

#[async_trait]
impl CustomerStore for EmbeddedStore {
    async fn cards_by_email(&self, program_id: &str, email: &Email, limit: usize) -> StoreResult<Vec<Card>> {
        let (program_id, email) = (program_id.to_owned(), email.as_str().to_owned());
        let records = self
            .read(move |conn| {
                cards(
                    conn,
                    &format!(
                        "SELECT {CARD_COLUMNS} FROM cards \
                         WHERE program_id = ?1 AND email = ?2 ORDER BY created_at DESC LIMIT ?3"
                    ),
                    &[&program_id, &email, &limit_of(limit)],
                )
            })
            .await?;
        parse(records)
    }

    async fn cards_by_name_prefix(&self, program_id: &str, prefix: &str, limit: usize) -> StoreResult<Vec<Card>> {
        let (program_id, prefix) = (program_id.to_owned(), prefix.to_lowercase());
        let (by_name, by_surname) = self
            .read(move |conn| {
                let end = prefix_end(&prefix);
                let read = |column: &str| {
                    cards(
                        conn,
                        &format!(
                            "SELECT {CARD_COLUMNS} FROM cards WHERE program_id = ?1 AND {column} >= ?2 \
                             AND {column} < ?3 ORDER BY {column}, serial LIMIT ?4"
                        ),
                        &[&program_id, &prefix, &end, &limit_of(limit)],
                    )
                };
                Ok((read("name_key")?, read("surname_key")?))
            })
            .await?;
        Ok(merge_by_name(parse(by_name)?, parse(by_surname)?, limit))
    }

    async fn list_cards(&self, query: &CustomerListQuery<'_>) -> StoreResult<Vec<Card>> {
        let column = match query.sort {
            CustomerSort::Registered => "created_at",
            CustomerSort::Balance => "balance",
            CustomerSort::Activity => "activity_at",
        };
        let (order, compare) = if query.descending { ("DESC", "<") } else { ("ASC", ">") };
        let program_id = query.program_id.to_owned();
        let after = query.after.clone();
        let limit = limit_of(query.limit);
        let records = self
            .read(move |conn| match after {
                // A row-value comparison: SQLite reads the (program_id, column, serial) index
                // from the cursor on, never the rows before it.
                Some(after) => cards(
                    conn,
                    &format!(
                        "SELECT {CARD_COLUMNS} FROM cards WHERE program_id = ?1 AND ({column}, serial) {compare} (?2, ?3) \
                         ORDER BY {column} {order}, serial {order} LIMIT ?4"
                    ),
                    &[&program_id, &after.value, &after.serial, &limit],
                ),
                None => cards(
                    conn,
                    &format!(
                        "SELECT {CARD_COLUMNS} FROM cards WHERE program_id = ?1 \
                         ORDER BY {column} {order}, serial {order} LIMIT ?2"
                    ),
                    &[&program_id, &limit],
                ),
            })
            .await?;
        parse(records)
    }

    async fn count_card_devices(&self, serial: &str) -> StoreResult<u64> {
        let serial = serial.to_owned();
        self.read(move |conn| {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM registrations WHERE serial = ?1", [&serial], |r| r.get(0))
                .map_err(sql)?;
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("device count {n}")))
        })
        .await
    }
}

#[cfg(test)]
mod tests {

    /// The plan SQLite picks for each list and search query uses an index, never a scan of
    /// the cards table.
    #[test]
    fn every_customer_query_reads_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::open_connection(&dir.path().join("loy.sqlite"), false, 0).unwrap();
        super::super::migrate(&mut conn).unwrap();
        let plans = [
            "SELECT serial FROM cards WHERE program_id = 'p' AND (balance, serial) < (5, 's') ORDER BY balance DESC, serial DESC LIMIT 20",
            "SELECT serial FROM cards WHERE program_id = 'p' ORDER BY created_at DESC, serial DESC LIMIT 20",
            "SELECT serial FROM cards WHERE program_id = 'p' AND (activity_at, serial) > (5, 's') ORDER BY activity_at ASC, serial ASC LIMIT 20",
            "SELECT serial FROM cards WHERE program_id = 'p' AND name_key >= 'ан' AND name_key < 'ан\u{10FFFF}' ORDER BY name_key, serial LIMIT 20",
            "SELECT serial FROM cards WHERE program_id = 'p' AND surname_key >= 'ив' AND surname_key < 'ив\u{10FFFF}' ORDER BY surname_key, serial LIMIT 20",
            "SELECT serial FROM cards WHERE program_id = 'p' AND email = 'a@b.c' ORDER BY created_at DESC LIMIT 20",
        ];
        for query in plans {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join(" | ");
            assert!(plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"), "{query}: {plan}");
            assert!(!plan.contains("SCAN cards") || plan.contains("INDEX"), "{query}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{query} sorts in memory: {plan}");
        }
    }
}
