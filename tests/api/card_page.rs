use crate::helpers::{PUBLIC_URL, StoreKind, path_of, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    the_card_page_shows_the_card_and_a_qr_of_itself,
    the_card_page_carries_the_till_code_and_the_invitation_that_fills_the_form,
    unknown_or_malformed_card_keys_are_a_404_page
);

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

async fn the_card_page_carries_the_till_code_and_the_invitation_that_fills_the_form(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let body = app.enroll("Ivan", &unique_phone()).await;
    let path = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();
    let card = app.card(body["card"]["card_number"].as_str().unwrap()).await;
    let code = card.referral_code.as_str();

    // Attributes and texts escape `/` as `&#x2f;`, which browsers read back as `/`.
    let html = app.get(&format!("{path}?lang=en")).await.text().await.unwrap().replace("&#x2f;", "/");

    // The till's code is the pass's barcode, drawn as its own QR beside the page's.
    let till = html.find(r#"data-testid="till-qr""#).expect("the till QR");
    let till_svg = &html[till..html[till..].find("</svg>").map(|end| till + end).unwrap()];
    let expected = loy::card_page::qr_svg(card.barcode.as_str()).unwrap();
    assert!(till_svg.contains(&expected[..expected.find("</svg>").unwrap()]), "the QR of the barcode value");
    assert_eq!(html.matches("<svg").count(), 3, "the Apple badge's mark and two QR codes (till and page)");
    assert!(html.contains(&format!(r#"data-testid="referral-code">{code}<"#)));
    let link = format!("{PUBLIC_URL}/?ref={code}");
    assert!(html.contains(&format!(r#"data-testid="referral-link">{link}<"#)), "{html}");

    // The link fills in the invitation code; a malformed one is ignored.
    let form = app.get(&format!("/?ref={}&lang=en", code.to_lowercase())).await.text().await.unwrap();
    assert!(form.contains(&format!(r#"value="{code}""#)), "the code is filled in: {form}");
    let form = app.get("/?ref=%3Cb%3E&lang=en").await.text().await.unwrap();
    assert!(!form.contains("&lt;b&gt;") && !form.contains("<b>"));
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
