//! A stamp card in the wallets, on both stores: the pass's strip shows exactly the stamps
//! collected (read back by pixel colour at each slot), its fields say "k / N" and the rewards
//! waiting, it verifies with `openssl` and `loy pass lint`; the Google object carries the stamps,
//! the rewards and an image module whose strip loy serves; the card page shows the stamps.

use image::GenericImageView;
use loy::apple::template::png_size;
use loy::domain::{ImageSlot, Scope, StampIcon};
use loy::programs::images::store_upload;
use loy::programs::stamp_strip::{fill_colour, layout, parse_rgb, probe};
use loy::programs::stamp_strips::StripKey;
use serde_json::{Value, json};

use crate::apple_support::{Pkpass, lint, path_of_url, shared_ca};
use crate::google_fake::{object_id, spawn_app_with_google};
use crate::google_schema::validate;
use crate::helpers::{PUBLIC_URL, StoreKind, TestApp, TestEnv, spawn_app_in, unique_phone};
use crate::on_both_stores;
use crate::stamps::{cafe, stamp};

on_both_stores!(
    the_pass_strip_fills_exactly_the_stamps_collected_and_the_pass_verifies,
    the_google_object_shows_stamps_rewards_and_the_same_strip,
);

/// Enrolls into the cafe; (card number, card page path, serial).
async fn enroll(app: &TestApp, key: &str) -> (String, String, String) {
    let body =
        json!({"first_name": "Olga", "phone": unique_phone(), "consent": true, "program": "cafe", "locale": "en"});
    let answer = app.pos_post("/api/v1/enrollments", key, body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let card = &answer.body["card"];
    let text = |k: &str| card[k].as_str().unwrap().to_owned();
    (text("card_number"), path_of_url(&text("card_url")), text("serial_number"))
}

/// How many slots of a decoded strip are filled, read at each slot's probe pixel.
fn filled_slots(png: &[u8], program: &loy::domain::Program, slots: u32) -> usize {
    let picture = image::load_from_memory(png).unwrap();
    let (width, height) = picture.dimensions();
    let key = StripKey::of(program, program.rules.stamp_rules().unwrap(), 0);
    let style = loy::programs::stamp_strips::style(&key, None);
    let (fill, background) = (fill_colour(&style), parse_rgb(&program.design.background_color).unwrap());
    let near = |a: [u8; 4], b: [u8; 3]| (0..3).all(|i| a[i].abs_diff(b[i]) <= 8);
    let shape = layout(slots, width, height);
    let mut filled = 0;
    for i in 0..slots as usize {
        let (x, y) = probe(&shape, i);
        let pixel = picture.get_pixel(x, y).0;
        if near(pixel, fill) {
            filled += 1;
        } else {
            assert!(near(pixel, background), "slot {i} is neither filled nor empty: {pixel:?}");
        }
    }
    filled
}

fn field<'a>(pass: &'a Value, group: &str, key: &str) -> &'a Value {
    pass["storeCard"][group].as_array().unwrap().iter().find(|f| f["key"] == key).unwrap_or(&Value::Null)
}

async fn the_pass_strip_fills_exactly_the_stamps_collected_and_the_pass_verifies(kind: StoreKind) {
    // A loopback public address, so `loy pass lint` only warns about its plain http.
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PUBLIC_URL", "http://127.0.0.1:8080").set("LOY_PROGRAM_CACHE_MS", "0");
    let app = spawn_app_in(env).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, path, _) = enroll(&app, &pos).await;
    let mut strips = Vec::new();
    for (stamps, add) in [(0, 0), (1, 1), (9, 8)] {
        if add > 0 {
            assert_eq!(stamp(&app, &pos, &number, json!({"stamps": add})).await.status, 200);
        }
        let response = app.get(&format!("{path}/card.pkpass")).await;
        assert_eq!(response.status(), 200);
        let pass = Pkpass::parse(response.bytes().await.unwrap().to_vec());
        for (name, size) in [("strip.png", (375, 144)), ("strip@2x.png", (750, 288)), ("strip@3x.png", (1125, 432))] {
            assert_eq!(png_size(pass.file(name)), Some(size), "{name}");
            assert_eq!(filled_slots(pass.file(name), &program, 10), stamps, "{name} with {stamps} stamps");
        }
        let json = pass.pass_json();
        assert_eq!(field(&json, "headerFields", "stamps")["value"], format!("{stamps} / 10"));
        assert_eq!(field(&json, "headerFields", "stamps")["changeMessage"], "Stamps: %@");
        assert_eq!(field(&json, "secondaryFields", "rewards")["value"], 0);
        assert!(json["storeCard"].get("primaryFields").is_none(), "nothing is drawn over the stamps");
        assert_eq!(field(&json, "backFields", "reward")["value"], "10 stamps: Free coffee");
        pass.assert_manifest_is_exact();
        pass.assert_openssl_verifies(&shared_ca());
        let (code, output) = lint(&pass.bytes, None);
        assert_eq!(code, 0, "{output}");
        strips.push(pass.file("strip@2x.png").to_vec());
    }
    assert!(strips[0] != strips[1] && strips[1] != strips[2], "each count has its own strip");

    // The tenth stamp completes the round: an empty strip again, one reward waiting.
    stamp(&app, &pos, &number, json!({})).await;
    let pass = Pkpass::parse(app.get(&format!("{path}/card.pkpass")).await.bytes().await.unwrap().to_vec());
    assert_eq!(filled_slots(pass.file("strip@2x.png"), &program, 10), 0);
    assert_eq!(field(&pass.pass_json(), "secondaryFields", "rewards")["value"], 1);
    assert!(pass.file("strip@2x.png") == strips[0].as_slice(), "the strip of 0 stamps is the cached one");

    // An uploaded stamp picture is drawn into the slots, never added to the pass as a file.
    let mut red = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(64, 64, image::Rgb([220, 20, 20])).write_to(&mut red, image::ImageFormat::Png).unwrap();
    let files = store_upload(&app.store, ImageSlot::Stamp, red.into_inner()).await.unwrap();
    let mut edited = app.store.program("cafe").await.unwrap().unwrap();
    edited.design.images.insert(ImageSlot::Stamp, files);
    edited.design.stamp_icon = StampIcon::Uploaded;
    edited.design.revision += 1;
    edited.version += 1;
    assert!(app.state.save_program(&edited, edited.version - 1).await.unwrap());
    stamp(&app, &pos, &number, json!({"stamps": 2})).await;
    let pass = Pkpass::parse(app.get(&format!("{path}/card.pkpass")).await.bytes().await.unwrap().to_vec());
    assert!(!pass.files.keys().any(|name| name.starts_with("stamp")), "{:?}", pass.files.keys());
    let strip = image::load_from_memory(pass.file("strip@2x.png")).unwrap().to_rgb8();
    let first = layout(10, 750, 288).centres[0];
    assert_eq!(strip.get_pixel(first.0 as u32, first.1 as u32).0, [220, 20, 20], "the picture in a filled slot");
    assert_eq!(filled_slots(pass.file("strip@2x.png"), &edited, 10), 2);

    // The card page shows the same.
    let page = app.get(&path).await.text().await.unwrap();
    assert!(page.contains(r#"<span data-testid="balance">2</span> / 10"#), "{page}");
    assert!(page.contains(r#"<span data-testid="rewards">1</span>"#));
    assert!(page.contains("10 stamps: Free coffee"));
}

async fn the_google_object_shows_stamps_rewards_and_the_same_strip(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, serial) = enroll(&app, &pos).await;
    stamp(&app, &pos, &number, json!({"stamps": 13})).await;
    let card = app.card(&number).await;
    let google = app.state.google.clone().expect("Google Wallet is on");
    google.upsert_object(&program, &card).await.unwrap();
    google.sync_card(&program, &card, false).await.unwrap();

    let object = fake.object(&object_id(&serial)).expect("the object was written");
    assert_eq!(object["loyaltyPoints"]["balance"], json!({"string": "3 / 10"}));
    assert_eq!(object["loyaltyPoints"]["localizedLabel"]["defaultValue"]["value"], "Stamps");
    assert_eq!(object["secondaryLoyaltyPoints"]["balance"], json!({"int": 1}));
    assert_eq!(object["secondaryLoyaltyPoints"]["localizedLabel"]["defaultValue"]["value"], "Rewards");
    let errors = validate("LoyaltyObject", &object, true);
    assert!(errors.is_empty(), "{errors:#?}");
    let path = format!("loyaltyObject/{}", object_id(&serial));
    let patch = fake.requests().into_iter().rev().find(|r| r.method == "PATCH" && r.path == path).unwrap();
    let errors = validate("LoyaltyObject", &patch.body, false);
    assert!(errors.is_empty(), "{errors:#?}");
    let class = fake.class(&format!("{}.cafe", crate::google_fake::ISSUER_ID)).expect("the class was written");
    let how = class["textModulesData"].as_array().unwrap().iter().find(|m| m["id"] == "how_to_earn").unwrap();
    assert!(
        how["localizedBody"]["translatedValues"][0]["value"].as_str().unwrap().contains("10 stamps earn Free coffee")
    );

    // Google fetches the strip from loy: it shows the 3 stamps, at Google's size.
    let uri = object["imageModulesData"][0]["mainImage"]["sourceUri"]["uri"].as_str().unwrap();
    let response = app.get(uri.strip_prefix(PUBLIC_URL).expect("served by loy")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let png = response.bytes().await.unwrap();
    assert_eq!(png_size(&png), Some((1032, 336)));
    assert_eq!(filled_slots(&png, &program, 10), 3);
    for wrong in ["/media/stamps/cafe/1-10-11.png", "/media/stamps/default/1-10-1.png", "/media/stamps/cafe/x.png"] {
        assert_eq!(app.get(wrong).await.status(), 404, "{wrong}");
    }
    fake.assert_clean();
}
