//! Computing segments in the background: every `LOY_SEGMENTS_EVERY_HOURS` for each program, and
//! soon after someone asks ("Compute now" records the request in the store, so whichever node
//! looks next computes). The lease in the store lets one node compute a program at a time
//! however many run this loop.

use std::time::Duration;

use actix_web::web;
use chrono::Utc;

use super::compute::{self, ComputeError, Lease, Options};
use crate::domain::Program;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::segments::SegmentRun;
use crate::telemetry::error_chain;

/// How long a computation holds its lease without renewing it (it renews at every step).
pub fn lease_length() -> chrono::Duration {
    chrono::Duration::minutes(2)
}

/// The computation options from the settings.
pub fn options(state: &AppState) -> Options {
    Options { window_days: state.settings.segments.window_days, batch: state.settings.segments.batch }
}

/// Whether `program` is due for a computation at `now`: asked for, or (when scheduled) never
/// computed or last computed at least `every_hours` ago. Archived programs only when asked for.
pub fn is_due(program: &Program, run: Option<&SegmentRun>, every_hours: u32, now: chrono::DateTime<Utc>) -> bool {
    if run.is_some_and(SegmentRun::requested) {
        return true;
    }
    if every_hours == 0 || program.is_archived() {
        return false;
    }
    match run.and_then(|r| r.computed_at) {
        None => true,
        Some(at) => now - at >= chrono::Duration::hours(i64::from(every_hours)),
    }
}

/// Computes every due program that no other node is computing; returns how many it computed.
pub async fn run_due(state: &AppState) -> Result<usize, StoreError> {
    let mut computed = 0;
    for program in state.store.programs().await? {
        let run = state.store.segment_run(&program.id).await?;
        let now = state.clock.now();
        if !is_due(&program, run.as_ref(), state.settings.segments.every_hours, now)
            || run.as_ref().is_some_and(|r| r.computing(now))
        {
            continue;
        }
        let lease = Lease::new(lease_length());
        match compute::compute(state.store.as_ref(), state.clock.as_ref(), &program, &lease, options(state)).await {
            Ok(_) => computed += 1,
            Err(ComputeError::Busy) => {}
            Err(ComputeError::Store(e)) => return Err(e),
            Err(e) => tracing::warn!(program = %program.id, error = %error_chain(&e), "computing segments stopped"),
        }
    }
    Ok(computed)
}

/// Runs [`run_due`] once in the background: what "Compute now" starts on the node that was asked.
pub fn start(state: web::Data<AppState>) {
    tokio::spawn(async move {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "computing segments failed; the background runner tries again");
        }
    });
}

/// Computes due programs every `poll`, until dropped.
pub async fn run_forever(state: web::Data<AppState>, poll: Duration) {
    loop {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "computing segments failed; trying again shortly");
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn run(computed_hours_ago: Option<i64>, requested: bool, now: chrono::DateTime<Utc>) -> SegmentRun {
        let computed_at = computed_hours_ago.map(|h| now - chrono::Duration::hours(h));
        SegmentRun {
            program_id: "p".into(),
            computed_at,
            took_ms: 0,
            cards: 0,
            counts: Vec::new(),
            requested_at: requested.then(|| now - chrono::Duration::minutes(1)),
            lease_holder: None,
            lease_until: now,
        }
    }

    #[test]
    fn a_program_is_due_when_asked_for_never_computed_or_computed_long_enough_ago() {
        let now = Utc::now();
        let program = Program::new("p", "P", Currency::parse("RUB").unwrap(), now);
        assert!(is_due(&program, None, 24, now), "never computed");
        assert!(!is_due(&program, Some(&run(Some(23), false, now)), 24, now));
        assert!(is_due(&program, Some(&run(Some(24), false, now)), 24, now));
        assert!(!is_due(&program, Some(&run(Some(100), false, now)), 0, now), "no schedule");
        assert!(is_due(&program, Some(&run(Some(1), true, now)), 0, now), "asked for after the last computation");
        assert!(!is_due(&program, Some(&run(Some(0), false, now)), 0, now));

        let mut archived = program.clone();
        archived.archived_at = Some(now);
        assert!(!is_due(&archived, None, 24, now), "archived programs are not scheduled");
        assert!(is_due(&archived, Some(&run(None, true, now)), 24, now), "but are computed when asked");
    }
}
