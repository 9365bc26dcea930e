//! `/admin/audit`: filters by person, action and date, newest first, a page at a time.

use loy::domain::{AuditEntry, Role};
use serde_json::json;

use crate::helpers::{StoreKind, spawn_app};
use crate::on_both_stores;

on_both_stores!(the_audit_log_filters_by_person_action_and_date_and_pages_newest_first,);

async fn the_audit_log_filters_by_person_action_and_date_and_pages_newest_first(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let manager = app.signed_in(Role::Manager).await;
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z").unwrap().to_utc();
    for i in 0..120 {
        let entry = AuditEntry {
            id: AuditEntry::new_id(),
            at: base + chrono::Duration::hours(i),
            staff_id: Some(manager.id.clone()),
            staff_email: manager.email.clone(),
            address: "10.0.0.1".into(),
            action: if i % 2 == 0 { "earn".into() } else { "adjust".into() },
            target: Some(format!("card-{i:03}")),
            details: json!({ "before": { "balance": i }, "after": { "balance": i + 1 } }),
        };
        app.store.insert_audit(&entry).await.unwrap();
    }

    let first = owner.get(&format!("/admin/audit?staff={}&action=earn", manager.id)).await;

    assert_eq!(first.status, 200);
    let targets = |body: &str| -> Vec<String> {
        body.split("class=\"audit-row\"")
            .skip(1)
            .map(|row| {
                let at = row.find("card-").unwrap();
                row[at..at + 8].to_owned()
            })
            .collect()
    };
    let page_one = targets(&first.body);
    assert_eq!(page_one.len(), 50);
    assert_eq!(page_one[0], "card-118", "newest first");
    assert!(page_one.iter().all(|t| t[5..].parse::<u32>().unwrap() % 2 == 0), "only earn");
    let next = first.body.split(r#"<a rel="next" href=""#).nth(1).unwrap();
    let next = next[..next.find('"').unwrap()].to_owned();
    let second = owner.get(&next).await;
    let page_two = targets(&second.body);
    assert_eq!(page_two.len(), 10);
    assert_eq!(page_two[0], "card-018");
    assert!(!second.body.contains(r#"rel="next""#), "the last page");

    let by_date = owner.get("/admin/audit?action=adjust&from=2026-01-11&to=2026-01-11").await;
    let day = targets(&by_date.body);
    assert_eq!(day.len(), 12, "one day of hourly adjusts: {day:?}");
    assert_eq!(day[0], "card-035");
    assert_eq!(day[11], "card-013");

    let logins = owner.get(&format!("/admin/audit?staff={}", owner.id)).await;
    assert!(logins.body.contains(r#"data-action="login""#));
    assert!(!logins.body.contains("card-"), "another person's entries are filtered out");
    assert!(first.body.contains(r#""balance":118"#) && first.body.contains(r#""balance":119"#), "details are shown");
}
