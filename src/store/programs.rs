//! Programs as the panel and the command line edit them (SPEC §4.8): every program of the
//! install, conditional updates, the published design versions, the images designs use, and the
//! fan-out of a published design to the program's cards.
//!
//! A program is one document; an edit replaces it if nobody saved in between (its `version`),
//! so two staff members editing at once never silently undo each other's change.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{DesignVersion, Program, SerialNumber};

/// Where the push of a program's cards stands (after a publish: how far the fan-out got).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushProgress {
    /// Cards of the program, deleted ones excepted.
    pub cards: u64,
    /// Cards whose latest change has not reached the phones yet (queued or being pushed).
    pub pending: u64,
    /// Cards with a dead letter: a push that failed for good.
    pub failed: u64,
}

#[async_trait]
pub trait ProgramStore: Send + Sync + 'static {
    /// Every program, archived ones included, ordered by id.
    async fn programs(&self) -> StoreResult<Vec<Program>>;

    /// Stores a new program; [`super::StoreError::Duplicate`] when its id is taken.
    async fn insert_program(&self, program: &Program) -> StoreResult<()>;

    /// Replaces the stored program with `program` if the stored one's version is still
    /// `expected_version`; `false` when someone saved in between (nothing is written).
    async fn update_program(&self, program: &Program, expected_version: i64) -> StoreResult<bool>;

    /// Keeps a PNG under its id (the SHA-256 of its bytes, so storing it twice is harmless).
    async fn put_image(&self, id: &str, png: &[u8]) -> StoreResult<()>;

    async fn image(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Records a published design; storing the same program and revision again is harmless.
    async fn insert_design_version(&self, version: &DesignVersion) -> StoreResult<()>;

    /// The program's published designs, newest first, at most `limit`.
    async fn design_versions(&self, program_id: &str, limit: usize) -> StoreResult<Vec<DesignVersion>>;

    async fn design_version(&self, program_id: &str, revision: i64) -> StoreResult<Option<DesignVersion>>;

    /// Moves the version (and modification time) of every card of the program except deleted
    /// ones and marks their push owed since `now`, in bulk; answers how many cards moved.
    async fn bump_program_cards(&self, program_id: &str, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Cards of the program whose push is owed, by serial after `after`, at most `limit`: what a
    /// fan-out hands to the push queue page by page.
    async fn program_cards_owed(
        &self,
        program_id: &str,
        after: Option<&SerialNumber>,
        limit: usize,
    ) -> StoreResult<Vec<SerialNumber>>;

    async fn program_push_progress(&self, program_id: &str) -> StoreResult<PushProgress>;
}
