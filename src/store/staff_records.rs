//! How staff accounts, console sessions and audit entries are stored (both backends).

use serde::{Deserialize, Serialize};

use super::records::{from_millis, millis};
use super::{StoreError, StoreResult};
use crate::domain::{AuditEntry, Role, StaffAccount, StaffSessionRecord};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub disabled: bool,
    pub totp_secret: Option<String>,
    pub recovery_codes: Vec<String>,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

impl From<&StaffAccount> for StaffRecord {
    fn from(s: &StaffAccount) -> Self {
        Self {
            id: s.id.clone(),
            email: s.email.clone(),
            role: s.role.as_str().to_owned(),
            password_hash: s.password_hash.clone(),
            disabled: s.disabled,
            totp_secret: s.totp_secret.clone(),
            recovery_codes: s.recovery_codes.clone(),
            created_at: millis(s.created_at),
            last_login_at: s.last_login_at.map(millis),
        }
    }
}

impl TryFrom<StaffRecord> for StaffAccount {
    type Error = StoreError;

    fn try_from(r: StaffRecord) -> StoreResult<Self> {
        Ok(StaffAccount {
            role: Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt(format!("staff role `{}`", r.role)))?,
            created_at: from_millis(r.created_at)?,
            last_login_at: r.last_login_at.map(from_millis).transpose()?,
            id: r.id,
            email: r.email,
            password_hash: r.password_hash,
            disabled: r.disabled,
            totp_secret: r.totp_secret,
            recovery_codes: r.recovery_codes,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    #[serde(rename = "_id")]
    pub id_hash: String,
    pub staff_id: String,
    pub csrf: String,
    pub mfa_pending: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl From<&StaffSessionRecord> for SessionRecord {
    fn from(s: &StaffSessionRecord) -> Self {
        Self {
            id_hash: s.id_hash.clone(),
            staff_id: s.staff_id.clone(),
            csrf: s.csrf.clone(),
            mfa_pending: s.mfa_pending,
            created_at: millis(s.created_at),
            last_seen_at: millis(s.last_seen_at),
        }
    }
}

impl TryFrom<SessionRecord> for StaffSessionRecord {
    type Error = StoreError;

    fn try_from(r: SessionRecord) -> StoreResult<Self> {
        Ok(StaffSessionRecord {
            created_at: from_millis(r.created_at)?,
            last_seen_at: from_millis(r.last_seen_at)?,
            id_hash: r.id_hash,
            staff_id: r.staff_id,
            csrf: r.csrf,
            mfa_pending: r.mfa_pending,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub at: i64,
    pub staff_id: Option<String>,
    pub staff_email: String,
    pub address: String,
    pub action: String,
    pub target: Option<String>,
    /// JSON text.
    pub details: String,
}

impl From<&AuditEntry> for AuditRecord {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id.clone(),
            at: millis(e.at),
            staff_id: e.staff_id.clone(),
            staff_email: e.staff_email.clone(),
            address: e.address.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            details: e.details.to_string(),
        }
    }
}

impl TryFrom<AuditRecord> for AuditEntry {
    type Error = StoreError;

    fn try_from(r: AuditRecord) -> StoreResult<Self> {
        Ok(AuditEntry {
            at: from_millis(r.at)?,
            details: serde_json::from_str(&r.details)
                .map_err(|e| StoreError::Corrupt(format!("audit entry {} details: {e}", r.id)))?,
            id: r.id,
            staff_id: r.staff_id,
            staff_email: r.staff_email,
            address: r.address,
            action: r.action,
            target: r.target,
        })
    }
}
