//! Outgoing events in the storage interface (`WebhookStore`), on every backend: events are
//! written with the change that causes them (never without it), fanned out once into
//! deliveries, listed in order per card, and finished only by the current attempt.

use chrono::{Duration, Utc};
use loy::domain::{Card, CardStatus};
use loy::store::{DeliveryAttempt, DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::{customer, earn_write, program, test_store};

on_both_stores!(
    endpoints_round_trip_and_removing_one_removes_its_deliveries,
    a_new_card_and_each_ledger_write_record_their_events_atomically,
    a_status_change_records_its_events_only_when_it_applies,
    fanning_out_twice_stores_each_delivery_once_and_empties_the_outbox,
    deliveries_are_listed_in_order_and_finished_only_by_the_current_attempt,
    failed_deliveries_are_listed_per_endpoint_and_replayed,
    a_write_that_fails_at_any_step_has_its_events_exactly_when_it_committed,
);

fn now() -> chrono::DateTime<Utc> {
    loy::domain::card::stored_precision(Utc::now())
}

fn endpoint(id: &str, events: &[&str]) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.to_owned(),
        url: format!("https://crm.example/{id}"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret: format!("whsec_{id}"),
        enabled: true,
        created_at: now(),
    }
}

async fn events_of(t: &crate::store_conformance::TestStore, card: &Card) -> Vec<WebhookEvent> {
    t.store.events_to_fan_out(1000).await.unwrap().into_iter().filter(|e| e.serial == card.serial).collect()
}

fn kinds(events: &[WebhookEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

async fn endpoints_round_trip_and_removing_one_removes_its_deliveries(kind: StoreKind) {
    let t = test_store(kind).await;
    let mut first = endpoint("we_first", &["card.created", "balance.changed"]);
    first.created_at = now() - Duration::minutes(1);
    let second = endpoint("we_second", &[]);
    t.store.insert_webhook_endpoint(&first).await.unwrap();
    t.store.insert_webhook_endpoint(&second).await.unwrap();

    assert_eq!(t.store.webhook_endpoint("we_first").await.unwrap(), Some(first.clone()));
    assert_eq!(t.store.webhook_endpoints().await.unwrap(), vec![second.clone(), first.clone()], "newest first");
    assert!(second.wants("customer.deleted") && first.wants("card.created") && !first.wants("card.blocked"));

    let (card, welcome) = Card::enroll(&program(), customer("+79120000301"), None, now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    let event = events_of(&t, &card).await.remove(0);
    let d = WebhookDelivery::of(&event, &first, now() + Duration::days(1), now());
    t.store.fan_out_event(&event, std::slice::from_ref(&d)).await.unwrap();
    assert!(t.store.webhook_delivery(&d.id).await.unwrap().is_some());

    assert!(t.store.remove_webhook_endpoint("we_first").await.unwrap());
    assert!(!t.store.remove_webhook_endpoint("we_first").await.unwrap());
    assert!(t.store.webhook_delivery(&d.id).await.unwrap().is_none(), "its deliveries go with it");
    assert_eq!(t.store.webhook_endpoints().await.unwrap(), vec![second]);
}

async fn a_new_card_and_each_ledger_write_record_their_events_atomically(kind: StoreKind) {
    let t = test_store(kind).await;
    let (card, welcome) = Card::enroll(&program(), customer("+79120000302"), None, now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    let write = earn_write(&card, 50);
    assert!(t.store.commit_ledger(&write).await.unwrap());
    assert!(!t.store.commit_ledger(&earn_write(&card, 7)).await.unwrap(), "a stale version commits nothing");

    let events = events_of(&t, &card).await;
    assert_eq!(kinds(&events), ["card.created", "balance.changed", "balance.changed"]);
    assert!(events.windows(2).all(|w| w[0].position < w[1].position), "in order");
    let earned: serde_json::Value = serde_json::from_str(&events[2].body).unwrap();
    assert_eq!(earned["type"], "balance.changed");
    assert_eq!(earned["id"], serde_json::json!(events[2].id));
    assert_eq!(earned["data"]["entry"]["id"], serde_json::json!(write.entries[0].id));
    assert_eq!(earned["data"]["entry"]["points"], 50);

    // A card insert that fails leaves no event behind.
    let (again, entry) = Card::enroll(&program(), customer("+79120000302"), None, now());
    assert!(t.store.insert_card(&again, &entry).await.is_err(), "the phone is taken");
    assert!(events_of(&t, &again).await.is_empty());
}

async fn a_status_change_records_its_events_only_when_it_applies(kind: StoreKind) {
    let t = test_store(kind).await;
    let (card, welcome) = Card::enroll(&program(), customer("+79120000303"), None, now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    let mut blocked = card.bumped(now());
    blocked.status = CardStatus::Blocked;
    let events = loy::webhooks::events::status_change(&card, &blocked, now());

    assert!(!t.store.update_card_emitting(&blocked, card.version + 5, &events).await.unwrap());
    assert_eq!(kinds(&events_of(&t, &card).await), ["card.created", "balance.changed"], "nothing on a conflict");
    assert!(t.store.update_card_emitting(&blocked, card.version, &events).await.unwrap());
    assert_eq!(kinds(&events_of(&t, &card).await), ["card.created", "balance.changed", "card.blocked"]);
    let stored = t.store.find_card(loy::store::CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!(stored, blocked, "the card reads back as written");
}

async fn fanning_out_twice_stores_each_delivery_once_and_empties_the_outbox(kind: StoreKind) {
    let t = test_store(kind).await;
    let e = endpoint("we_one", &[]);
    let (card, welcome) = Card::enroll(&program(), customer("+79120000304"), None, now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    let events = events_of(&t, &card).await;
    let deliveries: Vec<WebhookDelivery> =
        events.iter().map(|ev| WebhookDelivery::of(ev, &e, now() + Duration::days(1), now())).collect();

    t.store.fan_out_event(&events[0], &deliveries[..1]).await.unwrap();
    // A second node fanning out the same event (it read the outbox before the first removed it).
    t.store.fan_out_event(&events[0], &deliveries[..1]).await.unwrap();
    t.store.fan_out_event(&events[1], &deliveries[1..]).await.unwrap();

    assert!(events_of(&t, &card).await.is_empty(), "the outbox is empty");
    let pending = t.store.card_pending_deliveries(&card.serial).await.unwrap();
    assert_eq!(pending, deliveries, "each once, in order");

    // A batch of several cards' events, one with no endpoint that wants it.
    let (a, a_welcome) = Card::enroll(&program(), customer("+79120000307"), None, now());
    let (b, b_welcome) = Card::enroll(&program(), customer("+79120000308"), None, now());
    t.store.insert_card(&a, &a_welcome).await.unwrap();
    t.store.insert_card(&b, &b_welcome).await.unwrap();
    let mut batch = Vec::new();
    for ev in events_of(&t, &a).await.into_iter().chain(events_of(&t, &b).await) {
        let wanted = ev.kind == "card.created";
        let ds = if wanted { vec![WebhookDelivery::of(&ev, &e, now() + Duration::days(1), now())] } else { vec![] };
        batch.push((ev, ds));
    }
    assert_eq!(batch.len(), 4);
    t.store.fan_out(&batch).await.unwrap();
    assert!(events_of(&t, &a).await.is_empty() && events_of(&t, &b).await.is_empty());
    for c in [&a, &b] {
        let kinds: Vec<String> =
            t.store.card_pending_deliveries(&c.serial).await.unwrap().into_iter().map(|d| d.kind).collect();
        assert_eq!(kinds, ["card.created"]);
    }
}

async fn deliveries_are_listed_in_order_and_finished_only_by_the_current_attempt(kind: StoreKind) {
    let t = test_store(kind).await;
    let e = endpoint("we_two", &[]);
    let (card, welcome) = Card::enroll(&program(), customer("+79120000305"), None, now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    assert!(t.store.commit_ledger(&earn_write(&card, 10)).await.unwrap());
    let t0 = now();
    let mut ds = Vec::new();
    for ev in events_of(&t, &card).await {
        let d = WebhookDelivery::of(&ev, &e, t0 + Duration::days(1), t0);
        t.store.fan_out_event(&ev, std::slice::from_ref(&d)).await.unwrap();
        ds.push(d);
    }
    assert_eq!(t.store.cards_with_due_deliveries(t0, 10).await.unwrap(), vec![card.serial.clone()]);

    let retry = DeliveryAttempt {
        state: DeliveryState::Pending,
        next_attempt_at: t0 + Duration::minutes(1),
        last_status: Some(500),
        last_error: Some("the receiver answered 500".into()),
        at: t0,
    };
    assert!(t.store.finish_delivery(&ds[0].id, 1, &retry).await.unwrap());
    assert!(!t.store.finish_delivery(&ds[0].id, 1, &retry).await.unwrap(), "attempt 1 was recorded already");
    let first = t.store.webhook_delivery(&ds[0].id).await.unwrap().unwrap();
    assert_eq!((first.attempts, first.last_status, first.next_attempt_at), (1, Some(500), t0 + Duration::minutes(1)));
    assert_eq!(first.last_error.as_deref(), Some("the receiver answered 500"));

    let done = DeliveryAttempt {
        state: DeliveryState::Delivered,
        next_attempt_at: t0,
        last_status: Some(204),
        last_error: None,
        at: t0,
    };
    for d in &ds[1..] {
        assert!(t.store.finish_delivery(&d.id, 1, &done).await.unwrap());
    }
    let pending = t.store.card_pending_deliveries(&card.serial).await.unwrap();
    assert_eq!(pending.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [ds[0].id.as_str()]);
    assert!(t.store.cards_with_due_deliveries(t0, 10).await.unwrap().is_empty(), "the pending one is not due yet");
    assert_eq!(
        t.store.cards_with_due_deliveries(t0 + Duration::minutes(2), 10).await.unwrap(),
        vec![card.serial.clone()]
    );
}

async fn failed_deliveries_are_listed_per_endpoint_and_replayed(kind: StoreKind) {
    let t = test_store(kind).await;
    let e = endpoint("we_three", &[]);
    let (card, welcome) = Card::enroll(&program(), customer("+79120000306"), None, now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    let t0 = now();
    let mut ds = Vec::new();
    for ev in events_of(&t, &card).await {
        let d = WebhookDelivery::of(&ev, &e, t0, t0);
        t.store.fan_out_event(&ev, std::slice::from_ref(&d)).await.unwrap();
        ds.push(d);
    }
    let failed = DeliveryAttempt {
        state: DeliveryState::Failed,
        next_attempt_at: t0,
        last_status: None,
        last_error: Some("no answer within the time limit".into()),
        at: t0,
    };
    assert!(t.store.finish_delivery(&ds[0].id, 1, &failed).await.unwrap());

    let listed = t.store.endpoint_deliveries("we_three", Some(DeliveryState::Failed), 10).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [ds[0].id.as_str()]);
    let all = t.store.endpoint_deliveries("we_three", None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [ds[1].id.as_str(), ds[0].id.as_str()],
        "newest first"
    );

    let later = t0 + Duration::hours(1);
    assert!(t.store.replay_delivery(&ds[0].id, later, later + Duration::days(1)).await.unwrap());
    assert!(!t.store.replay_delivery(&ds[0].id, later, later).await.unwrap(), "only a failed delivery is replayed");
    assert!(!t.store.replay_delivery(&ds[1].id, later, later).await.unwrap());
    let replayed = t.store.webhook_delivery(&ds[0].id).await.unwrap().unwrap();
    assert_eq!(
        (replayed.state, replayed.attempts, replayed.next_attempt_at, replayed.give_up_at),
        (DeliveryState::Pending, 0, later, later + Duration::days(1))
    );
}

async fn a_write_that_fails_at_any_step_has_its_events_exactly_when_it_committed(kind: StoreKind) {
    let t = test_store(kind).await;
    // Count the steps of a clean insert and a clean ledger write, then fail each one in turn.
    let (probe, probe_entry) = Card::enroll(&program(), customer("+79120000399"), None, now());
    t.faults.start_counting();
    t.store.insert_card(&probe, &probe_entry).await.unwrap();
    let insert_steps = t.faults.calls();
    t.faults.start_counting();
    assert!(t.store.commit_ledger(&earn_write(&probe, 5)).await.unwrap());
    let write_steps = t.faults.calls();

    for n in 1..=insert_steps {
        let (card, welcome) = Card::enroll(&program(), customer(&format!("+791200004{n:02}")), None, now());
        t.faults.fail_on_call(n);
        let result = t.store.insert_card(&card, &welcome).await;
        t.faults.disarm();
        let exists = t.store.find_card(loy::store::CardLookup::Serial(&card.serial)).await.unwrap().is_some();
        assert_eq!(exists, result.is_ok(), "step {n}: {result:?}");
        let expected: &[&str] = if exists { &["card.created", "balance.changed"] } else { &[] };
        assert_eq!(kinds(&events_of(&t, &card).await), expected, "insert, step {n}");
    }
    for n in 1..=write_steps {
        let (card, welcome) = Card::enroll(&program(), customer(&format!("+791200005{n:02}")), None, now());
        t.store.insert_card(&card, &welcome).await.unwrap();
        let write = earn_write(&card, 5);
        t.faults.fail_on_call(n);
        let result = t.store.commit_ledger(&write).await;
        t.faults.disarm();
        let entries = t.store.card_entries(&card.serial, None, 10).await.unwrap();
        let committed = entries.iter().any(|e| e.id == write.entries[0].id);
        assert_eq!(committed, matches!(result, Ok(true)), "step {n}: {result:?}");
        let expected: &[&str] = if committed {
            &["card.created", "balance.changed", "balance.changed"]
        } else {
            &["card.created", "balance.changed"]
        };
        assert_eq!(kinds(&events_of(&t, &card).await), expected, "ledger write, step {n}");
    }
}
