//! Rate limits: how often one client (an address, a device, an API key) may call an open or
//! costly endpoint. GCRA per key, in-process with `governor`, or shared by every node through
//! Redis when Redis is configured (one Lua script, one round trip), falling back to the
//! in-process limiter while Redis does not answer.
//!
//! A limit is one line of [`ALL`] (and its `LOY_RATE_LIMIT_*` key in `config::KEYS`); a handler
//! calls [`RateLimits::check`] with it and its key, and answers [`Throttled`] in its own format.

mod redis;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use governor::{Quota, RateLimiter};

pub use self::redis::RedisLimiter;

/// One rate limit: its name (`LOY_RATE_LIMIT_<NAME>`, the Redis key, the log) and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub name: &'static str,
    pub default: &'static str,
}

/// The registration form and `POST /api/v1/enrollments`, per client address.
pub const ENROLL: Limit = Limit { name: "enroll", default: "10/min" };
/// PassKit `POST /v1/log`, per client address.
pub const PASSKIT_LOG: Limit = Limit { name: "passkit_log", default: "60/min" };
/// PassKit device registration (and unregistration), per device library id.
pub const PASSKIT_REGISTER: Limit = Limit { name: "passkit_register", default: "30/min" };
/// The POS API, per API key.
pub const POS: Limit = Limit { name: "pos", default: "1200/min" };

/// `/recover` and the duplicate-phone answer's link mail, per client address.
pub const RECOVER: Limit = Limit { name: "recover", default: "5/h" };
/// Link mails to one card (from `/recover` or the duplicate-phone answer), per card.
pub const RECOVER_CARD: Limit = Limit { name: "recover_card", default: "3/h" };

/// Every limit; adding one is a line here and its key in `config::KEYS`.
pub const ALL: &[Limit] = &[ENROLL, PASSKIT_LOG, PASSKIT_REGISTER, POS, RECOVER, RECOVER_CARD];

/// How many requests a key may make: `count` per `period` on average, and up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
    pub burst: NonZeroU32,
}

impl Rate {
    /// Parses `off`, `N/UNIT` or `N/UNIT burst M`, where UNIT is `s`, `min`, `h` or `day`
    /// (`sec`, `second`, `minute`, `hour` also read); the burst defaults to N.
    /// `None` means off.
    pub fn parse(s: &str) -> Result<Option<Self>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("`{s}` is not a rate like `10/min`, `5/s burst 20` or `off`");
        let mut words = s.split_whitespace();
        let rate = words.next().ok_or_else(bad)?;
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(n), None) => Some(n.parse::<NonZeroU32>().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count = count.parse::<NonZeroU32>().map_err(|_| bad())?;
        let period = match unit.to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "m" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        Ok(Some(Self { count, period, burst: burst.unwrap_or(count) }))
    }

    /// The time one request "costs": the period divided by the count.
    pub fn interval(&self) -> Duration {
        (self.period / self.count.get()).max(Duration::from_nanos(1))
    }

    fn quota(&self) -> Quota {
        Quota::with_period(self.interval()).expect("the interval is positive").allow_burst(self.burst)
    }
}

/// The configured rate of each limit (`None`: off).
#[derive(Debug, Clone, Default)]
pub struct RateLimitSettings {
    pub rates: HashMap<&'static str, Option<Rate>>,
}

impl RateLimitSettings {
    /// Every limit off (tests, benchmarks).
    pub fn off() -> Self {
        Self { rates: ALL.iter().map(|l| (l.name, None)).collect() }
    }

    pub fn rate(&self, limit: Limit) -> Option<Rate> {
        self.rates.get(limit.name).copied().flatten()
    }
}

/// A request over its limit, with how long the client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// The `Retry-After` value: whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)).max(1)
    }
}

type Local = RateLimiter<String, governor::state::keyed::DefaultKeyedStateStore<String>, governor::clock::DefaultClock>;

/// Every limit of the application.
pub struct RateLimits {
    local: HashMap<&'static str, (Rate, Local)>,
    redis: Option<RedisLimiter>,
    /// Set while Redis fails, so the fallback is logged once per outage.
    redis_failing: AtomicBool,
    checks: AtomicU64,
}

/// How long a check waits for Redis before deciding locally.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, redis: Option<RedisLimiter>) -> Self {
        let local = ALL
            .iter()
            .filter_map(|limit| {
                settings.rate(*limit).map(|rate| (limit.name, (rate, RateLimiter::keyed(rate.quota()))))
            })
            .collect();
        Self { local, redis, redis_failing: AtomicBool::new(false), checks: AtomicU64::new(0) }
    }

    /// Whether `limit` is on.
    pub fn is_on(&self, limit: Limit) -> bool {
        self.local.contains_key(limit.name)
    }

    /// Counts one request of `key` against `limit`.
    pub async fn check(&self, limit: Limit, key: &str) -> Result<(), Throttled> {
        let Some((rate, local)) = self.local.get(limit.name) else { return Ok(()) };
        if let Some(redis) = &self.redis {
            match tokio::time::timeout(REDIS_TIMEOUT, redis.check(limit.name, key, rate)).await {
                Ok(Ok(outcome)) => {
                    if self.redis_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("rate limits are shared through Redis again");
                    }
                    return outcome;
                }
                Ok(Err(e)) => self.redis_failed(&crate::telemetry::error_chain(&e)),
                Err(_) => self.redis_failed("Redis did not answer within 250 ms"),
            }
        }
        self.forget_idle_keys();
        local.check_key(&key.to_owned()).map_err(|not_until| Throttled {
            retry_after: not_until
                .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default())),
        })
    }

    fn redis_failed(&self, why: &str) {
        if !self.redis_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = why, "rate limits fall back to this process's own counts while Redis fails");
        }
    }

    /// Keys whose limit has fully recovered hold no information: drop them now and then, so
    /// the memory follows the number of recently active clients, not of all clients ever seen.
    fn forget_idle_keys(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for (_, local) in self.local.values() {
                local.retain_recent();
                local.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_and_bursts() {
        let rate = Rate::parse("10/min").unwrap().unwrap();
        assert_eq!((rate.count.get(), rate.period, rate.burst.get()), (10, Duration::from_secs(60), 10));
        assert_eq!(rate.interval(), Duration::from_secs(6));
        let rate = Rate::parse("5/s burst 20").unwrap().unwrap();
        assert_eq!((rate.count.get(), rate.period, rate.burst.get()), (5, Duration::from_secs(1), 20));
        assert_eq!(Rate::parse("100/hour").unwrap().unwrap().period, Duration::from_secs(3600));
        assert_eq!(Rate::parse("OFF").unwrap(), None);
        for bad in ["", "10", "0/min", "10/week", "10/min burst", "10/min burst 0", "10/min foo 3", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let secs = |ms| Throttled { retry_after: Duration::from_millis(ms) }.retry_after_secs();
        assert_eq!(secs(0), 1);
        assert_eq!(secs(1), 1);
        assert_eq!(secs(1000), 1);
        assert_eq!(secs(1001), 2);
        assert_eq!(secs(5999), 6);
    }

    #[tokio::test]
    async fn the_local_limiter_counts_each_key_apart() {
        let mut settings = RateLimitSettings::off();
        settings.rates.insert(ENROLL.name, Rate::parse("2/min").unwrap());
        let limits = RateLimits::new(&settings, None);
        assert!(limits.check(ENROLL, "a").await.is_ok());
        assert!(limits.check(ENROLL, "a").await.is_ok());
        let throttled = limits.check(ENROLL, "a").await.unwrap_err();
        assert!(throttled.retry_after > Duration::from_secs(25), "{throttled:?}");
        assert!(limits.check(ENROLL, "b").await.is_ok(), "another key has its own allowance");
        assert!(limits.check(POS, "a").await.is_ok(), "a limit that is off never throttles");
    }
}
