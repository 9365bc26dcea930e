//! Google's notification budget: an update may notify the holder (`notifyPreference:
//! NOTIFY_ON_UPDATE`) at most 3 times per pass in any 24 hours. Google drops notifications over
//! the budget, so loy asks only while the card is within it and updates silently otherwise.

use chrono::{DateTime, Duration, Utc};

/// Notifications Google shows per pass in any rolling window of [`WINDOW_HOURS`].
pub const NOTIFICATIONS_PER_WINDOW: usize = 3;
pub const WINDOW_HOURS: i64 = 24;

/// Whether an update at `now` may ask Google to notify, given when the earlier notifications of
/// the same card were sent (in any order). Only those within the last 24 hours count; a
/// timestamp in the future (another host's clock running ahead) counts too, to stay safe.
pub fn notify_allowed(previous: &[DateTime<Utc>], now: DateTime<Utc>) -> bool {
    let window_start = now - Duration::hours(WINDOW_HOURS);
    previous.iter().filter(|t| **t > window_start).count() < NOTIFICATIONS_PER_WINDOW
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(hours: f64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::milliseconds((hours * 3_600_000.0) as i64)
    }

    #[test]
    fn three_notifications_a_day_then_silence() {
        assert!(notify_allowed(&[], at(0.0)));
        assert!(notify_allowed(&[at(0.0)], at(1.0)));
        assert!(notify_allowed(&[at(0.0), at(1.0)], at(2.0)));
        assert!(!notify_allowed(&[at(0.0), at(1.0), at(2.0)], at(3.0)), "a fourth within 24 h");
        assert!(!notify_allowed(&[at(2.0), at(0.0), at(1.0)], at(23.9)), "order does not matter");
    }

    #[test]
    fn the_window_rolls_exactly_24_hours_back() {
        let previous = [at(0.0), at(1.0), at(2.0)];
        assert!(!notify_allowed(&previous, at(23.999)));
        assert!(notify_allowed(&previous, at(24.0)), "the first has left the window");
        assert!(notify_allowed(&[at(-30.0), at(-25.0), at(-24.0), at(1.0)], at(0.0)), "old ones do not count");
    }

    #[test]
    fn timestamps_ahead_of_now_count() {
        assert!(!notify_allowed(&[at(0.0), at(5.0), at(6.0)], at(1.0)));
    }

    proptest! {
        /// Notifying whenever the function allows never gives more than 3 notifications in any
        /// 24-hour window, and a change after a quiet day is always allowed to notify.
        #[test]
        fn following_the_budget_never_exceeds_it(gaps in proptest::collection::vec(0u32..(30 * 60), 1..80)) {
            let mut now = at(0.0);
            let mut sent: Vec<DateTime<Utc>> = Vec::new();
            for gap in gaps {
                now += Duration::minutes(i64::from(gap));
                let quiet_day = sent.last().is_none_or(|last| now - *last >= Duration::hours(24));
                if notify_allowed(&sent, now) {
                    sent.push(now);
                } else {
                    prop_assert!(!quiet_day);
                }
            }
            for (i, t) in sent.iter().enumerate() {
                let within = sent[i..].iter().take_while(|u| **u - *t < Duration::hours(24)).count();
                prop_assert!(within <= NOTIFICATIONS_PER_WINDOW);
            }
        }
    }
}
