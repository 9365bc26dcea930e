//! Wallet changes in the storage interface (`WalletEventStore`), on every backend: a change is
//! recorded once per id, counted per day, wallet and change within one program's date range,
//! listed per card newest first, and Google changes set the card's Google state unless a later
//! one is stored.

use chrono::{DateTime, Duration, TimeZone, Utc};
use loy::domain::SerialNumber;
use loy::store::{GoogleWalletState, Wallet, WalletChange, WalletEvent, WalletSource, WalletTotals};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::test_store;

on_both_stores!(
    a_change_is_recorded_once_per_id,
    changes_are_counted_per_wallet_and_change_within_the_span_and_program,
    google_changes_set_the_cards_state_unless_a_later_one_is_stored,
);

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 30, 0).unwrap()
}

fn change(
    id: &str,
    serial: &SerialNumber,
    program: &str,
    wallet: Wallet,
    change: WalletChange,
    at: DateTime<Utc>,
) -> WalletEvent {
    WalletEvent {
        id: id.to_owned(),
        serial: serial.clone(),
        program_id: program.to_owned(),
        wallet,
        change,
        at,
        source: if wallet == Wallet::Apple { WalletSource::PassKit } else { WalletSource::Callback },
    }
}

async fn a_change_is_recorded_once_per_id(kind: StoreKind) {
    let t = test_store(kind).await;
    let serial = SerialNumber::generate();
    let first = change("google:n1", &serial, "default", Wallet::Google, WalletChange::Installed, at(2, 10));
    assert!(t.store.record_wallet_event(&first).await.unwrap());
    let replay = WalletEvent { at: at(2, 11), ..first.clone() };
    assert!(!t.store.record_wallet_event(&replay).await.unwrap(), "the same id is the same change");
    let removal = change("google:n2", &serial, "default", Wallet::Google, WalletChange::Removed, at(3, 9));
    assert!(t.store.record_wallet_event(&removal).await.unwrap());

    let listed = t.store.card_wallet_events(&serial, 10).await.unwrap();
    assert_eq!(listed, vec![removal.clone(), first], "newest first, the replay not stored");
    assert_eq!(t.store.card_wallet_events(&serial, 1).await.unwrap(), vec![removal]);
    assert!(t.store.card_wallet_events(&SerialNumber::generate(), 10).await.unwrap().is_empty());
}

async fn changes_are_counted_per_wallet_and_change_within_the_span_and_program(kind: StoreKind) {
    let t = test_store(kind).await;
    let (a, b) = (SerialNumber::generate(), SerialNumber::generate());
    let events = [
        ("e1", &a, "default", Wallet::Apple, WalletChange::Installed, at(1, 23)),
        ("e2", &a, "default", Wallet::Apple, WalletChange::Installed, at(2, 0)),
        ("e3", &b, "default", Wallet::Apple, WalletChange::Installed, at(2, 12)),
        ("e4", &b, "default", Wallet::Google, WalletChange::Installed, at(2, 13)),
        ("e5", &a, "default", Wallet::Apple, WalletChange::Removed, at(2, 14)),
        ("e6", &b, "default", Wallet::Google, WalletChange::Removed, at(4, 8)),
        ("e7", &b, "bakery", Wallet::Google, WalletChange::Installed, at(2, 8)),
        ("e8", &a, "default", Wallet::Apple, WalletChange::Installed, at(5, 0)),
    ];
    for (id, serial, program, wallet, what, when) in events {
        assert!(t.store.record_wallet_event(&change(id, serial, program, wallet, what, when)).await.unwrap());
    }

    // From day 2 to day 5, each at 00:30: the start is inside, the end outside.
    let counts = t.store.wallet_totals("default", at(2, 0), at(5, 0)).await.unwrap();
    assert_eq!(
        counts,
        WalletTotals { apple_installed: 2, apple_removed: 1, google_installed: 1, google_removed: 1 },
        "days 1 and 5 and the other program are outside"
    );
    let one_day = t.store.wallet_totals("bakery", at(2, 0), at(3, 0)).await.unwrap();
    assert_eq!(one_day, WalletTotals { google_installed: 1, ..WalletTotals::default() });
    let (evening, morning) = (at(1, 23), at(2, 12) + Duration::milliseconds(1));
    let span = t.store.wallet_totals("default", evening, morning).await.unwrap();
    assert_eq!(span, WalletTotals { apple_installed: 3, ..WalletTotals::default() }, "any span, not only days");
    assert_eq!(t.store.wallet_totals("default", at(6, 0), at(30, 0)).await.unwrap(), WalletTotals::default());
}

async fn google_changes_set_the_cards_state_unless_a_later_one_is_stored(kind: StoreKind) {
    let t = test_store(kind).await;
    let serial = SerialNumber::generate();
    assert_eq!(t.store.google_wallet_state(&serial).await.unwrap(), None);

    let apple = change("apple:d:s:1:installed", &serial, "default", Wallet::Apple, WalletChange::Installed, at(1, 9));
    t.store.record_wallet_event(&apple).await.unwrap();
    assert_eq!(t.store.google_wallet_state(&serial).await.unwrap(), None, "Apple changes are not Google's state");

    let saved = change("google:s", &serial, "default", Wallet::Google, WalletChange::Installed, at(2, 9));
    t.store.record_wallet_event(&saved).await.unwrap();
    assert_eq!(
        t.store.google_wallet_state(&serial).await.unwrap(),
        Some(GoogleWalletState { saved: true, at: at(2, 9) })
    );

    let removed = change("google:r", &serial, "default", Wallet::Google, WalletChange::Removed, at(3, 9));
    t.store.record_wallet_event(&removed).await.unwrap();
    let late = change(
        "google:late",
        &serial,
        "default",
        Wallet::Google,
        WalletChange::Installed,
        at(3, 9) - Duration::hours(1),
    );
    assert!(t.store.record_wallet_event(&late).await.unwrap(), "the change itself is recorded");
    assert_eq!(
        t.store.google_wallet_state(&serial).await.unwrap(),
        Some(GoogleWalletState { saved: false, at: at(3, 9) }),
        "a change older than the stored state does not replace it"
    );
}
