//! Device registrations (PassKit web service) in the embedded store.

use async_trait::async_trait;
use rusqlite::params;

use super::{EmbeddedStore, REGISTRATION_COLUMNS, card_columns_of_c, card_from_row, registration_from_row, sql};
use crate::domain::{Card, DeviceLibraryId, PassTypeId, PushToken, RegisterOutcome, Registration, SerialNumber};
use crate::store::records::RegistrationRecord;
use crate::store::{DeviceStore, StoreResult};

#[async_trait]
impl DeviceStore for EmbeddedStore {
    async fn register_device(&self, registration: &Registration, max_per_pass: u32) -> StoreResult<RegisterOutcome> {
        let r = RegistrationRecord::from(registration);
        // One transaction of the single writer: the count and the insert cannot interleave with
        // another registration.
        self.write(move |tx, faults| {
            let updated = tx
                .execute(
                    "UPDATE registrations SET push_token = ?1, updated_at = ?2 \
                     WHERE device_library_id = ?3 AND pass_type_id = ?4 AND serial = ?5",
                    params![r.push_token, r.updated_at, r.device_library_id, r.pass_type_id, r.serial],
                )
                .map_err(sql)?;
            if updated > 0 {
                return Ok(RegisterOutcome::Updated);
            }
            faults.step()?;
            let devices: i64 = tx
                .query_row("SELECT COUNT(*) FROM registrations WHERE serial = ?1", params![r.serial], |row| row.get(0))
                .map_err(sql)?;
            if devices >= i64::from(max_per_pass) {
                return Ok(RegisterOutcome::Full);
            }
            tx.execute(
                &format!("INSERT INTO registrations ({REGISTRATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
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
            Ok(RegisterOutcome::Created)
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
        let query =
            format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE serial = ?1 ORDER BY device_library_id");
        self.read(move |conn| registrations(conn, &query, &serial))
            .await?
            .into_iter()
            .map(Registration::try_from)
            .collect()
    }

    async fn delete_registrations_with_token(&self, token: &PushToken) -> StoreResult<Vec<Registration>> {
        let token = token.expose().to_owned();
        let query = format!("DELETE FROM registrations WHERE push_token = ?1 RETURNING {REGISTRATION_COLUMNS}");
        self.write(move |tx, _| registrations(tx, &query, &token))
            .await?
            .into_iter()
            .map(Registration::try_from)
            .collect()
    }
}

/// The registrations `query` (with `param` as `?1`) selects or returns.
fn registrations(conn: &rusqlite::Connection, query: &str, param: &str) -> StoreResult<Vec<RegistrationRecord>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql)?;
    let rows = stmt.query_map([param], registration_from_row).map_err(sql)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
}
