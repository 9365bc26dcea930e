//! Housekeeping that runs inside `loy serve`: expiring points that are due and deleting
//! idempotency records past their retention. Every step is safe to run on several nodes at
//! once (each write is conditional on the card's version), so no leader is needed.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::ledger::expiry;
use crate::push::ChangeNotifier;
use crate::store::DynStore;
use crate::telemetry::error_chain;

/// Runs one round of every job.
pub async fn run_once(store: &DynStore, clock: &dyn Clock, notify: &ChangeNotifier) {
    let now = clock.now();
    match store.idempotency_purge(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "expired idempotency records deleted"),
        Err(e) => tracing::warn!(error = %error_chain(&e), "purging idempotency records failed"),
    }
    let programs = match store.programs().await {
        Ok(programs) => programs,
        Err(e) => return tracing::warn!(error = %error_chain(&e), "loading the programs for maintenance failed"),
    };
    for program in programs {
        match crate::messages::automatic::write_due(store.as_ref(), &program, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(program = %program.id, messages = n, "automatic messages written for today"),
            Err(e) => tracing::warn!(error = %error_chain(&e), "writing the automatic messages failed"),
        }
        match program.rules.validate() {
            Err(why) => tracing::error!(
                program = %program.id,
                problem = %why,
                "the loyalty program's rules are invalid; points are not expired until they are corrected"
            ),
            Ok(()) => match expiry::run(store.as_ref(), &program, now, Some(notify)).await {
                Ok(0) => {}
                Ok(points) => tracing::info!(program = %program.id, points, "points expired"),
                Err(e) => tracing::warn!(error = %error_chain(&e), "expiring points failed"),
            },
        }
    }
}

/// Runs every `interval` until the task is dropped.
pub async fn run_forever(store: DynStore, clock: Arc<dyn Clock>, notify: ChangeNotifier, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        run_once(&store, clock.as_ref(), &notify).await;
    }
}
