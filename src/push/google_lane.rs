//! The Google lane. Google Wallet takes about 20 calls a second per issuer, APNs thousands of
//! pushes: a push job that waited for Google's turn would hold its slot for as long as Google's
//! backlog, and with every slot waiting the iPhones would get their pushes at Google's pace.
//!
//! So a job whose card also owes Google an update, at a moment when a Google call would wait,
//! pushes the devices, hands the card to the Google lane's queue and ends without marking the
//! card pushed. The lane's worker runs the same job on it (the devices are done, so it is the
//! Google update), waiting for Google's turn with a few jobs in flight, and marks the card
//! pushed. A message or a design to 100 000 cards thus reaches the iPhones in seconds while
//! Google's updates follow at Google's pace. Until the lane is done the card stays owed a push,
//! so the sweeper brings it back should the lane's queue lose it (an in-process queue at a
//! restart), and the job hands it to the lane again.

use std::sync::Arc;
use std::time::Duration;

use super::worker::Worker;
use crate::domain::SerialNumber;
use crate::telemetry::error_chain;

/// A job hands its card to the lane when a Google call made now would wait longer than this.
pub const DEFER_AFTER: Duration = Duration::from_millis(250);

/// Seconds of Google calls the lane's worker keeps waiting in flight.
const SECONDS_IN_FLIGHT: usize = 2;

impl Worker {
    /// Hands the card to the Google lane when Google's turn is far off; true when it did. A
    /// lane that cannot take it (Redis failing) leaves the job to wait for Google itself.
    pub(super) async fn defer_google(&self, serial: &SerialNumber) -> bool {
        let (Some(lane), Some(google)) = (&self.google_lane, &self.google) else { return false };
        if google.backlog() <= DEFER_AFTER {
            return false;
        }
        match lane.enqueue(serial, Duration::ZERO).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(serial = %serial, error = %error_chain(&e), "handing a card to the Google lane failed; its job waits for Google");
                false
            }
        }
    }

    /// The worker of this worker's Google lane (`None` without Google or a lane): the same
    /// store, wallets and settings on the lane's queue, with as many jobs in flight as Google
    /// takes in a couple of seconds.
    pub fn google_lane_worker(&self) -> Option<Worker> {
        let lane = self.google_lane.clone()?;
        let google = self.google.clone()?;
        let mut settings = self.settings.clone();
        settings.concurrency = (google.requests_per_second() as usize * SECONDS_IN_FLIGHT).clamp(4, 256);
        Some(Worker {
            store: self.store.clone(),
            queue: lane,
            gateway: self.gateway.clone(),
            topic: self.topic.clone(),
            settings,
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            clock: self.clock.clone(),
            google: Some(google),
            google_lane: None,
            programs: self.programs.clone(),
            webhooks: self.webhooks.clone(),
        })
    }
}

/// Starts the lane's worker loop next to `worker`'s, when it has a lane.
pub(super) fn start(
    worker: &Worker,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let lane = Arc::new(worker.google_lane_worker()?);
    Some(tokio::spawn(lane.run(shutdown)))
}
