//! A scriptable fake of APNs behind the `PushGateway` seam (a2's endpoint is fixed to Apple).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loy::push::gateway::{PushGateway, PushOutcome, WalletPush};

#[derive(Debug, Clone)]
pub struct Sent {
    pub token: String,
    pub topic: String,
    pub at: Instant,
    pub outcome: PushOutcome,
}

#[derive(Default)]
pub struct FakeApns {
    sent: Mutex<Vec<Sent>>,
    scripts: Mutex<HashMap<String, VecDeque<PushOutcome>>>,
    always: Mutex<HashMap<String, PushOutcome>>,
    delay: Mutex<Duration>,
    /// Sends that will hang until the task is dropped.
    hang_next: AtomicUsize,
    pub started: AtomicUsize,
}

impl FakeApns {
    /// The next answers for `token`, in order; afterwards 200.
    pub fn script(&self, token: &str, outcomes: impl IntoIterator<Item = PushOutcome>) {
        self.scripts.lock().unwrap().entry(token.to_owned()).or_default().extend(outcomes);
    }

    /// Always answer `outcome` for `token` (until `clear`).
    pub fn always(&self, token: &str, outcome: PushOutcome) {
        self.always.lock().unwrap().insert(token.to_owned(), outcome);
    }

    pub fn clear(&self, token: &str) {
        self.always.lock().unwrap().remove(token);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// The next `n` sends never answer.
    pub fn hang_next(&self, n: usize) {
        self.hang_next.store(n, Ordering::SeqCst);
    }

    /// Completed sends (answered), in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    pub fn delivered_to(&self, token: &str) -> usize {
        self.sent().iter().filter(|s| s.token == token && s.outcome == PushOutcome::Delivered).count()
    }

    pub fn attempts_to(&self, token: &str) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.token == token).collect()
    }
}

#[async_trait]
impl PushGateway for FakeApns {
    async fn send(&self, push: WalletPush<'_>) -> PushOutcome {
        self.started.fetch_add(1, Ordering::SeqCst);
        let hang = self.hang_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if hang {
            std::future::pending::<()>().await;
        }
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let scripted = self.scripts.lock().unwrap().get_mut(push.device_token).and_then(VecDeque::pop_front);
        let outcome = scripted
            .or_else(|| self.always.lock().unwrap().get(push.device_token).cloned())
            .unwrap_or(PushOutcome::Delivered);
        self.sent.lock().unwrap().push(Sent {
            token: push.device_token.to_owned(),
            topic: push.topic.to_owned(),
            at: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
