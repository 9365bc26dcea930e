//! CSV export of customers and of transactions, streamed: the store is read a page at a time
//! (keyset pagination by serial) and each page is sent as soon as it is written, so memory
//! stays constant however many cards there are. UTF-8 with a byte-order mark, which is what
//! spreadsheet programs need to read Cyrillic correctly.
//!
//! The customer file's headers are the import's own column names, so an export imports back.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use tokio::sync::mpsc;

use crate::domain::{Card, LedgerEntry};
use crate::store::{Store, StoreError};

/// Cards read per store call.
const PAGE: usize = 500;

pub const CUSTOMER_HEADERS: [&str; 12] = [
    "card_number",
    "first_name",
    "last_name",
    "phone",
    "email",
    "birthday",
    "tier",
    "balance",
    "lifetime_points",
    "status",
    "registered_at",
    "serial_number",
];

pub const TRANSACTION_HEADERS: [&str; 12] = [
    "id",
    "created_at",
    "card_number",
    "serial_number",
    "type",
    "points",
    "balance_after",
    "purchase_amount",
    "order_id",
    "description",
    "source",
    "tier_after",
];

/// The chunks of a file being exported, in order; an error ends the file.
pub type Chunks = mpsc::Sender<Result<Vec<u8>, StoreError>>;

/// The days of transactions to export, both ends included; open ends are unbounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl Period {
    fn contains(&self, t: DateTime<Utc>) -> bool {
        let day = t.date_naive();
        self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|to| day <= to)
    }
}

/// Counts what was exported.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportCount {
    pub rows: u64,
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().from_writer(Vec::with_capacity(64 * 1024))
}

fn flush(w: csv::Writer<Vec<u8>>) -> Vec<u8> {
    w.into_inner().expect("a writer into memory cannot fail to flush")
}

fn bom_and_headers(headers: &[&str]) -> Vec<u8> {
    let mut w = writer();
    w.write_record(headers).expect("writing into memory cannot fail");
    let mut out = b"\xEF\xBB\xBF".to_vec();
    out.extend(flush(w));
    out
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn customer_row(card: &Card) -> [String; 12] {
    let h = card.holder.as_ref();
    [
        card.card_number.as_str().to_owned(),
        h.map(|h| h.first_name.to_string()).unwrap_or_default(),
        h.and_then(|h| h.last_name.as_ref()).map(ToString::to_string).unwrap_or_default(),
        h.map(|h| h.phone.as_str().to_owned()).unwrap_or_default(),
        h.and_then(|h| h.email.as_ref()).map(|e| e.as_str().to_owned()).unwrap_or_default(),
        h.and_then(|h| h.birthday).map(|b| b.to_string()).unwrap_or_default(),
        card.tier.clone(),
        card.balance.to_string(),
        card.lifetime_earned.to_string(),
        card.status.as_str().to_owned(),
        time(card.created_at),
        card.serial.as_str().to_owned(),
    ]
}

fn transaction_row(card: &Card, e: &LedgerEntry) -> [String; 12] {
    [
        e.id.clone(),
        time(e.created_at),
        card.card_number.as_str().to_owned(),
        e.serial.as_str().to_owned(),
        e.kind.as_str().to_owned(),
        e.points.to_string(),
        e.balance_after.to_string(),
        e.purchase_amount.map(|a| a.to_string()).unwrap_or_default(),
        e.order_id.clone().unwrap_or_default(),
        e.description.clone().unwrap_or_default(),
        e.source.as_str().to_owned(),
        e.tier_after.clone(),
    ]
}

/// Sends a chunk; `false` when the receiver went away (a download cancelled).
async fn send(out: &Chunks, chunk: Vec<u8>) -> bool {
    out.send(Ok(chunk)).await.is_ok()
}

/// Writes every card (deleted ones too, without personal data) to `out`.
pub async fn export_customers(store: &dyn Store, out: Chunks) -> ExportCount {
    let mut count = ExportCount::default();
    if !send(&out, bom_and_headers(&CUSTOMER_HEADERS)).await {
        return count;
    }
    let mut after = None;
    loop {
        let page = match store.cards_after(after.as_ref(), PAGE).await {
            Ok(page) => page,
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return count;
            }
        };
        let Some(last) = page.last() else { return count };
        after = Some(last.serial.clone());
        let mut w = writer();
        for card in &page {
            w.write_record(customer_row(card)).expect("writing into memory cannot fail");
            count.rows += 1;
        }
        if !send(&out, flush(w)).await {
            return count;
        }
    }
}

/// Writes every ledger entry made within `period`, card by card, each card's oldest first.
pub async fn export_transactions(store: &dyn Store, period: Period, out: Chunks) -> ExportCount {
    let mut count = ExportCount::default();
    if !send(&out, bom_and_headers(&TRANSACTION_HEADERS)).await {
        return count;
    }
    let mut after = None;
    loop {
        let page = match store.cards_after(after.as_ref(), PAGE).await {
            Ok(page) => page,
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return count;
            }
        };
        let Some(last) = page.last() else { return count };
        after = Some(last.serial.clone());
        let mut w = writer();
        for card in &page {
            let mut entries = match store.card_entries(&card.serial, None, usize::MAX).await {
                Ok(entries) => entries,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return count;
                }
            };
            entries.reverse();
            for e in entries.iter().filter(|e| period.contains(e.created_at)) {
                w.write_record(transaction_row(card, e)).expect("writing into memory cannot fail");
                count.rows += 1;
            }
        }
        if !send(&out, flush(w)).await {
            return count;
        }
    }
}
