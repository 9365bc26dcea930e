//! RFM scores: how recently (R), how often (F) and how much (M) a customer buys, each scored 1–5
//! against the program's other customers by quintile, and the usual named segments read off
//! R and F ("champions" bought recently and often, "can't lose" bought often but long ago).
//!
//! Scoring by quintile of the population keeps the scores meaningful for a coffee shop and for a
//! furniture store alike, without thresholds to configure. Ties share a score: customers with
//! equal values are never split between two scores.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One card's purchases, as the ledger gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The last purchase; `None` for a card that never bought.
    pub last_purchase: Option<DateTime<Utc>>,
    /// Purchases (earn or stamp entries, refunded ones excepted).
    pub purchases: u64,
    /// Their amounts, in minor currency units.
    pub spent: i64,
}

/// Scores 1 (lowest) to 5 (highest) for recency, frequency and monetary value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// The named segments, from the best customers to the gone ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    Champions,
    Loyal,
    Potential,
    New,
    AtRisk,
    CantLose,
    Hibernating,
    Lost,
}

impl Segment {
    pub const ALL: [Segment; 8] = [
        Self::Champions,
        Self::Loyal,
        Self::Potential,
        Self::New,
        Self::AtRisk,
        Self::CantLose,
        Self::Hibernating,
        Self::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Champions => "champions",
            Self::Loyal => "loyal",
            Self::Potential => "potential",
            Self::New => "new",
            Self::AtRisk => "at_risk",
            Self::CantLose => "cant_lose",
            Self::Hibernating => "hibernating",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|seg| seg.as_str() == s)
    }

    /// The segment of a customer with these scores (the common R×F grid; the first rule that
    /// matches wins).
    pub fn of(s: Scores) -> Self {
        match (s.r, s.f) {
            (4..=5, 4..=5) => Self::Champions,
            (1, 4..=5) => Self::CantLose,
            (1..=2, 3..=5) => Self::AtRisk,
            (3..=5, 3..=5) => Self::Loyal,
            (4..=5, 1) => Self::New,
            (3..=5, 1..=2) => Self::Potential,
            (2, 1..=2) => Self::Hibernating,
            _ => Self::Lost,
        }
    }
}

/// The scores of every card in `cards` (same order) as of `now`. A card that never bought
/// scores 1 on everything.
pub fn score(cards: &[Activity], now: DateTime<Utc>) -> Vec<Scores> {
    // Recency as "seconds since", negated so that higher is better like the other two.
    let recency: Vec<Option<i64>> =
        cards.iter().map(|a| a.last_purchase.map(|t| -(now - t).num_seconds().max(0))).collect();
    let frequency: Vec<Option<i64>> =
        cards.iter().map(|a| (a.purchases > 0).then(|| i64::try_from(a.purchases).unwrap_or(i64::MAX))).collect();
    let monetary: Vec<Option<i64>> = cards.iter().map(|a| (a.purchases > 0).then_some(a.spent)).collect();
    let (r, f, m) = (quintiles(&recency), quintiles(&frequency), quintiles(&monetary));
    (0..cards.len()).map(|i| Scores { r: r[i], f: f[i], m: m[i] }).collect()
}

/// 1–5 by quintile among the present values (higher value, higher score); absent values score 1.
/// Equal values get the score of the first of them in order, so ties are never split.
fn quintiles(values: &[Option<i64>]) -> Vec<u8> {
    let mut present: Vec<i64> = values.iter().flatten().copied().collect();
    present.sort_unstable();
    let n = present.len();
    values
        .iter()
        .map(|value| match value {
            None => 1,
            Some(v) => {
                // How many values are below this one: its rank among them, ties at their first.
                let below = present.partition_point(|x| x < v);
                (1 + below * 5 / n.max(1)).min(5) as u8
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn activity(days_ago: Option<i64>, purchases: u64, spent: i64, now: DateTime<Utc>) -> Activity {
        Activity { last_purchase: days_ago.map(|d| now - Duration::days(d)), purchases, spent }
    }

    #[test]
    fn ten_customers_score_by_quintile_as_computed_by_hand() {
        let now = Utc::now();
        // Ten customers, distinct values: each pair of them is one quintile.
        let cards: Vec<Activity> =
            (0..10).map(|i| activity(Some(100 - i * 10), i as u64 + 1, (i + 1) * 1_000, now)).collect();
        let scores = score(&cards, now);
        let r: Vec<u8> = scores.iter().map(|s| s.r).collect();
        assert_eq!(r, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "the most recent buyers score 5");
        assert_eq!(scores.iter().map(|s| s.f).collect::<Vec<_>>(), r);
        assert_eq!(scores.iter().map(|s| s.m).collect::<Vec<_>>(), r);
        assert_eq!(Segment::of(scores[9]), Segment::Champions);
        assert_eq!(Segment::of(scores[0]), Segment::Lost);
        assert_eq!(Segment::of(scores[5]), Segment::Loyal);
    }

    #[test]
    fn ties_share_a_score_and_customers_who_never_bought_score_one() {
        let now = Utc::now();
        let cards = vec![
            activity(Some(3), 4, 5_000, now),
            activity(Some(3), 4, 5_000, now),
            activity(Some(30), 1, 100, now),
            activity(None, 0, 0, now),
        ];
        let scores = score(&cards, now);
        assert_eq!(scores[0], scores[1], "equal customers, equal scores");
        assert_eq!(scores[0], Scores { r: 2, f: 2, m: 2 }, "one of three present values is below them");
        assert_eq!(scores[2], Scores { r: 1, f: 1, m: 1 });
        assert_eq!(scores[3], Scores { r: 1, f: 1, m: 1 });
    }

    #[test]
    fn the_grid_names_every_combination() {
        let named = |r, f| Segment::of(Scores { r, f, m: 3 });
        assert_eq!(named(5, 5), Segment::Champions);
        assert_eq!(named(1, 5), Segment::CantLose);
        assert_eq!(named(2, 4), Segment::AtRisk);
        assert_eq!(named(3, 3), Segment::Loyal);
        assert_eq!(named(5, 1), Segment::New);
        assert_eq!(named(3, 2), Segment::Potential);
        assert_eq!(named(2, 2), Segment::Hibernating);
        assert_eq!(named(1, 1), Segment::Lost);
        for r in 1..=5 {
            for f in 1..=5 {
                let segment = named(r, f);
                assert_eq!(Segment::parse(segment.as_str()), Some(segment));
            }
        }
    }
}
