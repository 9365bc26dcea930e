//! The things loy is about, as types that can only hold valid values.

pub mod access;
pub mod amount;
pub mod card;
pub mod card_number;
pub mod design;
pub mod email;
pub mod ledger;
pub mod locale;
pub mod person;
pub mod phone;
pub mod program;
pub mod registration;
pub mod staff;
pub mod stamps;
pub mod text;
pub mod time_zone;
pub mod tokens;

pub use access::{ApiKey, PresentedKey, Scope, WebhookSource};
pub use amount::{AmountError, format_amount, parse_amount};
pub use card::{Card, CardNews, CardStatus, Customer, LastEntry};
pub use card_number::{CardNumber, CardNumberError};
pub use design::{DesignVersion, FieldLabels, ImageSlot, LocalizedText};
pub use email::{Email, EmailError};
pub use ledger::{EntryKind, EntrySource, LedgerEntry};
pub use locale::Locale;
pub use person::{PersonName, PersonNameError};
pub use phone::{Phone, PhoneError, PhoneRegion};
pub use program::{
    Currency, DEFAULT_PROGRAM_ID, Program, ProgramDesign, ProgramRules, RuleError, RuleProblem, TierRule,
};
pub use registration::{DeviceLibraryId, PassTypeId, PushToken, RegisterOutcome, Registration};
pub use staff::{AuditEntry, AuditFilter, Role, StaffAccount, StaffSessionRecord};
pub use stamps::{Mechanic, StampIcon, StampRules};
pub use text::TextError;
pub use time_zone::{TimeZone, UnknownTimeZone};
pub use tokens::{AuthToken, BarcodeValue, CardKey, ReferralCode, SerialNumber, TokenError};
