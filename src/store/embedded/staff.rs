//! Staff accounts, console sessions, login throttling, setup tokens and the audit log in the
//! embedded store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::{EmbeddedStore, sql};
use crate::domain::{AuditEntry, AuditFilter, StaffAccount, StaffSessionRecord};
use crate::store::records::{from_millis, millis};
use crate::store::staff_records::{AuditRecord, SessionRecord, StaffRecord};
use crate::store::{StaffStore, StoreError, StoreResult};

const STAFF_COLUMNS: &str =
    "id, email, role, password_hash, disabled, totp_secret, recovery_codes, created_at, last_login_at";
const SESSION_COLUMNS: &str = "id_hash, staff_id, csrf, mfa_pending, created_at, last_seen_at";
const AUDIT_COLUMNS: &str = "id, at, staff_id, staff_email, address, action, target, details";

fn staff_from_row(row: &Row<'_>) -> rusqlite::Result<(StaffRecord, String)> {
    Ok((
        StaffRecord {
            id: row.get(0)?,
            email: row.get(1)?,
            role: row.get(2)?,
            password_hash: row.get(3)?,
            disabled: row.get(4)?,
            totp_secret: row.get(5)?,
            recovery_codes: Vec::new(),
            created_at: row.get(7)?,
            last_login_at: row.get(8)?,
        },
        row.get(6)?,
    ))
}

fn staff_of(row: (StaffRecord, String)) -> StoreResult<StaffAccount> {
    let (mut record, codes) = row;
    record.recovery_codes =
        serde_json::from_str(&codes).map_err(|e| StoreError::Corrupt(format!("staff recovery codes: {e}")))?;
    StaffAccount::try_from(record)
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id_hash: row.get(0)?,
        staff_id: row.get(1)?,
        csrf: row.get(2)?,
        mfa_pending: row.get(3)?,
        created_at: row.get(4)?,
        last_seen_at: row.get(5)?,
    })
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: row.get(0)?,
        at: row.get(1)?,
        staff_id: row.get(2)?,
        staff_email: row.get(3)?,
        address: row.get(4)?,
        action: row.get(5)?,
        target: row.get(6)?,
        details: row.get(7)?,
    })
}

fn codes_json(codes: &[String]) -> String {
    serde_json::to_string(codes).unwrap_or_else(|_| "[]".to_owned())
}

#[async_trait]
impl StaffStore for EmbeddedStore {
    async fn insert_staff(&self, staff: &StaffAccount) -> StoreResult<()> {
        let r = StaffRecord::from(staff);
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO staff ({STAFF_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    r.id,
                    r.email,
                    r.role,
                    r.password_hash,
                    r.disabled,
                    r.totp_secret,
                    codes_json(&r.recovery_codes),
                    r.created_at,
                    r.last_login_at
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn staff_by_id(&self, id: &str) -> StoreResult<Option<StaffAccount>> {
        let id = id.to_owned();
        let row = self
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = ?1"))
                    .map_err(sql)?
                    .query_row([id], staff_from_row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        row.map(staff_of).transpose()
    }

    async fn staff_by_email(&self, email: &str) -> StoreResult<Option<StaffAccount>> {
        let email = email.to_owned();
        let row = self
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {STAFF_COLUMNS} FROM staff WHERE email = ?1"))
                    .map_err(sql)?
                    .query_row([email], staff_from_row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        row.map(staff_of).transpose()
    }

    async fn staff_list(&self) -> StoreResult<Vec<StaffAccount>> {
        let rows = self
            .read(|conn| {
                let mut stmt =
                    conn.prepare(&format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY email")).map_err(sql)?;
                let rows = stmt.query_map([], staff_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(staff_of).collect()
    }

    async fn update_staff(&self, staff: &StaffAccount) -> StoreResult<bool> {
        let r = StaffRecord::from(staff);
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE staff SET role = ?1, password_hash = ?2, disabled = ?3, totp_secret = ?4, \
                     recovery_codes = ?5, last_login_at = ?6 WHERE id = ?7",
                    params![
                        r.role,
                        r.password_hash,
                        r.disabled,
                        r.totp_secret,
                        codes_json(&r.recovery_codes),
                        r.last_login_at,
                        r.id
                    ],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn record_staff_login(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            conn.execute("UPDATE staff SET last_login_at = ?1 WHERE id = ?2", params![millis(at), id]).map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn use_recovery_code(&self, id: &str, code_hash: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        let code_hash = code_hash.to_owned();
        // Read and write in one transaction of the single writer: two uses cannot both win.
        self.write(move |conn, _| {
            let codes: Option<String> = conn
                .query_row("SELECT recovery_codes FROM staff WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            let Some(codes) = codes else { return Ok(false) };
            let mut codes: Vec<String> =
                serde_json::from_str(&codes).map_err(|e| StoreError::Corrupt(format!("staff recovery codes: {e}")))?;
            let Some(i) = codes.iter().position(|c| *c == code_hash) else { return Ok(false) };
            codes.remove(i);
            conn.execute("UPDATE staff SET recovery_codes = ?1 WHERE id = ?2", params![codes_json(&codes), id])
                .map_err(sql)?;
            Ok(true)
        })
        .await
    }

    async fn insert_staff_session(&self, session: &StaffSessionRecord) -> StoreResult<()> {
        let r = SessionRecord::from(session);
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO staff_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![r.id_hash, r.staff_id, r.csrf, r.mfa_pending, r.created_at, r.last_seen_at],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn staff_session(&self, id_hash: &str) -> StoreResult<Option<StaffSessionRecord>> {
        let id_hash = id_hash.to_owned();
        let record = self
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM staff_sessions WHERE id_hash = ?1"))
                    .map_err(sql)?
                    .query_row([id_hash], session_from_row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        record.map(StaffSessionRecord::try_from).transpose()
    }

    async fn touch_staff_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.write(move |conn, _| {
            conn.execute(
                "UPDATE staff_sessions SET last_seen_at = ?1 WHERE id_hash = ?2",
                params![millis(at), id_hash],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn delete_staff_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM staff_sessions WHERE id_hash = ?1", [id_hash]).map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn delete_staff_sessions_of(&self, staff_id: &str) -> StoreResult<u64> {
        let staff_id = staff_id.to_owned();
        self.write(move |conn, _| {
            let n = conn.execute("DELETE FROM staff_sessions WHERE staff_id = ?1", [staff_id]).map_err(sql)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_stale_staff_sessions(
        &self,
        staff_id: &str,
        seen_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let staff_id = staff_id.to_owned();
        self.write(move |conn, _| {
            let n = conn
                .execute(
                    "DELETE FROM staff_sessions WHERE staff_id = ?1 AND (last_seen_at < ?2 OR created_at < ?3)",
                    params![staff_id, millis(seen_before), millis(created_before)],
                )
                .map_err(sql)?;
            Ok(n as u64)
        })
        .await
    }

    async fn record_login_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM login_failures WHERE key = ?1 AND at < ?2", params![key, millis(forget_before)])
                .map_err(sql)?;
            conn.execute("INSERT INTO login_failures (key, at) VALUES (?1, ?2)", params![key, millis(at)])
                .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn login_failures(&self, key: &str, since: DateTime<Utc>) -> StoreResult<Vec<DateTime<Utc>>> {
        let key = key.to_owned();
        let times = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT at FROM login_failures WHERE key = ?1 AND at >= ?2 ORDER BY at")
                    .map_err(sql)?;
                let rows = stmt.query_map(params![key, millis(since)], |r| r.get::<_, i64>(0)).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        times.into_iter().map(from_millis).collect()
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM login_failures WHERE key = ?1", [key]).map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn insert_setup_token(&self, hash: &str, expires_at: DateTime<Utc>) -> StoreResult<()> {
        let hash = hash.to_owned();
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO setup_tokens (hash, expires_at) VALUES (?1, ?2)",
                params![hash, millis(expires_at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn setup_token_valid(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM setup_tokens WHERE hash = ?1 AND expires_at > ?2",
                params![hash, millis(now)],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sql)
        })
        .await
    }

    async fn take_setup_token(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let hash = hash.to_owned();
        self.write(move |conn, _| {
            let n = conn
                .execute("DELETE FROM setup_tokens WHERE hash = ?1 AND expires_at > ?2", params![hash, millis(now)])
                .map_err(sql)?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let r = AuditRecord::from(entry);
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![r.id, r.at, r.staff_id, r.staff_email, r.address, r.action, r.target, r.details],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn audit_entries(&self, filter: &AuditFilter, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let mut conditions = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(staff_id) = &filter.staff_id {
            values.push(Value::Text(staff_id.clone()));
            conditions.push(format!("staff_id = ?{}", values.len()));
        }
        if let Some(action) = &filter.action {
            values.push(Value::Text(action.clone()));
            conditions.push(format!("action = ?{}", values.len()));
        }
        if let Some(from) = filter.from {
            values.push(Value::Integer(millis(from)));
            conditions.push(format!("at >= ?{}", values.len()));
        }
        if let Some(until) = filter.until {
            values.push(Value::Integer(millis(until)));
            conditions.push(format!("at < ?{}", values.len()));
        }
        if let Some((at, id)) = &filter.before {
            values.push(Value::Integer(millis(*at)));
            let at_n = values.len();
            values.push(Value::Text(id.clone()));
            conditions.push(format!("(at < ?{at_n} OR (at = ?{at_n} AND id < ?{}))", values.len()));
        }
        values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let where_clause =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let query = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit {where_clause} ORDER BY at DESC, id DESC LIMIT ?{}",
            values.len()
        );
        let records = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&query).map_err(sql)?;
                let rows = stmt.query_map(params_from_iter(values), audit_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(AuditEntry::try_from).collect()
    }

    async fn count_cards(&self) -> StoreResult<u64> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM cards", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(sql)
        })
        .await
    }
}
