//! Re-normalising stored phone numbers by the current rules ([`Phone::parse`]), once at start
//! and on demand (`loy check phones`).
//!
//! Cards stored before libphonenumber's rules may hold a number in a form the current rules
//! write differently (`+4402079460958` for `+442079460958`), or an impossible one
//! (`+89123456789`). Each is rewritten to its E.164 key, unless another card of the program
//! already has that key: then both cards are left as they are and reported, because merging
//! two people's cards (balances, ledgers, devices) is a decision for staff, not for a migration.

use chrono::{DateTime, Utc};

use crate::domain::{Phone, PhoneError, PhoneRegion, SerialNumber};
use crate::store::{CardLookup, Store, StoreError, StoreResult, UniqueKey};

/// The name the one-time run at start is recorded under.
pub const STEP: &str = "phones_libphonenumber_v1";

const PAGE: usize = 500;

/// Two cards whose numbers are one number by the current rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNumber {
    pub program_id: String,
    /// The E.164 key both numbers normalise to.
    pub phone: String,
    /// The card whose stored number would have to change, and that number.
    pub card: SerialNumber,
    pub stored: String,
    /// The card that already holds (or was just given) the key.
    pub other: SerialNumber,
}

/// A stored number the current rules refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpossibleNumber {
    pub card: SerialNumber,
    pub stored: String,
    pub problem: PhoneError,
}

/// What a run found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PhoneReport {
    pub cards: u64,
    /// Cards whose number was (or, when only checking, would be) rewritten: card, from, to.
    pub rewritten: Vec<(SerialNumber, String, String)>,
    pub shared: Vec<SharedNumber>,
    pub impossible: Vec<ImpossibleNumber>,
}

impl PhoneReport {
    /// Whether nothing needs a person's attention.
    pub fn is_clean(&self) -> bool {
        self.shared.is_empty() && self.impossible.is_empty()
    }

    /// Writes every finding to the log.
    pub fn log(&self) {
        for s in &self.shared {
            tracing::warn!(
                card = %s.card, other = %s.other, program = %s.program_id,
                "two cards have the same phone number by the current rules; both are left as they are for staff to merge"
            );
        }
        for i in &self.impossible {
            tracing::warn!(card = %i.card, problem = %i.problem, "a card's stored phone number is not a possible number");
        }
        tracing::info!(
            cards = self.cards,
            rewritten = self.rewritten.len(),
            shared = self.shared.len(),
            impossible = self.impossible.len(),
            "stored phone numbers checked"
        );
    }
}

/// Whether [`renormalise`] changes the store or only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    CheckOnly,
}

/// Checks every card's stored phone against the current rules and, with [`Mode::Apply`],
/// rewrites those that normalise differently to a number no other card has.
pub async fn renormalise(store: &dyn Store, region: PhoneRegion, mode: Mode) -> StoreResult<PhoneReport> {
    let mut report = PhoneReport::default();
    // Only when checking: keys that rewrites earlier in this run would have taken.
    let mut would_take: std::collections::HashMap<(String, String), SerialNumber> = Default::default();
    let mut after: Option<SerialNumber> = None;
    loop {
        let page = store.stored_phones(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        for stored in page {
            report.cards += 1;
            let phone = match Phone::parse(&stored.phone, region) {
                Ok(phone) => phone,
                Err(problem) => {
                    report.impossible.push(ImpossibleNumber { card: stored.serial, stored: stored.phone, problem });
                    continue;
                }
            };
            if phone.as_str() == stored.phone {
                continue;
            }
            let holder = store.find_card(CardLookup::Phone { program_id: &stored.program_id, phone: &phone }).await?;
            let holder = holder
                .map(|c| c.serial)
                .or_else(|| would_take.get(&(stored.program_id.clone(), phone.as_str().to_owned())).cloned());
            let shared = |other: SerialNumber| SharedNumber {
                program_id: stored.program_id.clone(),
                phone: phone.as_str().to_owned(),
                card: stored.serial.clone(),
                stored: stored.phone.clone(),
                other,
            };
            if let Some(other) = holder.filter(|other| *other != stored.serial) {
                report.shared.push(shared(other));
                continue;
            }
            match mode {
                Mode::CheckOnly => {
                    would_take.insert((stored.program_id.clone(), phone.as_str().to_owned()), stored.serial.clone());
                }
                Mode::Apply => match store.set_card_phone(&stored.serial, &phone).await {
                    Ok(_) => {}
                    Err(StoreError::Duplicate(UniqueKey::Phone)) => {
                        // Taken between the look-up and the write (an enrollment meanwhile).
                        let other = store
                            .find_card(CardLookup::Phone { program_id: &stored.program_id, phone: &phone })
                            .await?
                            .map(|c| c.serial)
                            .ok_or_else(|| StoreError::Corrupt("a duplicate phone with no card".into()))?;
                        report.shared.push(shared(other));
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            }
            report.rewritten.push((stored.serial, stored.phone, phone.as_str().to_owned()));
        }
    }
    Ok(report)
}

/// Runs [`renormalise`] once per store (recorded as [`STEP`]), logging what it found; later
/// starts skip it. Shared numbers stay reported by `loy check phones`.
pub async fn migrate_once(store: &dyn Store, region: PhoneRegion, now: DateTime<Utc>) -> StoreResult<()> {
    if store.data_step_done(STEP).await?.is_some() {
        return Ok(());
    }
    let report = renormalise(store, region, Mode::Apply).await?;
    report.log();
    store.record_data_step(STEP, now).await
}
