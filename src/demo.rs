//! `loy demo seed`: a fresh store filled with believable customers and their history over the
//! last days, for trying the console and for measuring it. Customers register on random days,
//! each with a habit (a few regulars who come every few days, many who come now and then, some
//! who came once), and their purchases, redemptions and stamps go through the real ledger
//! (`ledger::apply`), so every balance, tier and reward is what the program's rules make of them
//! and `loy check ledger` holds. Seeded cards are marked pushed: no phone holds them.
//!
//! It refuses a store that holds any card, so it can never mix invented customers into real ones.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Card, Customer, EntrySource, Locale, PersonName, Phone, PhoneRegion, Program, SerialNumber};
use crate::ledger::{self, Actor, Command, LedgerError, WriteContext};
use crate::store::Store;

/// What to make.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub cards: u64,
    pub days: u32,
    /// The same seed makes the same customers and history (relative to `now`).
    pub seed: u64,
}

/// What was made.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub cards: u64,
    pub transactions: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the store already holds cards; demo data goes into an empty store only")]
    NotEmpty,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

const FIRST_RU: &[&str] =
    &["Анна", "Мария", "Елена", "Ольга", "Иван", "Сергей", "Дмитрий", "Алексей", "Наталья", "Павел"];
const LAST_RU: &[&str] = &["Иванова", "Смирнов", "Кузнецова", "Попов", "Соколова", "Лебедев", "Козлова", "Новиков"];
const FIRST_EN: &[&str] = &["Anna", "Maria", "Helen", "Olga", "John", "Sergey", "David", "Alex", "Kate", "Paul"];
const LAST_EN: &[&str] = &["Smith", "Brown", "Taylor", "Wilson", "Clark", "Walker", "Young", "King"];

/// Fills an empty store with `options.cards` customers of `program` registered over the
/// `options.days` days before `now`.
pub async fn seed(
    store: &dyn Store,
    program: &Program,
    options: &SeedOptions,
    now: DateTime<Utc>,
) -> Result<SeedReport, SeedError> {
    if !store.cards_after(None, 1).await.map_err(LedgerError::from)?.is_empty() {
        return Err(SeedError::NotEmpty);
    }
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let span = Duration::days(i64::from(options.days.max(1)));
    let mut report = SeedReport::default();
    for i in 0..options.cards {
        let registered = now - span + Duration::seconds(rng.i64(0..span.num_seconds()));
        let card = enroll(store, program, &mut rng, i, registered).await?;
        report.cards += 1;
        report.transactions += history(store, program, &mut rng, &card, registered, now).await?;
        mark_pushed(store, &card.serial).await?;
    }
    Ok(report)
}

async fn enroll(
    store: &dyn Store,
    program: &Program,
    rng: &mut fastrand::Rng,
    i: u64,
    at: DateTime<Utc>,
) -> Result<Card, LedgerError> {
    let locale = if rng.u8(0..10) < 8 { Locale::Ru } else { Locale::En };
    let (first, last) = if locale == Locale::Ru { (FIRST_RU, LAST_RU) } else { (FIRST_EN, LAST_EN) };
    let name = |list: &[&str], rng: &mut fastrand::Rng| PersonName::parse(list[rng.usize(0..list.len())]).ok();
    // +7 999 and the card's index: unique, and plainly made up to anyone reading the list.
    let phone = Phone::parse(&format!("+7999{i:07}"), PhoneRegion::RU).expect("a valid demo phone");
    let holder = Customer {
        first_name: name(first, rng).expect("a valid demo name"),
        last_name: if rng.bool() { name(last, rng) } else { None },
        phone,
        email: None,
        birthday: chrono::NaiveDate::from_ymd_opt(rng.i32(1950..2006), rng.u32(1..13), rng.u32(1..29)),
        locale,
        consent_at: at,
    };
    let (card, welcome) = Card::enroll(program, holder, None, at);
    store.insert_card(&card, &welcome).await?;
    Ok(card)
}

/// The card's purchases from registration to `now`, by the customer's habit; returns how many.
async fn history(
    store: &dyn Store,
    program: &Program,
    rng: &mut fastrand::Rng,
    card: &Card,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, LedgerError> {
    // Days between visits: regulars every 2–6 days, most every 1–4 weeks, some never again.
    let gap_days = match rng.u8(0..10) {
        0..=1 => rng.i64(2..7),
        2..=7 => rng.i64(7..29),
        _ => return Ok(0),
    };
    let mut at = from;
    let mut count = 0;
    loop {
        at += Duration::hours(gap_days * 24 / 2 + rng.i64(0..gap_days * 24));
        if at >= now {
            return Ok(count);
        }
        let amount = rng.i64(150..4000) * 100;
        let command = match program.rules.stamp_rules() {
            Some(_) => {
                let current = store.find_card(crate::store::CardLookup::Serial(&card.serial)).await?;
                match current {
                    Some(c) if c.rewards > 0 && rng.bool() => {
                        Command::RedeemReward { count: 1, order_id: None, description: None }
                    }
                    _ => Command::Stamp {
                        stamps: None,
                        purchase_amount: Some(amount),
                        order_id: None,
                        description: None,
                    },
                }
            }
            None => {
                let current = store.find_card(crate::store::CardLookup::Serial(&card.serial)).await?;
                let balance = current.map_or(0, |c| c.balance);
                let limit = ledger::rules::share_limit(&program.rules, &program.currency, Some(amount)).unwrap_or(0);
                let points = balance.min(limit);
                if points >= program.rules.min_redemption && points > 0 && rng.u8(0..4) == 0 {
                    Command::Redeem { points, purchase_amount: Some(amount), order_id: None, description: None }
                } else {
                    Command::Earn { purchase_amount: amount, order_id: None, description: None }
                }
            }
        };
        let ctx = WriteContext {
            entry_id: crate::domain::LedgerEntry::new_id(),
            actor: Actor { source: EntrySource::Pos, id: Some("demo".into()) },
            idempotency: None,
            now: at,
            notify: None,
        };
        match ledger::apply(store, program, &card.serial, &command, &ctx, None).await {
            Ok(_) => count += 1,
            // A purchase below the amount of a stamp earns nothing: the visit still happened.
            Err(LedgerError::Refused { .. }) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Marks the card's current version pushed: demo cards are on no phone.
async fn mark_pushed(store: &dyn Store, serial: &SerialNumber) -> Result<(), LedgerError> {
    let Some(card) = store.find_card(crate::store::CardLookup::Serial(serial)).await? else { return Ok(()) };
    let generation = store.push_generation(serial).await?;
    store.mark_card_pushed(serial, card.version, generation).await?;
    Ok(())
}
