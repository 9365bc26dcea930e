//! Text that people and systems send: names, reasons, descriptions. Only visible characters are
//! kept, because a name is shown to staff and printed on a pass: a right-to-left override
//! (U+202E) or a zero-width space could make one name look like another.

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("contains a control character (such as a line break or a tab)")]
    Control,
    #[error("contains a bidirectional control character, which can make the text display differently from what it is")]
    Bidirectional,
    #[error("contains an invisible character (zero-width, tag or formatting character)")]
    Invisible,
    #[error("contains a character that is not valid text (U+FFFD or a noncharacter)")]
    NotText,
}

/// The first character of `text` that may not appear in a name or a note, and why.
pub fn first_forbidden(text: &str) -> Option<(char, TextError)> {
    text.chars().find_map(|c| forbidden(c).map(|why| (c, why)))
}

/// Checks that `text` holds only visible characters and ordinary spaces.
pub fn check(text: &str) -> Result<(), TextError> {
    match first_forbidden(text) {
        Some((_, why)) => Err(why),
        None => Ok(()),
    }
}

/// Why `c` may not appear in text, if it may not.
pub fn forbidden(c: char) -> Option<TextError> {
    let code = u32::from(c);
    if c.is_control() || matches!(code, 0x2028 | 0x2029) {
        // C0, DEL and C1 controls, and the Unicode line and paragraph separators.
        return Some(TextError::Control);
    }
    if matches!(code, 0x202A..=0x202E | 0x2066..=0x2069 | 0x200E | 0x200F | 0x061C) {
        return Some(TextError::Bidirectional);
    }
    if matches!(
        code,
        0x00AD                  // soft hyphen
            | 0x034F            // combining grapheme joiner
            | 0x0600..=0x0605   // Arabic number signs (format characters)
            | 0x06DD
            | 0x070F
            | 0x08E2
            | 0x115F | 0x1160   // Hangul fillers, shown as nothing
            | 0x17B4 | 0x17B5
            | 0x180B..=0x180F   // Mongolian free variation selectors and vowel separator
            | 0x200B..=0x200D   // zero-width space, non-joiner, joiner
            | 0x2060..=0x2065   // word joiner and invisible operators
            | 0x206A..=0x206F   // deprecated format characters
            | 0x3164            // Hangul filler
            | 0xFEFF            // zero-width no-break space (byte order mark)
            | 0xFFA0
            | 0xFFF9..=0xFFFB   // interlinear annotation
            | 0x110BD | 0x110CD
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE007F // tag characters
    ) {
        return Some(TextError::Invisible);
    }
    if code == 0xFFFD || matches!(code, 0xFDD0..=0xFDEF) || code & 0xFFFE == 0xFFFE {
        return Some(TextError::NotText);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_names_and_notes_pass() {
        for ok in ["Анна", "O'Brien-Smith", "José María", "李小龍", "Refund, order #12: wrong size", "Zoë 🙂"]
        {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn spoofing_and_invisible_characters_are_refused() {
        let cases = [
            ("Anna\u{202E}anaN", TextError::Bidirectional),
            ("\u{2066}Anna\u{2069}", TextError::Bidirectional),
            ("An\u{200F}na", TextError::Bidirectional),
            ("An\u{200B}na", TextError::Invisible),
            ("An\u{200D}na", TextError::Invisible),
            ("\u{FEFF}Anna", TextError::Invisible),
            ("Anna\u{E0041}\u{E007F}", TextError::Invisible),
            ("Anna\u{00AD}", TextError::Invisible),
            ("An\nna", TextError::Control),
            ("An\u{7}na", TextError::Control),
            ("An\u{85}na", TextError::Control),
            ("An\u{2028}na", TextError::Control),
            ("An\u{FFFD}na", TextError::NotText),
            ("An\u{FFFF}na", TextError::NotText),
        ];
        for (text, why) in cases {
            assert_eq!(check(text), Err(why), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_text_has_no_control_or_format_characters(input in "\\PC{0,40}") {
            if check(&input).is_ok() {
                let hidden = input.chars().any(|c| c.is_control() || ('\u{200B}'..='\u{200F}').contains(&c));
                prop_assert!(!hidden, "{:?}", input);
            }
        }
    }
}
