//! The Apple pass as a customer gets it: the card page's button, the download, and what is in it.

use std::io::Cursor;

use loy::clock::Clock;
use loy::domain::SerialNumber;
use loy::startup::{Application, connect_store};
use loy::store::{CardLookup, Faults, bump_version};
use serde_json::json;

use crate::apple_support::{
    PASS_TYPE, Pkpass, TEAM, download, enroll_card, lint, new_pass, run_loy, shared_ca, shared_dev_dir,
};
use crate::helpers::{PUBLIC_URL, StoreKind, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(
    a_pass_downloaded_from_the_card_page_verifies_with_openssl_and_lints_clean,
    the_pass_carries_the_card_and_the_identity_wallet_needs,
    an_unchanged_pass_is_served_from_the_cache_and_a_new_version_is_signed_anew,
    the_same_card_version_renders_the_same_files_in_another_process,
    a_download_for_an_unknown_card_is_a_404_page,
    a_replacement_template_designs_the_pass,
);

async fn a_pass_downloaded_from_the_card_page_verifies_with_openssl_and_lints_clean(kind: StoreKind) {
    // As on a developer's machine: the default public address and development certificates.
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PUBLIC_URL", "http://127.0.0.1:8080");
    let app = spawn_app_in(env).await;
    let (card_path, _) = enroll_card(&app, "Anna").await;

    // Attributes escape `/` as `&#x2f;`, which browsers read back as `/`.
    let page = app.get(&format!("{card_path}?lang=en")).await.text().await.unwrap().replace("&#x2f;", "/");
    let link = format!(r#"href="{card_path}/card.pkpass""#);
    assert!(page.contains(&link), "the card page links to the pass");
    assert!(page.contains(r#"data-testid="add-to-apple-wallet""#) && page.contains("Apple Wallet"));
    let page_ru = app.get(&format!("{card_path}?lang=ru")).await.text().await.unwrap();
    assert!(page_ru.contains("Добавить в Apple Wallet"));

    let response = download(&app, &card_path).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/vnd.apple.pkpass");
    assert_eq!(headers["content-disposition"], r#"attachment; filename="loyalty-card.pkpass""#);
    assert_eq!(headers["cache-control"], "private, no-store");
    let pass = Pkpass::parse(response.bytes().await.unwrap().to_vec());
    let card =
        app.store.find_card(CardLookup::Serial(&SerialNumber::parse(&pass.serial()).unwrap())).await.unwrap().unwrap();
    assert_eq!(headers["last-modified"], card.modified_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string());

    pass.assert_manifest_is_exact();
    pass.assert_openssl_verifies(&shared_ca());
    let printed = pass.openssl_print();
    assert!(printed.contains("signingTime"), "the signature carries a signing time:\n{printed}");
    assert!(printed.contains("loy Development WWDR Intermediate"), "the intermediate is in the certificate set");

    let (code, output) = lint(&pass.bytes, None);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("is a valid pass (1 warning)"), "{output}");
    assert!(output.contains("plain http on a loopback host"), "{output}");
}

async fn the_pass_carries_the_card_and_the_identity_wallet_needs(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (card_path, serial) = enroll_card(&app, "Ivan").await;
    let card = app.store.find_card(CardLookup::Serial(&SerialNumber::parse(&serial).unwrap())).await.unwrap().unwrap();
    let pass = Pkpass::parse(download(&app, &card_path).await.bytes().await.unwrap().to_vec());
    let json = pass.pass_json();

    assert_eq!(json["formatVersion"], 1);
    assert_eq!(json["passTypeIdentifier"], PASS_TYPE);
    assert_eq!(json["teamIdentifier"], TEAM);
    assert_eq!(json["serialNumber"], serial);
    assert_eq!(json["authenticationToken"], card.auth_token.expose());
    assert_eq!(json["webServiceURL"], format!("{PUBLIC_URL}/passkit"));
    assert_eq!(json["organizationName"], "Loyalty Card");
    assert_eq!(json["description"], "Loyalty Card");
    assert_eq!(json["backgroundColor"], "rgb(28, 43, 74)");
    let balance = &json["storeCard"]["primaryFields"][0];
    assert_eq!((balance["key"].as_str(), balance["value"].as_i64()), (Some("balance"), Some(100)));
    assert_eq!(balance["changeMessage"], "BALANCE_CHANGED");
    assert_eq!(json["storeCard"]["headerFields"][0]["value"], "Bronze");
    assert_eq!(json["storeCard"]["secondaryFields"][0]["value"], "Ivan");
    assert_eq!(json["storeCard"]["secondaryFields"][1]["value"], card.card_number.grouped());
    let back: Vec<&str> =
        json["storeCard"]["backFields"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    for key in ["last_transaction", "how_to_earn", "terms"] {
        assert!(back.contains(&key), "{key} in {back:?}");
    }
    assert!(!back.contains(&"contacts"), "no contacts configured, no empty row");
    let field = |key: &str| {
        json["storeCard"]["backFields"].as_array().unwrap().iter().find(|f| f["key"] == key).unwrap()["value"].clone()
    };
    let code = card.referral_code.as_str();
    assert_eq!(field("referral_code"), code, "the invitation code on the back");
    assert_eq!(field("referral_link"), format!("{PUBLIC_URL}/?ref={code}"), "and the link that fills it in");
    assert_eq!(
        json["barcodes"],
        json!([{
            "format": "PKBarcodeFormatQR",
            "message": card.barcode.as_str(),
            "messageEncoding": "iso-8859-1",
            "altText": card.card_number.grouped()
        }])
    );

    let en = String::from_utf8(pass.file("en.lproj/pass.strings").to_vec()).unwrap();
    let ru = String::from_utf8(pass.file("ru.lproj/pass.strings").to_vec()).unwrap();
    assert!(en.contains(r#""BALANCE_CHANGED" = "Balance: %@";"#));
    assert!(ru.contains(r#""BALANCE_CHANGED" = "Баланс: %@";"#));
    for image in ["icon", "logo", "strip"] {
        for suffix in ["", "@2x", "@3x"] {
            assert!(pass.files.contains_key(&format!("{image}{suffix}.png")), "{image}{suffix}.png");
        }
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(pass.bytes.clone())).unwrap();
    assert_eq!(archive.by_name("strip@3x.png").unwrap().compression(), zip::CompressionMethod::Stored);
    assert_eq!(archive.by_name("pass.json").unwrap().compression(), zip::CompressionMethod::Deflated);
}

async fn an_unchanged_pass_is_served_from_the_cache_and_a_new_version_is_signed_anew(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (card_path, serial) = enroll_card(&app, "Anna").await;
    let first = download(&app, &card_path).await.bytes().await.unwrap();
    // Signing again would change the signing time, which has one-second resolution.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = download(&app, &card_path).await.bytes().await.unwrap();
    assert_eq!(first, again, "the same signed bytes: not signed again");

    let serial = SerialNumber::parse(&serial).unwrap();
    let bumped = bump_version(app.store.as_ref(), &serial, app.clock.now()).await.unwrap().unwrap();
    let response = download(&app, &card_path).await;
    assert_eq!(response.headers()["last-modified"], bumped.modified_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    let newer = Pkpass::parse(response.bytes().await.unwrap().to_vec());
    assert_ne!(newer.file("signature"), Pkpass::parse(first.to_vec()).file("signature"), "the new version is signed");
    newer.assert_openssl_verifies(&shared_ca());
}

async fn the_same_card_version_renders_the_same_files_in_another_process(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (card_path, _) = enroll_card(&app, "Anna").await;
    let first = Pkpass::parse(download(&app, &card_path).await.bytes().await.unwrap().to_vec());
    let env = app.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let restarted = spawn_app_in(env).await;
    let second = Pkpass::parse(download(&restarted, &card_path).await.bytes().await.unwrap().to_vec());

    let names = |p: &Pkpass| p.files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&first), names(&second));
    for (name, bytes) in &first.files {
        if name == "signature" {
            assert_ne!(bytes, &second.files[name], "signed again, at another time");
        } else {
            assert_eq!(bytes, &second.files[name], "{name} is the same");
        }
    }
}

async fn a_download_for_an_unknown_card_is_a_404_page(kind: StoreKind) {
    let app = spawn_app(kind).await;
    for path in ["/c/abcdefghijkmnpqrstuvwxyz23/card.pkpass", "/c/x/card.pkpass"] {
        let response = app.get(&format!("{path}?lang=en")).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(response.text().await.unwrap().contains("Card not found"));
    }
}

/// Writes the built-in design into a directory, with `pass.json` replaced.
fn template_dir(pass_json: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/default");
    for entry in walk(&source) {
        let relative = entry.strip_prefix(&source).unwrap();
        let target = dir.path().join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
    std::fs::write(dir.path().join("pass.json"), pass_json).unwrap();
    dir
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

async fn a_replacement_template_designs_the_pass(kind: StoreKind) {
    let custom = r#"{
        "description": "{{program_name}} card",
        "organizationName": "Custom Coffee",
        "backgroundColor": "rgb(120, 20, 20)",
        "storeCard": {"primaryFields": [{"key": "points", "label": "POINTS", "value": "{{balance}}"}]},
        "barcodes": [{"format": "PKBarcodeFormatQR", "message": "{{barcode}}", "messageEncoding": "iso-8859-1"}]
    }"#;
    let dir = template_dir(custom);
    let mut env = TestEnv::new(&kind);
    env.set("LOY_APPLE_TEMPLATE", &dir.path().display().to_string());
    let app = spawn_app_in(env).await;
    let pass = new_pass(&app).await;
    let json = pass.pass_json();
    assert_eq!(json["organizationName"], "Custom Coffee");
    assert_eq!(json["description"], "Loyalty Card card");
    assert_eq!(json["storeCard"]["primaryFields"][0]["value"], 100);
    pass.assert_openssl_verifies(&shared_ca());

    // A broken design stops start-up with a message naming the problem.
    let broken = template_dir(r#"{"storeCard": {"primaryFields": [{"key": "b", "value": "{{points}}"}]}}"#);
    let mut env = TestEnv::new(&kind);
    env.set("LOY_APPLE_TEMPLATE", &broken.path().display().to_string());
    let settings = env.settings();
    let store = connect_store(&settings, std::sync::Arc::new(Faults::default())).await.unwrap();
    let error = Application::build_with(settings, store, std::sync::Arc::new(loy::clock::SystemClock))
        .await
        .err()
        .expect("a broken template stops start-up");
    let message = format!("{error:#}");
    assert!(message.contains("unknown placeholder {{points}}"), "{message}");

    // `loy serve` says the same in one line and exits non-zero.
    let work = tempfile::tempdir().unwrap();
    let (code, output) = run_loy(
        &["serve"],
        &[
            ("LOY_APPLE_TEMPLATE", &broken.path().display().to_string()),
            ("LOY_APPLE_DEV_DIR", &shared_dev_dir().display().to_string()),
            ("LOY_BIND", "127.0.0.1:0"),
            ("LOY_DATA_DIR", &work.path().display().to_string()),
        ],
        work.path(),
    );
    assert_ne!(code, 0);
    assert!(output.contains("unknown placeholder {{points}}"), "{output}");
}
