//! The staff console's storage operations, run against every backend.

use chrono::{Duration, TimeZone, Utc};
use loy::domain::staff::sha256_hex;
use loy::domain::{AuditEntry, AuditFilter, Role, StaffAccount, StaffSessionRecord};
use loy::store::{StoreError, UniqueKey};
use serde_json::json;

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::test_store;

on_both_stores!(
    staff_accounts_round_trip_with_unique_emails,
    staff_logins_and_recovery_codes_change_only_their_own_fields,
    sessions_are_found_by_hash_touched_and_ended,
    login_failures_are_counted_per_key_within_a_window,
    setup_tokens_are_taken_once_and_only_before_they_expire,
    audit_entries_filter_and_page_newest_first,
    api_keys_record_their_last_use,
);

fn account(email: &str, role: Role) -> StaffAccount {
    StaffAccount::new(email, role, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(), Utc::now())
}

async fn staff_accounts_round_trip_with_unique_emails(kind: StoreKind) {
    let t = test_store(kind).await;
    let mut owner = account("Owner@Shop.Example", Role::Owner);
    owner.totp_secret = Some("JBSWY3DPEHPK3PXP".into());
    owner.recovery_codes = vec![sha256_hex("a"), sha256_hex("b")];
    t.store.insert_staff(&owner).await.unwrap();
    t.store.insert_staff(&account("cashier@shop.example", Role::Cashier)).await.unwrap();

    assert_eq!(t.store.staff_by_id(&owner.id).await.unwrap().unwrap(), owner);
    assert_eq!(t.store.staff_by_email("owner@shop.example").await.unwrap().unwrap().id, owner.id);
    assert!(t.store.staff_by_email("nobody@shop.example").await.unwrap().is_none());
    let duplicate = t.store.insert_staff(&account("OWNER@shop.example", Role::Cashier)).await;
    assert!(matches!(duplicate, Err(StoreError::Duplicate(UniqueKey::Other))), "{duplicate:?}");
    let list = t.store.staff_list().await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.email.as_str()).collect::<Vec<_>>(),
        ["cashier@shop.example", "owner@shop.example"]
    );

    let mut changed = owner.clone();
    changed.role = Role::Manager;
    changed.disabled = true;
    changed.totp_secret = None;
    changed.recovery_codes.clear();
    changed.password_hash = "$argon2id$other".into();
    assert!(t.store.update_staff(&changed).await.unwrap());
    assert_eq!(t.store.staff_by_id(&owner.id).await.unwrap().unwrap(), changed);
    assert!(!t.store.update_staff(&account("ghost@shop.example", Role::Owner)).await.unwrap());
}

async fn staff_logins_and_recovery_codes_change_only_their_own_fields(kind: StoreKind) {
    let t = test_store(kind).await;
    let mut staff = account("m@shop.example", Role::Manager);
    staff.recovery_codes = vec![sha256_hex("one"), sha256_hex("two")];
    t.store.insert_staff(&staff).await.unwrap();
    let mut disabled = staff.clone();
    disabled.disabled = true;
    t.store.update_staff(&disabled).await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();

    t.store.record_staff_login(&staff.id, at).await.unwrap();
    let one = sha256_hex("one");
    let (a, b) = tokio::join!(t.store.use_recovery_code(&staff.id, &one), t.store.use_recovery_code(&staff.id, &one));

    assert!(a.unwrap() ^ b.unwrap(), "exactly one use wins");
    assert!(!t.store.use_recovery_code(&staff.id, &sha256_hex("nope")).await.unwrap());
    let stored = t.store.staff_by_id(&staff.id).await.unwrap().unwrap();
    assert_eq!(stored.last_login_at, Some(at));
    assert_eq!(stored.recovery_codes, vec![sha256_hex("two")]);
    assert!(stored.disabled, "a login does not undo a concurrent disable");
}

async fn sessions_are_found_by_hash_touched_and_ended(kind: StoreKind) {
    let t = test_store(kind).await;
    let now = Utc.with_ymd_and_hms(2026, 2, 1, 10, 0, 0).unwrap();
    let session = |hash: &str, staff: &str| StaffSessionRecord {
        id_hash: hash.into(),
        staff_id: staff.into(),
        csrf: format!("csrf-{hash}"),
        mfa_pending: hash == "h3",
        created_at: now,
        last_seen_at: now,
    };
    for (hash, staff) in [("h1", "stf_a"), ("h2", "stf_a"), ("h3", "stf_b")] {
        t.store.insert_staff_session(&session(hash, staff)).await.unwrap();
    }

    assert_eq!(t.store.staff_session("h3").await.unwrap().unwrap(), session("h3", "stf_b"));
    t.store.touch_staff_session("h1", now + Duration::minutes(5)).await.unwrap();
    assert_eq!(t.store.staff_session("h1").await.unwrap().unwrap().last_seen_at, now + Duration::minutes(5));
    t.store.delete_staff_session("h3").await.unwrap();
    assert!(t.store.staff_session("h3").await.unwrap().is_none());
    let stale = StaffSessionRecord { created_at: now - Duration::days(8), ..session("h4", "stf_a") };
    t.store.insert_staff_session(&stale).await.unwrap();
    let removed = t.store.delete_stale_staff_sessions("stf_a", now - Duration::hours(12), now - Duration::days(7));
    assert_eq!(removed.await.unwrap(), 1, "only the session past its absolute lifetime");
    assert!(t.store.staff_session("h4").await.unwrap().is_none());
    t.store.touch_staff_session("h2", now - Duration::hours(13)).await.unwrap();
    let removed = t.store.delete_stale_staff_sessions("stf_a", now - Duration::hours(12), now - Duration::days(7));
    assert_eq!(removed.await.unwrap(), 1, "and the idle one");
    assert!(t.store.staff_session("h1").await.unwrap().is_some());
    assert_eq!(t.store.delete_staff_sessions_of("stf_a").await.unwrap(), 1);
    assert!(t.store.staff_session("h1").await.unwrap().is_none());
}

async fn login_failures_are_counted_per_key_within_a_window(kind: StoreKind) {
    let t = test_store(kind).await;
    let now = Utc.with_ymd_and_hms(2026, 2, 1, 10, 0, 0).unwrap();
    for minutes in [30, 10, 5, 1] {
        let at = now - Duration::minutes(minutes);
        t.store.record_login_failure("account:a", at, at - Duration::minutes(15)).await.unwrap();
    }
    t.store.record_login_failure("address:1", now, now).await.unwrap();

    let recent = t.store.login_failures("account:a", now - Duration::minutes(15)).await.unwrap();

    assert_eq!(recent, vec![now - Duration::minutes(10), now - Duration::minutes(5), now - Duration::minutes(1)]);
    assert_eq!(t.store.login_failures("address:1", now - Duration::minutes(15)).await.unwrap().len(), 1);
    t.store.clear_login_failures("account:a").await.unwrap();
    assert!(t.store.login_failures("account:a", now - Duration::days(1)).await.unwrap().is_empty());
    assert_eq!(t.store.login_failures("address:1", now - Duration::minutes(15)).await.unwrap().len(), 1);
}

async fn setup_tokens_are_taken_once_and_only_before_they_expire(kind: StoreKind) {
    let t = test_store(kind).await;
    let now = Utc.with_ymd_and_hms(2026, 2, 1, 10, 0, 0).unwrap();
    t.store.insert_setup_token("fresh", now + Duration::hours(1)).await.unwrap();
    t.store.insert_setup_token("old", now - Duration::seconds(1)).await.unwrap();

    assert!(t.store.setup_token_valid("fresh", now).await.unwrap());
    assert!(!t.store.setup_token_valid("old", now).await.unwrap());
    assert!(!t.store.take_setup_token("old", now).await.unwrap());
    let (a, b) = tokio::join!(t.store.take_setup_token("fresh", now), t.store.take_setup_token("fresh", now));
    assert!(a.unwrap() ^ b.unwrap(), "exactly one caller takes it");
    assert!(!t.store.setup_token_valid("fresh", now).await.unwrap());
}

async fn audit_entries_filter_and_page_newest_first(kind: StoreKind) {
    let t = test_store(kind).await;
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut entries = Vec::new();
    for i in 0..10 {
        let entry = AuditEntry {
            id: format!("aud_{i:02}"),
            // Two entries share each millisecond: the id breaks the tie.
            at: base + Duration::hours(i / 2),
            staff_id: (i % 3 != 0).then(|| format!("stf_{}", i % 2)),
            staff_email: format!("{}@shop.example", i % 2),
            address: "127.0.0.1".into(),
            action: if i < 5 { "login".into() } else { "adjust".into() },
            target: Some(format!("t{i}")),
            details: json!({ "i": i, "before": { "balance": i }, "after": null }),
        };
        t.store.insert_audit(&entry).await.unwrap();
        entries.push(entry);
    }
    let ids = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();

    let all = t.store.audit_entries(&AuditFilter::default(), 100).await.unwrap();
    assert_eq!(all[0], entries[9], "every field round-trips");
    assert_eq!(ids(all), (0..10).rev().map(|i| format!("aud_{i:02}")).collect::<Vec<_>>());
    let page = t.store.audit_entries(&AuditFilter::default(), 3).await.unwrap();
    let last = page.last().unwrap();
    let next = AuditFilter { before: Some((last.at, last.id.clone())), ..Default::default() };
    assert_eq!(ids(t.store.audit_entries(&next, 3).await.unwrap()), ["aud_06", "aud_05", "aud_04"]);
    let filter = AuditFilter { staff_id: Some("stf_1".into()), action: Some("adjust".into()), ..Default::default() };
    assert_eq!(ids(t.store.audit_entries(&filter, 100).await.unwrap()), ["aud_07", "aud_05"]);
    let dated = AuditFilter {
        from: Some(base + Duration::hours(1)),
        until: Some(base + Duration::hours(3)),
        ..Default::default()
    };
    assert_eq!(ids(t.store.audit_entries(&dated, 100).await.unwrap()), ["aud_05", "aud_04", "aud_03", "aud_02"]);
}

async fn api_keys_record_their_last_use(kind: StoreKind) {
    let t = test_store(kind).await;
    let (key, _) = loy::domain::ApiKey::generate("Till", loy::domain::Scope::Pos, Utc::now());
    t.store.insert_api_key(&key).await.unwrap();
    assert!(t.store.api_key(&key.id).await.unwrap().unwrap().last_used_at.is_none());
    let at = Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).unwrap();

    t.store.touch_api_key(&key.id, at).await.unwrap();

    assert_eq!(t.store.api_key(&key.id).await.unwrap().unwrap().last_used_at, Some(at));
    assert_eq!(t.store.api_keys().await.unwrap()[0].last_used_at, Some(at));
}
