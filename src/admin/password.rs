//! Staff passwords: argon2id hashes (the `argon2` crate's defaults: 19 MiB, 2 passes), computed
//! off the async threads, and generated passwords for "shown once" screens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::domain::tokens::{fill_random, random_string};

/// The shortest password a person may choose.
pub const MIN_LENGTH: usize = 10;

/// Letters and digits that cannot be confused with one another when read aloud or copied.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A new random password (16 symbols, about 93 bits).
pub fn generate() -> String {
    random_string(ALPHABET, 16)
}

/// Whether a chosen password is acceptable: `Err` names the catalog's error key.
pub fn check(password: &str) -> Result<(), &'static str> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        Err("password_short")
    } else if length > 256 {
        Err("password_long")
    } else {
        Ok(())
    }
}

/// The argon2id PHC string of `password`.
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))?;
    Ok(hash.to_string())
}

/// Hashes on the blocking pool (argon2 takes tens of milliseconds on purpose).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing. With no
/// hash (an unknown account) it checks against a decoy and answers `false`, taking as long as a
/// real check so the answer's timing does not tell which accounts exist.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        let matches = PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, to spend the same time on unknown accounts as on known ones.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash_blocking(&generate()).unwrap_or_default());
    &DECOY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(hash.clone())).await);
        assert!(!verify("correct horse batterY".into(), Some(hash)).await);
        assert!(!verify("x".into(), Some("not a hash".into())).await);
        assert!(!verify("x".into(), None).await);
    }

    #[test]
    fn generated_passwords_pass_the_check_and_short_ones_do_not() {
        assert!(check(&generate()).is_ok());
        assert_eq!(check("short"), Err("password_short"));
    }
}
