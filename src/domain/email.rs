//! E-mail addresses.

use std::fmt;

/// A syntactically valid e-mail address, trimmed, with its domain in lower case.
///
/// This accepts what mail servers accept in practice (`local@domain.tld`), not every oddity
/// RFC 5322 allows (quoted local parts, IP literals): those are vanishingly rare in sign-up forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enter an e-mail address like name@example.com")]
pub struct EmailError;

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.len() > 254 {
            return Err(EmailError);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels.last().is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
        if !(local_ok && domain_ok) {
            return Err(EmailError);
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_the_domain_lowercased() {
        assert_eq!(Email::parse(" anna@Example.COM ").unwrap().as_str(), "anna@example.com");
        assert_eq!(Email::parse("a.b+tag@mail.co.uk").unwrap().as_str(), "a.b+tag@mail.co.uk");
        assert_eq!(Email::parse("иван@почта.рф").unwrap().as_str(), "иван@почта.рф");
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "anna",
            "anna@",
            "@example.com",
            "anna@example",
            "anna@@example.com",
            "an na@example.com",
            "anna@exa mple.com",
            ".anna@example.com",
            "anna.@example.com",
            "an..na@example.com",
            "anna@-example.com",
            "anna@example.c",
            "anna@1.2.3.4",
            "<script>@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad:?} was accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(EmailError));
    }

    proptest! {
        #[test]
        fn generated_valid_addresses_round_trip(local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}\\.[a-z]{2,6}") {
            let address = format!("{local}@{domain}");
            let parsed = Email::parse(&address).unwrap();
            prop_assert_eq!(parsed.as_str(), address.as_str());
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(input in ".{0,80}") {
            let _ = Email::parse(&input);
        }
    }
}
