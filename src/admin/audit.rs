//! The audit log: [`record`] is how every console screen writes to it, and `/admin/audit` shows
//! it (owners and managers), newest first, filtered by person, action and dates.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::session::{Manager, StaffSession};
use crate::domain::{AuditEntry, AuditFilter};
use crate::state::AppState;

/// The actions of the screens in this crate; later screens add their own names (`earn`,
/// `redeem`, `refund`, `adjust`, `block`, `unblock`, `customer_deleted`, `customer_exported`, …).
pub mod actions {
    pub const LOGIN: &str = "login";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOGOUT: &str = "logout";
    pub const STAFF_ADDED: &str = "staff_added";
    pub const STAFF_DISABLED: &str = "staff_disabled";
    pub const STAFF_ENABLED: &str = "staff_enabled";
    pub const STAFF_ROLE_CHANGED: &str = "staff_role_changed";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const TOTP_ENABLED: &str = "totp_enabled";
    pub const TOTP_DISABLED: &str = "totp_disabled";
    pub const RECOVERY_CODE_USED: &str = "recovery_code_used";
    pub const KEY_CREATED: &str = "key_created";
    pub const KEY_REVOKED: &str = "key_revoked";
    pub const WEBHOOK_SOURCE_CREATED: &str = "webhook_source_created";
    pub const WEBHOOK_SOURCE_REVOKED: &str = "webhook_source_revoked";
    pub const MAIL_RETRIED: &str = "mail_retried";
    pub const CARD_LINK_MAILED: &str = "card_link_mailed";
    pub const WEBHOOK_ENDPOINT_ADDED: &str = "webhook_endpoint_added";
    pub const WEBHOOK_ENDPOINT_REMOVED: &str = "webhook_endpoint_removed";
    pub const WEBHOOK_REPLAYED: &str = "webhook_replayed";
    pub const IMPORT_UPLOADED: &str = "data.import_uploaded";
    pub const IMPORT_STARTED: &str = "data.import_started";
    pub const IMPORT_LINKS_SENT: &str = "data.import_links_sent";
    pub const DESIGN_DRAFT_SAVED: &str = "design.draft_saved";
    pub const DESIGN_IMAGE_UPLOADED: &str = "design.image_uploaded";
    pub const DESIGN_IMAGE_REMOVED: &str = "design.image_removed";
    pub const DESIGN_PUBLISHED: &str = "design.published";
    pub const DESIGN_RESTORED: &str = "design.restored";
    pub const PROGRAM_CREATED: &str = "program.created";
    pub const PROGRAM_UPDATED: &str = "program.updated";
    pub const PROGRAM_ARCHIVED: &str = "program.archived";
    pub const PROGRAM_UNARCHIVED: &str = "program.unarchived";
    pub const PROGRAM_RULES_CHANGED: &str = "program.rules_changed";
    pub const MESSAGE_SENT: &str = "message.sent";
    pub const MESSAGE_CANCELLED: &str = "message.cancelled";
    pub const AUTO_MESSAGES_CHANGED: &str = "message.automatic_changed";
    pub const SEGMENTS_REQUESTED: &str = "segments.compute_requested";

    /// Every action the filter offers (the log may hold others).
    pub const KNOWN: &[&str] = &[
        LOGIN,
        LOGIN_FAILED,
        LOGOUT,
        STAFF_ADDED,
        STAFF_DISABLED,
        STAFF_ENABLED,
        STAFF_ROLE_CHANGED,
        PASSWORD_RESET,
        TOTP_ENABLED,
        TOTP_DISABLED,
        RECOVERY_CODE_USED,
        KEY_CREATED,
        KEY_REVOKED,
        WEBHOOK_SOURCE_CREATED,
        WEBHOOK_SOURCE_REVOKED,
        MAIL_RETRIED,
        CARD_LINK_MAILED,
        WEBHOOK_ENDPOINT_ADDED,
        WEBHOOK_ENDPOINT_REMOVED,
        WEBHOOK_REPLAYED,
        IMPORT_UPLOADED,
        IMPORT_STARTED,
        IMPORT_LINKS_SENT,
        DESIGN_DRAFT_SAVED,
        DESIGN_IMAGE_UPLOADED,
        DESIGN_IMAGE_REMOVED,
        DESIGN_PUBLISHED,
        DESIGN_RESTORED,
        PROGRAM_CREATED,
        PROGRAM_UPDATED,
        PROGRAM_ARCHIVED,
        PROGRAM_UNARCHIVED,
        PROGRAM_RULES_CHANGED,
        MESSAGE_SENT,
        MESSAGE_CANCELLED,
        AUTO_MESSAGES_CHANGED,
        SEGMENTS_REQUESTED,
        "earn",
        "redeem",
        "refund",
        "adjust",
        "stamp",
        "redeem_reward",
        "block",
        "unblock",
        "customer_deleted",
        "customer_exported",
    ];
}

/// Who did something, from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub staff_id: Option<String>,
    pub email: String,
    pub address: String,
}

/// Anything that can say who acts: a [`StaffSession`] or an [`Actor`].
pub trait Acting {
    fn actor(&self) -> Actor;
}

impl Acting for Actor {
    fn actor(&self) -> Actor {
        self.clone()
    }
}

impl<R: super::session::RoleRequirement> Acting for StaffSession<R> {
    fn actor(&self) -> Actor {
        Actor { staff_id: Some(self.staff.id.clone()), email: self.staff.email.clone(), address: self.address.clone() }
    }
}

/// Appends an entry to the audit log: `who` did `action` to `target`, with `details` (the
/// values before and after that matter). The action has already happened, so a store failure
/// here is logged as an error rather than undoing or failing the request.
pub async fn record(
    state: &AppState,
    who: &impl Acting,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
) {
    record_in(state.store.as_ref(), state.clock.as_ref(), who, action, target, details).await;
}

/// [`record`] with a store and clock of one's own (the command line).
pub async fn record_in(
    store: &dyn crate::store::Store,
    clock: &dyn crate::clock::Clock,
    who: &impl Acting,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
) {
    let actor = who.actor();
    let entry = AuditEntry {
        id: AuditEntry::new_id(),
        at: clock.now(),
        staff_id: actor.staff_id,
        staff_email: actor.email,
        address: actor.address,
        action: action.to_owned(),
        target: target.map(str::to_owned),
        details,
    };
    if let Err(e) = store.insert_audit(&entry).await {
        tracing::error!(error = %crate::telemetry::error_chain(&e), action, "writing the audit log failed");
    }
}

/// Entries per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    staff: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    to: String,
    /// The cursor: `<millis>_<id>` of the last entry shown.
    #[serde(default)]
    before: String,
}

#[derive(Serialize)]
struct Row {
    at: String,
    staff_email: String,
    address: String,
    action: String,
    target: String,
    details: String,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct AuditPage {
    rows: Vec<Row>,
    people: Vec<Choice>,
    actions: Vec<Choice>,
    from: String,
    to: String,
    next: Option<String>,
}

fn day(s: &str) -> Option<DateTime<Utc>> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// `GET /admin/audit`: managers and owners.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AdminError> {
    let q = query.into_inner();
    let before = q.before.split_once('_').and_then(|(ms, id)| {
        let at = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
        Some((at, format!("aud_{}", id.strip_prefix("aud_").unwrap_or(id))))
    });
    let filter = AuditFilter {
        staff_id: Some(q.staff.clone()).filter(|s| !s.is_empty()),
        action: Some(q.action.clone()).filter(|s| !s.is_empty()),
        from: day(&q.from),
        until: day(&q.to).map(|d| d + chrono::Duration::days(1)),
        before,
    };
    let entries = state.store.audit_entries(&filter, PAGE + 1).await?;
    let more = entries.len() > PAGE;
    let shown = &entries[..entries.len().min(PAGE)];
    let next = match (more, shown.last()) {
        (true, Some(last)) => {
            let cursor = format!("{}_{}", last.at.timestamp_millis(), last.id);
            let query = serde_urlencoded::to_string([
                ("staff", q.staff.as_str()),
                ("action", q.action.as_str()),
                ("from", q.from.as_str()),
                ("to", q.to.as_str()),
                ("before", cursor.as_str()),
            ])
            .unwrap_or_default();
            Some(format!("/admin/audit?{query}"))
        }
        _ => None,
    };
    let rows = shown
        .iter()
        .map(|e| Row {
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            staff_email: e.staff_email.clone(),
            address: e.address.clone(),
            action: e.action.clone(),
            target: e.target.clone().unwrap_or_default(),
            details: if e.details.is_null() { String::new() } else { e.details.to_string() },
        })
        .collect();
    let people = state
        .store
        .staff_list()
        .await?
        .into_iter()
        .map(|s| Choice { selected: s.id == q.staff, value: s.id, label: s.email })
        .collect();
    let actions = actions::KNOWN
        .iter()
        .map(|a| Choice { value: (*a).to_owned(), label: (*a).to_owned(), selected: *a == q.action })
        .collect();
    Ok(session.page(&req, "audit.html", AuditPage { rows, people, actions, from: q.from, to: q.to, next }))
}
