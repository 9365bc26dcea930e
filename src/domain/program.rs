//! A loyalty program: its name, currency, rules (SPEC §4.8) and card design.

use serde::{Deserialize, Serialize};

use super::Locale;
pub use super::design::ProgramDesign;
use super::stamps::{Mechanic, StampProblem, StampRules};

/// The program every install starts with.
pub const DEFAULT_PROGRAM_ID: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// A slug (`default`): part of Google class ids and URLs.
    pub id: String,
    pub name: String,
    pub currency: Currency,
    pub rules: ProgramRules,
    /// The published design: what passes, the Google class and the pages show.
    pub design: ProgramDesign,
    /// The designer's unpublished edits; `None` when there are none.
    #[serde(default)]
    pub draft: Option<ProgramDesign>,
    /// The language of the registration form when the visitor's browser prefers neither;
    /// `None` follows `LOY_DEFAULT_LOCALE` (programs stored before they had one).
    #[serde(default)]
    pub locale: Option<Locale>,
    /// Set when the program was archived: registration is closed, existing cards keep working.
    #[serde(default)]
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Moves with every saved change (edits are conditional on it, caches compare it).
    #[serde(default)]
    pub version: i64,
    /// The design revision whose change every card of the program has received (its version
    /// bumped and its push queued); behind `design.revision` while a publish is fanning out,
    /// or when a node stopped in the middle of one (the fan-out is then finished at start-up).
    #[serde(default)]
    pub fanned_out_revision: i64,
    /// Automatic messages (birthday, win-back, expiry note); all off by default.
    #[serde(default)]
    pub auto_messages: crate::messages::automatic::AutoMessages,
    /// Where the program's days begin and its hours are told: the dashboard's days, the
    /// automatic messages' day and hour. UTC until staff choose another.
    #[serde(default)]
    pub time_zone: crate::domain::TimeZone,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl Program {
    /// A new program with the default rules and design.
    pub fn new(id: &str, name: &str, currency: Currency, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            currency,
            rules: ProgramRules::default(),
            design: ProgramDesign::default(),
            draft: None,
            locale: None,
            archived_at: None,
            version: 1,
            fanned_out_revision: 1,
            auto_messages: Default::default(),
            time_zone: crate::domain::TimeZone::UTC,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Program {
    /// The program's language, or `fallback` (`LOY_DEFAULT_LOCALE`) when it has none of its own.
    pub fn locale_or(&self, fallback: Locale) -> Locale {
        self.locale.unwrap_or(fallback)
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// The name of tier `id` in `locale` (the id itself for a tier the rules no longer have).
    pub fn tier_name(&self, id: &str, locale: Locale) -> String {
        match self.rules.tier(id) {
            Some(t) if locale == Locale::En => t.name_en.clone(),
            Some(t) => t.name_ru.clone(),
            None => id.to_owned(),
        }
    }

    /// Checks a program id: 1–40 of `a-z`, `0-9` and `-`, starting with a letter or digit (it is
    /// part of addresses, `/p/{slug}`, and Google class ids).
    pub fn check_slug(slug: &str) -> Result<(), String> {
        let ok = !slug.is_empty()
            && slug.len() <= 40
            && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-');
        if ok {
            Ok(())
        } else {
            Err(format!("`{slug}` is not a program id: use 1–40 lowercase letters, digits and dashes"))
        }
    }
}

/// An ISO 4217 currency and how many minor units make one major unit (2 for RUB/EUR, 0 for JPY).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency {
    pub code: String,
    pub minor_digits: u8,
}

impl Currency {
    /// Parses a three-letter code; the number of minor digits is known for common currencies.
    pub fn parse(code: &str) -> Result<Self, String> {
        let code = code.trim().to_ascii_uppercase();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("`{code}` is not a three-letter currency code such as RUB, EUR or USD"));
        }
        let minor_digits = match code.as_str() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" => 0,
            "BHD" | "KWD" | "OMR" | "TND" | "JOD" | "IQD" | "LYD" => 3,
            _ => 2,
        };
        Ok(Self { code, minor_digits })
    }

    /// Minor units in one major unit: 100 for kopecks in a rouble.
    pub fn minor_per_major(&self) -> i64 {
        10i64.pow(u32::from(self.minor_digits))
    }
}

/// A level of the program, reached by lifetime earned points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierRule {
    /// A stable identifier (`bronze`), kept in cards and the ledger.
    pub id: String,
    /// Display names by locale.
    pub name_en: String,
    pub name_ru: String,
    /// Lifetime earned points from which the tier applies.
    pub threshold: i64,
    /// Cashback in basis points of the purchase amount (500 = 5 %).
    pub cashback_bp: u32,
}

/// The rules of earning and spending points. All point amounts are whole points; 1 point is
/// worth 1 major currency unit when redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgramRules {
    /// Points or stamps; chosen when the program is created and never changed after (a card's
    /// balance means points in one and stamps in the other).
    pub mechanic: Mechanic,
    /// The rules of a stamps program (kept, unused, by a points program).
    pub stamps: StampRules,
    /// Sorted by threshold, the first at 0.
    pub tiers: Vec<TierRule>,
    pub welcome_bonus: i64,
    pub min_redemption: i64,
    /// The largest share of a purchase that points may pay, in percent.
    pub max_redeem_percent: u32,
    /// Points expire this many days after they were earned (oldest first); `None` = never.
    pub expiry_days: Option<u32>,
    /// Given to both the inviting and the invited customer at the invited one's first
    /// qualifying purchase, and taken back (where still unspent) if that purchase is refunded.
    pub referral_bonus: i64,
    /// The smallest purchase, in minor currency units, that qualifies for the referral bonus.
    pub referral_min_purchase: i64,
    /// Credit the welcome bonus at the first purchase instead of at registration, so scripted
    /// registrations collect nothing.
    pub welcome_at_first_purchase: bool,
}

impl Default for ProgramRules {
    fn default() -> Self {
        let tier = |id: &str, en: &str, ru: &str, threshold, cashback_bp| TierRule {
            id: id.to_owned(),
            name_en: en.to_owned(),
            name_ru: ru.to_owned(),
            threshold,
            cashback_bp,
        };
        Self {
            mechanic: Mechanic::Points,
            stamps: StampRules::default(),
            tiers: vec![
                tier("bronze", "Bronze", "Бронза", 0, 500),
                tier("silver", "Silver", "Серебро", 500, 1000),
                tier("gold", "Gold", "Золото", 1500, 1500),
                tier("platinum", "Platinum", "Платина", 3000, 2000),
            ],
            welcome_bonus: 100,
            min_redemption: 100,
            max_redeem_percent: 50,
            expiry_days: None,
            referral_bonus: 100,
            referral_min_purchase: 10_000,
            welcome_at_first_purchase: false,
        }
    }
}

impl ProgramRules {
    /// The rules of a new stamps program: one tier (stamp cards have no levels), no points bonuses.
    pub fn stamps(stamps: StampRules) -> Self {
        let member = TierRule {
            id: "member".into(),
            name_en: "Member".into(),
            name_ru: "Участник".into(),
            threshold: 0,
            cashback_bp: 0,
        };
        Self {
            mechanic: Mechanic::Stamps,
            stamps,
            tiers: vec![member],
            welcome_bonus: 0,
            min_redemption: 0,
            referral_bonus: 0,
            ..Self::default()
        }
    }

    /// The stamp rules when this is a stamps program.
    pub fn stamp_rules(&self) -> Option<&StampRules> {
        (self.mechanic == Mechanic::Stamps).then_some(&self.stamps)
    }

    /// The tier a card with `lifetime_earned` points belongs to.
    pub fn tier_for(&self, lifetime_earned: i64) -> &TierRule {
        self.tiers
            .iter()
            .rev()
            .find(|t| lifetime_earned >= t.threshold)
            .or_else(|| self.tiers.first())
            .expect("a program has at least one tier")
    }

    pub fn tier(&self, id: &str) -> Option<&TierRule> {
        self.tiers.iter().find(|t| t.id == id)
    }

    /// Checks that the rules make sense; the message names the first thing wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self.field_errors().into_iter().next() {
            Some(error) => Err(error.problem.to_string()),
            None => Ok(()),
        }
    }

    /// Everything wrong with the rules, each with the form field it belongs to (`tier_2_threshold`,
    /// `max_redeem_percent`, …): what the rules editor shows next to its fields and what
    /// [`Self::validate`] refuses.
    pub fn field_errors(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let mut add = |field: String, problem| errors.push(RuleError { field, problem });
        if self.tiers.is_empty() {
            add("tiers".into(), RuleProblem::NoTiers);
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            if Program::check_slug(&tier.id).is_err() {
                add(format!("tier_{i}_id"), RuleProblem::TierIdInvalid);
            } else if self.tiers[..i].iter().any(|t| t.id == tier.id) {
                add(format!("tier_{i}_id"), RuleProblem::TierIdDuplicate);
            }
            for (lang, name) in [("ru", &tier.name_ru), ("en", &tier.name_en)] {
                if name.trim().is_empty() {
                    add(format!("tier_{i}_name_{lang}"), RuleProblem::TierNameEmpty);
                }
            }
            if i == 0 && tier.threshold != 0 {
                add(format!("tier_{i}_threshold"), RuleProblem::FirstThresholdNotZero);
            } else if i > 0 && tier.threshold <= self.tiers[i - 1].threshold {
                add(format!("tier_{i}_threshold"), RuleProblem::ThresholdsNotAscending);
            }
            if tier.cashback_bp > 10_000 {
                add(format!("tier_{i}_cashback"), RuleProblem::CashbackOver100);
            }
        }
        for (field, value) in [
            ("welcome_bonus", self.welcome_bonus),
            ("min_redemption", self.min_redemption),
            ("referral_bonus", self.referral_bonus),
            ("referral_min_purchase", self.referral_min_purchase),
        ] {
            if value < 0 {
                add(field.into(), RuleProblem::Negative);
            }
        }
        if self.max_redeem_percent > 100 {
            add("max_redeem_percent".into(), RuleProblem::ShareOver100);
        }
        if self.expiry_days == Some(0) {
            add("expiry_days".into(), RuleProblem::ExpiryZero);
        }
        if self.mechanic == Mechanic::Stamps {
            for (field, problem) in self.stamps.field_errors() {
                add(field.into(), RuleProblem::Stamp(problem));
            }
        }
        errors
    }
}

/// One thing wrong with a program's rules, and the field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: String,
    pub problem: RuleProblem,
}

/// What can be wrong with a program's rules. [`RuleProblem::code`] is the stable name the
/// console's catalogs translate; the `Display` text is the English sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    #[error("a program needs at least one tier")]
    NoTiers,
    #[error("a tier id must be 1–40 lowercase letters, digits and dashes")]
    TierIdInvalid,
    #[error("tier ids must be unique")]
    TierIdDuplicate,
    #[error("a tier needs a name in every language")]
    TierNameEmpty,
    #[error("the first tier must start at 0 points")]
    FirstThresholdNotZero,
    #[error("tier thresholds must increase")]
    ThresholdsNotAscending,
    #[error("cashback cannot exceed 100 %")]
    CashbackOver100,
    #[error("bonuses and the minimum redemption cannot be negative")]
    Negative,
    #[error("the maximum share payable with points cannot exceed 100 %")]
    ShareOver100,
    #[error("points cannot expire after 0 days: leave the expiry empty for never")]
    ExpiryZero,
    #[error(transparent)]
    Stamp(StampProblem),
}

impl RuleProblem {
    /// A stable name for the problem (catalog key, API code).
    pub fn code(self) -> &'static str {
        match self {
            Self::NoTiers => "no_tiers",
            Self::TierIdInvalid => "tier_id_invalid",
            Self::TierIdDuplicate => "tier_id_duplicate",
            Self::TierNameEmpty => "tier_name_empty",
            Self::FirstThresholdNotZero => "first_threshold_not_zero",
            Self::ThresholdsNotAscending => "thresholds_not_ascending",
            Self::CashbackOver100 => "cashback_over_100",
            Self::Negative => "negative",
            Self::ShareOver100 => "share_over_100",
            Self::ExpiryZero => "expiry_zero",
            Self::Stamp(problem) => problem.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_are_the_documented_ones_and_valid() {
        let rules = ProgramRules::default();
        rules.validate().unwrap();
        assert_eq!(rules.welcome_bonus, 100);
        assert_eq!(rules.min_redemption, 100);
        assert_eq!(rules.max_redeem_percent, 50);
        assert_eq!(rules.expiry_days, None);
        assert_eq!(rules.referral_bonus, 100);
        assert_eq!(rules.referral_min_purchase, 10_000);
        assert!(!rules.welcome_at_first_purchase);
        let summary: Vec<_> = rules.tiers.iter().map(|t| (t.id.as_str(), t.threshold, t.cashback_bp)).collect();
        assert_eq!(
            summary,
            [("bronze", 0, 500), ("silver", 500, 1000), ("gold", 1500, 1500), ("platinum", 3000, 2000)]
        );
    }

    #[test]
    fn tiers_switch_exactly_at_their_thresholds() {
        let rules = ProgramRules::default();
        assert_eq!(rules.tier_for(0).id, "bronze");
        assert_eq!(rules.tier_for(499).id, "bronze");
        assert_eq!(rules.tier_for(500).id, "silver");
        assert_eq!(rules.tier_for(1499).id, "silver");
        assert_eq!(rules.tier_for(1500).id, "gold");
        assert_eq!(rules.tier_for(3000).id, "platinum");
        assert_eq!(rules.tier_for(-5).id, "bronze");
    }

    #[test]
    fn inconsistent_rules_are_refused_with_a_reason() {
        let mut rules = ProgramRules::default();
        rules.tiers[2].threshold = 100;
        assert_eq!(rules.validate().unwrap_err(), "tier thresholds must increase");
        let rules = ProgramRules { max_redeem_percent: 150, ..Default::default() };
        assert!(rules.validate().is_err());
    }

    #[test]
    fn every_rule_problem_names_its_field() {
        let mut rules = ProgramRules::default();
        rules.tiers[0].threshold = 10;
        rules.tiers[1].id = "bronze".into();
        rules.tiers[2].id = "Gold!".into();
        rules.tiers[2].name_en = " ".into();
        rules.tiers[3].threshold = 1500;
        rules.tiers[3].cashback_bp = 10_001;
        rules.welcome_bonus = -1;
        rules.referral_min_purchase = -5;
        rules.max_redeem_percent = 101;
        rules.expiry_days = Some(0);
        let found: Vec<(String, &str)> =
            rules.field_errors().into_iter().map(|e| (e.field, e.problem.code())).collect();
        let expected = [
            ("tier_0_threshold", "first_threshold_not_zero"),
            ("tier_1_id", "tier_id_duplicate"),
            ("tier_2_id", "tier_id_invalid"),
            ("tier_2_name_en", "tier_name_empty"),
            ("tier_3_threshold", "thresholds_not_ascending"),
            ("tier_3_cashback", "cashback_over_100"),
            ("welcome_bonus", "negative"),
            ("referral_min_purchase", "negative"),
            ("max_redeem_percent", "share_over_100"),
            ("expiry_days", "expiry_zero"),
        ];
        assert_eq!(found, expected.map(|(f, c)| (f.to_owned(), c)));
        assert_eq!(rules.validate().unwrap_err(), "the first tier must start at 0 points");
        let empty = ProgramRules { tiers: Vec::new(), ..Default::default() };
        assert_eq!(empty.field_errors()[0].field, "tiers");
    }

    #[test]
    fn currencies_know_their_minor_units() {
        assert_eq!(Currency::parse("rub").unwrap().minor_per_major(), 100);
        assert_eq!(Currency::parse("JPY").unwrap().minor_per_major(), 1);
        assert!(Currency::parse("RUBLES").is_err());
        assert!(Currency::parse("R1B").is_err());
    }
}
