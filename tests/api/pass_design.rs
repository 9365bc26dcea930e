//! A program's design in the passes and the Google class: uploaded images converted to Apple's
//! sizes inside a signed pass, the design's texts in the card's language, the images served from
//! `/media`, and a design change reaching a pass that was already signed.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::OnceLock;

use image::{DynamicImage, ImageFormat, RgbImage};
use loy::apple::template::png_size;
use loy::domain::design::{GOOGLE_IMAGE, ImageFiles};
use loy::domain::{ImageSlot, LocalizedText, ProgramDesign};
use loy::programs::images::{MAX_UPLOAD_BYTES, image_id, store_upload};
use loy::store::CardLookup;
use serde_json::{Value, json};

use crate::apple_support::{
    Pkpass, apple_auth, download, enroll_card, latest_pass, lint, register, shared_ca, updated_serials,
};
use crate::google_fake::{class_id, spawn_app_with_google};
use crate::google_schema::validate;
use crate::helpers::{PUBLIC_URL, StoreKind, TestApp, TestEnv, spawn_app, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    a_large_jpeg_becomes_correctly_sized_pngs_in_a_pass_that_verifies,
    labels_logo_text_terms_address_and_barcode_follow_the_design_in_the_cards_language,
    stored_images_are_served_for_good_and_unknown_ones_are_404,
    the_google_class_carries_the_designs_images_colour_name_and_terms_link,
    a_pass_fetched_after_a_design_change_shows_the_new_design,
    a_published_design_reaches_a_registered_device_through_the_passkit_service,
    the_design_check_refuses_broken_images_and_over_long_labels,
);

/// A 3000×2000 photo-like JPEG under 2 MB, made once.
fn large_jpeg() -> &'static [u8] {
    static JPEG: OnceLock<Vec<u8>> = OnceLock::new();
    JPEG.get_or_init(|| {
        let image = RgbImage::from_fn(3000, 2000, |x, y| {
            let wave = ((x as f32 / 37.0).sin() * (y as f32 / 23.0).cos() * 60.0) as i32;
            image::Rgb([(x / 12) as u8, (y / 8) as u8, (128 + wave).clamp(0, 255) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image).write_to(&mut out, ImageFormat::Jpeg).unwrap();
        let bytes = out.into_inner();
        assert!(bytes.len() < MAX_UPLOAD_BYTES, "{} bytes", bytes.len());
        bytes
    })
}

/// Uploads the large JPEG for each of `slots` as the designer does.
async fn upload(app: &TestApp, slots: &[ImageSlot]) -> BTreeMap<ImageSlot, ImageFiles> {
    let mut images = BTreeMap::new();
    for slot in slots {
        images.insert(*slot, store_upload(&app.store, *slot, large_jpeg().to_vec()).await.unwrap());
    }
    images
}

/// Saves the default program with its design changed by `change`, as an edit would.
async fn set_design(app: &TestApp, change: impl FnOnce(&mut ProgramDesign)) -> loy::domain::Program {
    let mut program = app.store.program("default").await.unwrap().unwrap();
    change(&mut program.design);
    program.version += 1;
    assert!(app.state.save_program(&program, program.version - 1).await.unwrap());
    program
}

async fn pass_of(app: &TestApp, card_path: &str) -> Pkpass {
    let response = download(app, card_path).await;
    assert_eq!(response.status(), 200);
    Pkpass::parse(response.bytes().await.unwrap().to_vec())
}

async fn enroll_in(app: &TestApp, locale: &str) -> String {
    let body = json!({"first_name": "Anna", "phone": unique_phone(), "consent": true, "locale": locale});
    let response = app.post_enrollment(&body).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    crate::apple_support::path_of_url(body["card"]["card_url"].as_str().unwrap())
}

fn back_field<'a>(pass: &'a Value, key: &str) -> Option<&'a Value> {
    pass["storeCard"]["backFields"].as_array().unwrap().iter().find(|f| f["key"] == key)
}

async fn a_large_jpeg_becomes_correctly_sized_pngs_in_a_pass_that_verifies(kind: StoreKind) {
    // A loopback public address, so `loy pass lint` only warns about its plain http.
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PUBLIC_URL", "http://127.0.0.1:8080");
    let app = spawn_app_in(env).await;
    let images = upload(&app, &[ImageSlot::Logo, ImageSlot::Icon, ImageSlot::Strip]).await;
    set_design(&app, |d| d.images = images.clone()).await;

    let (card_path, _) = enroll_card(&app, "Anna").await;
    let pass = pass_of(&app, &card_path).await;
    // 3:2 logos fit Apple's 160×50 points box by height; icons and strips fill theirs.
    let expected = [
        ("logo.png", (75, 50)),
        ("logo@2x.png", (150, 100)),
        ("logo@3x.png", (225, 150)),
        ("icon.png", (29, 29)),
        ("icon@2x.png", (58, 58)),
        ("icon@3x.png", (87, 87)),
        ("strip.png", (375, 144)),
        ("strip@2x.png", (750, 288)),
        ("strip@3x.png", (1125, 432)),
    ];
    for (name, size) in expected {
        assert_eq!(png_size(pass.file(name)), Some(size), "{name}");
        let slot = ImageSlot::parse(name.split(['.', '@']).next().unwrap()).unwrap();
        let stored = app.store.image(&images[&slot][name]).await.unwrap().unwrap();
        assert!(pass.file(name) == stored.as_slice(), "{name} is the uploaded image, not the template's");
    }
    assert!(!pass.files.keys().any(|n| n.contains(GOOGLE_IMAGE)), "Google's image stays out of the pass");
    assert!(pass.files.contains_key("en.lproj/pass.strings"), "the template's other files stay");
    pass.assert_manifest_is_exact();
    pass.assert_openssl_verifies(&shared_ca());
    let (code, output) = lint(&pass.bytes, None);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("is a valid pass"), "{output}");
}

async fn labels_logo_text_terms_address_and_barcode_follow_the_design_in_the_cards_language(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let english = enroll_in(&app, "en").await;
    let russian = enroll_in(&app, "ru").await;
    let plain = pass_of(&app, &english).await.pass_json();
    assert_eq!(plain["logoText"], "Loyalty Card", "no logo text: the program's name");
    assert_eq!(plain["storeCard"]["primaryFields"][0]["label"], "BALANCE", "no label: Wallet's translation");
    assert!(back_field(&plain, "terms_url").is_none(), "no terms address, no row");
    assert!(plain["barcodes"].is_array());

    set_design(&app, |d| {
        d.logo_text = "Кофе & Co".into();
        d.labels.balance = LocalizedText::new("Бонусы", "Bonuses");
        d.labels.tier = LocalizedText::new("", "Status");
        d.terms_url = "https://coffee.example/terms".into();
        d.barcode = false;
        d.revision += 1;
    })
    .await;
    for (path, balance, tier) in [(&english, "Bonuses", "Status"), (&russian, "Бонусы", "Status")] {
        let pass = pass_of(&app, path).await.pass_json();
        assert_eq!(pass["logoText"], "Кофе & Co");
        assert_eq!(pass["organizationName"], "Loyalty Card");
        assert_eq!(pass["storeCard"]["primaryFields"][0]["label"], balance);
        assert_eq!(pass["storeCard"]["headerFields"][0]["label"], tier, "an empty language falls back");
        assert_eq!(pass["storeCard"]["secondaryFields"][0]["label"], "MEMBER");
        let terms = back_field(&pass, "terms_url").expect("the terms address is on the back");
        assert_eq!(terms["value"], "https://coffee.example/terms");
        assert_eq!(terms["label"], "TERMS_URL");
        assert!(pass.get("barcodes").is_none() && pass.get("barcode").is_none(), "barcode off: none at all");
    }
    let strings = String::from_utf8(pass_of(&app, &russian).await.file("ru.lproj/pass.strings").to_vec()).unwrap();
    assert!(strings.contains("\"TERMS_URL\" = \"Полные условия программы\";"));
}

async fn stored_images_are_served_for_good_and_unknown_ones_are_404(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let images = upload(&app, &[ImageSlot::Logo]).await;
    let id = &images[&ImageSlot::Logo][GOOGLE_IMAGE];
    let stored = app.store.image(id).await.unwrap().unwrap();

    let response = app.get(&format!("/media/{id}.png")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.as_ref(), stored.as_slice());
    assert_eq!(png_size(&body), Some((660, 660)));

    let head = app.client.head(app.url(&format!("/media/{id}.png"))).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(head.bytes().await.unwrap().is_empty());

    let unknown = image_id(b"never stored");
    for path in [
        format!("/media/{unknown}.png"),
        format!("/media/{id}.jpg"),
        format!("/media/{id}"),
        "/media/..%2Fetc%2Fpasswd.png".to_owned(),
        format!("/media/{}.png", id.to_ascii_uppercase()),
    ] {
        assert_eq!(app.get(&path).await.status(), 404, "{path}");
    }
    let post = app.client.post(app.url(&format!("/media/{id}.png"))).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

async fn the_google_class_carries_the_designs_images_colour_name_and_terms_link(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let images = upload(&app, &[ImageSlot::Logo, ImageSlot::Strip]).await;
    let program = set_design(&app, |d| {
        d.images = images.clone();
        d.background_color = "rgb(200, 16, 46)".into();
        d.logo_text = "Coffee & Co".into();
        d.terms_url = "https://coffee.example/terms".into();
        d.terms = LocalizedText::new("Условия кофейни", "Coffee terms");
        d.labels.card_number = LocalizedText::new("Карта", "Card");
    })
    .await;
    app.state.google.clone().expect("Google Wallet is on").ensure_class(&program).await.unwrap();

    let class = fake.class(&class_id()).expect("the class was written");
    let logo = format!("{PUBLIC_URL}/media/{}.png", images[&ImageSlot::Logo][GOOGLE_IMAGE]);
    let hero = format!("{PUBLIC_URL}/media/{}.png", images[&ImageSlot::Strip][GOOGLE_IMAGE]);
    assert_eq!(class["programLogo"]["sourceUri"]["uri"], logo);
    assert_eq!(class["heroImage"]["sourceUri"]["uri"], hero);
    assert_eq!(class["hexBackgroundColor"], "#c8102e");
    assert_eq!(class["programName"], "Coffee & Co");
    assert_eq!(class["issuerName"], "Loyalty Card");
    assert_eq!(
        class["linksModuleData"]["uris"][1],
        json!({"id": "terms", "uri": "https://coffee.example/terms", "localizedDescription": {
            "defaultValue": {"language": "en", "value": "Full terms of the program"},
            "translatedValues": [
                {"language": "en", "value": "Full terms of the program"},
                {"language": "ru", "value": "Полные условия программы"}
            ]
        }})
    );
    let terms = class["textModulesData"].as_array().unwrap().iter().find(|m| m["id"] == "terms").unwrap();
    assert_eq!(terms["localizedBody"]["translatedValues"][1], json!({"language": "ru", "value": "Условия кофейни"}));
    assert_eq!(class["localizedAccountIdLabel"]["defaultValue"], json!({"language": "en", "value": "Card"}));
    let errors = validate("LoyaltyClass", &class, true);
    assert!(errors.is_empty(), "{errors:#?}");
    fake.assert_clean();

    // Google fetches the images from loy: the addresses answer with the right pictures.
    for (uri, size) in [(logo, (660, 660)), (hero, (1032, 336))] {
        let response = app.get(uri.strip_prefix(PUBLIC_URL).unwrap()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(png_size(&response.bytes().await.unwrap()), Some(size));
    }
}

async fn a_pass_fetched_after_a_design_change_shows_the_new_design(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (card_path, serial) = enroll_card(&app, "Anna").await;
    let serial = loy::domain::SerialNumber::parse(&serial).unwrap();
    let version = || async { app.store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap().version };
    let before = pass_of(&app, &card_path).await;
    assert_eq!(before.pass_json()["logoText"], "Loyalty Card");
    let template_strip = before.file("strip.png").to_vec();
    assert_eq!(pass_of(&app, &card_path).await.file("pass.json"), before.file("pass.json"), "cached");
    let first_version = version().await;

    // A publish: the design changes (new revision) and every card's version moves.
    let images = upload(&app, &[ImageSlot::Strip]).await;
    set_design(&app, |d| {
        d.logo_text = "New Brand".into();
        d.images = images.clone();
        d.revision += 1;
    })
    .await;
    assert_eq!(app.store.bump_program_cards("default", app.clock_now()).await.unwrap(), 1);
    let after = pass_of(&app, &card_path).await;
    assert_eq!(after.pass_json()["logoText"], "New Brand");
    assert_ne!(after.file("strip.png"), template_strip.as_slice());
    assert_eq!(png_size(after.file("strip@3x.png")), Some((1125, 432)));
    after.assert_manifest_is_exact();
    after.assert_openssl_verifies(&shared_ca());
    assert!(version().await > first_version);

    // The revision is part of the signed pass's key: even at the same card version, a pass
    // signed with an earlier design is not served.
    set_design(&app, |d| {
        d.logo_text = "Newer Brand".into();
        d.images.clear();
        d.revision += 1;
    })
    .await;
    let newest = pass_of(&app, &card_path).await;
    assert_eq!(newest.pass_json()["logoText"], "Newer Brand");
    assert_eq!(newest.file("strip.png"), template_strip.as_slice(), "back to the template's strip");
}

async fn a_published_design_reaches_a_registered_device_through_the_passkit_service(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (card_path, serial) = enroll_card(&app, "Anna").await;
    let auth = apple_auth(&pass_of(&app, &card_path).await.token());
    let device = "device0123456789";
    assert_eq!(register(&app, device, &serial, Some(&auth), "token0123").await.status(), 201);
    let listed: Value = updated_serials(&app, device, None).await.json().await.unwrap();
    let tag = listed["lastUpdated"].as_str().unwrap().to_owned();
    assert_eq!(updated_serials(&app, device, Some(&tag)).await.status(), 204, "nothing changed yet");

    let program = app.store.program("default").await.unwrap().unwrap();
    let images = upload(&app, &[ImageSlot::Strip]).await;
    let design = ProgramDesign { logo_text: "Published".into(), images, ..program.design.clone() };
    let published =
        loy::programs::publish::publish(&app.store, &program, design, "test", app.clock_now()).await.unwrap();
    assert_eq!(published.cards, 1);

    let listed: Value = updated_serials(&app, device, Some(&tag)).await.json().await.unwrap();
    assert_eq!(listed["serialNumbers"], json!([serial]), "the publish moved the card's version");
    let response = latest_pass(&app, &serial, Some(&auth), None).await;
    assert_eq!(response.status(), 200);
    let pass = Pkpass::parse(response.bytes().await.unwrap().to_vec());
    assert_eq!(pass.pass_json()["logoText"], "Published");
    assert_eq!(png_size(pass.file("strip@2x.png")), Some((750, 288)));
    pass.assert_openssl_verifies(&shared_ca());
}

async fn the_design_check_refuses_broken_images_and_over_long_labels(kind: StoreKind) {
    use loy::programs::check::check;
    let app = spawn_app(kind).await;
    let program = app.store.program("default").await.unwrap().unwrap();
    let images = upload(&app, &[ImageSlot::Icon]).await;
    let good = ProgramDesign { images: images.clone(), ..program.design.clone() };
    assert!(check(&app.state.apple, &program, &good).is_publishable());

    let mut broken = good.clone();
    broken.images.get_mut(&ImageSlot::Icon).unwrap().remove("icon@3x.png");
    broken.images.insert(ImageSlot::Logo, [("logo.png".to_owned(), "../../etc/passwd".to_owned())].into());
    broken.labels.balance = LocalizedText::new("Бонусные баллы программы лояльности", "Points");
    let report = check(&app.state.apple, &program, &broken);
    let fields: Vec<&str> = report.errors.iter().map(|f| f.field).collect();
    assert!(fields.contains(&"icon") && fields.contains(&"logo") && fields.contains(&"label_balance"), "{report:?}");
    let icon = report.errors.iter().find(|f| f.field == "icon").unwrap();
    assert!(icon.message.contains("icon@3x.png"), "{icon:?}");
    assert!(!report.is_publishable());
}
