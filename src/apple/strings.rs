//! `pass.strings`: the localisation files of a pass (`"KEY" = "text";` lines, C comments).
//! Wallet replaces a label or value that equals a key with that key's text in the device's
//! language, so one pass reads in Russian on a Russian phone and in English on an English one.

/// Parses a `.strings` file into its key/text pairs; the error says where it went wrong.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut line = 1;
    loop {
        rest = skip_blank_and_comments(rest, &mut line)?;
        if rest.is_empty() {
            return Ok(pairs);
        }
        let (key, after) = quoted(rest, line)?;
        rest = skip_blank_and_comments(after, &mut line)?;
        rest = rest.strip_prefix('=').ok_or_else(|| format!("line {line}: expected `=` after \"{key}\""))?;
        rest = skip_blank_and_comments(rest, &mut line)?;
        let (value, after) = quoted(rest, line)?;
        rest = skip_blank_and_comments(after, &mut line)?;
        rest =
            rest.strip_prefix(';').ok_or_else(|| format!("line {line}: expected `;` after the text of \"{key}\""))?;
        line += value.matches('\n').count();
        pairs.push((key, value));
    }
}

fn skip_blank_and_comments<'a>(mut s: &'a str, line: &mut usize) -> Result<&'a str, String> {
    loop {
        let trimmed = s.trim_start();
        *line += s[..s.len() - trimmed.len()].matches('\n').count();
        s = trimmed;
        if let Some(after) = s.strip_prefix("/*") {
            let end = after.find("*/").ok_or_else(|| format!("line {line}: a comment is not closed"))?;
            *line += after[..end].matches('\n').count();
            s = &after[end + 2..];
        } else if let Some(after) = s.strip_prefix("//") {
            s = after.find('\n').map_or("", |end| &after[end..]);
        } else {
            return Ok(s);
        }
    }
}

/// A double-quoted string with `\"`, `\\`, `\n`, `\t` escapes; returns it and the rest.
fn quoted(s: &str, line: usize) -> Result<(String, &str), String> {
    let body = s.strip_prefix('"').ok_or_else(|| format!("line {line}: expected a \"quoted\" string"))?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(format!("line {line}: a quoted string is not closed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_texts_comments_and_escapes_are_read() {
        let text = "/* Labels */\n\"BALANCE\" = \"Баланс\";\n// a note\n\"Q\" = \"say \\\"hi\\\"\\nbye\";\n";
        let pairs = parse(text).unwrap();
        assert_eq!(pairs, [("BALANCE".into(), "Баланс".into()), ("Q".into(), "say \"hi\"\nbye".into())]);
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        assert_eq!(parse("\"A\" = \"a\";\n\"B\" \"b\";").unwrap_err(), "line 2: expected `=` after \"B\"");
        assert!(parse("\"A\" = \"a\"").unwrap_err().contains("expected `;`"));
        assert!(parse("\"A\" = \"a;").unwrap_err().contains("not closed"));
        assert!(parse("/* open").unwrap_err().contains("comment is not closed"));
    }
}
