//! The segment store on both backends: a computation's rows stay invisible until it is
//! finished, then replace the previous one whole; members page by keyset; stale rows go in
//! bounded batches; the computing lease; and the inputs read by card keyset with their
//! purchase and reversal entries.

use chrono::Duration;
use loy::domain::{EntryKind, SerialNumber};
use loy::segments::rfm::{Scores, Segment};
use loy::store::segments::{CardSegment, FinishedRun};
use serde_json::json;

use crate::helpers::{StoreKind, TestApp, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    a_computation_is_seen_only_once_finished_and_replaces_the_previous_one_whole,
    members_page_by_serial_and_stale_rows_go_in_bounded_batches,
    one_holder_at_a_time_takes_the_lease_until_it_ends_or_is_given_up,
    sources_come_by_card_keyset_with_their_purchases_and_reversals,
);

fn row(serial: &SerialNumber, segment: Segment, at: chrono::DateTime<chrono::Utc>) -> CardSegment {
    CardSegment {
        serial: serial.clone(),
        program_id: "default".into(),
        scores: Scores { r: 3, f: 2, m: 1 },
        segment,
        computed_at: at,
    }
}

fn finished(at: chrono::DateTime<chrono::Utc>, counts: Vec<(Segment, u64)>) -> FinishedRun {
    let cards = counts.iter().map(|(_, n)| n).sum();
    FinishedRun { program_id: "default".into(), computed_at: at, took_ms: 5, cards, counts }
}

async fn serials(app: &TestApp, n: usize) -> Vec<SerialNumber> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(app.card(&app.new_card().await).await.serial);
    }
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out
}

async fn a_computation_is_seen_only_once_finished_and_replaces_the_previous_one_whole(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cards = serials(&app, 3).await;
    let first = app.clock_now();
    assert!(app.store.segment_counts("default").await.unwrap().is_empty());

    app.store
        .save_card_segments(&cards.iter().map(|s| row(s, Segment::Loyal, first)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(app.store.card_segment(&cards[0]).await.unwrap().is_none(), "unfinished rows are not read");
    assert!(app.store.segment_members("default", Segment::Loyal, None, 10).await.unwrap().is_empty());
    app.store.finish_segment_run(&finished(first, vec![(Segment::Loyal, 3)])).await.unwrap();

    assert_eq!(app.store.segment_members("default", Segment::Loyal, None, 10).await.unwrap(), cards);
    let counts = app.store.segment_counts("default").await.unwrap();
    assert_eq!(counts.len(), 8);
    assert_eq!(counts.iter().find(|(s, _)| *s == Segment::Loyal).unwrap().1, 3);
    assert_eq!(app.store.card_segment(&cards[1]).await.unwrap(), Some(row(&cards[1], Segment::Loyal, first)));

    let second = first + Duration::seconds(1);
    app.store.save_card_segments(&[row(&cards[0], Segment::Lost, second)]).await.unwrap();
    assert_eq!(app.store.card_segment(&cards[0]).await.unwrap().unwrap().segment, Segment::Loyal, "still the first");
    app.store.finish_segment_run(&finished(second, vec![(Segment::Lost, 1)])).await.unwrap();
    assert_eq!(app.store.card_segment(&cards[0]).await.unwrap().unwrap().segment, Segment::Lost);
    assert_eq!(app.store.card_segment(&cards[1]).await.unwrap(), None, "not scored by the current computation");
    assert!(app.store.segment_members("default", Segment::Loyal, None, 10).await.unwrap().is_empty());
    let run = app.store.segment_run("default").await.unwrap().unwrap();
    assert_eq!((run.computed_at, run.cards, run.took_ms), (Some(second), 1, 5));
}

async fn members_page_by_serial_and_stale_rows_go_in_bounded_batches(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cards = serials(&app, 5).await;
    let old = app.clock_now();
    let current = old + Duration::seconds(1);
    app.store.save_card_segments(&cards.iter().map(|s| row(s, Segment::New, old)).collect::<Vec<_>>()).await.unwrap();
    app.store
        .save_card_segments(&cards.iter().map(|s| row(s, Segment::New, current)).collect::<Vec<_>>())
        .await
        .unwrap();
    app.store.finish_segment_run(&finished(current, vec![(Segment::New, 5)])).await.unwrap();

    let page1 = app.store.segment_members("default", Segment::New, None, 2).await.unwrap();
    let page2 = app.store.segment_members("default", Segment::New, Some(page1[1].as_str()), 2).await.unwrap();
    let page3 = app.store.segment_members("default", Segment::New, Some(page2[1].as_str()), 2).await.unwrap();
    assert_eq!([page1, page2, page3].concat(), cards, "every member once, in serial order");
    assert!(app.store.segment_members("default", Segment::New, Some(cards[4].as_str()), 2).await.unwrap().is_empty());

    assert_eq!(app.store.delete_stale_segments("default", current, 2).await.unwrap(), 2);
    assert_eq!(app.store.delete_stale_segments("default", current, 2).await.unwrap(), 2);
    assert_eq!(app.store.delete_stale_segments("default", current, 2).await.unwrap(), 1);
    assert_eq!(app.store.delete_stale_segments("default", current, 2).await.unwrap(), 0);
    assert_eq!(app.store.segment_members("default", Segment::New, None, 10).await.unwrap(), cards, "current rows stay");
}

async fn one_holder_at_a_time_takes_the_lease_until_it_ends_or_is_given_up(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let now = app.clock_now();
    let later = now + Duration::minutes(2);
    app.store.request_segments("default", now).await.unwrap();
    assert!(app.store.segment_run("default").await.unwrap().unwrap().requested());

    assert!(app.store.take_segment_lease("default", "a", now, later).await.unwrap());
    assert!(!app.store.take_segment_lease("default", "b", now, later).await.unwrap(), "held by a");
    assert!(app.store.take_segment_lease("default", "a", now, later + Duration::minutes(1)).await.unwrap(), "a renews");
    let run = app.store.segment_run("default").await.unwrap().unwrap();
    assert_eq!((run.lease_holder.as_deref(), run.lease_until), (Some("a"), later + Duration::minutes(1)));
    assert!(run.computing(now) && run.requested());

    let after_it_ends = later + Duration::minutes(1);
    assert!(
        app.store
            .take_segment_lease("default", "b", after_it_ends, after_it_ends + Duration::minutes(2))
            .await
            .unwrap()
    );
    app.store.release_segment_lease("default", "a").await.unwrap();
    assert_eq!(
        app.store.segment_run("default").await.unwrap().unwrap().lease_holder.as_deref(),
        Some("b"),
        "a no longer holds it"
    );
    app.store.release_segment_lease("default", "b").await.unwrap();
    assert!(app.store.take_segment_lease("default", "c", now, later).await.unwrap(), "given up: free at once");

    app.store.finish_segment_run(&finished(now + Duration::seconds(1), vec![])).await.unwrap();
    assert!(!app.store.segment_run("default").await.unwrap().unwrap().requested(), "done after the request");
}

async fn sources_come_by_card_keyset_with_their_purchases_and_reversals(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let key = app.api_key(loy::domain::Scope::Admin).await;
    let numbers = [app.new_card().await, app.new_card().await, app.new_card().await];
    let earned =
        app.pos_post(format!("/api/v1/cards/{}/earn", numbers[0]), &key, json!({ "purchase_amount": 1234 })).await;
    let tx = earned.body["transaction_id"].as_str().unwrap().to_owned();
    app.pos_post(format!("/api/v1/cards/{}/earn", numbers[0]), &key, json!({ "purchase_amount": 500 })).await;
    let refund = app.pos_post(format!("/api/v1/transactions/{tx}/reverse"), &key, json!({ "reason": "x" })).await;
    assert_eq!(refund.status, 200);
    let adjust =
        app.pos_post(format!("/api/v1/cards/{}/adjust", numbers[1]), &key, json!({ "points": 5, "reason": "x" })).await;
    assert_eq!(adjust.status, 200);

    let first = app.store.segment_sources("default", None, 2).await.unwrap();
    let rest = app.store.segment_sources("default", Some(&first[1].serial), 2).await.unwrap();
    assert_eq!((first.len(), rest.len()), (2, 1));
    let all = [first, rest].concat();
    let mut expected = Vec::new();
    for n in &numbers {
        expected.push(app.card(n).await.serial);
    }
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(all.iter().map(|s| s.serial.clone()).collect::<Vec<_>>(), expected);

    let buyer = app.card(&numbers[0]).await.serial;
    let facts = &all.iter().find(|s| s.serial == buyer).unwrap().facts;
    let mut kinds: Vec<(EntryKind, Option<i64>)> = facts.iter().map(|f| (f.kind, f.purchase_amount)).collect();
    kinds.sort_by_key(|(k, a)| (k.as_str(), *a));
    assert_eq!(kinds.len(), 3, "two purchases and the refund, no welcome entry: {facts:?}");
    assert_eq!(kinds.iter().filter(|(k, _)| *k == EntryKind::Earn).count(), 2);
    let reversal = facts.iter().find(|f| f.kind == EntryKind::Reverse).unwrap();
    assert_eq!(reversal.reverses.as_deref(), Some(tx.as_str()));
    let others: usize = all.iter().filter(|s| s.serial != buyer).map(|s| s.facts.len()).sum();
    assert_eq!(others, 0, "adjustments and welcome entries are not purchases");
}
