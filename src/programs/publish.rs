//! Publishing a design: the new version is kept (any earlier one can be restored), the program
//! saved, and every card of the program moved to a new version and queued for push — without
//! signing a single pass up front: a pass is signed when a phone fetches it, and the signed-pass
//! cache keys on the card's version and the design's revision.
//!
//! The order makes a stop at any point safe: the program is saved first (with
//! `fanned_out_revision` behind `design.revision`), then the cards move, then the program records
//! that they did. A node that stopped in between leaves a program whose fan-out
//! [`finish_fan_outs`] completes at the next start. Cards whose push is owed are queued page by
//! page; one left out (a node stopped mid-way) is found by the push sweeper, which re-queues
//! every card owed a push.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::{DesignVersion, Program, ProgramDesign};
use crate::push::queue::PushQueue;
use crate::store::{DynStore, StoreError};
use crate::telemetry::error_chain;

/// Cards handed to the push queue per page of a fan-out.
const PAGE: usize = 1000;

/// Queue calls outstanding at once during a fan-out.
const IN_FLIGHT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Someone saved the program in between: reload and try again.
    #[error("the program was changed by someone else in the meantime; reload it and publish again")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub program: Program,
    /// Cards whose version moved.
    pub cards: u64,
}

/// Publishes `design` as the next revision of `program` (as read at `program.version`): keeps
/// the version, saves the program with the design live and no draft, and moves every card.
/// `by` names who published (a login, or `cli`).
pub async fn publish(
    store: &DynStore,
    program: &Program,
    design: ProgramDesign,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Published, PublishError> {
    let revision = program.design.revision.max(program.fanned_out_revision) + 1;
    let design = ProgramDesign { revision, ..design };
    store
        .insert_design_version(&DesignVersion {
            program_id: program.id.clone(),
            revision,
            design: design.clone(),
            published_at: now,
            published_by: by.to_owned(),
        })
        .await?;
    let mut next = program.clone();
    next.design = design;
    next.draft = None;
    next.version = program.version + 1;
    next.updated_at = now;
    if !store.update_program(&next, program.version).await? {
        return Err(PublishError::Conflict);
    }
    let cards = fan_out(store, &next, now).await?;
    let program = store.program(&next.id).await?.unwrap_or(next);
    Ok(Published { program, cards })
}

/// Moves every card of `program` to a new version (so phones fetch the new design) and records
/// that the program's current revision went out. Answers how many cards moved.
async fn fan_out(store: &DynStore, program: &Program, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let cards = store.bump_program_cards(&program.id, now).await?;
    // Recording it is conditional: when someone saved the program meanwhile, their save already
    // carries this revision, and the next start's check finds it behind and fans out again,
    // which only costs a push.
    let mut done = program.clone();
    done.fanned_out_revision = program.design.revision;
    done.version = program.version + 1;
    store.update_program(&done, program.version).await?;
    tracing::info!(program = %program.id, revision = program.design.revision, cards, "design published");
    Ok(cards)
}

/// Hands the program's cards owed a push to the queue, a page at a time (in the background
/// after a publish), with up to [`IN_FLIGHT`] calls outstanding so that a Redis queue is not
/// paced by round trips. Cards it misses (the node stops, Redis fails) are re-queued by the push
/// sweeper.
pub async fn queue_owed(store: &DynStore, queue: &Arc<dyn PushQueue>, program_id: &str) -> Result<u64, StoreError> {
    use futures_util::StreamExt;
    let mut after = None;
    let mut queued = 0;
    loop {
        let page = store.program_cards_owed(program_id, after.as_ref(), PAGE).await?;
        let results: Vec<_> = futures_util::stream::iter(page.iter().cloned())
            .map(|serial| {
                let queue = queue.clone();
                async move { queue.ensure_queued(&serial).await }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for result in results {
            if let Err(e) = result {
                tracing::warn!(error = %error_chain(&e), "queueing a published card failed; the sweeper will pick it up");
                return Ok(queued);
            }
            queued += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.clone()),
            _ => return Ok(queued),
        }
    }
}

/// Completes fan-outs a stopped node left unfinished (a program whose published revision has
/// not reached its cards). Run at start-up.
pub async fn finish_fan_outs(store: &DynStore, now: DateTime<Utc>) -> Result<(), StoreError> {
    for program in store.programs().await? {
        if program.fanned_out_revision < program.design.revision {
            tracing::info!(program = %program.id, "finishing an interrupted design publish");
            fan_out(store, &program, now).await?;
        }
    }
    Ok(())
}

/// Makes an earlier published design live again, as a new revision (history only grows).
pub async fn restore(
    store: &DynStore,
    program: &Program,
    revision: i64,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<Published>, PublishError> {
    let Some(old) = store.design_version(&program.id, revision).await? else { return Ok(None) };
    publish(store, program, old.design, by, now).await.map(Some)
}
