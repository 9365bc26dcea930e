//! Identifiers and secrets of a card: what is random, how long, and which alphabet.
//!
//! Secrets (`CardKey`, `AuthToken`) never print their value through `Debug`, so they cannot leak
//! into logs by accident, and are compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A uniformly random string of `len` characters from `alphabet` (at most 256 symbols).
pub fn random_string(alphabet: &[u8], len: usize) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    // Rejection sampling keeps every symbol equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(char::from(alphabet[b as usize % alphabet.len()]));
            }
        }
    }
    out
}

/// Lower-case letters and digits without the look-alikes `l`, `o`, `0`, `1`: 32 symbols, 5 bits each.
const LOWER32: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Upper-case letters and digits without `I`, `O`, `0`, `1`: 32 symbols, easy to read aloud.
const UPPER32: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const ALNUM62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(&'static str);

impl TokenError {
    pub fn new(what: &'static str) -> Self {
        Self(what)
    }
}

fn check(
    input: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
    what: &'static str,
) -> Result<(), TokenError> {
    if (min..=max).contains(&input.len()) && input.chars().all(allowed) { Ok(()) } else { Err(TokenError(what)) }
}

fn url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

macro_rules! secret_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The secret itself: only for storing it, putting it in a pass or a URL.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Compares with a presented value in constant time.
            pub fn matches(&self, presented: &str) -> bool {
                self.0.as_bytes().ct_eq(presented.as_bytes()).into()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(…)"))
            }
        }
    };
}

public_id!(
    /// The card's identity in Apple's and Google's eyes (`serialNumber`, object id suffix).
    /// Not a secret: it appears in PassKit URLs. Never changes for a card.
    SerialNumber
);

impl SerialNumber {
    /// 20 symbols of 5 bits: 100 random bits, URL-safe and safe inside a Google object id.
    pub fn generate() -> Self {
        Self(random_string(LOWER32, 20))
    }

    /// Accepts serials loy made and those of imported cards: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(input, 1, 64, url_safe, "a serial number has 1 to 64 letters, digits, '.', '_' or '-'")?;
        Ok(Self(input.to_owned()))
    }
}

public_id!(
    /// What the card's QR code holds and the till scans. Not a secret, but unguessable so that
    /// card numbers cannot be derived from it.
    BarcodeValue
);

impl BarcodeValue {
    /// 20 upper-case symbols (100 bits): QR alphanumeric mode stores them compactly.
    pub fn generate() -> Self {
        Self(random_string(UPPER32, 20))
    }

    /// Accepts 1 to 128 printable ASCII characters without spaces.
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(input, 1, 128, |c| c.is_ascii_graphic(), "a barcode value has 1 to 128 printable characters")?;
        Ok(Self(input.to_owned()))
    }
}

public_id!(
    /// A customer's own code to invite friends with.
    ReferralCode
);

impl ReferralCode {
    /// 8 upper-case symbols, easy to dictate; uniqueness is enforced by the store.
    pub fn generate() -> Self {
        Self(random_string(UPPER32, 8))
    }

    /// Case-insensitive; spaces around are ignored.
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        let code = input.trim().to_ascii_uppercase();
        check(&code, 4, 32, |c| c.is_ascii_alphanumeric(), "a referral code has 4 to 32 letters or digits")?;
        Ok(Self(code))
    }
}

secret_id!(
    /// The unguessable key in the card page's address `/c/{card_key}`: whoever has it can see the
    /// card and download the pass, so it is as secret as the pass itself.
    CardKey
);

impl CardKey {
    /// 26 symbols of 5 bits: 130 random bits.
    pub fn generate() -> Self {
        Self(random_string(LOWER32, 26))
    }

    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(input, 16, 64, url_safe, "not a card key")?;
        Ok(Self(input.to_owned()))
    }
}

secret_id!(
    /// The pass's `authenticationToken`: Wallet sends it back as `ApplePass <token>`.
    AuthToken
);

impl AuthToken {
    /// 32 alphanumeric symbols: about 190 random bits (Apple requires at least 16 characters).
    pub fn generate() -> Self {
        Self(random_string(ALNUM62, 32))
    }

    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(input, 16, 128, |c| c.is_ascii_graphic(), "an authentication token has 16 to 128 printable characters")?;
        Ok(Self(input.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_values_have_the_promised_shape_and_do_not_repeat() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let serial = SerialNumber::generate();
            assert_eq!(serial.as_str().len(), 20);
            assert_eq!(SerialNumber::parse(serial.as_str()).unwrap(), serial);
            assert!(seen.insert(serial.as_str().to_owned()));

            let token = AuthToken::generate();
            assert!(token.expose().len() >= 32);
            assert!(token.expose().bytes().all(|b| b.is_ascii_alphanumeric()));

            let key = CardKey::generate();
            assert_eq!(key.expose().len(), 26);
            assert!(CardKey::parse(key.expose()).is_ok());

            let barcode = BarcodeValue::generate();
            assert!(BarcodeValue::parse(barcode.as_str()).is_ok());
        }
    }

    #[test]
    fn random_strings_use_every_symbol_of_the_alphabet() {
        let sample = random_string(b"ab", 2000);
        let a = sample.bytes().filter(|&b| b == b'a').count();
        assert!((800..1200).contains(&a), "{a} of 2000 were 'a'");
    }

    #[test]
    fn secrets_do_not_print_their_value() {
        let token = AuthToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
        let key = CardKey::generate();
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn secrets_compare_by_value() {
        let token = AuthToken::parse("0123456789abcdef0123").unwrap();
        assert!(token.matches("0123456789abcdef0123"));
        assert!(!token.matches("0123456789abcdef0124"));
        assert!(!token.matches(""));
    }

    #[test]
    fn malformed_identifiers_are_rejected() {
        assert!(SerialNumber::parse("").is_err());
        assert!(SerialNumber::parse("a/b").is_err());
        assert!(SerialNumber::parse(&"a".repeat(65)).is_err());
        assert!(CardKey::parse("short").is_err());
        assert!(CardKey::parse("../../../../etc/passwd/xx").is_err());
        assert!(AuthToken::parse("too short").is_err());
        assert!(BarcodeValue::parse("has space").is_err());
        assert_eq!(ReferralCode::parse(" ab12cd ").unwrap().as_str(), "AB12CD");
        assert!(ReferralCode::parse("a!").is_err());
    }
}
