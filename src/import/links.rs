//! "Send the card link to imported customers": one card-link mail (the outbox's `card_link`)
//! to each customer a console import created who has an e-mail address.
//!
//! The customers are found through their `import` entry (its id follows from the program and
//! the phone, its description names the import), and each mail's id follows from the import
//! and the card, so doing it again queues nothing twice.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{import_entry_id, written_by_job};
use crate::domain::{Card, EntryKind, SerialNumber};
use crate::mail::{Mail, MailKind};
use crate::store::{ImportJob, Store, StoreResult};

/// Cards read per store call.
const PAGE: usize = 500;

/// Entry look-ups in flight at once.
const CONCURRENCY: usize = 32;

/// What sending the links did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinksSent {
    /// Mails newly added to the outbox.
    pub queued: u64,
    /// Customers of the import whose link was queued before.
    pub already: u64,
    /// Customers of the import without an e-mail address.
    pub without_email: u64,
}

/// The id of the card-link mail of `serial` for import `job`: the same every time.
pub fn mail_id(job: &str, serial: &SerialNumber) -> String {
    let digest = Sha256::digest(format!("import-link\n{job}\n{serial}").as_bytes());
    format!("ml_imp_{}", &hex::encode(digest)[..24])
}

/// Queues the card link to every customer `job` created who has an address and was not sent
/// one for this import yet.
pub async fn send_links(
    store: &dyn Store,
    mail: &Mail,
    job: &ImportJob,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<LinksSent> {
    let mut sent = LinksSent::default();
    let mut after: Option<SerialNumber> = None;
    loop {
        let page = store.cards_after(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        let full = page.len() == PAGE;
        let mut lookups = futures_util::stream::iter(page)
            .map(|card| async move {
                let ours = created_by(store, &card, &job.id).await?;
                Ok::<_, crate::store::StoreError>(ours.then_some(card))
            })
            .buffer_unordered(CONCURRENCY);
        while let Some(card) = lookups.next().await {
            let Some(card) = card? else { continue };
            if crate::mail::email_of(&card).is_none() {
                sent.without_email += 1;
            } else if crate::mail::queue_once(
                store,
                mail,
                mail_id(&job.id, &card.serial),
                MailKind::CardLink,
                &card,
                now,
            )
            .await?
            {
                sent.queued += 1;
            } else {
                sent.already += 1;
            }
        }
        if !full {
            break;
        }
    }
    Ok(sent)
}

/// Whether `card` was created by the console import `job`.
async fn created_by(store: &dyn Store, card: &Card, job: &str) -> StoreResult<bool> {
    let Some(holder) = &card.holder else { return Ok(false) };
    let id = import_entry_id(&card.program_id, holder.phone.as_str());
    let Some(entry) = store.entry(&id).await? else { return Ok(false) };
    Ok(entry.kind == EntryKind::Import
        && entry.serial == card.serial
        && written_by_job(entry.description.as_deref(), job))
}
