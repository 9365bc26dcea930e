//! The in-process queue, for a single node without Redis. It lives and dies with the process;
//! after a restart the sweeper finds every card still owed a push in the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Lease, PushQueue, QueueDepth, QueueError, duration_ms, lease_token, now_ms};
use crate::domain::SerialNumber;

#[derive(Default)]
struct State {
    /// (due ms, serial), ordered by due time.
    waiting: BTreeSet<(i64, String)>,
    due: HashMap<String, i64>,
    /// serial → (token, lease expiry ms).
    leased: HashMap<String, (String, i64)>,
    attempts: HashMap<String, (u32, DateTime<Utc>)>,
}

impl State {
    /// Schedules `serial` at `due` unless it is already due earlier.
    fn schedule(&mut self, serial: &str, due: i64) {
        match self.due.get(serial) {
            Some(&current) if current <= due => {}
            Some(&current) => {
                self.waiting.remove(&(current, serial.to_owned()));
                self.waiting.insert((due, serial.to_owned()));
                self.due.insert(serial.to_owned(), due);
            }
            None => {
                self.waiting.insert((due, serial.to_owned()));
                self.due.insert(serial.to_owned(), due);
            }
        }
    }

    fn release(&mut self, lease: &Lease) -> bool {
        match self.leased.get(lease.serial.as_str()) {
            Some((token, _)) if *token == lease.token => {
                self.leased.remove(lease.serial.as_str());
                true
            }
            _ => false,
        }
    }
}

#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<State>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl PushQueue for MemoryQueue {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }

    async fn enqueue(&self, serial: &SerialNumber, delay: Duration) -> Result<(), QueueError> {
        self.state().schedule(serial.as_str(), now_ms() + duration_ms(delay));
        Ok(())
    }

    async fn ensure_queued(&self, serial: &SerialNumber) -> Result<(), QueueError> {
        let mut state = self.state();
        if !state.due.contains_key(serial.as_str()) {
            state.schedule(serial.as_str(), now_ms());
        }
        Ok(())
    }

    async fn take(&self, lease: Duration) -> Result<Option<Lease>, QueueError> {
        let now = now_ms();
        let mut state = self.state();
        let candidate = state
            .waiting
            .iter()
            .take_while(|(due, _)| *due <= now)
            .find(|(_, serial)| !state.leased.contains_key(serial))
            .cloned();
        let Some((due, serial)) = candidate else { return Ok(None) };
        state.waiting.remove(&(due, serial.clone()));
        state.due.remove(&serial);
        let token = lease_token();
        state.leased.insert(serial.clone(), (token.clone(), now + duration_ms(lease)));
        let (attempts, first_failure) = match state.attempts.get(&serial) {
            Some((n, first)) => (*n, Some(*first)),
            None => (0, None),
        };
        let serial = SerialNumber::parse(&serial).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        Ok(Some(Lease { serial, token, attempts, first_failure }))
    }

    async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
        let mut state = self.state();
        if state.release(lease) {
            state.attempts.remove(lease.serial.as_str());
        }
        Ok(())
    }

    async fn retry(
        &self,
        lease: &Lease,
        delay: Duration,
        attempts: u32,
        first_failure: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let mut state = self.state();
        if state.release(lease) {
            state.attempts.insert(lease.serial.as_str().to_owned(), (attempts, first_failure));
            state.schedule(lease.serial.as_str(), now_ms() + duration_ms(delay));
        }
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
        let mut state = self.state();
        if state.release(lease) {
            state.schedule(lease.serial.as_str(), now_ms());
        }
        Ok(())
    }

    async fn reap(&self) -> Result<u64, QueueError> {
        let now = now_ms();
        let mut state = self.state();
        let expired: Vec<String> =
            state.leased.iter().filter(|(_, (_, until))| *until <= now).map(|(serial, _)| serial.clone()).collect();
        for serial in &expired {
            state.leased.remove(serial);
            state.schedule(serial, now);
        }
        Ok(expired.len() as u64)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let state = self.state();
        Ok(QueueDepth { waiting: state.waiting.len() as u64, leased: state.leased.len() as u64 })
    }
}
