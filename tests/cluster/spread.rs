//! Phase 1: the two app nodes are interchangeable.

use std::time::Duration;

use futures_util::future::join_all;
use loy::domain::{EntryKind, Role, Scope, StaffAccount};
use serde_json::json;

use crate::Cluster;
use crate::client::random_key;

const PASSWORD: &str = "correct horse battery";

pub async fn run(c: &Cluster) {
    let pos = c.api_key(Scope::Pos).await;
    let admin = c.api_key(Scope::Admin).await;
    let [a, b] = [&c.apps[0], &c.apps[1]];

    // Registrations and earns alternate between the nodes; every write lands once.
    let cards = join_all((0..20).map(|i| c.enroll(&c.apps[i % 2], &pos))).await;
    let earns =
        join_all(
            cards.iter().enumerate().map(|(i, card)| {
                let path = format!("/api/v1/cards/{}/earn", card["card_number"].as_str().unwrap());
                let (pos, node) = (pos.clone(), &c.apps[(i + 1) % 2]);
                async move {
                    c.pos_post(node, &path, &pos, &random_key(), &json!({"purchase_amount": 100_000})).await.unwrap()
                }
            }),
        )
        .await;
    for (card, earn) in cards.iter().zip(&earns) {
        assert_eq!(earn.status, 200, "{earn:?}");
        let stored = c.card(card["card_number"].as_str().unwrap()).await;
        assert_eq!(stored.balance, 100 + earn.body["points"].as_i64().unwrap());
    }

    // Fifty redeems of 100 out of 1 000 points, half through each node: exactly ten succeed.
    let number = cards[0]["card_number"].as_str().unwrap().to_owned();
    let top_up = 1000 - c.card(&number).await.balance;
    let adjust = json!({"points": top_up, "reason": "cluster test"});
    let answer =
        c.pos_post(a, &format!("/api/v1/cards/{number}/adjust"), &admin, &random_key(), &adjust).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let path = format!("/api/v1/cards/{number}/redeem");
    let redeems = join_all((0..50).map(|i| {
        let (pos, path) = (pos.clone(), path.clone());
        async move { c.pos_post(&c.apps[i % 2], &path, &pos, &random_key(), &json!({"points": 100})).await.unwrap() }
    }))
    .await;
    let ok = redeems.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 10, "{redeems:?}");
    assert!(
        redeems.iter().filter(|r| r.status != 200).all(|r| r.body["error"]["code"] == "insufficient_points"),
        "{redeems:?}"
    );
    let card = c.card(&number).await;
    assert_eq!(card.balance, 0);
    let entries = c.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
    assert_eq!(entries.iter().filter(|e| e.kind == EntryKind::Redeem).count(), 10);

    // A card registered through A: its page and its pass through B, and Wallet's calls too.
    let card_json = &cards[0];
    let page_path = card_json["card_url"].as_str().unwrap().strip_prefix(crate::PUBLIC_URL).unwrap().to_owned();
    let page = c.http.get(b.url(&page_path)).send().await.unwrap();
    assert_eq!(page.status(), 200, "the card page through the other node");
    let pass = c.http.get(b.url(&format!("{page_path}/card.pkpass"))).send().await.unwrap();
    assert_eq!(pass.status(), 200, "the pass through the other node");
    assert_eq!(pass.headers()["content-type"], "application/vnd.apple.pkpass");
    let token = c.register_device(b, &card).await;
    let wallet = c
        .http
        .get(a.url(&format!("/passkit/v1/passes/{}/{}", crate::TOPIC, card.serial.as_str())))
        .header("authorization", format!("ApplePass {}", card.auth_token.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(wallet.status(), 200, "Wallet fetches the pass through the other node");

    // A staff session opened on A is valid on B.
    let hash = loy::admin::password::hash(PASSWORD.into()).await.unwrap();
    let staff =
        StaffAccount::new(&format!("manager-{}@shop.example", random_key()), Role::Manager, hash, chrono::Utc::now());
    c.store.insert_staff(&staff).await.unwrap();
    let session = c.staff_login(a, &staff.email, PASSWORD).await;
    let home = c.http.get(b.url("/admin")).header("cookie", format!("loy_admin={session}")).send().await.unwrap();
    assert_eq!(home.status(), 200, "the session opened on one node is valid on the other");
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_ne!(anonymous.get(b.url("/admin")).send().await.unwrap().status(), 200, "and a missing one is not");

    // A change made on B is pushed, by some worker, to the device registered through B.
    let earn = c
        .pos_post(b, &format!("/api/v1/cards/{number}/earn"), &pos, &random_key(), &json!({"purchase_amount": 50_000}))
        .await
        .unwrap();
    assert_eq!(earn.status, 200, "{earn:?}");
    assert!(
        crate::eventually(Duration::from_secs(20), || async { c.apns.deliveries.count(&token) == 1 }).await,
        "the change was pushed"
    );
    assert!(
        crate::eventually(Duration::from_secs(10), || async {
            let card = c.card(&number).await;
            card.pushed_version == card.version
        })
        .await,
        "the push was recorded"
    );
    assert!(c.apns.deliveries.malformed().is_empty(), "{:?}", c.apns.deliveries.malformed());
    assert!(!c.logs_with("card pushed").is_empty(), "a worker logged the push");
    c.assert_ledger_clean();
}
