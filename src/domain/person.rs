//! Names people type into the form.

use std::fmt;

use super::text::{self, TextError};

/// A first or last name: trimmed, 1 to 100 characters, no control characters or markup brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonNameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than 100 characters")]
    TooLong,
    #[error("the name contains characters that are not allowed")]
    InvalidCharacter,
    /// Invisible, control or direction-changing characters, which could disguise one name as another.
    #[error("the name {0}")]
    Hidden(#[from] TextError),
}

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(input: &str) -> Result<Self, PersonNameError> {
        text::check(input)?;
        let collapsed = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return Err(PersonNameError::Empty);
        }
        if collapsed.chars().count() > Self::MAX_CHARS {
            return Err(PersonNameError::TooLong);
        }
        if collapsed.chars().any(|c| c.is_control() || matches!(c, '<' | '>' | '{' | '}' | '\\' | '"')) {
            return Err(PersonNameError::InvalidCharacter);
        }
        Ok(Self(collapsed))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first letter and a dot: "Иванов" → "И.", for showing a name to a cashier.
    pub fn initial(&self) -> String {
        self.0.chars().next().map(|c| format!("{c}.")).unwrap_or_default()
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_inner_spaces_collapsed() {
        assert_eq!(PersonName::parse("  Анна  Мария ").unwrap().as_str(), "Анна Мария");
        assert_eq!(PersonName::parse("O'Brien-Smith").unwrap().as_str(), "O'Brien-Smith");
    }

    #[test]
    fn empty_long_and_markup_names_are_rejected() {
        assert_eq!(PersonName::parse("   "), Err(PersonNameError::Empty));
        assert_eq!(PersonName::parse(&"я".repeat(101)), Err(PersonNameError::TooLong));
        assert!(PersonName::parse(&"я".repeat(100)).is_ok());
        assert_eq!(PersonName::parse("<script>"), Err(PersonNameError::InvalidCharacter));
        assert_eq!(PersonName::parse("a\u{0}b"), Err(PersonNameError::Hidden(TextError::Control)));
        assert_eq!(PersonName::parse("Anna\u{202E}"), Err(PersonNameError::Hidden(TextError::Bidirectional)));
        assert_eq!(PersonName::parse("An\u{200B}na"), Err(PersonNameError::Hidden(TextError::Invisible)));
        assert_eq!(PersonName::parse("Anna\n"), Err(PersonNameError::Hidden(TextError::Control)));
    }

    #[test]
    fn the_initial_is_the_first_letter() {
        assert_eq!(PersonName::parse("Иванов").unwrap().initial(), "И.");
    }

    proptest! {
        #[test]
        fn parsed_names_are_never_empty_or_padded(input in ".{0,120}") {
            if let Ok(name) = PersonName::parse(&input) {
                prop_assert!(!name.as_str().is_empty());
                prop_assert_eq!(name.as_str().trim(), name.as_str());
            }
        }
    }
}
