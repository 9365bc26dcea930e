//! A time zone by its IANA name (`Europe/Moscow`): where a program's days begin and what hour it
//! is there. The zone rules (offsets, daylight saving) are the IANA database's, from `chrono-tz`.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Timelike, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time zone of the IANA database (such as Europe/Moscow)")]
pub struct UnknownTimeZone(pub String);

/// The continents and oceans whose zones forms offer (the database also has old aliases such
/// as `W-SU` and `US/Eastern`; they are accepted when typed, not offered).
const OFFERED_AREAS: [&str; 9] =
    ["Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"];

impl TimeZone {
    pub const UTC: Self = Self(chrono_tz::Tz::UTC);

    /// The zone of an IANA name, as written there (`Europe/Moscow`, `UTC`).
    pub fn parse(name: &str) -> Result<Self, UnknownTimeZone> {
        let name = name.trim();
        name.parse::<chrono_tz::Tz>().map(Self).map_err(|_| UnknownTimeZone(name.to_owned()))
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn is_utc(&self) -> bool {
        *self == Self::UTC
    }

    /// The zones forms offer, by name: `UTC` and the zones of the continents and oceans.
    pub fn offered() -> impl Iterator<Item = &'static str> {
        std::iter::once("UTC").chain(
            chrono_tz::TZ_VARIANTS
                .iter()
                .map(|tz| tz.name())
                .filter(|name| name.split_once('/').is_some_and(|(area, _)| OFFERED_AREAS.contains(&area))),
        )
    }

    /// The date it is here at `at`.
    pub fn date_of(self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.0).date_naive()
    }

    /// The hour (0–23) it is here at `at`.
    pub fn hour_of(self, at: DateTime<Utc>) -> u32 {
        at.with_timezone(&self.0).hour()
    }

    /// `at` as a clock here shows it, in chrono's `format` (`%Y-%m-%d %H:%M`).
    pub fn format(self, at: DateTime<Utc>, format: &str) -> String {
        at.with_timezone(&self.0).format(format).to_string()
    }

    /// The moment a clock here shows `local`: the earlier one when the clocks go back and it
    /// shows twice, and where daylight saving skips it, the first whole hour after it that exists.
    pub fn instant_of(self, local: NaiveDateTime) -> DateTime<Utc> {
        (0..=24)
            .find_map(|hour| self.0.from_local_datetime(&(local + chrono::Duration::hours(hour))).earliest())
            .map_or_else(|| local.and_utc(), |at| at.with_timezone(&Utc))
    }

    /// The first moment of `day` here: its midnight, or where daylight saving skips midnight,
    /// the first hour that exists. Days a zone skipped whole (Samoa's 30 December 2011) begin
    /// where the next one does.
    pub fn start_of(self, day: NaiveDate) -> DateTime<Utc> {
        self.instant_of(day.and_hms_opt(0, 0, 0).unwrap_or_default())
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::UTC
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn names_are_those_of_the_iana_database() {
        assert_eq!(TimeZone::parse(" Europe/Moscow ").unwrap().name(), "Europe/Moscow");
        assert_eq!(TimeZone::parse("UTC").unwrap(), TimeZone::UTC);
        assert!(TimeZone::parse("Mars/Olympus_Mons").is_err());
        assert!(TimeZone::parse("").is_err());
        let offered: Vec<_> = TimeZone::offered().collect();
        assert!(offered.contains(&"Asia/Vladivostok") && offered.contains(&"UTC"));
        assert!(!offered.contains(&"W-SU"), "aliases are not offered");
        let zone: TimeZone = serde_json::from_str("\"Asia/Vladivostok\"").unwrap();
        assert_eq!(serde_json::to_string(&zone).unwrap(), "\"Asia/Vladivostok\"");
        assert!(serde_json::from_str::<TimeZone>("\"Nowhere\"").is_err());
    }

    #[test]
    fn the_local_date_and_hour_follow_the_zone() {
        let vladivostok = TimeZone::parse("Asia/Vladivostok").unwrap();
        // 23:30 UTC on 14 March is 09:30 on 15 March in Vladivostok (UTC+10).
        let now = at("2026-03-14T23:30:00Z");
        assert_eq!(vladivostok.date_of(now), NaiveDate::from_ymd_opt(2026, 3, 15).unwrap());
        assert_eq!(vladivostok.hour_of(now), 9);
        assert_eq!(TimeZone::UTC.date_of(now), NaiveDate::from_ymd_opt(2026, 3, 14).unwrap());
        let new_york = TimeZone::parse("America/New_York").unwrap();
        assert_eq!(new_york.hour_of(at("2026-01-15T15:00:00Z")), 10, "EST, UTC-5");
        assert_eq!(new_york.hour_of(at("2026-07-15T15:00:00Z")), 11, "EDT, UTC-4");
    }

    #[test]
    fn a_day_begins_at_local_midnight_or_the_first_hour_after_it() {
        let moscow = TimeZone::parse("Europe/Moscow").unwrap();
        assert_eq!(moscow.start_of(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()), at("2026-05-31T21:00:00Z"));
        // Havana moves its clocks from 00:00 to 01:00 on the second Sunday of March.
        let havana = TimeZone::parse("America/Havana").unwrap();
        assert_eq!(havana.start_of(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()), at("2026-03-08T05:00:00Z"));
        assert_eq!(TimeZone::UTC.start_of(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()), at("2026-06-01T00:00:00Z"));
    }

    #[test]
    fn a_local_time_is_the_moment_the_clocks_there_show_it() {
        let local = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let moscow = TimeZone::parse("Europe/Moscow").unwrap();
        assert_eq!(moscow.instant_of(local("2026-12-24 18:00")), at("2026-12-24T15:00:00Z"));
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        // 02:30 does not exist on 29 March 2026 in Berlin (02:00 → 03:00): an hour later does.
        assert_eq!(berlin.instant_of(local("2026-03-29 02:30")), at("2026-03-29T01:30:00Z"));
        // 02:30 on 25 October 2026 exists twice (summer time, then winter time): the first.
        assert_eq!(berlin.instant_of(local("2026-10-25 02:30")), at("2026-10-25T00:30:00Z"));
        assert_eq!(moscow.format(at("2026-12-24T15:00:00Z"), "%Y-%m-%d %H:%M %Z"), "2026-12-24 18:00 MSK");
        let vladivostok = TimeZone::parse("Asia/Vladivostok").unwrap();
        assert_eq!(vladivostok.format(at("2026-12-24T15:00:00Z"), "%H:%M %Z"), "01:00 +10");
        assert_eq!(TimeZone::UTC.format(at("2026-12-24T15:00:00Z"), "%H:%M %Z"), "15:00 UTC");
    }
}
