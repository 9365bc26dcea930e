//! The dashboard's numbers (SPEC §4.7, the console's home): one row per program and day adding
//! up that day's ledger and wallet changes, and a snapshot of the counts that describe "now" (active cards, cards
//! per tier). Both are written by [`crate::stats`] in the background, so a page view reads a
//! few hundred small rows and never scans the ledger or the cards.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::wallet_events::{DayCount, Wallet, WalletChange};
use super::{StoreError, StoreResult};
use crate::domain::{EntryKind, TimeZone};

/// What a span of a program's ledger adds up to. The one definition of each figure is
/// [`LedgerTotals::add`], which both backends feed entry by entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// Cards that joined: `welcome` entries (enrolment) and `import` entries (cards brought in).
    pub registrations: u64,
    /// Points (stamps in a stamps program) credited: positive `welcome`, `earn`, `stamp`,
    /// `referral` and `adjust` entries. Refunds are not taken off: the figure is gross.
    pub issued: i64,
    /// Points spent at the till: the points of `redeem` entries.
    pub redeemed: i64,
    /// Rewards a stamps program gave for completed rounds.
    pub rewards_issued: i64,
    /// Rewards handed to customers.
    pub rewards_redeemed: i64,
    /// Purchases the till reported: `earn`, `stamp` and `redeem` entries carrying an amount.
    pub purchases: u64,
    /// Their amounts, in minor currency units (gross, like `issued`).
    pub revenue: i64,
}

impl LedgerTotals {
    /// Counts one entry in.
    pub fn add(&mut self, kind: EntryKind, points: i64, rewards: i64, purchase_amount: Option<i64>) {
        match kind {
            EntryKind::Welcome | EntryKind::Import => self.registrations += 1,
            _ => {}
        }
        match kind {
            EntryKind::Welcome | EntryKind::Earn | EntryKind::Stamp | EntryKind::Referral | EntryKind::Adjust
                if points > 0 =>
            {
                self.issued += points;
            }
            EntryKind::Redeem => self.redeemed += -points.min(0),
            EntryKind::RewardIssued => self.rewards_issued += rewards.max(0),
            EntryKind::RewardRedeemed => self.rewards_redeemed += -rewards.min(0),
            _ => {}
        }
        if let (EntryKind::Earn | EntryKind::Stamp | EntryKind::Redeem, Some(amount)) = (kind, purchase_amount) {
            self.purchases += 1;
            self.revenue += amount;
        }
    }
}

/// Passes added to and removed from each wallet over a span (from the wallet events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalletTotals {
    pub apple_installed: u64,
    pub apple_removed: u64,
    pub google_installed: u64,
    pub google_removed: u64,
}

impl WalletTotals {
    /// Counts `n` changes of one kind in.
    pub fn add(&mut self, wallet: Wallet, change: WalletChange, n: u64) {
        *match (wallet, change) {
            (Wallet::Apple, WalletChange::Installed) => &mut self.apple_installed,
            (Wallet::Apple, WalletChange::Removed) => &mut self.apple_removed,
            (Wallet::Google, WalletChange::Installed) => &mut self.google_installed,
            (Wallet::Google, WalletChange::Removed) => &mut self.google_removed,
        } += n;
    }

    /// The counts of `day` that are not zero, in wallet and change order.
    pub fn day_counts(&self, day: NaiveDate) -> Vec<DayCount> {
        [
            (Wallet::Apple, WalletChange::Installed, self.apple_installed),
            (Wallet::Apple, WalletChange::Removed, self.apple_removed),
            (Wallet::Google, WalletChange::Installed, self.google_installed),
            (Wallet::Google, WalletChange::Removed, self.google_removed),
        ]
        .into_iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(wallet, change, n)| (day, wallet, change, n))
        .collect()
    }
}

/// One program's day, in `time_zone`, as last computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayStats {
    pub day: NaiveDate,
    pub totals: LedgerTotals,
    pub wallets: WalletTotals,
    /// When it was computed: a day computed well after its end is final and never read again.
    pub computed_at: DateTime<Utc>,
    /// The zone whose day it is: the program's when it was computed. A row of another zone is
    /// computed again.
    pub time_zone: TimeZone,
}

/// The zone of a stored day row: absent in rows from before days had one, which were UTC days.
pub(in crate::store) fn stored_zone(name: Option<&str>) -> StoreResult<TimeZone> {
    name.map_or(Ok(TimeZone::UTC), |name| {
        TimeZone::parse(name).map_err(|_| StoreError::Corrupt(format!("stats day: unknown time zone {name}")))
    })
}

/// The counts of a program that describe the present, as last computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub program_id: String,
    pub computed_at: DateTime<Utc>,
    /// Cards with a ledger entry in the last 30 days, and in the last 90.
    pub active_30: u64,
    pub active_90: u64,
    /// Cards (deleted ones excepted) per tier id, in the program's tier order.
    pub tiers: Vec<(String, u64)>,
}

#[async_trait]
pub trait StatsStore: Send + Sync + 'static {
    /// Adds up the program's ledger entries created in `[from, to)`: a range read on the
    /// ledger's index over (program, time), on a read connection that never holds up a write.
    async fn ledger_totals(
        &self,
        program_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<LedgerTotals>;

    /// When the program's oldest ledger entry was written (`None`: no entry yet).
    async fn first_entry_at(&self, program_id: &str) -> StoreResult<Option<DateTime<Utc>>>;

    /// Stores a day's row, replacing the one computed before.
    async fn put_day_stats(&self, program_id: &str, stats: &DayStats) -> StoreResult<()>;

    /// The stored rows of the days `from..=to`, oldest first; days never computed are absent.
    async fn day_stats(&self, program_id: &str, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<DayStats>>;

    /// Cards of the program whose last ledger entry is at or after `since` (an indexed count).
    async fn count_active_cards(&self, program_id: &str, since: DateTime<Utc>) -> StoreResult<u64>;

    /// Cards of the program in `tier`, deleted ones excepted (an indexed count).
    async fn count_tier_cards(&self, program_id: &str, tier: &str) -> StoreResult<u64>;

    /// Replaces the program's snapshot.
    async fn put_stats_snapshot(&self, snapshot: &StatsSnapshot) -> StoreResult<()>;

    async fn stats_snapshot(&self, program_id: &str) -> StoreResult<Option<StatsSnapshot>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_credits_spending_rewards_and_purchases_by_their_kind() {
        let mut t = LedgerTotals::default();
        t.add(EntryKind::Welcome, 100, 0, None);
        t.add(EntryKind::Earn, 50, 0, Some(5_000));
        t.add(EntryKind::Redeem, -30, 0, Some(3_000));
        t.add(EntryKind::Adjust, -10, 0, None);
        t.add(EntryKind::Adjust, 7, 0, None);
        t.add(EntryKind::Reverse, -50, 0, None);
        t.add(EntryKind::Stamp, 2, 0, Some(400));
        t.add(EntryKind::RewardIssued, -6, 1, None);
        t.add(EntryKind::RewardRedeemed, 0, -1, None);
        t.add(EntryKind::Import, 300, 0, None);
        t.add(EntryKind::Expire, -20, 0, None);
        let expected = LedgerTotals {
            registrations: 2,
            issued: 100 + 50 + 7 + 2,
            redeemed: 30,
            rewards_issued: 1,
            rewards_redeemed: 1,
            purchases: 3,
            revenue: 8_400,
        };
        assert_eq!(t, expected);
    }
}
