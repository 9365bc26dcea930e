//! Credentials of machines that call loy: API keys (POS systems, integrations) and the shared
//! secrets of POS webhook sources.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::tokens::random_string;

const ID_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Look up cards, earn, redeem, reverse, list transactions.
    Pos,
    /// Everything a POS key may do, plus adjustments and blocking cards.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pos => "pos",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pos" => Some(Self::Pos),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Whether a key of this scope may call an endpoint that requires `required`.
    pub fn allows(self, required: Scope) -> bool {
        self == Scope::Admin || required == Scope::Pos
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored API key: everything but the secret, of which only a SHA-256 hash is kept (the
/// secret has 238 random bits, so a fast hash is as safe as a slow one and keeps every request
/// cheap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public part of the key, shown in lists and logs: 10 symbols.
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// Lowercase hex SHA-256 of the whole presented key.
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the key last authenticated a request, to the minute (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// The one program the key works with; `None` for every program. A limited key sees the
    /// cards of other programs as not existing and enrolls into its own program only.
    pub program_id: Option<String>,
}

/// A key as presented in `Authorization: Bearer loy_<id>_<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub id: String,
    full: String,
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}, …)", self.id)
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl ApiKey {
    /// A new key: the stored record and the plaintext, which is shown once and never again.
    pub fn generate(name: &str, scope: Scope, now: DateTime<Utc>) -> (ApiKey, String) {
        let id = random_string(ID_ALPHABET, 10);
        let plaintext = format!("loy_{id}_{}", random_string(SECRET_ALPHABET, 40));
        let key = ApiKey {
            id,
            name: name.to_owned(),
            scope,
            secret_hash: sha256_hex(&plaintext),
            created_at: super::card::stored_precision(now),
            revoked_at: None,
            last_used_at: None,
            program_id: None,
        };
        (key, plaintext)
    }

    /// Whether `presented` is this key, in constant time.
    pub fn verifies(&self, presented: &PresentedKey) -> bool {
        let hash = sha256_hex(&presented.full);
        bool::from(hash.as_bytes().ct_eq(self.secret_hash.as_bytes())) && presented.id == self.id
    }

    /// Whether the key may work with the cards of `program_id`.
    pub fn covers(&self, program_id: &str) -> bool {
        self.program_id.as_deref().is_none_or(|p| p == program_id)
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

impl PresentedKey {
    /// Parses `loy_<id>_<secret>`; `None` for anything else.
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix("loy_")?;
        let (id, secret) = rest.split_once('_')?;
        let shaped = id.len() == 10
            && id.bytes().all(|b| ID_ALPHABET.contains(&b))
            && secret.len() == 40
            && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        shaped.then(|| Self { id: id.to_owned(), full: token.to_owned() })
    }
}

/// A POS system that pushes purchases to `POST /api/v1/webhooks/pos`, signing each with its
/// shared secret (HMAC needs the secret itself, so it is stored, unlike API keys).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSource {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for WebhookSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSource").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

impl WebhookSource {
    pub fn generate(name: &str, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("src_{}", random_string(ID_ALPHABET, 10)),
            name: name.to_owned(),
            secret: format!("whsec_{}", random_string(SECRET_ALPHABET, 40)),
            created_at: super::card::stored_precision(now),
            revoked_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_verifies_and_nothing_else_does() {
        let (key, plaintext) = ApiKey::generate("Till 1", Scope::Pos, Utc::now());
        let presented = PresentedKey::parse(&plaintext).unwrap();
        assert_eq!(presented.id, key.id);
        assert!(key.verifies(&presented));
        assert!(!plaintext.contains(&key.secret_hash));

        let mut tampered = plaintext.clone();
        tampered.pop();
        tampered.push(if plaintext.ends_with('A') { 'B' } else { 'A' });
        assert!(!key.verifies(&PresentedKey::parse(&tampered).unwrap()));
        let (other, other_plaintext) = ApiKey::generate("Till 2", Scope::Pos, Utc::now());
        assert!(!key.verifies(&PresentedKey::parse(&other_plaintext).unwrap()));
        assert!(other.verifies(&PresentedKey::parse(&other_plaintext).unwrap()));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in ["", "loy_", "Bearer x", "loy_abc_def", &format!("loy_{}_{}", "a".repeat(10), "!".repeat(40))] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn admin_keys_may_do_what_pos_keys_may_but_not_the_reverse() {
        assert!(Scope::Admin.allows(Scope::Pos));
        assert!(Scope::Admin.allows(Scope::Admin));
        assert!(Scope::Pos.allows(Scope::Pos));
        assert!(!Scope::Pos.allows(Scope::Admin));
    }
}
