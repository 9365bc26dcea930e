//! Phone numbers, normalised to E.164 (`+79123456789`).

use std::fmt;

/// A phone number in E.164 form: `+`, a country code and the subscriber number, 8 to 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("a phone number may contain only digits, spaces, brackets, dots, dashes and a leading +")]
    InvalidCharacter,
    #[error("include the country code, for example +7 912 345-67-89")]
    MissingCountryCode,
    #[error("the phone number has too few or too many digits")]
    WrongLength,
}

impl Phone {
    /// Parses what people type: `+7 (912) 345-67-89`, `8 912 345 67 89`, `00 44 20 7946 0958`.
    ///
    /// A number without a country code is read as Russian when it has the shape of one
    /// (`8` + 10 digits, `7` + 10 digits, or 10 digits starting with `9`), because that is how
    /// Russian numbers are written by hand; anything else must carry its country code.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let mut digits = String::with_capacity(16);
        let mut plus = false;
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                ' ' | '-' | '(' | ')' | '.' | '\u{a0}' => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let international = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else if digits.len() == 11 && (digits.starts_with('8') || digits.starts_with('7')) {
            format!("7{}", &digits[1..])
        } else if digits.len() == 10 && digits.starts_with('9') {
            format!("7{digits}")
        } else {
            return Err(PhoneError::MissingCountryCode);
        };
        if international.starts_with('0') {
            return Err(PhoneError::MissingCountryCode);
        }
        let valid_length = match international.as_bytes()[0] {
            // North America (+1) and Russia/Kazakhstan (+7) have fixed lengths.
            b'1' | b'7' => international.len() == 11,
            _ => (8..=15).contains(&international.len()),
        };
        if !valid_length {
            return Err(PhoneError::WrongLength);
        }
        Ok(Self(format!("+{international}")))
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

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn russian_numbers_in_every_usual_spelling_normalise_to_the_same_value() {
        for input in [
            "+7 (912) 345-67-89",
            "8 912 345 67 89",
            "89123456789",
            "79123456789",
            "9123456789",
            "+79123456789",
            "8-912-345-67-89",
            "007 912 345 67 89",
        ] {
            assert_eq!(Phone::parse(input).unwrap().as_str(), "+79123456789", "{input}");
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country_code() {
        assert_eq!(Phone::parse("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse("+1 (415) 555-0132").unwrap().as_str(), "+14155550132");
        assert_eq!(Phone::parse("0049 30 123456").unwrap().as_str(), "+4930123456");
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(Phone::parse(""), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("   "), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("call me"), Err(PhoneError::InvalidCharacter));
        assert_eq!(Phone::parse("+7 912 abc"), Err(PhoneError::InvalidCharacter));
        assert_eq!(Phone::parse("12+345678"), Err(PhoneError::InvalidCharacter));
        assert_eq!(Phone::parse("+"), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("12345"), Err(PhoneError::MissingCountryCode));
        assert_eq!(Phone::parse("+7 912 345"), Err(PhoneError::WrongLength));
        assert_eq!(Phone::parse("+1234567890123456"), Err(PhoneError::WrongLength));
        assert_eq!(Phone::parse("+0123456789"), Err(PhoneError::MissingCountryCode));
    }

    #[test]
    fn masking_shows_only_the_last_four_digits() {
        let phone = Phone::parse("+79123456789").unwrap();
        assert!(phone.masked().ends_with("6789"));
        assert!(!phone.masked().contains("912"));
    }

    proptest! {
        #[test]
        fn any_formatting_of_a_valid_number_gives_the_same_e164(
            subscriber in "9[0-9]{9}",
            separators in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-")], 10),
        ) {
            let mut typed = String::from("+7 ");
            for (digit, sep) in subscriber.chars().zip(&separators) {
                typed.push(digit);
                typed.push_str(sep);
            }
            let parsed = Phone::parse(&typed).unwrap();
            prop_assert_eq!(parsed.as_str(), format!("+7{subscriber}"));
        }

        #[test]
        fn parsing_never_panics_and_always_yields_e164(input in ".{0,40}") {
            if let Ok(phone) = Phone::parse(&input) {
                prop_assert!(phone.as_str().starts_with('+'));
                prop_assert!(phone.as_str()[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((9..=16).contains(&phone.as_str().len()));
            }
        }

        #[test]
        fn a_normalised_number_parses_to_itself(input in "\\+[1-9][0-9]{7,14}") {
            if let Ok(phone) = Phone::parse(&input) {
                prop_assert_eq!(Phone::parse(phone.as_str()).unwrap(), phone);
            }
        }
    }
}
