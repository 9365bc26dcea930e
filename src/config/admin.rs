//! The staff console's settings: `LOY_ADMIN_SESSION_IDLE`, `LOY_ADMIN_SESSION_MAX`,
//! `LOY_REQUIRE_2FA`.

use std::time::Duration;

use super::ConfigError;
use super::sources::RawSettings;
use crate::domain::Role;

/// Who must have a second factor before using the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require2fa {
    Off,
    Owners,
    Everyone,
}

impl Require2fa {
    /// Whether a staff member of `role` must enrol before anything else.
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            Self::Off => false,
            Self::Owners => role == Role::Owner,
            Self::Everyone => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// A session unused for this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_max: Duration,
    pub require_2fa: Require2fa,
}

/// `90`, `90s`, `30m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a duration like 30m, 12h or 7d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}` is not a duration like 30m, 12h or 7d")),
    };
    if seconds == 0 {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(Duration::from_secs(seconds))
}

pub fn from_raw(raw: &RawSettings) -> Result<AdminSettings, ConfigError> {
    let session_idle = raw.parse_or("admin_session_idle", Duration::from_secs(12 * 3600), parse_duration)?;
    let session_max = raw.parse_or("admin_session_max", Duration::from_secs(7 * 86_400), parse_duration)?;
    if session_idle > session_max {
        return Err(ConfigError(format!(
            "{} must not be longer than {}",
            raw.origin("admin_session_idle"),
            raw.origin("admin_session_max")
        )));
    }
    let require_2fa = raw.parse_or("require_2fa", Require2fa::Off, |s| match s {
        "off" => Ok(Require2fa::Off),
        "owner" => Ok(Require2fa::Owners),
        "all" => Ok(Require2fa::Everyone),
        _ => Err(format!("`{s}` is not `off`, `owner` or `all`")),
    })?;
    Ok(AdminSettings { session_idle, session_max, require_2fa })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn second_factor_requirement_by_role() {
        assert!(!Require2fa::Off.applies_to(Role::Owner));
        assert!(Require2fa::Owners.applies_to(Role::Owner));
        assert!(!Require2fa::Owners.applies_to(Role::Manager));
        assert!(Require2fa::Everyone.applies_to(Role::Cashier));
    }
}
