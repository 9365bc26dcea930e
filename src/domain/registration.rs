//! Devices registered for updates of a card's pass (Apple's PassKit web service protocol).

use std::fmt;

use chrono::{DateTime, Utc};

use super::{SerialNumber, TokenError};

fn check(input: &str, max: usize, allowed: impl Fn(char) -> bool, what: &'static str) -> Result<(), TokenError> {
    if !input.is_empty() && input.len() <= max && input.chars().all(allowed) {
        Ok(())
    } else {
        Err(TokenError::new(what))
    }
}

/// A pass type identifier such as `pass.com.example.loyalty`: the APNs topic and the
/// certificate's UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PassTypeId(String);

impl PassTypeId {
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(
            input,
            255,
            |c| c.is_ascii_alphanumeric() || c == '.' || c == '-',
            "a pass type identifier is reverse-DNS like pass.com.example.loyalty",
        )?;
        if !input.contains('.') || input.starts_with('.') || input.ends_with('.') || input.contains("..") {
            return Err(TokenError::new("a pass type identifier is reverse-DNS like pass.com.example.loyalty"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PassTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identifier a device's pass library sends (Wallet: 32 hex digits; Android pass apps use
/// other shapes, so any 1 to 128 URL-safe characters are accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceLibraryId(String);

impl DeviceLibraryId {
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(
            input,
            128,
            |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
            "a device library identifier has 1 to 128 letters, digits, '-', '_', '.' or ':'",
        )?;
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceLibraryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A device's push token (APNs: 64 hex digits; FCM-style tokens of Android apps are longer and
/// use `:`, `-`, `_`). It addresses a person's phone, so it never prints through `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PushToken(String);

impl PushToken {
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        check(
            input,
            512,
            |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
            "a push token has 1 to 512 letters, digits, '-', '_', '.' or ':'",
        )?;
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PushToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushToken(…)")
    }
}

/// One device registered for one card's pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub device_library_id: DeviceLibraryId,
    pub pass_type_id: PassTypeId,
    pub serial: SerialNumber,
    pub push_token: PushToken,
    /// The card version this device was last told about (by a push, or by registering, after
    /// which Wallet downloads the current pass).
    pub pushed_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What registering did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// A new registration (PassKit answers 201).
    Created,
    /// The device was already registered for the pass; its push token was updated (200).
    Updated,
    /// The pass has as many devices as it may have (`LOY_MAX_DEVICES_PER_PASS`); nothing changed.
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_what_wallets_send_and_refuse_the_rest() {
        assert!(PassTypeId::parse("pass.com.example.loyalty").is_ok());
        assert!(PassTypeId::parse("pass").is_err());
        assert!(PassTypeId::parse("pass..x").is_err());
        assert!(PassTypeId::parse("pass.com/x").is_err());
        assert!(DeviceLibraryId::parse("a1b2c3d4e5f60718293a4b5c6d7e8f90").is_ok());
        assert!(DeviceLibraryId::parse("").is_err());
        assert!(DeviceLibraryId::parse(&"a".repeat(129)).is_err());
        assert!(PushToken::parse(&"ab".repeat(32)).is_ok());
        assert!(PushToken::parse("fcm:APA91b-xyz_123").is_ok());
        assert!(PushToken::parse("has space").is_err());
    }

    #[test]
    fn push_tokens_do_not_print() {
        let token = PushToken::parse("deadbeefdeadbeef").unwrap();
        assert!(!format!("{token:?}").contains("deadbeef"));
    }
}
