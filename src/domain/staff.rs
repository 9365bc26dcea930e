//! People who run the business in the staff console (`/admin`): their accounts, roles, console
//! sessions and the audit log of what they did.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::tokens::{fill_random, random_string};

/// What a staff member may do; each role may do everything the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The cashier screen only.
    Cashier,
    /// Customers, balance corrections, the audit log (read).
    Manager,
    /// Everything: staff accounts, API keys, webhook sources.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Manager, Role::Cashier];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cashier => "cashier",
            Self::Manager => "manager",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cashier" => Some(Self::Cashier),
            "manager" => Some(Self::Manager),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A staff account. The e-mail is stored in lower case: it is unique whatever its case.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffAccount {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    /// The shared TOTP secret in base32, once the second factor is enrolled.
    pub totp_secret: Option<String>,
    /// SHA-256 (hex) of each unused recovery code.
    pub recovery_codes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for StaffAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffAccount")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl StaffAccount {
    /// A new active account with a password hash made by the caller.
    pub fn new(email: &str, role: Role, password_hash: String, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("stf_{}", random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 12)),
            email: normalize_email(email),
            role,
            password_hash,
            disabled: false,
            totp_secret: None,
            recovery_codes: Vec::new(),
            created_at: super::card::stored_precision(now),
            last_login_at: None,
        }
    }

    pub fn totp_enabled(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// The form staff e-mails are compared in: trimmed, lower case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A console session as stored: only the SHA-256 of the cookie value is kept, so a copy of the
/// store does not let anyone in.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffSessionRecord {
    pub id_hash: String,
    pub staff_id: String,
    /// The CSRF token every state-changing request of this session must carry.
    pub csrf: String,
    /// The password was right but the second factor is still owed: good for nothing else.
    pub mfa_pending: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl fmt::Debug for StaffSessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffSessionRecord").field("staff_id", &self.staff_id).finish_non_exhaustive()
    }
}

/// A random secret of 256 bits in hex (session ids, CSRF tokens, setup tokens).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 in lower-case hex: how session ids, setup tokens and recovery codes are stored.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The staff member who acted (`None` for a failed login to an unknown account, or the CLI).
    pub staff_id: Option<String>,
    pub staff_email: String,
    /// The client address the request came from (`cli` for the command line).
    pub address: String,
    /// `login`, `staff_added`, `earn`, … (an open set: later screens add their own).
    pub action: String,
    /// What was acted on: a staff id, a key id, a card number.
    pub target: Option<String>,
    /// The values that matter, before and after.
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// A new id that sorts after earlier ones made in the same millisecond no better than
    /// randomly; pagination orders by (time, id) so it stays stable.
    pub fn new_id() -> String {
        format!("aud_{}", random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 16))
    }
}

/// Which audit entries to list: every condition set must hold. Newest first, a page at a time:
/// `before` is the (time, id) of the last entry of the previous page.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub staff_id: Option<String>,
    pub action: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    pub before: Option<(DateTime<Utc>, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power_and_parse_in_any_case() {
        assert!(Role::Owner > Role::Manager && Role::Manager > Role::Cashier);
        assert_eq!(Role::parse(" Owner "), Some(Role::Owner));
        assert_eq!(Role::parse("root"), None);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn emails_compare_in_lower_case() {
        let a = StaffAccount::new(" Anna@Shop.Example ", Role::Owner, String::new(), Utc::now());
        assert_eq!(a.email, "anna@shop.example");
        assert!(!format!("{a:?}").contains("anna"), "no personal data in debug output");
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
