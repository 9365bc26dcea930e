//! Phone numbers, normalised to E.164 (`+79123456789`) by libphonenumber's rules, so that
//! every way of writing one number gives one key and one card.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;

/// A phone number in E.164 form, valid in its country's numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// The country a number without a country code is read in (`LOY_DEFAULT_PHONE_REGION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRegion(country::Id);

impl PhoneRegion {
    pub const RU: Self = Self(country::Id::RU);

    /// A two-letter region code such as `RU`, `KZ` or `GB`.
    pub fn parse(code: &str) -> Result<Self, String> {
        let upper = code.trim().to_ascii_uppercase();
        let id = country::Id::from_str(&upper)
            .map_err(|_| format!("`{code}` is not a two-letter country code such as RU, KZ or GB"))?;
        // Regions libphonenumber has no numbering plan for cannot read national numbers.
        if phonenumber::metadata::DATABASE.by_id(id.as_ref()).is_none() {
            return Err(format!("`{code}` has no telephone numbering plan"));
        }
        Ok(Self(id))
    }

    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl Default for PhoneRegion {
    fn default() -> Self {
        Self::RU
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("a phone number may contain only digits, spaces, brackets, dots, dashes and a leading +")]
    InvalidCharacter,
    #[error("no country has the calling code this number starts with; write it as +7 912 345-67-89")]
    UnknownCountryCode,
    #[error("the phone number has too few or too many digits")]
    WrongLength,
    #[error("this is not a phone number in use in its country; check the digits and the country code")]
    NotValid,
}

impl Phone {
    /// Parses what people type — `+7 (912) 345-67-89`, `8 912 345 67 89`, `007 912 345 67 89`,
    /// `+44 (0)20 7946 0958` — reading a number without a country code as one of `region`.
    pub fn parse(input: &str, region: PhoneRegion) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let mut plus = false;
        let mut digits = 0;
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits += 1,
                '+' if i == 0 => plus = true,
                ' ' | '-' | '(' | ')' | '.' | '/' | '\u{a0}' => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        if digits == 0 {
            return Err(PhoneError::Empty);
        }
        if digits > 17 {
            return Err(PhoneError::WrongLength);
        }
        let mut compact: String = trimmed.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
        // `00` is the international prefix in most of the world, though not in libphonenumber's
        // data for Russia (`8~10`): read it as `+` everywhere.
        if !plus && compact.starts_with("00") {
            compact = format!("+{}", &compact[2..]);
        }
        let international = compact.starts_with('+');
        // An international number is parsed without the default region: the crate would
        // otherwise strip that region's trunk prefix (`8` for RU) from any country's number.
        let default_region = if international { None } else { Some(region.0) };
        let parsed = phonenumber::parse(default_region, &compact);
        let mut number = match parsed {
            Ok(number) => number,
            Err(phonenumber::ParseError::InvalidCountryCode) => return Err(PhoneError::UnknownCountryCode),
            Err(_) => {
                return read_by_metadata(&compact, region, None).map(Self).ok_or(PhoneError::WrongLength);
            }
        };
        if international {
            number = without_trunk_prefix(&number).unwrap_or(number);
        }
        // Parsing checks the country code (`+8 912 …` has none); validity is whether the number
        // is in a range its country's numbering plan assigns.
        if !phonenumber::is_valid(&number) {
            if let Some(e164) = read_by_metadata(&compact, region, Some(number.code().value())) {
                return Ok(Self(e164));
            }
            return Err(if possible_length(&number) { PhoneError::NotValid } else { PhoneError::WrongLength });
        }
        Ok(Self(e164(&number)))
    }

    /// A number as the store holds it: `+` and digits, not checked against numbering plans, so
    /// cards stored before the current rules can still be read (and re-normalised).
    pub fn from_stored(stored: &str) -> Result<Self, PhoneError> {
        let digits = stored.strip_prefix('+').ok_or(PhoneError::UnknownCountryCode)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::InvalidCharacter);
        }
        if !(2..=17).contains(&digits.len()) {
            return Err(PhoneError::WrongLength);
        }
        Ok(Self(stored.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the last four digits hidden, for messages and logs.
    pub fn masked(&self) -> String {
        let keep = 4.min(self.0.len());
        let hidden = self.0.len() - keep;
        format!("{}{}", "•".repeat(hidden.saturating_sub(1)), &self.0[self.0.len() - keep..])
    }
}

fn e164(number: &phonenumber::PhoneNumber) -> String {
    number.format().mode(phonenumber::Mode::E164).to_string()
}

/// The number's digits after the country code.
fn national_digits(number: &phonenumber::PhoneNumber) -> (u16, String) {
    let code = number.code().value();
    let full = e164(number);
    let national = full.strip_prefix(&format!("+{code}")).unwrap_or_default().to_owned();
    (code, national)
}

/// The same number without a national trunk prefix written after the country code
/// (`+44 (0)20 7946 0958`, `+44 020 …`, `+7 8 912 …`), when that is a valid number:
/// libphonenumber keeps such a prefix as part of the number.
fn without_trunk_prefix(number: &phonenumber::PhoneNumber) -> Option<phonenumber::PhoneNumber> {
    let (code, national) = national_digits(number);
    let regions = phonenumber::metadata::DATABASE.by_code(&code)?;
    regions.iter().filter_map(|meta| meta.national_prefix()).find_map(|prefix| {
        let rest = national.strip_prefix(prefix).filter(|rest| !rest.is_empty())?;
        phonenumber::parse(None, format!("+{code}{rest}")).ok().filter(phonenumber::is_valid)
    })
}

/// The number read from the metadata directly, where the crate's parser fails: it strips a trunk
/// prefix even where that digit starts the area code (Russia's `8`: `+7 812 …` St Petersburg,
/// `8 800 …` toll-free). `code` is the country code the parser found in an international number.
fn read_by_metadata(compact: &str, region: PhoneRegion, code: Option<u16>) -> Option<String> {
    let database = &*phonenumber::metadata::DATABASE;
    let (code, national) = match compact.strip_prefix('+') {
        Some(rest) => {
            let code = code?;
            (code, rest.strip_prefix(code.to_string().as_str())?)
        }
        None => {
            let meta = database.by_id(region.code())?;
            let national = meta.national_prefix().and_then(|p| compact.strip_prefix(p)).unwrap_or(compact);
            (meta.country_code(), national)
        }
    };
    let regions = database.by_code(&code)?;
    // The digits as written, or without a trunk prefix written after the country code.
    let candidates = std::iter::once(national)
        .chain(regions.iter().filter_map(|meta| meta.national_prefix().and_then(|p| national.strip_prefix(p))));
    for candidate in candidates {
        let assigned = regions.iter().any(|meta| {
            let d = meta.descriptors();
            [d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(), d.shared_cost(), d.personal_number()]
                .into_iter()
                .chain([d.voip(), d.pager(), d.uan(), d.voicemail()])
                .flatten()
                .any(|kind| kind.is_match(candidate))
        });
        if assigned {
            return Some(format!("+{code}{candidate}"));
        }
    }
    None
}

/// Whether the number has as many digits as some number of its country code may have.
fn possible_length(number: &phonenumber::PhoneNumber) -> bool {
    let (code, national) = national_digits(number);
    let Ok(length) = u16::try_from(national.len()) else { return false };
    phonenumber::metadata::DATABASE.by_code(&code).is_some_and(|regions| {
        regions.iter().any(|meta| {
            let d = meta.descriptors();
            [d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(), d.shared_cost(), d.personal_number()]
                .into_iter()
                .chain([d.voip(), d.pager(), d.uan(), d.voicemail()])
                .flatten()
                .any(|kind| kind.possible_length().contains(&length))
        })
    })
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RU: PhoneRegion = PhoneRegion::RU;

    #[test]
    fn russian_numbers_in_every_usual_spelling_normalise_to_the_same_value() {
        for input in [
            "+7 (912) 345-67-89",
            "8 912 345 67 89",
            "8 (912) 345-67-89",
            "89123456789",
            "79123456789",
            "9123456789",
            "+79123456789",
            "8-912-345-67-89",
            "8.912.345.67.89",
            "007 912 345 67 89",
            "00 7 912 345-67-89",
            "+7\u{a0}912\u{a0}345\u{a0}67\u{a0}89",
        ] {
            assert_eq!(Phone::parse(input, RU).unwrap().as_str(), "+79123456789", "{input}");
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country_code() {
        assert_eq!(Phone::parse("+44 20 7946 0958", RU).unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse("+44 (0)20 7946 0958", RU).unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse("0044 20 7946 0958", RU).unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse("+1 (201) 555-0123", RU).unwrap().as_str(), "+12015550123");
        assert_eq!(Phone::parse("0049 30 12345678", RU).unwrap().as_str(), "+493012345678");
        // A national part starting with Russia's trunk prefix `8` keeps it.
        assert_eq!(Phone::parse("+60 82-200 0000", RU).unwrap().as_str(), "+60822000000");
        assert_eq!(Phone::parse("+44 800 890 567", RU).unwrap().as_str(), "+44800890567");
        // Area codes that start with Russia's trunk prefix 8 (St Petersburg, Krasnodar, toll-free).
        for (typed, e164) in [
            ("+7 812 312-45-67", "+78123124567"),
            ("8 812 312-45-67", "+78123124567"),
            ("8 (861) 255-12-34", "+78612551234"),
            ("+7 800 555-35-35", "+78005553535"),
            ("8 800 555 35 35", "+78005553535"),
        ] {
            assert_eq!(Phone::parse(typed, RU).unwrap().as_str(), e164, "{typed}");
        }
    }

    #[test]
    fn the_default_region_reads_national_numbers() {
        let gb = PhoneRegion::parse("gb").unwrap();
        assert_eq!(gb.code(), "GB");
        assert_eq!(Phone::parse("020 7946 0958", gb).unwrap().as_str(), "+442079460958");
        let kz = PhoneRegion::parse("KZ").unwrap();
        assert_eq!(Phone::parse("8 701 234 5678", kz).unwrap().as_str(), "+77012345678");
        assert!(PhoneRegion::parse("XX").is_err());
        assert!(PhoneRegion::parse("").is_err());
    }

    #[test]
    fn impossible_numbers_are_refused() {
        assert_eq!(Phone::parse("+8 912 345 67 89", RU), Err(PhoneError::UnknownCountryCode));
        assert_eq!(Phone::parse("+0123456789", RU), Err(PhoneError::UnknownCountryCode));
        assert!(Phone::parse("+7 912 345", RU).is_err());
        assert!(Phone::parse("+1234567890123456", RU).is_err());
        assert!(Phone::parse("12345", RU).is_err());
        assert_eq!(Phone::parse("+7 012 345 67 89", RU), Err(PhoneError::NotValid));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(Phone::parse("", RU), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("   ", RU), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("call me", RU), Err(PhoneError::InvalidCharacter));
        assert_eq!(Phone::parse("+7 912 abc", RU), Err(PhoneError::InvalidCharacter));
        assert_eq!(Phone::parse("12+345678", RU), Err(PhoneError::InvalidCharacter));
        assert_eq!(Phone::parse("+", RU), Err(PhoneError::Empty));
        assert_eq!(Phone::parse(&"9".repeat(100_000), RU), Err(PhoneError::WrongLength));
    }

    #[test]
    fn stored_numbers_are_read_without_the_numbering_plan() {
        assert_eq!(Phone::from_stored("+89123456789").unwrap().as_str(), "+89123456789");
        assert!(Phone::from_stored("89123456789").is_err());
        assert!(Phone::from_stored("+7 912").is_err());
    }

    #[test]
    fn masking_shows_only_the_last_four_digits() {
        let phone = Phone::parse("+79123456789", RU).unwrap();
        assert!(phone.masked().ends_with("6789"));
        assert!(!phone.masked().contains("912"));
    }

    proptest! {
        #[test]
        fn any_formatting_of_a_valid_number_gives_the_same_e164(
            subscriber in "9[0-9]{9}",
            separators in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-")], 10),
            prefix in prop_oneof![Just("+7 "), Just("8 "), Just("007 "), Just("+7 (")],
        ) {
            let mut typed = String::from(prefix);
            for (digit, sep) in subscriber.chars().zip(&separators) {
                typed.push(digit);
                typed.push_str(sep);
            }
            let parsed = Phone::parse(&typed, RU).unwrap();
            prop_assert_eq!(parsed.as_str(), format!("+7{subscriber}"));
        }

        #[test]
        fn parsing_never_panics_and_always_yields_e164(input in ".{0,40}") {
            if let Ok(phone) = Phone::parse(&input, RU) {
                prop_assert!(phone.as_str().starts_with('+'));
                prop_assert!(phone.as_str()[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn a_normalised_number_parses_to_itself(input in "\\+[1-9][0-9]{7,14}") {
            if let Ok(phone) = Phone::parse(&input, RU) {
                prop_assert_eq!(Phone::parse(phone.as_str(), RU).unwrap(), phone);
            }
        }
    }
}
