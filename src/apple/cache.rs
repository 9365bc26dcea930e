//! Signed passes kept in memory by (serial, version), so an unchanged pass is never signed
//! twice by one process: Wallet fetches a pass after every push, a customer may download it
//! several times, and each signature costs an RSA operation.
//!
//! The cache is per process and bounded by bytes; only the newest version of a card is kept,
//! and the least recently used cards go first. Nothing is shared between processes: a miss on
//! another node only costs one more signature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};

/// A signed `.pkpass` and what its HTTP answer needs.
#[derive(Debug)]
pub struct SignedPass {
    pub bytes: Bytes,
    pub version: i64,
    /// The pass's `Last-Modified` (the card's `modified_at`).
    pub modified_at: DateTime<Utc>,
}

struct Slot {
    pass: Arc<SignedPass>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    bytes: usize,
    clock: u64,
}

pub struct PassCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl PassCache {
    /// A cache holding at most `capacity` bytes of passes (0 turns it off).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signed pass of `serial` at exactly `version`.
    pub fn get(&self, serial: &str, version: i64) -> Option<Arc<SignedPass>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let slot = inner.slots.get_mut(serial).filter(|s| s.pass.version == version)?;
        slot.last_used = now;
        Some(slot.pass.clone())
    }

    /// Keeps `pass` as the card's newest version; an older version is dropped, and a pass older
    /// than the one already kept (a slow concurrent build) is not stored.
    pub fn insert(&self, serial: &str, pass: Arc<SignedPass>) {
        let size = pass.bytes.len();
        if size > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if inner.slots.get(serial).is_some_and(|s| s.pass.version >= pass.version) {
            return;
        }
        inner.clock += 1;
        let now = inner.clock;
        if let Some(old) = inner.slots.insert(serial.to_owned(), Slot { pass, last_used: now }) {
            inner.bytes -= old.pass.bytes.len();
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            let Some(oldest) = inner.slots.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone()) else {
                break;
            };
            if let Some(evicted) = inner.slots.remove(&oldest) {
                inner.bytes -= evicted.pass.bytes.len();
            }
        }
    }

    /// Bytes held now.
    pub fn size(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(version: i64, size: usize) -> Arc<SignedPass> {
        Arc::new(SignedPass { bytes: Bytes::from(vec![0u8; size]), version, modified_at: Utc::now() })
    }

    #[test]
    fn a_pass_is_found_only_at_its_version() {
        let cache = PassCache::new(1000);
        cache.insert("a", pass(1, 10));
        assert!(cache.get("a", 1).is_some());
        assert!(cache.get("a", 2).is_none());
        cache.insert("a", pass(2, 10));
        assert!(cache.get("a", 1).is_none(), "the old version is gone");
        assert!(cache.get("a", 2).is_some());
        cache.insert("a", pass(1, 10));
        assert!(cache.get("a", 2).is_some(), "an older build does not replace a newer one");
        assert_eq!(cache.size(), 10);
    }

    #[test]
    fn the_least_recently_used_cards_go_first_when_full() {
        let cache = PassCache::new(30);
        cache.insert("a", pass(1, 10));
        cache.insert("b", pass(1, 10));
        cache.insert("c", pass(1, 10));
        assert!(cache.get("a", 1).is_some());
        cache.insert("d", pass(1, 10));
        assert!(cache.get("b", 1).is_none(), "b was used least recently");
        assert!(cache.get("a", 1).is_some() && cache.get("c", 1).is_some() && cache.get("d", 1).is_some());
        assert_eq!(cache.size(), 30);
        cache.insert("huge", pass(1, 31));
        assert!(cache.get("huge", 1).is_none(), "larger than the whole cache");
    }

    #[test]
    fn capacity_zero_turns_the_cache_off() {
        let cache = PassCache::new(0);
        cache.insert("a", pass(1, 1));
        assert!(cache.get("a", 1).is_none());
    }
}
