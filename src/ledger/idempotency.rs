//! Idempotency keys: a retried write returns the first answer and is never applied twice.
//!
//! The first request with a key creates a record holding the request's hash and the id its
//! ledger entry will have, and a short lease. Concurrent duplicates wait for the answer. If the
//! holder dies (or stalls), its lease expires and the next retry takes the record over: because
//! the entry id is fixed in the record, the retry finds the entry if the write was applied and
//! answers from it, or applies it if it was not — never both, even while the first holder is
//! still running (see `ledger::apply`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::domain::LedgerEntry;
use crate::store::{IdempotencyKey, IdempotencyRecord, IdempotencyStart, LedgerStore, StoreError, StoredResponse};

/// How long the holder of a record is presumed alive before a retry may take over.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(10);
/// How long answers are kept (at least 24 hours are promised).
pub const RETENTION: chrono::Duration = chrono::Duration::hours(48);
/// How long a duplicate waits for the first request's answer before giving up with 409.
const WAIT_LIMIT: Duration = Duration::from_secs(15);
/// A waiting duplicate reads the record again after this, doubling up to `POLL_MAX`.
const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("the key was used with a different request")]
    KeyReused,
    #[error("a request with this key is still in progress")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of presenting a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request does the work, writing the entry `entry_id` (which an earlier holder of the
    /// key may have written already: the ledger checks).
    Owner { entry_id: String },
    /// The request was answered before: answer the same.
    Replay(StoredResponse),
}

/// The hash that identifies a request: method, path and exact body.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// Claims `key` for a request with `hash`, waiting while another request holds it. The record
/// is created once; a waiting duplicate then only reads it (with backoff), so waiting costs no
/// writes.
pub async fn claim(
    store: &dyn LedgerStore,
    clock: &dyn Clock,
    key: &IdempotencyKey,
    hash: &str,
) -> Result<Claim, IdempotencyError> {
    let started = tokio::time::Instant::now();
    let mut poll = POLL_MIN;
    let mut existing = match start(store, clock, key, hash).await? {
        Ok(claim) => return Ok(claim),
        Err(existing) => existing,
    };
    loop {
        if existing.request_hash != hash {
            return Err(IdempotencyError::KeyReused);
        }
        if let Some(response) = existing.response {
            return Ok(Claim::Replay(response));
        }
        let now = clock.now();
        if lease_expired(existing.lease_until, now) {
            if store.idempotency_take_over(key, existing.lease_until, now + LEASE).await? {
                return Ok(Claim::Owner { entry_id: existing.entry_id });
            }
        } else {
            if started.elapsed() > WAIT_LIMIT {
                return Err(IdempotencyError::InProgress);
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(POLL_MAX);
        }
        existing = match store.idempotency_get(key).await? {
            Some(record) => record,
            // Purged meanwhile (it expired): start afresh.
            None => match start(store, clock, key, hash).await? {
                Ok(claim) => return Ok(claim),
                Err(existing) => existing,
            },
        };
    }
}

/// Creates the record: `Ok` when this request owns it, else the record found.
async fn start(
    store: &dyn LedgerStore,
    clock: &dyn Clock,
    key: &IdempotencyKey,
    hash: &str,
) -> Result<Result<Claim, IdempotencyRecord>, IdempotencyError> {
    let now = clock.now();
    let record = IdempotencyRecord {
        key: key.clone(),
        request_hash: hash.to_owned(),
        entry_id: LedgerEntry::new_id(),
        lease_until: now + LEASE,
        response: None,
        created_at: now,
        expires_at: now + RETENTION,
    };
    Ok(match store.idempotency_start(&record).await? {
        IdempotencyStart::Started => Ok(Claim::Owner { entry_id: record.entry_id }),
        IdempotencyStart::Existing(existing) => Err(existing),
    })
}

fn lease_expired(lease_until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    lease_until <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let a = request_hash("POST", "/api/v1/cards/1/earn", b"{\"purchase_amount\":1}");
        assert_eq!(a, request_hash("POST", "/api/v1/cards/1/earn", b"{\"purchase_amount\":1}"));
        assert_ne!(a, request_hash("POST", "/api/v1/cards/1/earn", b"{\"purchase_amount\":2}"));
        assert_ne!(a, request_hash("POST", "/api/v1/cards/2/earn", b"{\"purchase_amount\":1}"));
        assert_ne!(a, request_hash("POST", "/api/v1/cards/1/redeem", b"{\"purchase_amount\":1}"));
    }
}
