//! Flat records of plain values, shared by both backends: the MongoDB documents are these
//! structs serialised, the SQLite rows have these columns. Reading one back parses every field
//! into its domain type again, so a corrupt row surfaces as [`StoreError::Corrupt`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{
    ApiKey, AuthToken, BarcodeValue, Card, CardKey, CardNumber, CardStatus, Customer, DeviceLibraryId, Email,
    EntryKind, EntrySource, LastEntry, LedgerEntry, Locale, PassTypeId, PersonName, Phone, PushToken, ReferralCode,
    Registration, Scope, SerialNumber, WebhookSource,
};

pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("timestamp", &ms.to_string()))
}

fn corrupt(field: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{field} has an invalid value `{value}`"))
}

fn parsed<T, E>(field: &str, value: &str, r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|_| corrupt(field, value))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardRecord {
    #[serde(rename = "_id")]
    pub serial: String,
    pub program_id: String,
    pub card_number: String,
    pub barcode: String,
    pub card_key: String,
    pub auth_token: String,
    pub referral_code: String,
    pub referred_by: Option<String>,
    pub first_name: String,
    pub last_name: Option<String>,
    pub phone: String,
    pub email: Option<String>,
    pub birthday: Option<String>,
    pub locale: String,
    pub consent_at: i64,
    pub status: String,
    pub balance: i64,
    pub lifetime_earned: i64,
    /// Stamps programs' waiting rewards (absent from cards stored before stamps existed).
    #[serde(default)]
    pub rewards: i64,
    /// [`Card::news`] as JSON (absent from cards stored before messages existed).
    #[serde(default)]
    pub news: Option<String>,
    pub tier: String,
    pub version: i64,
    pub pushed_version: i64,
    pub push_pending_since: Option<i64>,
    pub modified_at: i64,
    pub last_entry_kind: Option<String>,
    pub last_entry_points: Option<i64>,
    pub last_entry_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Derived for the staff search, never read back: the lowercased "first last" name and
    /// "last first" name (prefix search on either), and the time of the last ledger entry (or
    /// of registration) for sorting by last activity. See `store::customers`.
    #[serde(default)]
    pub name_key: Option<String>,
    #[serde(default)]
    pub surname_key: Option<String>,
    #[serde(default)]
    pub activity_at: i64,
}

/// The phone column of a deleted customer's card: unique per card (the column is unique per
/// program), not a phone number, and so never found by a phone search; the real number is free
/// for a new registration.
pub fn deleted_phone(serial: &str) -> String {
    format!("deleted:{serial}")
}

/// The lowercased name keys of a holder, for prefix search (see [`CardRecord::name_key`]).
pub fn name_keys(first: &str, last: Option<&str>) -> (String, Option<String>) {
    let first = first.to_lowercase();
    match last {
        Some(last) => {
            let last = last.to_lowercase();
            (format!("{first} {last}"), Some(format!("{last} {first}")))
        }
        None => (first, None),
    }
}

impl From<&Card> for CardRecord {
    fn from(c: &Card) -> Self {
        let h = c.holder.as_ref();
        let (name_key, surname_key) = match &c.holder {
            Some(h) => {
                let (name, surname) = name_keys(h.first_name.as_str(), h.last_name.as_ref().map(PersonName::as_str));
                (Some(name), surname)
            }
            None => (None, None),
        };
        Self {
            name_key,
            surname_key,
            activity_at: millis(c.last_entry.as_ref().map_or(c.created_at, |e| e.at)),
            serial: c.serial.as_str().to_owned(),
            program_id: c.program_id.clone(),
            card_number: c.card_number.as_str().to_owned(),
            barcode: c.barcode.as_str().to_owned(),
            card_key: c.card_key.expose().to_owned(),
            auth_token: c.auth_token.expose().to_owned(),
            referral_code: c.referral_code.as_str().to_owned(),
            referred_by: c.referred_by.as_ref().map(|s| s.as_str().to_owned()),
            // A deleted customer leaves empty or anonymous columns behind (the schema keeps them
            // NOT NULL): nothing personal stays in the store.
            first_name: h.map(|h| h.first_name.as_str().to_owned()).unwrap_or_default(),
            last_name: h.and_then(|h| h.last_name.as_ref()).map(|n| n.as_str().to_owned()),
            phone: h.map_or_else(|| deleted_phone(c.serial.as_str()), |h| h.phone.as_str().to_owned()),
            email: h.and_then(|h| h.email.as_ref()).map(|e| e.as_str().to_owned()),
            birthday: h.and_then(|h| h.birthday).map(|d| d.format("%Y-%m-%d").to_string()),
            locale: c.locale().code().to_owned(),
            consent_at: h.map_or(0, |h| millis(h.consent_at)),
            status: c.status.as_str().to_owned(),
            balance: c.balance,
            lifetime_earned: c.lifetime_earned,
            rewards: c.rewards,
            news: c.news.as_ref().map(|n| serde_json::to_string(n).unwrap_or_default()),
            tier: c.tier.clone(),
            version: c.version,
            pushed_version: c.pushed_version,
            push_pending_since: c.push_pending_since.map(millis),
            modified_at: millis(c.modified_at),
            last_entry_kind: c.last_entry.as_ref().map(|e| e.kind.as_str().to_owned()),
            last_entry_points: c.last_entry.as_ref().map(|e| e.points),
            last_entry_at: c.last_entry.as_ref().map(|e| millis(e.at)),
            created_at: millis(c.created_at),
            updated_at: millis(c.updated_at),
        }
    }
}

impl TryFrom<CardRecord> for Card {
    type Error = StoreError;

    fn try_from(r: CardRecord) -> Result<Self, StoreError> {
        let opt_name = |v: &Option<String>| -> Result<Option<PersonName>, StoreError> {
            v.as_deref().map(|s| parsed("last_name", s, PersonName::parse(s))).transpose()
        };
        let last_entry = match (&r.last_entry_kind, r.last_entry_points, r.last_entry_at) {
            (Some(kind), Some(points), Some(at)) => Some(LastEntry {
                kind: EntryKind::parse(kind).ok_or_else(|| corrupt("last_entry_kind", kind))?,
                points,
                at: from_millis(at)?,
            }),
            _ => None,
        };
        let news = r.news.as_deref().map(|s| parsed("news", s, serde_json::from_str(s))).transpose()?;
        Ok(Card {
            serial: parsed("serial", &r.serial, SerialNumber::parse(&r.serial))?,
            program_id: r.program_id,
            card_number: parsed("card_number", &r.card_number, CardNumber::parse(&r.card_number))?,
            barcode: parsed("barcode", &r.barcode, BarcodeValue::parse(&r.barcode))?,
            card_key: parsed("card_key", "…", CardKey::parse(&r.card_key))?,
            auth_token: parsed("auth_token", "…", AuthToken::parse(&r.auth_token))?,
            referral_code: parsed("referral_code", &r.referral_code, ReferralCode::parse(&r.referral_code))?,
            referred_by: r
                .referred_by
                .as_deref()
                .map(|s| parsed("referred_by", s, SerialNumber::parse(s)))
                .transpose()?,
            holder: if r.status == CardStatus::Deleted.as_str() {
                None
            } else {
                Some(Customer {
                    first_name: parsed("first_name", &r.first_name, PersonName::parse(&r.first_name))?,
                    last_name: opt_name(&r.last_name)?,
                    phone: parsed("phone", &r.phone, Phone::from_stored(&r.phone))?,
                    email: r.email.as_deref().map(|s| parsed("email", s, Email::parse(s))).transpose()?,
                    birthday: r
                        .birthday
                        .as_deref()
                        .map(|s| parsed("birthday", s, NaiveDate::parse_from_str(s, "%Y-%m-%d")))
                        .transpose()?,
                    locale: Locale::parse(&r.locale).ok_or_else(|| corrupt("locale", &r.locale))?,
                    consent_at: from_millis(r.consent_at)?,
                })
            },
            status: CardStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            balance: r.balance,
            lifetime_earned: r.lifetime_earned,
            rewards: r.rewards,
            tier: r.tier,
            version: r.version,
            pushed_version: r.pushed_version,
            push_pending_since: r.push_pending_since.map(from_millis).transpose()?,
            modified_at: from_millis(r.modified_at)?,
            last_entry,
            news,
            created_at: from_millis(r.created_at)?,
            updated_at: from_millis(r.updated_at)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub serial: String,
    pub program_id: String,
    pub seq: i64,
    pub kind: String,
    pub points: i64,
    /// See [`LedgerEntry::rewards`] (absent from entries stored before stamps existed).
    #[serde(default)]
    pub rewards: i64,
    #[serde(default)]
    pub rewards_after: i64,
    pub purchase_amount: Option<i64>,
    pub balance_after: i64,
    pub lifetime_after: i64,
    pub tier_after: String,
    pub order_id: Option<String>,
    pub description: Option<String>,
    pub source: String,
    pub actor: Option<String>,
    pub idempotency_key: Option<String>,
    pub reverses: Option<String>,
    pub created_at: i64,
}

impl From<&LedgerEntry> for EntryRecord {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            id: e.id.clone(),
            serial: e.serial.as_str().to_owned(),
            program_id: e.program_id.clone(),
            seq: e.seq,
            kind: e.kind.as_str().to_owned(),
            points: e.points,
            rewards: e.rewards,
            rewards_after: e.rewards_after,
            purchase_amount: e.purchase_amount,
            balance_after: e.balance_after,
            lifetime_after: e.lifetime_after,
            tier_after: e.tier_after.clone(),
            order_id: e.order_id.clone(),
            description: e.description.clone(),
            source: e.source.as_str().to_owned(),
            actor: e.actor.clone(),
            idempotency_key: e.idempotency_key.clone(),
            reverses: e.reverses.clone(),
            created_at: millis(e.created_at),
        }
    }
}

impl TryFrom<EntryRecord> for LedgerEntry {
    type Error = StoreError;

    fn try_from(r: EntryRecord) -> Result<Self, StoreError> {
        Ok(LedgerEntry {
            serial: parsed("serial", &r.serial, SerialNumber::parse(&r.serial))?,
            kind: EntryKind::parse(&r.kind).ok_or_else(|| corrupt("kind", &r.kind))?,
            source: EntrySource::parse(&r.source).ok_or_else(|| corrupt("source", &r.source))?,
            created_at: from_millis(r.created_at)?,
            id: r.id,
            program_id: r.program_id,
            seq: r.seq,
            points: r.points,
            rewards: r.rewards,
            rewards_after: r.rewards_after,
            purchase_amount: r.purchase_amount,
            balance_after: r.balance_after,
            lifetime_after: r.lifetime_after,
            tier_after: r.tier_after,
            order_id: r.order_id,
            description: r.description,
            actor: r.actor,
            idempotency_key: r.idempotency_key,
            reverses: r.reverses,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationRecord {
    pub device_library_id: String,
    pub pass_type_id: String,
    pub serial: String,
    pub push_token: String,
    pub pushed_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Registration> for RegistrationRecord {
    fn from(r: &Registration) -> Self {
        Self {
            device_library_id: r.device_library_id.as_str().to_owned(),
            pass_type_id: r.pass_type_id.as_str().to_owned(),
            serial: r.serial.as_str().to_owned(),
            push_token: r.push_token.expose().to_owned(),
            pushed_version: r.pushed_version,
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
        }
    }
}

impl TryFrom<RegistrationRecord> for Registration {
    type Error = StoreError;

    fn try_from(r: RegistrationRecord) -> Result<Self, StoreError> {
        Ok(Registration {
            device_library_id: parsed(
                "device_library_id",
                &r.device_library_id,
                DeviceLibraryId::parse(&r.device_library_id),
            )?,
            pass_type_id: parsed("pass_type_id", &r.pass_type_id, PassTypeId::parse(&r.pass_type_id))?,
            serial: parsed("serial", &r.serial, SerialNumber::parse(&r.serial))?,
            push_token: parsed("push_token", "…", PushToken::parse(&r.push_token))?,
            pushed_version: r.pushed_version,
            created_at: from_millis(r.created_at)?,
            updated_at: from_millis(r.updated_at)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub scope: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    #[serde(default)]
    pub last_used_at: Option<i64>,
    #[serde(default)]
    pub program_id: Option<String>,
}

impl From<&ApiKey> for ApiKeyRecord {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            scope: k.scope.as_str().to_owned(),
            secret_hash: k.secret_hash.clone(),
            created_at: millis(k.created_at),
            revoked_at: k.revoked_at.map(millis),
            last_used_at: k.last_used_at.map(millis),
            program_id: k.program_id.clone(),
        }
    }
}

impl TryFrom<ApiKeyRecord> for ApiKey {
    type Error = StoreError;

    fn try_from(r: ApiKeyRecord) -> Result<Self, StoreError> {
        Ok(ApiKey {
            scope: Scope::parse(&r.scope).ok_or_else(|| corrupt("scope", &r.scope))?,
            created_at: from_millis(r.created_at)?,
            revoked_at: r.revoked_at.map(from_millis).transpose()?,
            last_used_at: r.last_used_at.map(from_millis).transpose()?,
            id: r.id,
            name: r.name,
            secret_hash: r.secret_hash,
            program_id: r.program_id,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookSourceRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub secret: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<&WebhookSource> for WebhookSourceRecord {
    fn from(s: &WebhookSource) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            secret: s.secret.clone(),
            created_at: millis(s.created_at),
            revoked_at: s.revoked_at.map(millis),
        }
    }
}

impl TryFrom<WebhookSourceRecord> for WebhookSource {
    type Error = StoreError;

    fn try_from(r: WebhookSourceRecord) -> Result<Self, StoreError> {
        Ok(WebhookSource {
            created_at: from_millis(r.created_at)?,
            revoked_at: r.revoked_at.map(from_millis).transpose()?,
            id: r.id,
            name: r.name,
            secret: r.secret,
        })
    }
}
