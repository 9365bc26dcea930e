//! Signed passes kept in memory by (serial, card version, design revision), so an unchanged pass
//! is never signed twice by one process: Wallet fetches a pass after every push, a customer may
//! download it several times, and each signature costs an RSA operation.
//!
//! The cache is `moka`'s (TinyLFU admission, LRU eviction), bounded by bytes, with single-flight
//! loading: requests for a version not yet signed wait for the one signature in progress instead
//! of each signing it. A card's older versions are never asked for again and age out. Nothing is
//! shared between processes: a miss on another node only costs one more signature.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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

/// (serial, card version, design revision): a publish moves the card's version, and the
/// revision in the key makes sure no pass signed with an earlier design is ever served for it.
type Key = (String, i64, i64);

pub struct PassCache {
    cache: Option<moka::future::Cache<Key, Arc<SignedPass>>>,
}

/// A version nobody asked for in this long is dropped even when there is room.
const IDLE: Duration = Duration::from_secs(6 * 3600);

impl PassCache {
    /// A cache holding at most `capacity` bytes of passes (0 turns it off).
    pub fn new(capacity: usize) -> Self {
        let cache = (capacity > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(capacity as u64)
                .weigher(|_: &Key, pass: &Arc<SignedPass>| u32::try_from(pass.bytes.len()).unwrap_or(u32::MAX))
                .time_to_idle(IDLE)
                .build()
        });
        Self { cache }
    }

    /// The signed pass of `serial` at exactly `version` with design `revision`, if this process
    /// has it.
    pub async fn get(&self, serial: &str, version: i64, revision: i64) -> Option<Arc<SignedPass>> {
        self.cache.as_ref()?.get(&(serial.to_owned(), version, revision)).await
    }

    /// The pass of `serial` at `version` with design `revision`, from the cache or made by
    /// `build`. Concurrent calls for the same key run `build` once and all get its result (or
    /// its error).
    pub async fn get_or_build<E, F>(
        &self,
        serial: &str,
        version: i64,
        revision: i64,
        build: F,
    ) -> Result<Arc<SignedPass>, Arc<E>>
    where
        F: Future<Output = Result<Arc<SignedPass>, E>>,
        E: Send + Sync + 'static,
    {
        match &self.cache {
            Some(cache) => cache.try_get_with((serial.to_owned(), version, revision), build).await,
            None => build.await.map_err(Arc::new),
        }
    }

    /// Bytes held now (after pending evictions are done).
    pub async fn size(&self) -> u64 {
        match &self.cache {
            Some(cache) => {
                cache.run_pending_tasks().await;
                cache.weighted_size()
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pass(version: i64, size: usize) -> Arc<SignedPass> {
        Arc::new(SignedPass { bytes: Bytes::from(vec![0u8; size]), version, modified_at: Utc::now() })
    }

    async fn build(cache: &PassCache, serial: &str, version: i64, size: usize) -> Arc<SignedPass> {
        cache.get_or_build::<(), _>(serial, version, 1, async move { Ok(pass(version, size)) }).await.unwrap()
    }

    #[tokio::test]
    async fn a_pass_is_found_only_at_its_version() {
        let cache = PassCache::new(1000);
        build(&cache, "a", 1, 10).await;
        assert!(cache.get("a", 1, 1).await.is_some());
        assert!(cache.get("a", 2, 1).await.is_none());
        assert!(cache.get("a", 1, 2).await.is_none(), "another design revision is another pass");
        build(&cache, "a", 2, 10).await;
        assert!(cache.get("a", 2, 1).await.is_some());
    }

    #[tokio::test]
    async fn the_size_stays_within_the_capacity() {
        let cache = PassCache::new(100);
        for i in 0..50 {
            build(&cache, &format!("card{i}"), 1, 10).await;
        }
        assert!(cache.size().await <= 100, "{}", cache.size().await);
        build(&cache, "huge", 1, 101).await;
        assert!(cache.size().await <= 100);
        assert!(cache.get("huge", 1, 1).await.is_none(), "larger than the whole cache");
    }

    #[tokio::test]
    async fn concurrent_requests_for_a_new_version_build_it_once() {
        let cache = Arc::new(PassCache::new(1_000_000));
        let builds = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, builds) = (cache.clone(), builds.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_build::<(), _>("a", 7, 1, async {
                            builds.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(pass(7, 10))
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().version, 7);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn capacity_zero_turns_the_cache_off() {
        let cache = PassCache::new(0);
        build(&cache, "a", 1, 1).await;
        assert!(cache.get("a", 1, 1).await.is_none());
    }
}
