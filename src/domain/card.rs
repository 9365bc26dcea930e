//! The loyalty card and the customer who holds it.

use chrono::{DateTime, NaiveDate, Utc};

use super::ledger::{EntryKind, EntrySource, LedgerEntry};
use super::{
    AuthToken, BarcodeValue, CardKey, CardNumber, Email, Locale, PersonName, Phone, Program, ReferralCode, SerialNumber,
};

/// The person a card belongs to: only what the program needs (SPEC §5, personal data minimal).
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub first_name: PersonName,
    pub last_name: Option<PersonName>,
    pub phone: Phone,
    pub email: Option<Email>,
    pub birthday: Option<NaiveDate>,
    /// The language the customer registered in; messages and the pass use it.
    pub locale: Locale,
    /// When the customer agreed to the program's terms.
    pub consent_at: DateTime<Utc>,
}

impl Customer {
    /// "Анна И." — the first name and the initial of the last name, for cashiers and the pass.
    pub fn display_name(&self) -> String {
        match &self.last_name {
            Some(last) => format!("{} {}", self.first_name, last.initial()),
            None => self.first_name.to_string(),
        }
    }

    pub fn full_name(&self) -> String {
        match &self.last_name {
            Some(last) => format!("{} {}", self.first_name, last),
            None => self.first_name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardStatus {
    Active,
    /// Refuses earn and redeem; the pass still shows.
    Blocked,
    /// The customer was deleted: no personal data is kept, the ledger stays under the card's
    /// serial (an anonymous id), the pass is voided and the Google object expired.
    Deleted,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "blocked" => Some(Self::Blocked),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// What the pass shows as "last transaction", kept on the card so rendering needs no ledger read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEntry {
    pub kind: EntryKind,
    pub points: i64,
    pub at: DateTime<Utc>,
}

/// A loyalty card. `version` moves whenever anything the customer sees changes; a push is owed
/// while `pushed_version < version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub serial: SerialNumber,
    pub program_id: String,
    pub card_number: CardNumber,
    pub barcode: BarcodeValue,
    pub card_key: CardKey,
    pub auth_token: AuthToken,
    pub referral_code: ReferralCode,
    pub referred_by: Option<SerialNumber>,
    /// `None` once the customer was deleted ([`CardStatus::Deleted`]).
    pub holder: Option<Customer>,
    pub status: CardStatus,
    /// Points; in a stamps program, the stamps of the round in progress.
    pub balance: i64,
    /// Points (or stamps) ever earned, net of reversals.
    pub lifetime_earned: i64,
    /// Rewards waiting to be redeemed (stamps programs).
    pub rewards: i64,
    pub tier: String,
    pub version: i64,
    pub pushed_version: i64,
    /// Set when the version moved ahead of `pushed_version`; cleared when the push is done.
    pub push_pending_since: Option<DateTime<Utc>>,
    /// The pass's `Last-Modified`, in whole seconds, strictly later for every new version (see
    /// [`Card::next_modified_at`]).
    pub modified_at: DateTime<Utc>,
    pub last_entry: Option<LastEntry>,
    /// The latest message staff sent to the card, shown on the pass (see `crate::messages`).
    pub news: Option<CardNews>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The latest message sent to a card, in the holder's language: the pass shows it on its back
/// (Apple announces it on the lock screen) and Google gets it as a message on the object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardNews {
    pub message_id: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    /// The card version that carried it first: devices behind it have not seen it yet.
    pub version: i64,
    /// Whether it goes to the card's Google object; false when it went on the class, once for
    /// every card of the program.
    pub google_object: bool,
    pub at: DateTime<Utc>,
}

impl Card {
    /// A new card for `holder` with fresh identifiers and its welcome entry, which is the first
    /// entry of its ledger and sets the starting balance (zero when the program credits the
    /// welcome bonus at the first purchase instead).
    pub fn enroll(
        program: &Program,
        holder: Customer,
        referred_by: Option<SerialNumber>,
        now: DateTime<Utc>,
    ) -> (Card, LedgerEntry) {
        let now = stored_precision(now);
        let rules = &program.rules;
        let welcome = match rules.stamp_rules() {
            Some(stamps) => i64::from(stamps.welcome_stamps),
            None if rules.welcome_at_first_purchase => 0,
            None => rules.welcome_bonus,
        };
        let tier = rules.tier_for(0).id.clone();
        let modified_at = whole_second(now);
        let serial = SerialNumber::generate();
        let card = Card {
            serial: serial.clone(),
            program_id: program.id.clone(),
            card_number: CardNumber::generate(),
            barcode: BarcodeValue::generate(),
            card_key: CardKey::generate(),
            auth_token: AuthToken::generate(),
            referral_code: ReferralCode::generate(),
            referred_by,
            holder: Some(holder),
            status: CardStatus::Active,
            balance: welcome,
            lifetime_earned: 0,
            rewards: 0,
            tier: tier.clone(),
            version: 1,
            pushed_version: 1,
            push_pending_since: None,
            modified_at,
            last_entry: Some(LastEntry { kind: EntryKind::Welcome, points: welcome, at: now }),
            news: None,
            created_at: now,
            updated_at: now,
        };
        let entry = LedgerEntry {
            id: LedgerEntry::new_id(),
            serial,
            program_id: program.id.clone(),
            seq: 1,
            kind: EntryKind::Welcome,
            points: welcome,
            rewards: 0,
            rewards_after: 0,
            purchase_amount: None,
            balance_after: welcome,
            lifetime_after: 0,
            tier_after: tier,
            order_id: None,
            description: None,
            source: EntrySource::System,
            actor: None,
            idempotency_key: None,
            reverses: None,
            created_at: now,
        };
        (card, entry)
    }

    /// The `Last-Modified` second for the next version: now, but always at least one second
    /// after the previous one. Wallet compares `If-Modified-Since` at one-second resolution, so
    /// two versions within one second would otherwise look identical and the second one would
    /// never reach the phone.
    pub fn next_modified_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = whole_second(now);
        let floor = self.modified_at + chrono::Duration::seconds(1);
        now.max(floor)
    }

    /// This card at its next version: what a change the customer can see does besides the
    /// change itself (a new `Last-Modified`, a push owed).
    pub fn bumped(&self, now: DateTime<Utc>) -> Card {
        let now = stored_precision(now);
        Card {
            version: self.version + 1,
            modified_at: self.next_modified_at(now),
            push_pending_since: Some(self.push_pending_since.unwrap_or(now)),
            updated_at: now,
            ..self.clone()
        }
    }

    pub fn needs_push(&self) -> bool {
        self.pushed_version < self.version
    }

    /// The holder's short name for cashiers and the pass; empty once the customer was deleted.
    pub fn display_name(&self) -> String {
        self.holder.as_ref().map(Customer::display_name).unwrap_or_default()
    }

    /// The language of the holder (the default one once the customer was deleted).
    pub fn locale(&self) -> Locale {
        self.holder.as_ref().map(|h| h.locale).unwrap_or_default()
    }

    /// Whether the card still refuses every change of balance and holder.
    pub fn is_deleted(&self) -> bool {
        self.status == CardStatus::Deleted
    }

    /// This card with its customer deleted: personal data gone, status `deleted`, the next
    /// version owed to Wallet (which shows the pass voided). Balance and ledger are untouched.
    pub fn deleted(&self, now: DateTime<Utc>) -> Card {
        Card { holder: None, status: CardStatus::Deleted, ..self.bumped(now) }
    }
}

/// `t` at the precision the stores keep (milliseconds), so a value read back equals the one written.
pub fn stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(3)
}

/// `t` truncated to whole seconds.
pub fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).expect("a valid timestamp stays valid when truncated")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn customer(now: DateTime<Utc>) -> Customer {
        Customer {
            first_name: PersonName::parse("Анна").unwrap(),
            last_name: Some(PersonName::parse("Иванова").unwrap()),
            phone: Phone::parse("+79123456789", crate::domain::PhoneRegion::RU).unwrap(),
            email: None,
            birthday: None,
            locale: Locale::Ru,
            consent_at: now,
        }
    }

    #[test]
    fn a_new_card_starts_with_the_welcome_bonus_as_its_first_entry() {
        let now = Utc::now();
        let program = Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), now);
        let (card, entry) = Card::enroll(&program, customer(now), None, now);
        assert_eq!(card.balance, 100);
        assert_eq!(entry.points, 100);
        assert_eq!(entry.balance_after, card.balance);
        assert_eq!(entry.kind, EntryKind::Welcome);
        assert_eq!(entry.serial, card.serial);
        assert_eq!(card.tier, "bronze");
        assert!(!card.needs_push());
        assert_eq!(card.display_name(), "Анна И.");
    }

    #[test]
    fn last_modified_moves_forward_by_at_least_a_second_per_version() {
        let now = Utc::now();
        let program = Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), now);
        let (mut card, _) = Card::enroll(&program, customer(now), None, now);
        let first = card.modified_at;
        let second = card.next_modified_at(now);
        assert_eq!(second, first + chrono::Duration::seconds(1));
        card.modified_at = second;
        let later = now + chrono::Duration::seconds(60);
        assert_eq!(card.next_modified_at(later), whole_second(later));
    }
}
