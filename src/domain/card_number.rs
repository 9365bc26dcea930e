//! Card numbers: what a customer reads out or a cashier types when the QR will not scan.

use std::fmt;

/// Digits of a card number, 12 to 16 of them, the last one a Luhn check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardNumberError {
    #[error("a card number has 12 to 16 digits")]
    WrongLength,
    #[error("a card number may contain only digits and spaces")]
    InvalidCharacter,
    #[error("the card number has a typo (its check digit does not match)")]
    BadCheckDigit,
}

impl CardNumber {
    pub const MIN_DIGITS: usize = 12;
    pub const MAX_DIGITS: usize = 16;

    /// Parses a number as typed: spaces and dashes between digits are ignored.
    pub fn parse(input: &str) -> Result<Self, CardNumberError> {
        let mut digits = String::with_capacity(Self::MAX_DIGITS);
        for c in input.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' => {}
                _ => return Err(CardNumberError::InvalidCharacter),
            }
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(CardNumberError::WrongLength);
        }
        if luhn_sum(digits.as_bytes()) % 10 != 0 {
            return Err(CardNumberError::BadCheckDigit);
        }
        Ok(Self(digits))
    }

    /// Builds a number from a body of digits by appending the Luhn check digit.
    ///
    /// The body must have 11 to 15 ASCII digits.
    pub fn from_body(body: &str) -> Result<Self, CardNumberError> {
        if !(Self::MIN_DIGITS - 1..Self::MAX_DIGITS).contains(&body.len()) {
            return Err(CardNumberError::WrongLength);
        }
        if !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardNumberError::InvalidCharacter);
        }
        let mut with_zero = body.as_bytes().to_vec();
        with_zero.push(b'0');
        let check = (10 - luhn_sum(&with_zero) % 10) % 10;
        Ok(Self(format!("{body}{check}")))
    }

    /// A fresh random 16-digit number. The first digit is never 0, so the number reads well.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 15];
        super::tokens::fill_random(&mut bytes);
        let body: String = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                // 250 is a multiple of 10 and of 9: rejection-free enough, with a negligible bias
                // that does not matter for a non-secret number.
                if i == 0 { char::from(b'1' + b % 9) } else { char::from(b'0' + b % 10) }
            })
            .collect();
        Self::from_body(&body).expect("15 generated digits always form a valid body")
    }

    /// The bare digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits in groups of four, as printed on the card: `4000 1234 5678 9010`.
    pub fn grouped(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 4);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

/// The Luhn sum of ASCII digits, doubling every second digit from the right.
fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum()
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.grouped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_luhn_numbers_are_accepted_with_or_without_spaces() {
        assert_eq!(CardNumber::parse("4111 1111 1111 1111").unwrap().as_str(), "4111111111111111");
        assert_eq!(CardNumber::parse("4111-1111-1111-1111").unwrap().as_str(), "4111111111111111");
        assert_eq!(CardNumber::parse("79927398713").err(), Some(CardNumberError::WrongLength));
        assert!(CardNumber::parse("000079927398713").is_ok());
    }

    #[test]
    fn a_single_wrong_digit_is_caught() {
        assert_eq!(CardNumber::parse("4111 1111 1111 1112"), Err(CardNumberError::BadCheckDigit));
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert_eq!(CardNumber::parse("4111"), Err(CardNumberError::WrongLength));
        assert_eq!(CardNumber::parse("41111111111111111111"), Err(CardNumberError::WrongLength));
        assert_eq!(CardNumber::parse("4111 1111 1111 111a"), Err(CardNumberError::InvalidCharacter));
    }

    #[test]
    fn grouping_is_by_four() {
        assert_eq!(CardNumber::parse("4111111111111111").unwrap().grouped(), "4111 1111 1111 1111");
    }

    #[test]
    fn generated_numbers_have_sixteen_digits_and_a_valid_check_digit() {
        for _ in 0..200 {
            let number = CardNumber::generate();
            assert_eq!(number.as_str().len(), 16);
            assert!(!number.as_str().starts_with('0'));
            assert_eq!(CardNumber::parse(number.as_str()).unwrap(), number);
        }
    }

    proptest! {
        #[test]
        fn every_body_gets_a_check_digit_that_parses(body in "[0-9]{11,15}") {
            let number = CardNumber::from_body(&body).unwrap();
            prop_assert_eq!(CardNumber::parse(number.as_str()).unwrap(), number.clone());
            prop_assert_eq!(CardNumber::parse(&number.grouped()).unwrap(), number);
        }

        #[test]
        fn changing_any_one_digit_breaks_the_check(body in "[0-9]{15}", pos in 0usize..16, delta in 1u8..10) {
            let number = CardNumber::from_body(&body).unwrap();
            let mut bytes = number.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(CardNumber::parse(&altered), Err(CardNumberError::BadCheckDigit));
        }
    }
}
