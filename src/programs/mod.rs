//! Programs as staff edit them (SPEC §4.8): the per-node cache every request reads programs
//! through, saving with a version check, and — in submodules — publishing a design and fanning it
//! out to the cards.
//!
//! Programs live in the store, never in files, so every node of an install sees the same ones.
//! A node keeps a program it read for `LOY_PROGRAM_CACHE_MS` (2 s by default): a change saved on
//! another node reaches this one within that time, and the node that saved it drops its copy at
//! once.

pub mod brand;
pub mod check;
pub mod images;
pub mod preview;
pub mod publish;
pub mod stamp_strip;
pub mod stamp_strips;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::Program;
use crate::store::{DynStore, StoreError, StoreResult};

/// Programs by id, each kept for a short time; concurrent misses for one id share one read.
#[derive(Clone)]
pub struct ProgramCache {
    cache: Option<moka::future::Cache<String, Option<Arc<Program>>>>,
}

impl ProgramCache {
    /// A cache keeping programs for `ttl`; zero keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        let cache =
            (!ttl.is_zero()).then(|| moka::future::Cache::builder().max_capacity(1000).time_to_live(ttl).build());
        Self { cache }
    }

    /// The program `id` (`None` when there is none), from the cache or the store.
    pub async fn get(&self, store: &DynStore, id: &str) -> StoreResult<Option<Arc<Program>>> {
        let Some(cache) = &self.cache else { return Ok(store.program(id).await?.map(Arc::new)) };
        cache
            .try_get_with(id.to_owned(), async { store.program(id).await.map(|p| p.map(Arc::new)) })
            .await
            .map_err(|e| copy_error(&e))
    }

    /// Forgets program `id` (after this node changed it).
    pub async fn invalidate(&self, id: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate(id).await;
        }
    }
}

/// What follows a change the cards show (a published design, a new name, renamed tiers), off
/// the request: the program's cards owed a push are queued (the push worker then tells the
/// phones and patches the Google objects) and the Google class is rewritten.
pub fn push_program_change(state: &crate::state::AppState, program: &Program) {
    let (store, queue, id) = (state.store.clone(), state.queue.clone(), program.id.clone());
    tokio::spawn(async move {
        match publish::queue_owed(&store, &queue, &id).await {
            Ok(queued) => tracing::info!(program = %id, queued, "the program's cards are queued for push"),
            Err(e) => tracing::warn!(
                error = %crate::telemetry::error_chain(&e),
                "queueing the program's cards failed; the push sweeper will pick them up"
            ),
        }
    });
    if let Some(google) = &state.google {
        google.prepare_in_background(program.clone());
    }
}

/// A change outside the design that the passes show (the program's name, its tiers' names):
/// every card of the program moves to a new version and is queued for push, as a publish does.
pub async fn refresh_cards(state: &crate::state::AppState, program: &Program) -> StoreResult<u64> {
    let moved = state.store.bump_program_cards(&program.id, state.clock.now()).await?;
    push_program_change(state, program);
    Ok(moved)
}

/// The error a shared read failed with, for each of its waiters.
pub(crate) fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Duplicate(key) => StoreError::Duplicate(*key),
        StoreError::Unavailable(cause) => StoreError::Unavailable(anyhow::anyhow!("{cause:#}")),
        StoreError::Corrupt(why) => StoreError::Corrupt(why.clone()),
        StoreError::Injected(n) => StoreError::Injected(*n),
    }
}
