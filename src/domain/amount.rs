//! Purchase amounts as people type them at the till, read into minor units exactly.

/// Why a typed amount cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty")]
    Empty,
    #[error("the amount may contain only digits, one decimal comma or point, and spaces between thousands")]
    InvalidCharacter,
    #[error("the amount has more than one decimal separator")]
    TwoSeparators,
    #[error("the amount has more decimal places than the currency ({0})")]
    TooManyDecimals(u8),
    #[error("the amount is too large")]
    TooLarge,
}

/// Reads an amount typed in major units with up to `minor_digits` decimals — `450,50`, `450.50`,
/// `450`, `1 234,5`, `1 234.50` — into minor units (`45050`), exactly, without floating point.
///
/// A comma and a point both mark the decimals (one of them, once); spaces (also the no-break and
/// narrow no-break spaces a phone keyboard or a copy may insert) group thousands. Signs,
/// exponents and letters are refused: an amount is never negative here.
pub fn parse_amount(input: &str, minor_digits: u8) -> Result<i64, AmountError> {
    let compact: String = input.chars().filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\t')).collect();
    if compact.is_empty() {
        return Err(AmountError::Empty);
    }
    if compact.chars().any(|c| !(c.is_ascii_digit() || c == ',' || c == '.')) {
        return Err(AmountError::InvalidCharacter);
    }
    let mut parts = compact.split([',', '.']);
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    if parts.next().is_some() {
        return Err(AmountError::TwoSeparators);
    }
    let fraction = fraction.unwrap_or_default();
    if whole.is_empty() && fraction.is_empty() {
        return Err(AmountError::Empty);
    }
    if fraction.len() > usize::from(minor_digits) {
        return Err(AmountError::TooManyDecimals(minor_digits));
    }
    let scale = 10i64.checked_pow(u32::from(minor_digits)).ok_or(AmountError::TooLarge)?;
    let whole_value = digits(whole)?;
    // "450,5" is 450 and 50 hundredths: pad the fraction to the currency's decimals.
    let fraction_value = digits(fraction)?
        * 10i64.pow(u32::try_from(usize::from(minor_digits) - fraction.len()).map_err(|_| AmountError::TooLarge)?);
    whole_value.checked_mul(scale).and_then(|w| w.checked_add(fraction_value)).ok_or(AmountError::TooLarge)
}

fn digits(s: &str) -> Result<i64, AmountError> {
    s.bytes().try_fold(0i64, |acc, b| {
        acc.checked_mul(10).and_then(|v| v.checked_add(i64::from(b - b'0'))).ok_or(AmountError::TooLarge)
    })
}

/// Writes minor units back as major units with the currency's decimals: `45050` → `450.50`.
pub fn format_amount(minor: i64, minor_digits: u8) -> String {
    if minor_digits == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(u32::from(minor_digits));
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = usize::from(minor_digits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commas_points_and_whole_numbers_read_into_kopecks() {
        assert_eq!(parse_amount("450,50", 2), Ok(45050));
        assert_eq!(parse_amount("450.50", 2), Ok(45050));
        assert_eq!(parse_amount("450", 2), Ok(45000));
        assert_eq!(parse_amount("450,5", 2), Ok(45050));
        assert_eq!(parse_amount("0,01", 2), Ok(1));
        assert_eq!(parse_amount(",5", 2), Ok(50));
        assert_eq!(parse_amount("450.", 2), Ok(45000));
    }

    #[test]
    fn spaces_group_thousands() {
        assert_eq!(parse_amount("1 234,56", 2), Ok(123456));
        assert_eq!(parse_amount(" 12\u{a0}345 ", 2), Ok(1234500));
        assert_eq!(parse_amount("1\u{202f}000.10", 2), Ok(100010));
    }

    #[test]
    fn currencies_without_or_with_three_decimals() {
        assert_eq!(parse_amount("1500", 0), Ok(1500));
        assert_eq!(parse_amount("15,5", 0), Err(AmountError::TooManyDecimals(0)));
        assert_eq!(parse_amount("1,234", 3), Ok(1234));
    }

    #[test]
    fn malformed_amounts_are_refused_with_a_reason() {
        assert_eq!(parse_amount("", 2), Err(AmountError::Empty));
        assert_eq!(parse_amount("  ", 2), Err(AmountError::Empty));
        assert_eq!(parse_amount(",", 2), Err(AmountError::Empty));
        assert_eq!(parse_amount("-5", 2), Err(AmountError::InvalidCharacter));
        assert_eq!(parse_amount("1e3", 2), Err(AmountError::InvalidCharacter));
        assert_eq!(parse_amount("12 руб", 2), Err(AmountError::InvalidCharacter));
        assert_eq!(parse_amount("1.234,56", 2), Err(AmountError::TwoSeparators));
        assert_eq!(parse_amount("4,505", 2), Err(AmountError::TooManyDecimals(2)));
        assert_eq!(parse_amount("99999999999999999999", 2), Err(AmountError::TooLarge));
        assert_eq!(parse_amount("92233720368547758,08", 2), Err(AmountError::TooLarge));
    }

    #[test]
    fn formatting_shows_the_currency_decimals() {
        assert_eq!(format_amount(45050, 2), "450.50");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(-150, 2), "-1.50");
        assert_eq!(format_amount(1500, 0), "1500");
    }

    proptest! {
        #[test]
        fn every_amount_reads_back_from_its_formatted_text(minor in 0i64..10_000_000_000, comma in any::<bool>()) {
            let text = format_amount(minor, 2);
            let text = if comma { text.replace('.', ",") } else { text };
            prop_assert_eq!(parse_amount(&text, 2), Ok(minor));
        }

        #[test]
        fn parsing_never_panics(input in ".{0,30}", digits in 0u8..4) {
            let _ = parse_amount(&input, digits);
        }
    }
}
