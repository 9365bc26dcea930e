//! The second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew either
//! way — what every authenticator app does) and one-time recovery codes.

use totp_rs::{Algorithm, Secret, TOTP};

use crate::domain::staff::sha256_hex;
use crate::domain::tokens::{fill_random, random_string};

/// A new shared secret (160 bits, as RFC 4226 recommends), in base32.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    fill_random(&mut bytes);
    match Secret::Raw(bytes.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => unreachable!("to_encoded gives an encoded secret"),
    }
}

fn totp(secret: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().ok()?;
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).ok()
}

/// Whether `code` is right for `secret` at `unix_time` (±30 s).
pub fn verify(secret: &str, code: &str, unix_time: u64) -> bool {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    code.len() == 6 && totp(secret).is_some_and(|t| t.check(&code, unix_time))
}

/// The `otpauth://` address an authenticator app reads from the QR code.
pub fn otpauth_url(secret: &str, email: &str, issuer: &str) -> String {
    let label: String = url::form_urlencoded::byte_serialize(format!("{issuer}:{email}").as_bytes()).collect();
    let issuer: String = url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect();
    format!("otpauth://totp/{label}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits=6&period=30")
}

/// Ten new recovery codes (`xxxxx-xxxxx`) and their hashes, as stored.
pub fn recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..10)
        .map(|_| {
            let s = random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 10);
            format!("{}-{}", &s[..5], &s[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| sha256_hex(c)).collect();
    (codes, hashes)
}

/// The stored form of a recovery code as typed (case and spaces do not matter).
pub fn recovery_hash(typed: &str) -> String {
    let cleaned: String = typed.trim().to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    sha256_hex(&cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_of_the_current_step_verifies_and_an_old_one_does_not() {
        let secret = new_secret();
        let t = totp(&secret).unwrap();
        let now = 1_800_000_000;
        assert!(verify(&secret, &t.generate(now), now));
        assert!(verify(&secret, &t.generate(now - 30), now), "one step of skew");
        assert!(!verify(&secret, &t.generate(now - 120), now));
        assert!(!verify(&secret, "12345", now));
    }

    #[test]
    fn recovery_codes_are_stored_as_hashes_of_their_typed_form() {
        let (codes, hashes) = recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(recovery_hash(&format!(" {} ", codes[3].to_uppercase())), hashes[3]);
    }
}
