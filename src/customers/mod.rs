//! Customers as staff see them: finding a card by whatever the customer shows or says,
//! deleting a customer's personal data, and exporting everything stored about one customer.
//! The console screens (`admin::cashier`, `admin::customers`) call these; they hold no HTTP.

pub mod export;
pub mod till;

use chrono::{DateTime, Utc};

use crate::domain::phone::PhoneRegion;
use crate::domain::{Card, CardKey, CardNumber, Email, Phone, SerialNumber};
use crate::pos::CardId;
use crate::store::{CardLookup, Store, StoreResult};

/// At most this many cards answer one search.
pub const SEARCH_LIMIT: usize = 50;

/// Finds the card a till is shown or told: the Wallet pass's QR (its barcode value), the card
/// page's QR (the page address, `…/c/{card key}`), the card number typed with or without
/// spaces — in any program —, or the phone number in any format the enrollment form accepts,
/// in `program_id`. Deleted customers' cards are not found.
pub async fn find_for_till(
    store: &dyn Store,
    program_id: &str,
    input: &str,
    region: PhoneRegion,
) -> StoreResult<Option<Card>> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    let found = if let Some(key) = card_page_key(input) {
        store.find_card(CardLookup::Key(key.expose())).await?.filter(|c| key.matches(c.card_key.expose()))
    } else {
        let mut found = match CardId::parse(input) {
            Some(id) => store.find_card(id.lookup()).await?,
            None => None,
        };
        if found.is_none() {
            if let Ok(phone) = Phone::parse(input, region) {
                found = store.find_card(CardLookup::Phone { program_id, phone: &phone }).await?;
            }
        }
        found
    };
    // A scanned code or a card number names one card whatever program the till is in; only a
    // phone is looked up in the chosen program.
    Ok(found.filter(|c| !c.is_deleted()))
}

/// The card key in a card page address (`https://host/c/{key}`, with or without a query).
fn card_page_key(input: &str) -> Option<CardKey> {
    let (_, rest) = input.rsplit_once("/c/")?;
    let key = rest.split(['?', '#', '/']).next()?;
    CardKey::parse(key).ok()
}

/// Searches the program's customers by what staff typed: an e-mail when it has an `@`, a
/// card number or a phone when it is digits (both are tried), a name prefix otherwise.
pub async fn search(store: &dyn Store, program_id: &str, query: &str, region: PhoneRegion) -> StoreResult<Vec<Card>> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    if query.contains('@') {
        return match Email::parse(query) {
            Ok(email) => store.cards_by_email(program_id, &email, SEARCH_LIMIT).await,
            Err(_) => Ok(Vec::new()),
        };
    }
    let digits = query.chars().filter(char::is_ascii_digit).count();
    if digits > 0 && query.chars().all(|c| c.is_ascii_digit() || " +-().\u{a0}".contains(c)) {
        let mut cards = Vec::new();
        if let Ok(number) = CardNumber::parse(query) {
            cards.extend(store.find_card(CardLookup::Number(&number)).await?);
        }
        if let Ok(phone) = Phone::parse(query, region) {
            if let Some(card) = store.find_card(CardLookup::Phone { program_id, phone: &phone }).await? {
                if !cards.iter().any(|c: &Card| c.serial == card.serial) {
                    cards.push(card);
                }
            }
        }
        cards.retain(|c| c.program_id == program_id);
        return Ok(cards);
    }
    store.cards_by_name_prefix(program_id, query, SEARCH_LIMIT).await
}

/// Deletes a customer's personal data from their card (see [`Card::deleted`]): retried until it
/// wins against concurrent writers. Returns the card before and after, or `None` when there is
/// no such card. Deleting twice changes nothing the second time (the same card is returned
/// as before and after).
pub async fn delete_customer(
    store: &dyn Store,
    serial: &SerialNumber,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Card, Card)>> {
    loop {
        let Some(card) = store.find_card(CardLookup::Serial(serial)).await? else {
            return Ok(None);
        };
        if card.is_deleted() {
            return Ok(Some((card.clone(), card)));
        }
        let next = card.deleted(now);
        let events = [crate::webhooks::events::customer_deleted(&next, now)];
        if store.update_card_emitting(&next, card.version, &events).await? {
            return Ok(Some((card, next)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_page_address_gives_its_key() {
        let key = CardKey::generate();
        let url = format!("https://loy.example/c/{}", key.expose());
        assert_eq!(card_page_key(&url).map(|k| k.expose().to_owned()), Some(key.expose().to_owned()));
        let with_query = format!("{url}?lang=ru");
        assert!(card_page_key(&with_query).is_some());
        assert!(card_page_key("1234 5678").is_none());
        assert!(card_page_key("https://loy.example/c/").is_none());
    }
}
