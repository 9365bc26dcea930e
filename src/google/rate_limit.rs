//! A rate limiter shared by every task of the process that calls Google.
//!
//! Each caller reserves the next free slot, one slot every `1 / rate` seconds, and sleeps until
//! it comes. Slots are evenly spaced, so no one-second window ever holds more than `rate` calls,
//! which is how Google counts its limit of about 20 requests per second; callers are served in
//! the order they asked. The `governor` crate does the same and more, but runs on its own clock
//! and timer thread; this one sleeps on Tokio's timer, which tests can pause and advance.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `per_second` acquisitions per second (at least 1).
    pub fn new(per_second: u32) -> Self {
        Self { interval: Duration::from_secs(1) / per_second.max(1), next_free: Mutex::new(None) }
    }

    /// Waits for this caller's slot. A caller that gives up while waiting leaves its slot unused.
    pub async fn acquire(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot).await;
    }

    /// The rate: acquisitions per second.
    pub fn per_second(&self) -> u32 {
        u32::try_from(Duration::from_secs(1).as_nanos() / self.interval.as_nanos().max(1)).unwrap_or(u32::MAX)
    }

    /// How long a caller asking now would wait for its slot.
    pub fn backlog(&self) -> Duration {
        let next_free = *self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        next_free.map_or(Duration::ZERO, |free| free.saturating_duration_since(Instant::now()))
    }

    /// Reserves the first free slot at or after `now`.
    fn reserve(&self, now: Instant) -> Instant {
        let mut next_free = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next_free.map_or(now, |free| free.max(now));
        *next_free = Some(slot + self.interval);
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_second_holds_more_calls_than_the_rate_when_many_ask_at_once() {
        let limiter = RateLimiter::new(20);
        let start = Instant::now();
        let slots: Vec<Duration> = (0..100).map(|_| limiter.reserve(start) - start).collect();
        for (i, t) in slots.iter().enumerate() {
            let in_window = slots[i..].iter().take_while(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(in_window <= 20, "{in_window} calls within one second from {t:?}");
        }
        assert_eq!(slots[0], Duration::ZERO);
        assert_eq!(slots[99], Duration::from_millis(50) * 99, "first come, first served, evenly spaced");
    }

    #[test]
    fn an_occasional_call_does_not_wait() {
        let limiter = RateLimiter::new(20);
        let start = Instant::now();
        assert_eq!(limiter.reserve(start), start);
        let later = start + Duration::from_secs(3);
        assert_eq!(limiter.reserve(later), later);
        assert_eq!(limiter.reserve(later), later + Duration::from_millis(50));
    }

    #[tokio::test]
    async fn acquire_waits_for_the_slot() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_millis(100));
    }
}
