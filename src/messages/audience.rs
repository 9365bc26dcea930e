//! Who a message goes to: cards of one program, all of them or those that match.
//!
//! Whether a card belongs is decided when the fan-out reaches it, from the card as it is then
//! (the audience size shown when writing is the count at that moment).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Wallet;
use crate::domain::{Card, TimeZone};
use crate::store::{CustomerCursor, CustomerListQuery, CustomerSort, DynStore, StoreResult};

/// The cards of a program a message goes to. Deleted customers' cards are never included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// Every card.
    All,
    /// Cards of one tier (its id).
    Tier { tier: String },
    /// Cards without a ledger entry for `days` days or more.
    Inactive { days: u32 },
    /// Customers whose birthday is in `month` (1–12).
    Birthdays { month: u32 },
    /// Cards in one wallet: Apple (a device registered) or Google (saved in Google Wallet, as
    /// Google's callbacks and the reconciliation last said).
    Wallet { wallet: Wallet },
    /// One card.
    Customer { serial: String },
    /// Cards of one RFM segment (`champions`, `at_risk`, …), as of the program's last
    /// computation of segments.
    Segment { segment: String },
    /// Customers whose birthday is on this day (automatic birthday greetings).
    BirthdayOn { month: u32, day: u32 },
    /// Cards whose last ledger entry (or registration) was on this day in `zone` (win-back
    /// notes).
    LastActivityOn {
        date: NaiveDate,
        #[serde(default, skip_serializing_if = "TimeZone::is_utc", rename = "time_zone")]
        zone: TimeZone,
    },
    /// Cards with points that expire on this day in `zone`, in a program whose points expire
    /// `expiry_days` after they were credited (expiry notes).
    PointsExpiringOn {
        date: NaiveDate,
        expiry_days: u32,
        #[serde(default, skip_serializing_if = "TimeZone::is_utc", rename = "time_zone")]
        zone: TimeZone,
    },
}

impl Audience {
    /// The kind's name, as forms and the API say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Tier { .. } => "tier",
            Self::Inactive { .. } => "inactive",
            Self::Birthdays { .. } => "birthdays",
            Self::Wallet { .. } => "wallet",
            Self::Customer { .. } => "customer",
            Self::Segment { .. } => "segment",
            Self::BirthdayOn { .. } => "birthday_on",
            Self::LastActivityOn { .. } => "last_activity_on",
            Self::PointsExpiringOn { .. } => "points_expiring_on",
        }
    }

    /// Birthdays of the month it is at `now` in `zone` (the program's).
    pub fn birthdays_this_month(zone: TimeZone, now: DateTime<Utc>) -> Self {
        Self::Birthdays { month: zone.date_of(now).month() }
    }

    /// Whether `card` belongs to the audience at `now`.
    pub async fn includes(&self, store: &DynStore, card: &Card, now: DateTime<Utc>) -> StoreResult<bool> {
        if card.is_deleted() {
            return Ok(false);
        }
        Ok(match self {
            Self::All => true,
            Self::Tier { tier } => card.tier == *tier,
            Self::Inactive { days } => {
                let last = card.last_entry.as_ref().map_or(card.created_at, |e| e.at);
                now - last >= chrono::Duration::days(i64::from(*days))
            }
            Self::Birthdays { month } => {
                card.holder.as_ref().and_then(|h| h.birthday).is_some_and(|b| b.month() == *month)
            }
            Self::Wallet { wallet: Wallet::Apple } => store.count_card_devices(card.serial.as_str()).await? > 0,
            // Saved in Google Wallet, as Google last said: every card may have an object (loy
            // writes one at enrollment), but only a saved one is on a phone.
            Self::Wallet { wallet: Wallet::Google } => {
                store.google_wallet_state(&card.serial).await?.is_some_and(|state| state.saved)
            }
            Self::Customer { serial } => card.serial.as_str() == serial,
            Self::Segment { segment } => {
                store.card_segment(&card.serial).await?.is_some_and(|s| s.segment.as_str() == segment)
            }
            Self::BirthdayOn { month, day } => {
                card.holder.as_ref().and_then(|h| h.birthday).is_some_and(|b| b.month() == *month && b.day() == *day)
            }
            Self::LastActivityOn { date, zone } => {
                zone.date_of(card.last_entry.as_ref().map_or(card.created_at, |e| e.at)) == *date
            }
            Self::PointsExpiringOn { date, expiry_days, zone } => {
                card.balance > 0 && expiring_on(store, card, *date, *expiry_days, *zone).await? > 0
            }
        })
    }

    /// How many cards of `program_id` belong at `now`, read a page at a time.
    pub async fn count(&self, store: &DynStore, program_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        if let Self::Customer { serial } = self {
            let card = store.find_card(crate::store::CardLookup::Serial(&parse_serial(serial)?)).await?;
            return Ok(match card {
                Some(card) if card.program_id == program_id && self.includes(store, &card, now).await? => 1,
                _ => 0,
            });
        }
        if let Self::Segment { segment } = self {
            let counts = store.segment_counts(program_id).await?;
            return Ok(counts.into_iter().find(|(s, _)| s.as_str() == segment).map_or(0, |(_, n)| n));
        }
        let mut after = None;
        let mut count = 0;
        loop {
            let page = page(store, program_id, after.take(), 500).await?;
            let Some(last) = page.last() else { return Ok(count) };
            after = Some(CustomerCursor::after(last, CustomerSort::Registered));
            for card in &page {
                if self.includes(store, card, now).await? {
                    count += 1;
                }
            }
        }
    }
}

/// The card's points that expire on `date` (a day in `zone`): credited on the day
/// `expiry_days` before it and still unspent (oldest points are spent first).
async fn expiring_on(
    store: &DynStore,
    card: &Card,
    date: NaiveDate,
    expiry_days: u32,
    zone: TimeZone,
) -> StoreResult<i64> {
    let credited = date - chrono::Duration::days(i64::from(expiry_days));
    let (start, end) = (zone.start_of(credited), zone.start_of(credited + chrono::Duration::days(1)));
    let entries = store.card_entries(&card.serial, None, usize::MAX).await?;
    let until_end = crate::ledger::rules::points_to_expire(&entries, end, card.balance);
    let until_start = crate::ledger::rules::points_to_expire(&entries, start, card.balance);
    Ok(until_end - until_start)
}

/// A serial from an audience, or a store error that says the audience names no card.
fn parse_serial(serial: &str) -> StoreResult<crate::domain::SerialNumber> {
    crate::domain::SerialNumber::parse(serial)
        .map_err(|_| crate::store::StoreError::Corrupt(format!("the audience names no card: {serial}")))
}

/// The program's cards in registration order after `after`: the order the fan-out walks, in
/// which cards registered during a fan-out come last (so they are reached too).
pub async fn page(
    store: &DynStore,
    program_id: &str,
    after: Option<CustomerCursor>,
    limit: usize,
) -> StoreResult<Vec<Card>> {
    store
        .list_cards(&CustomerListQuery { program_id, sort: CustomerSort::Registered, descending: false, after, limit })
        .await
}
