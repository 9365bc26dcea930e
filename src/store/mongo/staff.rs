//! Staff accounts, console sessions, login throttling, setup tokens and the audit log in the
//! MongoDB store. Each is a collection of its own; the audit log is only ever inserted into.

use async_trait::async_trait;
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{MongoStore, mongo};
use crate::domain::{AuditEntry, AuditFilter, StaffAccount, StaffSessionRecord};
use crate::store::records::{from_millis, millis};
use crate::store::staff_records::{AuditRecord, SessionRecord, StaffRecord};
use crate::store::{StaffStore, StoreResult};

#[async_trait]
impl StaffStore for MongoStore {
    async fn insert_staff(&self, staff: &StaffAccount) -> StoreResult<()> {
        self.faults.step()?;
        self.staff.insert_one(StaffRecord::from(staff)).await.map_err(mongo)?;
        Ok(())
    }

    async fn staff_by_id(&self, id: &str) -> StoreResult<Option<StaffAccount>> {
        self.faults.step()?;
        let record = self.staff.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        record.map(StaffAccount::try_from).transpose()
    }

    async fn staff_by_email(&self, email: &str) -> StoreResult<Option<StaffAccount>> {
        self.faults.step()?;
        let record = self.staff.find_one(doc! { "email": email }).await.map_err(mongo)?;
        record.map(StaffAccount::try_from).transpose()
    }

    async fn staff_list(&self) -> StoreResult<Vec<StaffAccount>> {
        self.faults.step()?;
        let records: Vec<StaffRecord> = self
            .staff
            .find(doc! {})
            .sort(doc! { "email": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        records.into_iter().map(StaffAccount::try_from).collect()
    }

    async fn update_staff(&self, staff: &StaffAccount) -> StoreResult<bool> {
        self.faults.step()?;
        let r = StaffRecord::from(staff);
        let result = self
            .staff
            .update_one(
                doc! { "_id": &r.id },
                doc! { "$set": {
                    "role": &r.role, "password_hash": &r.password_hash, "disabled": r.disabled,
                    "totp_secret": &r.totp_secret, "recovery_codes": &r.recovery_codes,
                    "last_login_at": r.last_login_at,
                } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn record_staff_login(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.faults.step()?;
        self.staff
            .update_one(doc! { "_id": id }, doc! { "$set": { "last_login_at": millis(at) } })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn use_recovery_code(&self, id: &str, code_hash: &str) -> StoreResult<bool> {
        self.faults.step()?;
        // One single-document update: only the caller that still finds the code removes it.
        let result = self
            .staff
            .update_one(
                doc! { "_id": id, "recovery_codes": code_hash },
                doc! { "$pull": { "recovery_codes": code_hash } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.modified_count == 1)
    }

    async fn insert_staff_session(&self, session: &StaffSessionRecord) -> StoreResult<()> {
        self.faults.step()?;
        self.staff_sessions.insert_one(SessionRecord::from(session)).await.map_err(mongo)?;
        Ok(())
    }

    async fn staff_session(&self, id_hash: &str) -> StoreResult<Option<StaffSessionRecord>> {
        self.faults.step()?;
        let record = self.staff_sessions.find_one(doc! { "_id": id_hash }).await.map_err(mongo)?;
        record.map(StaffSessionRecord::try_from).transpose()
    }

    async fn touch_staff_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.faults.step()?;
        self.staff_sessions
            .update_one(doc! { "_id": id_hash }, doc! { "$set": { "last_seen_at": millis(at) } })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn delete_staff_session(&self, id_hash: &str) -> StoreResult<()> {
        self.faults.step()?;
        self.staff_sessions.delete_one(doc! { "_id": id_hash }).await.map_err(mongo)?;
        Ok(())
    }

    async fn delete_staff_sessions_of(&self, staff_id: &str) -> StoreResult<u64> {
        self.faults.step()?;
        let result = self.staff_sessions.delete_many(doc! { "staff_id": staff_id }).await.map_err(mongo)?;
        Ok(result.deleted_count)
    }

    async fn delete_stale_staff_sessions(
        &self,
        staff_id: &str,
        seen_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.faults.step()?;
        let result = self
            .staff_sessions
            .delete_many(doc! {
                "staff_id": staff_id,
                "$or": [ { "last_seen_at": { "$lt": millis(seen_before) } }, { "created_at": { "$lt": millis(created_before) } } ],
            })
            .await
            .map_err(mongo)?;
        Ok(result.deleted_count)
    }

    async fn record_login_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.faults.step()?;
        self.login_failures
            .delete_many(doc! { "key": key, "at": { "$lt": millis(forget_before) } })
            .await
            .map_err(mongo)?;
        self.login_failures.insert_one(doc! { "key": key, "at": millis(at) }).await.map_err(mongo)?;
        Ok(())
    }

    async fn login_failures(&self, key: &str, since: DateTime<Utc>) -> StoreResult<Vec<DateTime<Utc>>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .login_failures
            .find(doc! { "key": key, "at": { "$gte": millis(since) } })
            .sort(doc! { "at": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter()
            .map(|d| {
                let at =
                    d.get_i64("at").map_err(|e| crate::store::StoreError::Corrupt(format!("login failure: {e}")))?;
                from_millis(at)
            })
            .collect()
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        self.faults.step()?;
        self.login_failures.delete_many(doc! { "key": key }).await.map_err(mongo)?;
        Ok(())
    }

    async fn insert_setup_token(&self, hash: &str, expires_at: DateTime<Utc>) -> StoreResult<()> {
        self.faults.step()?;
        self.setup_tokens.insert_one(doc! { "_id": hash, "expires_at": millis(expires_at) }).await.map_err(mongo)?;
        Ok(())
    }

    async fn setup_token_valid(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.faults.step()?;
        let found = self
            .setup_tokens
            .find_one(doc! { "_id": hash, "expires_at": { "$gt": millis(now) } })
            .await
            .map_err(mongo)?;
        Ok(found.is_some())
    }

    async fn take_setup_token(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .setup_tokens
            .delete_one(doc! { "_id": hash, "expires_at": { "$gt": millis(now) } })
            .await
            .map_err(mongo)?;
        Ok(result.deleted_count == 1)
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.faults.step()?;
        self.audit.insert_one(AuditRecord::from(entry)).await.map_err(mongo)?;
        Ok(())
    }

    async fn audit_entries(&self, filter: &AuditFilter, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        self.faults.step()?;
        let mut conditions: Vec<Document> = Vec::new();
        if let Some(staff_id) = &filter.staff_id {
            conditions.push(doc! { "staff_id": staff_id });
        }
        if let Some(action) = &filter.action {
            conditions.push(doc! { "action": action });
        }
        if let Some(from) = filter.from {
            conditions.push(doc! { "at": { "$gte": millis(from) } });
        }
        if let Some(until) = filter.until {
            conditions.push(doc! { "at": { "$lt": millis(until) } });
        }
        if let Some((at, id)) = &filter.before {
            let at = millis(*at);
            conditions.push(doc! { "$or": [ { "at": { "$lt": at } }, { "at": at, "_id": { "$lt": id } } ] });
        }
        let query = if conditions.is_empty() {
            doc! {}
        } else {
            doc! { "$and": conditions }
        };
        let records: Vec<AuditRecord> = self
            .audit
            .find(query)
            .sort(doc! { "at": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        records.into_iter().map(AuditEntry::try_from).collect()
    }

    async fn count_cards(&self) -> StoreResult<u64> {
        self.faults.step()?;
        self.cards.estimated_document_count().await.map_err(mongo)
    }
}
