//! The `lastUpdated` tag of Apple's "which passes changed?" request.
//!
//! The tag is opaque to Wallet, which only hands it back. loy puts in it the version of every
//! card the device is registered for (`v1.` + base64url of sorted `serial:version` lines), and a
//! card counts as updated when its current version differs from the one in the tag or is not in
//! it. Unlike a timestamp this cannot miss a change that commits while the list is being made
//! (the change has a new version whatever the clocks say), and it needs no transaction. A tag
//! that does not parse counts as no tag: every registered pass is listed, which is always safe.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::Card;

const PREFIX: &str = "v1.";

/// The tag describing `cards` as they are now.
pub fn encode(cards: &[Card]) -> String {
    let mut pairs: Vec<(&str, i64)> = cards.iter().map(|c| (c.serial.as_str(), c.version)).collect();
    pairs.sort_unstable();
    let text = pairs.iter().map(|(serial, version)| format!("{serial}:{version}")).collect::<Vec<_>>().join("\n");
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(text))
}

/// The versions a tag recorded; `None` for anything loy did not make.
pub fn decode(tag: &str) -> Option<HashMap<String, i64>> {
    let bytes = URL_SAFE_NO_PAD.decode(tag.strip_prefix(PREFIX)?).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut versions = HashMap::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let (serial, version) = line.rsplit_once(':')?;
        versions.insert(serial.to_owned(), version.parse().ok()?);
    }
    Some(versions)
}

/// The cards updated since `tag`: all of them without a (readable) tag.
pub fn updated_since<'a>(cards: &'a [Card], tag: Option<&str>) -> Vec<&'a Card> {
    let known = tag.and_then(decode);
    cards
        .iter()
        .filter(|card| match &known {
            None => true,
            Some(versions) => versions.get(card.serial.as_str()) != Some(&card.version),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, Customer, Locale, PersonName, Phone, Program};
    use chrono::Utc;

    fn card() -> Card {
        let now = Utc::now();
        let program = Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), now);
        let holder = Customer {
            first_name: PersonName::parse("Anna").unwrap(),
            last_name: None,
            phone: Phone::parse("+79123456789", crate::domain::PhoneRegion::RU).unwrap(),
            email: None,
            birthday: None,
            locale: Locale::En,
            consent_at: now,
        };
        Card::enroll(&program, holder, None, now).0
    }

    #[test]
    fn a_tag_lists_nothing_until_a_card_moves_on() {
        let mut cards = vec![card(), card()];
        let tag = encode(&cards);
        assert!(tag.starts_with("v1."));
        assert!(updated_since(&cards, Some(&tag)).is_empty());
        cards[1] = cards[1].bumped(Utc::now());
        let updated = updated_since(&cards, Some(&tag));
        assert_eq!(updated.len(), 1);
        assert_eq!(updated[0].serial, cards[1].serial);
    }

    #[test]
    fn a_card_missing_from_the_tag_counts_as_updated() {
        let first = card();
        let tag = encode(std::slice::from_ref(&first));
        let cards = vec![first, card()];
        assert_eq!(updated_since(&cards, Some(&tag)).len(), 1);
    }

    #[test]
    fn no_tag_or_a_foreign_tag_lists_everything() {
        let cards = vec![card(), card()];
        assert_eq!(updated_since(&cards, None).len(), 2);
        for foreign in ["", "1718000000", "v1.!!!", "v1.bm90IGEgdGFn", "v2.abc"] {
            assert_eq!(updated_since(&cards, Some(foreign)).len(), 2, "{foreign}");
        }
    }

    #[test]
    fn the_tag_does_not_depend_on_the_order_of_cards() {
        let (a, b) = (card(), card());
        assert_eq!(encode(&[a.clone(), b.clone()]), encode(&[b, a]));
    }
}
