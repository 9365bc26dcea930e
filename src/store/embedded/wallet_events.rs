//! Wallet changes in the embedded store: one row per change (its id the primary key, so a
//! repeated report inserts nothing), the Google state per card written in the same transaction,
//! and the counts of a span of time read through the (program, time) index.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{EmbeddedStore, sql};
use crate::domain::SerialNumber;
use crate::store::records::{from_millis, millis};
use crate::store::{
    GoogleWalletState, StoreError, StoreResult, Wallet, WalletChange, WalletEvent, WalletEventStore, WalletSource,
    WalletTotals,
};

const DAY_FORMAT: &str = "%Y-%m-%d";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("wallet change: {what} has an invalid value `{value}`"))
}

/// A row of `wallet_events` as stored: id, serial, program, wallet, change, time, source.
type RawEvent = (String, String, String, String, String, i64, String);

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
}

fn event(raw: RawEvent) -> StoreResult<WalletEvent> {
    let (id, serial, program_id, wallet, change, at, source) = raw;
    Ok(WalletEvent {
        serial: SerialNumber::parse(&serial).map_err(|_| corrupt("serial", &serial))?,
        wallet: Wallet::parse(&wallet).ok_or_else(|| corrupt("wallet", &wallet))?,
        change: WalletChange::parse(&change).ok_or_else(|| corrupt("change", &change))?,
        source: WalletSource::parse(&source).ok_or_else(|| corrupt("source", &source))?,
        at: from_millis(at)?,
        id,
        program_id,
    })
}

#[async_trait]
impl WalletEventStore for EmbeddedStore {
    #[tracing::instrument(name = "store.record_wallet_event", skip_all)]
    async fn record_wallet_event(&self, event: &WalletEvent) -> StoreResult<bool> {
        let e = event.clone();
        self.write(move |tx, _| {
            let at = millis(e.at);
            let inserted = tx
                .execute(
                    "INSERT INTO wallet_events (id, serial, program_id, wallet, change, at, day, source) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
                    params![
                        e.id,
                        e.serial.as_str(),
                        e.program_id,
                        e.wallet.as_str(),
                        e.change.as_str(),
                        at,
                        e.day().format(DAY_FORMAT).to_string(),
                        e.source.as_str()
                    ],
                )
                .map_err(sql)?;
            if inserted == 0 {
                return Ok(false);
            }
            if e.wallet == Wallet::Google {
                tx.execute(
                    "INSERT INTO google_wallet_state (serial, saved, at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (serial) DO UPDATE SET saved = excluded.saved, at = excluded.at \
                     WHERE excluded.at >= google_wallet_state.at",
                    params![e.serial.as_str(), e.change == WalletChange::Installed, at],
                )
                .map_err(sql)?;
            }
            Ok(true)
        })
        .await
    }

    #[tracing::instrument(name = "store.wallet_totals", skip_all)]
    async fn wallet_totals(
        &self,
        program_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<WalletTotals> {
        let (program, from, to) = (program_id.to_owned(), millis(from), millis(to));
        let rows: Vec<(String, String, i64)> = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT wallet, change, COUNT(*) FROM wallet_events INDEXED BY wallet_events_program_at \
                         WHERE program_id = ?1 AND at >= ?2 AND at < ?3 GROUP BY wallet, change",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map(params![program, from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        let mut totals = WalletTotals::default();
        for (wallet, change, n) in rows {
            totals.add(
                Wallet::parse(&wallet).ok_or_else(|| corrupt("wallet", &wallet))?,
                WalletChange::parse(&change).ok_or_else(|| corrupt("change", &change))?,
                u64::try_from(n).unwrap_or(0),
            );
        }
        Ok(totals)
    }

    async fn google_wallet_state(&self, serial: &SerialNumber) -> StoreResult<Option<GoogleWalletState>> {
        let serial = serial.as_str().to_owned();
        let row: Option<(bool, i64)> = self
            .read(move |conn| {
                conn.query_row("SELECT saved, at FROM google_wallet_state WHERE serial = ?1", [serial], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(sql)
            })
            .await?;
        row.map(|(saved, at)| Ok(GoogleWalletState { saved, at: from_millis(at)? })).transpose()
    }

    async fn card_wallet_events(&self, serial: &SerialNumber, limit: usize) -> StoreResult<Vec<WalletEvent>> {
        let (serial, limit) = (serial.as_str().to_owned(), i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, serial, program_id, wallet, change, at, source FROM wallet_events \
                         WHERE serial = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
                    )
                    .map_err(sql)?;
                let rows = stmt.query_map(params![serial, limit], event_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(event).collect()
    }
}
