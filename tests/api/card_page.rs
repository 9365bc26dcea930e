use crate::helpers::{StoreKind, path_of, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(the_card_page_shows_the_card_and_a_qr_of_itself, unknown_or_malformed_card_keys_are_a_404_page);

async fn the_card_page_shows_the_card_and_a_qr_of_itself(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let body = app.enroll("Ivan", &unique_phone()).await;
    let path = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();

    let response = app.get(&format!("{path}?lang=en")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains("Loyalty Card"), "program name");
    assert!(html.contains(r#"data-testid="member">Ivan<"#));
    assert!(html.contains(r#"data-testid="balance">100<"#));
    assert!(html.contains(r#"data-testid="tier">Bronze<"#));
    let svg_start = html.find("<svg").expect("an inline SVG QR code");
    assert!(html[svg_start..].contains("</svg>"));
    assert!(!html.contains("<?xml"), "inline SVG carries no XML declaration");
}

async fn unknown_or_malformed_card_keys_are_a_404_page(kind: StoreKind) {
    let app = spawn_app(kind).await;
    for path in ["/c/abcdefghijkmnpqrstuvwxyz23", "/c/x", "/c/%2e%2e%2fetc", "/nowhere"] {
        let response = app.get(&format!("{path}?lang=en")).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(html.contains("not found"), "{path}");
    }
}
