//! One customer's data as one JSON document: everything the store keeps about them (the
//! right of access). Secrets that only authenticate devices (the pass's authentication token,
//! push tokens) are left out: they are not about the person and would let the file's reader
//! act as the pass.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::{Card, LedgerEntry};
use crate::store::{Store, StoreResult};

#[derive(Debug, Serialize)]
pub struct CustomerExport {
    pub exported_at: DateTime<Utc>,
    /// `null` once the customer was deleted.
    pub customer: Option<CustomerData>,
    pub card: CardData,
    /// Every ledger entry, oldest first.
    pub ledger: Vec<EntryData>,
    pub apple_devices: Vec<DeviceData>,
    pub google_wallet: GoogleData,
    /// What staff did about this customer, oldest first (filled by the console, which owns
    /// the audit log's actions).
    pub audit: Vec<AuditData>,
}

#[derive(Debug, Serialize)]
pub struct AuditData {
    pub at: DateTime<Utc>,
    pub staff_email: String,
    pub action: String,
    pub details: serde_json::Value,
}

impl From<crate::domain::AuditEntry> for AuditData {
    fn from(e: crate::domain::AuditEntry) -> Self {
        Self { at: e.at, staff_email: e.staff_email, action: e.action, details: e.details }
    }
}

#[derive(Debug, Serialize)]
pub struct CustomerData {
    pub first_name: String,
    pub last_name: Option<String>,
    pub phone: String,
    pub email: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub locale: String,
    pub consent_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct CardData {
    pub serial_number: String,
    pub program_id: String,
    pub card_number: String,
    pub barcode: String,
    pub referral_code: String,
    pub referred_by: Option<String>,
    pub status: String,
    pub balance: i64,
    pub lifetime_earned: i64,
    pub tier: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct EntryData {
    pub id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub points: i64,
    pub purchase_amount: Option<i64>,
    pub balance_after: i64,
    pub tier_after: String,
    pub order_id: Option<String>,
    pub description: Option<String>,
    pub source: String,
    pub actor: Option<String>,
    pub reverses: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<LedgerEntry> for EntryData {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id,
            seq: e.seq,
            kind: e.kind.as_str().to_owned(),
            points: e.points,
            purchase_amount: e.purchase_amount,
            balance_after: e.balance_after,
            tier_after: e.tier_after,
            order_id: e.order_id,
            description: e.description,
            source: e.source.as_str().to_owned(),
            actor: e.actor,
            reverses: e.reverses,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeviceData {
    pub device_library_id: String,
    pub pass_type_id: String,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct GoogleData {
    /// The card version last sent to Google (0: never).
    pub synced_version: i64,
    pub synced_balance: Option<i64>,
    pub notified_at: Vec<DateTime<Utc>>,
}

/// Everything stored about the holder of `card`, read now.
pub async fn export(store: &dyn Store, card: &Card, now: DateTime<Utc>) -> StoreResult<CustomerExport> {
    let mut ledger = Vec::new();
    let mut before = None;
    loop {
        let page = store.card_entries(&card.serial, before, 500).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        let done = page.len() < 500;
        ledger.extend(page.into_iter().map(EntryData::from));
        if done {
            break;
        }
    }
    ledger.reverse();
    let apple_devices = store
        .card_registrations(&card.serial)
        .await?
        .into_iter()
        .map(|r| DeviceData {
            device_library_id: r.device_library_id.as_str().to_owned(),
            pass_type_id: r.pass_type_id.as_str().to_owned(),
            registered_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    let google = store.google_sync(&card.serial).await?;
    Ok(CustomerExport {
        exported_at: now,
        customer: card.holder.as_ref().map(|h| CustomerData {
            first_name: h.first_name.to_string(),
            last_name: h.last_name.as_ref().map(ToString::to_string),
            phone: h.phone.as_str().to_owned(),
            email: h.email.as_ref().map(|e| e.as_str().to_owned()),
            birthday: h.birthday,
            locale: h.locale.code().to_owned(),
            consent_at: h.consent_at,
        }),
        card: CardData {
            serial_number: card.serial.as_str().to_owned(),
            program_id: card.program_id.clone(),
            card_number: card.card_number.as_str().to_owned(),
            barcode: card.barcode.as_str().to_owned(),
            referral_code: card.referral_code.as_str().to_owned(),
            referred_by: card.referred_by.as_ref().map(|s| s.as_str().to_owned()),
            status: card.status.as_str().to_owned(),
            balance: card.balance,
            lifetime_earned: card.lifetime_earned,
            tier: card.tier.clone(),
            version: card.version,
            created_at: card.created_at,
            updated_at: card.updated_at,
        },
        ledger,
        apple_devices,
        google_wallet: GoogleData {
            synced_version: google.version,
            synced_balance: google.balance,
            notified_at: google.notified_at,
        },
        audit: Vec::new(),
    })
}
