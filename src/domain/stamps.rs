//! Stamp cards ("buy 10, get one free"): the second way a program lets customers collect. Each
//! purchase earns stamps; every `stamps_per_reward` stamps complete a round and issue a reward,
//! and the stamps left over start the next round. Stamps and rewards are ledger entries like
//! points: a card's `balance` is the stamps of the round in progress and its `rewards` the
//! rewards waiting to be redeemed.

use serde::{Deserialize, Serialize};

use super::LocalizedText;

/// How a program's customers collect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanic {
    /// Cashback points by tier, spent on purchases.
    #[default]
    Points,
    /// Stamps per visit; a full round earns a reward.
    Stamps,
}

impl Mechanic {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Points => "points",
            Self::Stamps => "stamps",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Points, Self::Stamps].into_iter().find(|m| m.as_str() == s)
    }
}

/// The fewest and most stamps a round can have (the strip draws at most 30 slots).
pub const MIN_STAMPS_PER_REWARD: u32 = 2;
pub const MAX_STAMPS_PER_REWARD: u32 = 30;
/// The most stamps one purchase may earn.
pub const MAX_STAMPS_PER_PURCHASE: u32 = 100;

/// The rules of a stamps program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StampRules {
    /// Stamps that complete a round and issue a reward.
    pub stamps_per_reward: u32,
    /// Stamps for one purchase, when no amount per stamp is set.
    pub stamps_per_purchase: u32,
    /// When set, a purchase earns one stamp per this much spent (minor currency units), rounded
    /// down, instead of `stamps_per_purchase`.
    pub amount_per_stamp: Option<i64>,
    /// What a reward is ("Free coffee"), as the pass, the till and the API show it.
    pub reward: LocalizedText,
    /// Unredeemed rewards expire this many days after they were issued; `None` = never.
    pub reward_expiry_days: Option<u32>,
    /// Stamps a new card starts with.
    pub welcome_stamps: u32,
    /// At most this many stamps per card in any 24 hours; `None` = no limit.
    pub daily_limit: Option<u32>,
}

impl Default for StampRules {
    fn default() -> Self {
        Self {
            stamps_per_reward: 10,
            stamps_per_purchase: 1,
            amount_per_stamp: None,
            reward: LocalizedText::new("Подарок", "A free item"),
            reward_expiry_days: None,
            welcome_stamps: 0,
            daily_limit: None,
        }
    }
}

impl StampRules {
    /// The stamps a purchase earns: one per `amount_per_stamp` of `purchase_amount` when the
    /// program counts by amount (and an amount was given), else `stamps_per_purchase`.
    pub fn stamps_for_purchase(&self, purchase_amount: Option<i64>) -> i64 {
        match (self.amount_per_stamp, purchase_amount) {
            (Some(per), Some(amount)) if per > 0 => (amount / per).min(i64::from(MAX_STAMPS_PER_PURCHASE)),
            _ => i64::from(self.stamps_per_purchase),
        }
    }

    /// Rounds completed when `added` stamps join the `current` ones: the rewards issued and the
    /// stamps left for the next round.
    pub fn complete_rounds(&self, current: i64, added: i64) -> (i64, i64) {
        let per = i64::from(self.stamps_per_reward.max(1));
        let total = (current + added).max(0);
        (total / per, total % per)
    }

    /// Everything wrong with the stamp rules, each with its form field.
    pub fn field_errors(&self) -> Vec<(&'static str, StampProblem)> {
        let mut errors = Vec::new();
        if !(MIN_STAMPS_PER_REWARD..=MAX_STAMPS_PER_REWARD).contains(&self.stamps_per_reward) {
            errors.push(("stamps_per_reward", StampProblem::PerRewardRange));
        }
        if !(1..=MAX_STAMPS_PER_PURCHASE).contains(&self.stamps_per_purchase) {
            errors.push(("stamps_per_purchase", StampProblem::PerPurchaseRange));
        }
        if self.amount_per_stamp.is_some_and(|a| a <= 0) {
            errors.push(("amount_per_stamp", StampProblem::AmountNotPositive));
        }
        if self.reward.ru.trim().is_empty() || self.reward.en.trim().is_empty() {
            errors.push(("reward", StampProblem::RewardEmpty));
        }
        if self.reward.ru.chars().count() > 60 || self.reward.en.chars().count() > 60 {
            errors.push(("reward", StampProblem::RewardTooLong));
        }
        if self.reward_expiry_days == Some(0) {
            errors.push(("reward_expiry_days", StampProblem::ExpiryZero));
        }
        if self.welcome_stamps >= self.stamps_per_reward.max(1) {
            errors.push(("welcome_stamps", StampProblem::WelcomeFillsRound));
        }
        if self.daily_limit == Some(0) {
            errors.push(("daily_limit", StampProblem::DailyLimitZero));
        }
        errors
    }
}

/// What can be wrong with stamp rules; [`StampProblem::code`] is the catalog key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StampProblem {
    #[error("a reward needs from 2 to 30 stamps")]
    PerRewardRange,
    #[error("a purchase earns from 1 to 100 stamps")]
    PerPurchaseRange,
    #[error("the amount per stamp must be more than zero")]
    AmountNotPositive,
    #[error("say what the reward is in every language")]
    RewardEmpty,
    #[error("the reward's name must be at most 60 characters")]
    RewardTooLong,
    #[error("rewards cannot expire after 0 days: leave the expiry empty for never")]
    ExpiryZero,
    #[error("welcome stamps must be fewer than the stamps of a reward")]
    WelcomeFillsRound,
    #[error("the daily limit must be at least 1 stamp: leave it empty for no limit")]
    DailyLimitZero,
}

impl StampProblem {
    pub fn code(self) -> &'static str {
        match self {
            Self::PerRewardRange => "stamps_per_reward_range",
            Self::PerPurchaseRange => "stamps_per_purchase_range",
            Self::AmountNotPositive => "amount_per_stamp_not_positive",
            Self::RewardEmpty => "reward_empty",
            Self::RewardTooLong => "reward_too_long",
            Self::ExpiryZero => "reward_expiry_zero",
            Self::WelcomeFillsRound => "welcome_fills_round",
            Self::DailyLimitZero => "daily_limit_zero",
        }
    }
}

/// The picture in each slot of a stamp card's strip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StampIcon {
    #[default]
    Cup,
    Star,
    Scissors,
    Car,
    /// The image uploaded into the design's `stamp` slot.
    Uploaded,
}

impl StampIcon {
    pub const ALL: [StampIcon; 5] = [Self::Cup, Self::Star, Self::Scissors, Self::Car, Self::Uploaded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cup => "cup",
            Self::Star => "star",
            Self::Scissors => "scissors",
            Self::Car => "car",
            Self::Uploaded => "uploaded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_earns_its_stamps_by_visit_or_by_amount() {
        let rules = StampRules::default();
        assert_eq!(rules.stamps_for_purchase(None), 1);
        assert_eq!(rules.stamps_for_purchase(Some(99_999)), 1, "by visit, the amount does not count");
        let by_amount = StampRules { amount_per_stamp: Some(30_000), ..Default::default() };
        assert_eq!(by_amount.stamps_for_purchase(Some(29_999)), 0);
        assert_eq!(by_amount.stamps_for_purchase(Some(90_000)), 3);
        assert_eq!(by_amount.stamps_for_purchase(Some(i64::MAX)), 100, "capped");
        assert_eq!(by_amount.stamps_for_purchase(None), 1, "no amount given: per visit");
    }

    #[test]
    fn full_rounds_issue_rewards_and_the_rest_starts_the_next_round() {
        let rules = StampRules::default();
        assert_eq!(rules.complete_rounds(0, 1), (0, 1));
        assert_eq!(rules.complete_rounds(9, 1), (1, 0));
        assert_eq!(rules.complete_rounds(8, 5), (1, 3));
        assert_eq!(rules.complete_rounds(9, 21), (3, 0));
    }

    #[test]
    fn the_default_rules_are_valid_and_each_problem_names_its_field() {
        assert!(StampRules::default().field_errors().is_empty());
        let bad = StampRules {
            stamps_per_reward: 1,
            stamps_per_purchase: 0,
            amount_per_stamp: Some(0),
            reward: LocalizedText::new("", "Free coffee"),
            reward_expiry_days: Some(0),
            welcome_stamps: 5,
            daily_limit: Some(0),
        };
        let fields: Vec<_> = bad.field_errors().into_iter().map(|(f, p)| (f, p.code())).collect();
        assert_eq!(
            fields,
            [
                ("stamps_per_reward", "stamps_per_reward_range"),
                ("stamps_per_purchase", "stamps_per_purchase_range"),
                ("amount_per_stamp", "amount_per_stamp_not_positive"),
                ("reward", "reward_empty"),
                ("reward_expiry_days", "reward_expiry_zero"),
                ("welcome_stamps", "welcome_fills_round"),
                ("daily_limit", "daily_limit_zero"),
            ]
        );
    }
}
