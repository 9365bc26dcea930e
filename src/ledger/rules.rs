//! The program rules as pure arithmetic (SPEC §4.8): cashback by tier, redemption limits,
//! FIFO expiry. Money is in minor units (kopecks); 1 point is worth 1 major unit (a rouble).

use chrono::{DateTime, Utc};

use crate::domain::{Currency, LedgerEntry, ProgramRules};

/// The largest purchase amount accepted, in minor units (10 000 000 000 major units): far above
/// any real purchase, and small enough that no computation can overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// The largest number of points one request may move.
pub const MAX_POINTS: i64 = 1_000_000_000;

/// Points earned for a purchase: `floor(amount × cashback% / minor units per major unit)`.
/// Rounding is always down, so a purchase never earns a fraction of a point.
pub fn cashback_points(purchase_amount: i64, cashback_bp: u32, currency: &Currency) -> i64 {
    let points =
        i128::from(purchase_amount) * i128::from(cashback_bp) / (10_000 * i128::from(currency.minor_per_major()));
    i64::try_from(points).unwrap_or(i64::MAX)
}

/// Why a redemption is refused; nothing changes when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemRefusal {
    /// Fewer points than the program's minimum redemption.
    BelowMinimum { minimum: i64 },
    /// More points than the card holds.
    Insufficient { balance: i64 },
    /// Points would pay more than the allowed share of the purchase.
    ExceedsShare { max_points: i64 },
}

/// The most points that may pay for `purchase_amount` (`None`: no purchase given, no share limit).
pub fn share_limit(rules: &ProgramRules, currency: &Currency, purchase_amount: Option<i64>) -> Option<i64> {
    purchase_amount.map(|amount| {
        let limit =
            i128::from(amount) * i128::from(rules.max_redeem_percent) / (100 * i128::from(currency.minor_per_major()));
        i64::try_from(limit).unwrap_or(i64::MAX)
    })
}

pub fn check_redeem(
    rules: &ProgramRules,
    currency: &Currency,
    balance: i64,
    points: i64,
    purchase_amount: Option<i64>,
) -> Result<(), RedeemRefusal> {
    if points < rules.min_redemption {
        return Err(RedeemRefusal::BelowMinimum { minimum: rules.min_redemption });
    }
    if points > balance {
        return Err(RedeemRefusal::Insufficient { balance });
    }
    if let Some(max_points) = share_limit(rules, currency, purchase_amount) {
        if points > max_points {
            return Err(RedeemRefusal::ExceedsShare { max_points });
        }
    }
    Ok(())
}

/// What a card can redeem now (ignoring any purchase): its balance once it reaches the minimum.
pub fn redeemable_now(rules: &ProgramRules, balance: i64) -> i64 {
    if balance >= rules.min_redemption && balance > 0 { balance } else { 0 }
}

/// Points that expire at `cutoff` under first-in-first-out: everything credited up to the cutoff
/// that has not been spent (or expired) since. Debits always consume the oldest credits first,
/// so the unspent part of old credits is `credits up to the cutoff − all debits`.
pub fn points_to_expire(entries: &[LedgerEntry], cutoff: DateTime<Utc>, balance: i64) -> i64 {
    let old_credits: i64 = entries.iter().filter(|e| e.points > 0 && e.created_at <= cutoff).map(|e| e.points).sum();
    let debits: i64 = entries.iter().filter(|e| e.points < 0).map(|e| -e.points).sum();
    (old_credits - debits).clamp(0, balance.max(0))
}

/// Rewards that expire at `cutoff`: those issued up to the cutoff and not given out since,
/// rewards being given out (redeemed, expired, taken back) oldest first.
pub fn rewards_to_expire(entries: &[LedgerEntry], cutoff: DateTime<Utc>, waiting: i64) -> i64 {
    let old: i64 = entries.iter().filter(|e| e.rewards > 0 && e.created_at <= cutoff).map(|e| e.rewards).sum();
    let given_out: i64 = entries.iter().filter(|e| e.rewards < 0).map(|e| -e.rewards).sum();
    (old - given_out).clamp(0, waiting.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EntryKind, EntrySource, SerialNumber};
    use chrono::Duration;

    fn rub() -> Currency {
        Currency::parse("RUB").unwrap()
    }

    #[test]
    fn cashback_is_the_tier_percentage_of_the_purchase_rounded_down() {
        // 1 234.50 ₽ at 5 % = 61.725 → 61 points; at 20 % = 246.9 → 246.
        assert_eq!(cashback_points(123_450, 500, &rub()), 61);
        assert_eq!(cashback_points(123_450, 2000, &rub()), 246);
        assert_eq!(cashback_points(1_999, 500, &rub()), 0, "19.99 ₽ at 5 % earns nothing");
        assert_eq!(cashback_points(100_000, 1000, &Currency::parse("JPY").unwrap()), 10_000);
        assert_eq!(cashback_points(MAX_AMOUNT, 10_000, &rub()), MAX_AMOUNT / 100, "no overflow at the limit");
    }

    #[test]
    fn redemption_respects_minimum_balance_and_share() {
        let rules = ProgramRules::default();
        assert_eq!(check_redeem(&rules, &rub(), 1000, 99, None), Err(RedeemRefusal::BelowMinimum { minimum: 100 }));
        assert_eq!(check_redeem(&rules, &rub(), 150, 200, None), Err(RedeemRefusal::Insufficient { balance: 150 }));
        // 50 % of 400.00 ₽ is 200 points.
        assert_eq!(check_redeem(&rules, &rub(), 1000, 200, Some(40_000)), Ok(()));
        assert_eq!(
            check_redeem(&rules, &rub(), 1000, 201, Some(40_000)),
            Err(RedeemRefusal::ExceedsShare { max_points: 200 })
        );
        assert_eq!(check_redeem(&rules, &rub(), 1000, 1000, None), Ok(()));
        assert_eq!(redeemable_now(&rules, 99), 0);
        assert_eq!(redeemable_now(&rules, 100), 100);
    }

    fn entry(points: i64, at: DateTime<Utc>) -> LedgerEntry {
        LedgerEntry {
            id: LedgerEntry::new_id(),
            serial: SerialNumber::parse("s").unwrap(),
            program_id: "default".into(),
            seq: 0,
            kind: if points > 0 { EntryKind::Earn } else { EntryKind::Redeem },
            points,
            rewards: 0,
            rewards_after: 0,
            purchase_amount: None,
            balance_after: 0,
            lifetime_after: 0,
            tier_after: "bronze".into(),
            order_id: None,
            description: None,
            source: EntrySource::Pos,
            actor: None,
            idempotency_key: None,
            reverses: None,
            created_at: at,
        }
    }

    #[test]
    fn expiry_takes_the_oldest_unspent_points_first() {
        let t0 = Utc::now();
        let day = Duration::days(1);
        let entries =
            vec![entry(100, t0), entry(50, t0 + day * 10), entry(-120, t0 + day * 20), entry(200, t0 + day * 30)];
        let balance = 230;
        // Cutoff after the first credit only: 100 old points, 120 spent → nothing left to expire.
        assert_eq!(points_to_expire(&entries, t0 + day, balance), 0);
        // Cutoff after both early credits: 150 old, 120 spent → 30 expire.
        assert_eq!(points_to_expire(&entries, t0 + day * 11, balance), 30);
        // Everything old: 350 credited, 120 spent → the whole balance expires.
        assert_eq!(points_to_expire(&entries, t0 + day * 31, balance), 230);
        // A second run after the expiry entry finds nothing more.
        let mut after = entries.clone();
        after.push(entry(-30, t0 + day * 40));
        assert_eq!(points_to_expire(&after, t0 + day * 11, 200), 0);
    }
}
