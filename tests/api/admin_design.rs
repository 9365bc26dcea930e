//! The card designer `/admin/programs/{slug}/design` over HTTP: who sees and changes it, drafts
//! and their conflicts, the live preview, image uploads, publishing (refused when invalid; when
//! valid every card moves so the PassKit list returns it and Google's class and objects are
//! patched), restoring an earlier version, and the audit log.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use loy::domain::{DEFAULT_PROGRAM_ID, ImageSlot, Program, Role, SerialNumber};
use loy::push::PushRuntime;
use loy::store::CardLookup;
use serde_json::Value;

use crate::admin_helpers::{Page, Staff, text_of_id};
use crate::apple_support::{apple_auth, new_pass, register, updated_serials};
use crate::google_fake::{FakeGoogle, TestKey, class_id, google_env, object_id};
use crate::helpers::{StoreKind, TestApp, spawn_app, spawn_app_in};
use crate::import_panel::upload_to;
use crate::on_both_stores;
use crate::push_fake::eventually;

on_both_stores!(
    owners_edit_managers_read_cashiers_are_refused_and_unknown_programs_are_404,
    a_draft_is_saved_without_touching_the_live_design_and_a_stale_save_is_a_conflict,
    the_preview_follows_typed_values_and_saves_nothing,
    an_uploaded_jpeg_logo_goes_into_the_draft_and_can_be_removed,
    oversized_files_and_non_images_are_refused_with_their_message,
    a_design_with_an_unreadable_colour_is_not_published_and_nothing_moves,
    publishing_moves_every_card_so_the_passkit_list_returns_them_and_is_audited,
    an_earlier_version_is_restored_as_a_new_revision,
    publishing_patches_the_google_class_and_every_object_through_the_push_worker,
);

const DESIGN: &str = "/admin/programs/default/design";

async fn program(app: &TestApp) -> Program {
    app.store.program(DEFAULT_PROGRAM_ID).await.unwrap().expect("the default program exists")
}

/// The designer's fields as the page would post them for `program`'s draft, with `changes`.
fn fields(program: &Program, action: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let form = loy::admin::design::DesignForm::of(program.draft.as_ref().unwrap_or(&program.design), program.version);
    let mut map: serde_json::Map<String, Value> = match serde_json::to_value(&form).unwrap() {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    map.insert("action".into(), Value::from(action));
    for (key, value) in changes {
        map.insert((*key).to_owned(), Value::from(*value));
    }
    map.into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect()
}

async fn post_design(staff: &Staff<'_>, path: &str, fields: &[(String, String)]) -> Page {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    staff.post(path, &pairs).await
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 120]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

async fn owners_edit_managers_read_cashiers_are_refused_and_unknown_programs_are_404(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let page = owner.get(DESIGN).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"id="do-publish""#) && page.body.contains(r#"id="do-save""#));
    assert!(page.body.contains(r#"id="pv-apple-front""#) && page.body.contains(r#"id="pv-google""#));
    assert!(page.body.contains(r##"value="#1c2b4a""##), "the colour input shows the design's colour as hex");
    assert!(page.body.contains(r#"hx-post="/admin/programs/default/design/preview""#));

    let manager = app.signed_in(Role::Manager).await;
    let read = manager.get(DESIGN).await;
    assert_eq!(read.status, 200);
    assert!(read.body.contains(r#"id="read-only""#));
    assert!(!read.body.contains(r#"id="do-save""#) && !read.body.contains(r#"id="do-publish""#));
    assert!(
        read.body.contains(r##"type="hidden" name="background_color" value="#1c2b4a""##),
        "the preview keeps its colours"
    );
    let before = program(&app).await;
    let looked = fields(&before, "", &[("preview_lang", "en")]);
    let pairs: Vec<(&str, &str)> = looked.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let fragment = manager.post_htmx("/admin/programs/default/design/preview", &pairs).await;
    assert_eq!(fragment.status, 200, "managers may switch the preview's language");
    assert!(!fragment.body.contains(r#"id="preview-problem""#), "{}", fragment.body);
    let refused = post_design(&manager, DESIGN, &fields(&before, "save", &[("logo_text", "Manager")])).await;
    assert_eq!(refused.status, 403);
    assert_eq!(program(&app).await, before, "a manager's save changes nothing");

    let cashier = app.signed_in(Role::Cashier).await;
    assert_eq!(cashier.get(DESIGN).await.status, 403);
    assert_eq!(owner.get("/admin/programs/no-such/design").await.status, 404);
    assert_eq!(owner.get("/admin/programs/NOT%20A%20SLUG/design").await.status, 404);
    let anonymous = app.admin_get_anonymous(DESIGN).await;
    assert_eq!(anonymous.status, 303);
}

async fn a_draft_is_saved_without_touching_the_live_design_and_a_stale_save_is_a_conflict(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let before = program(&app).await;
    let changes = [("background_color", "#112233"), ("label_balance_en", "Stamps"), ("terms_ru", "Условия кафе")];
    let saved = post_design(&owner, DESIGN, &fields(&before, "save", &changes)).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location.as_deref(), Some("/admin/programs/default/design?done=saved"));
    let after = program(&app).await;
    let draft = after.draft.clone().expect("the draft is kept");
    assert_eq!(draft.background_color, "rgb(17, 34, 51)");
    assert_eq!(draft.labels.balance.en, "Stamps");
    assert_eq!(draft.terms.ru, "Условия кафе");
    assert_eq!(after.design, before.design, "the live design is untouched");
    assert_eq!(after.version, before.version + 1);
    let page = owner.get("/admin/programs/default/design?done=saved").await;
    assert!(text_of_id(&page.body, "design-done").is_some());
    assert!(page.body.contains(r##"value="#112233""##), "the page edits the draft");

    // A second save from the page as it was before the first one is refused, and says so.
    let stale = post_design(&owner, DESIGN, &fields(&before, "save", &[("logo_text", "Old tab")])).await;
    assert_eq!(stale.status, 409);
    assert!(text_of_id(&stale.body, "design-problem").is_some(), "{}", stale.body);
    assert_eq!(program(&app).await, after, "nothing changed");
    assert_eq!(owner.audit("design.draft_saved").await.len(), 1);
}

async fn the_preview_follows_typed_values_and_saves_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let before = program(&app).await;
    let typed = fields(
        &before,
        "",
        &[
            ("background_color", "#ff0000"),
            ("how_to_earn_en", "One stamp per coffee"),
            ("label_balance_en", "Beans"),
            ("logo_text", "Cafe Typed"),
            ("preview_lang", "en"),
        ],
    );
    let pairs: Vec<(&str, &str)> = typed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let fragment = owner.post_htmx("/admin/programs/default/design/preview", &pairs).await;
    assert_eq!(fragment.status, 200, "{}", fragment.body);
    assert!(!fragment.body.contains("<html"), "a fragment, not a page");
    assert!(fragment.body.contains(r#"data-lang="en""#));
    let css = fragment.body.split("/admin/design/colours.css?").nth(1).unwrap().split('"').next().unwrap();
    assert!(css.starts_with("bg=ff0000&"), "{css}");
    assert!(fragment.body.contains("One stamp per coffee"), "the back of the pass shows the typed text");
    assert!(fragment.body.contains("Beans"), "the front shows the typed label");
    assert!(fragment.body.contains("Cafe Typed"), "and the typed logo text");
    let stylesheet = app.get(&format!("/admin/design/colours.css?{css}")).await;
    assert_eq!(stylesheet.status(), 200);
    assert!(stylesheet.text().await.unwrap().contains(".pv-apple{background-color:#ff0000;"));
    assert_eq!(app.get("/admin/design/colours.css?bg=red;}&fg=000000&label=000000&google=000000").await.status(), 400);

    // Without JavaScript: the "Preview" button draws the page with the values, unsaved.
    let page = post_design(&owner, DESIGN, &fields(&before, "preview", &[("how_to_earn_ru", "Штамп за кофе")])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Штамп за кофе"));
    assert_eq!(program(&app).await, before, "previewing saves nothing");
}

async fn an_uploaded_jpeg_logo_goes_into_the_draft_and_can_be_removed(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let path = "/admin/programs/default/design/images/logo";
    let page = upload_to(&owner, path, Some(&owner.csrf), Some(("logo.jpg", &jpeg(900, 300)))).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let draft = program(&app).await.draft.expect("the upload made a draft");
    let files = draft.images.get(&ImageSlot::Logo).expect("the logo is in the draft");
    assert_eq!(files.keys().collect::<Vec<_>>(), ["google", "logo.png", "logo@2x.png", "logo@3x.png"]);
    let png = app.store.image(&files["logo@2x.png"]).await.unwrap().expect("the image is stored");
    assert_eq!(&png[..4], b"\x89PNG");
    let shown = owner.get(DESIGN).await;
    assert!(shown.body.contains(&format!("/media/{}.png", files["logo@2x.png"])), "the preview shows the upload");
    assert!(program(&app).await.design.images.is_empty(), "nothing is live before publishing");
    assert_eq!(owner.audit("design.image_uploaded").await.len(), 1);

    let removed = owner.post(&format!("{path}/remove"), &[]).await;
    assert_eq!(removed.status, 303);
    assert!(program(&app).await.draft.unwrap().images.is_empty());
    assert_eq!(owner.audit("design.image_removed").await.len(), 1);

    let without_token = upload_to(&owner, path, None, Some(("logo.jpg", &jpeg(10, 10)))).await;
    assert_eq!(without_token.status, 403);
}

async fn oversized_files_and_non_images_are_refused_with_their_message(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let before = program(&app).await;
    let path = "/admin/programs/default/design/images/strip?lang=en";
    let mut large = jpeg(64, 64);
    large.resize(loy::programs::images::MAX_UPLOAD_BYTES + 1, 0);
    let page = upload_to(&owner, path, Some(&owner.csrf), Some(("huge.jpg", &large))).await;
    assert_eq!(page.status, 413);
    assert_eq!(
        text_of_id(&page.body, "e-image-strip").as_deref(),
        Some("The file is larger than 2 MB; save it smaller and upload it again.")
    );
    let text = upload_to(&owner, path, Some(&owner.csrf), Some(("notes.txt", b"just some words\n"))).await;
    assert_eq!(text.status, 422);
    assert_eq!(text_of_id(&text.body, "e-image-strip").as_deref(), Some("The file is not a PNG, JPEG or WebP image."));
    let ru = upload_to(
        &owner,
        "/admin/programs/default/design/images/icon?lang=ru",
        Some(&owner.csrf),
        Some(("a.txt", b"x")),
    )
    .await;
    assert_eq!(
        text_of_id(&ru.body, "e-image-icon").as_deref(),
        Some("Файл не является изображением PNG, JPEG или WebP.")
    );
    assert_eq!(program(&app).await, before, "refused uploads change nothing");
}

async fn a_design_with_an_unreadable_colour_is_not_published_and_nothing_moves(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let pass = new_pass(&app).await;
    let serial = SerialNumber::parse(&pass.serial()).unwrap();
    let card_before = app.store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap();
    let before = program(&app).await;
    let page = post_design(&owner, DESIGN, &fields(&before, "publish", &[("background_color", "blue")])).await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(text_of_id(&page.body, "design-problem").is_some());
    assert_eq!(text_of_id(&page.body, "e-background_color").as_deref(), Some("“blue” is not a colour."));
    let russian =
        post_design(&owner, &format!("{DESIGN}?lang=ru"), &fields(&before, "publish", &[("background_color", "blue")]))
            .await;
    assert_eq!(text_of_id(&russian.body, "e-background_color").as_deref(), Some("«blue» — не цвет."), "in Russian");
    assert_eq!(program(&app).await, before, "nothing was published");
    assert!(app.store.design_versions(DEFAULT_PROGRAM_ID, 10).await.unwrap().is_empty());
    let card_after = app.store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap();
    assert_eq!(card_after.version, card_before.version, "no card moved");
    assert!(owner.audit("design.published").await.is_empty());
}

async fn publishing_moves_every_card_so_the_passkit_list_returns_them_and_is_audited(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let device = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f";
    let mut serials = Vec::new();
    for n in 0..2 {
        let pass = new_pass(&app).await;
        let registered =
            register(&app, device, &pass.serial(), Some(&apple_auth(&pass.token())), &format!("{n:064}")).await;
        assert_eq!(registered.status(), 201);
        serials.push(pass.serial());
    }
    serials.sort();
    let listed: Value = updated_serials(&app, device, None).await.json().await.unwrap();
    let tag = listed["lastUpdated"].as_str().unwrap().to_owned();
    assert_eq!(updated_serials(&app, device, Some(&tag)).await.status(), 204, "nothing changed yet");

    let before = program(&app).await;
    let published = post_design(&owner, DESIGN, &fields(&before, "publish", &[("background_color", "#204060")])).await;
    assert_eq!(published.status, 303, "{}", published.body);
    assert_eq!(published.location.as_deref(), Some("/admin/programs/default/design?done=published"));
    let after = program(&app).await;
    assert_eq!(after.design.background_color, "rgb(32, 64, 96)");
    assert_eq!(after.design.revision, before.design.revision + 1);
    assert_eq!(after.fanned_out_revision, after.design.revision, "every card was moved");
    assert!(after.draft.is_none());

    let changed = updated_serials(&app, device, Some(&tag)).await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    let mut listed: Vec<String> =
        changed["serialNumbers"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    listed.sort();
    assert_eq!(listed, serials, "both cards are listed for the device");

    let audit = owner.audit("design.published").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target.as_deref(), Some(DEFAULT_PROGRAM_ID));
    assert_eq!(audit[0].details["before"], before.design.revision);
    assert_eq!(audit[0].details["after"], after.design.revision);
    assert_eq!(audit[0].details["cards"], 2);

    let page = owner.get("/admin/programs/default/design?done=published").await;
    assert_eq!(text_of_id(&page.body, "progress-cards").as_deref(), Some("2"));
    assert!(page.body.contains(&format!(r#"id="revision-{}""#, after.design.revision)));
    assert!(page.body.contains(&owner.email), "the history says who published");
    let progress = owner.get("/admin/programs/default/design/progress").await;
    assert_eq!(progress.status, 200);
    assert_eq!(text_of_id(&progress.body, "progress-cards").as_deref(), Some("2"));
}

async fn an_earlier_version_is_restored_as_a_new_revision(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    for colour in ["#111111", "#222222"] {
        let current = program(&app).await;
        let page = post_design(&owner, DESIGN, &fields(&current, "publish", &[("background_color", colour)])).await;
        assert_eq!(page.status, 303, "{}", page.body);
    }
    let published = program(&app).await;
    assert_eq!(published.design.background_color, "rgb(34, 34, 34)");
    let first = published.design.revision - 1;

    let manager = app.signed_in(Role::Manager).await;
    let path = format!("/admin/programs/default/design/history/{first}/restore");
    assert_eq!(manager.post(&path, &[]).await.status, 403);
    assert_eq!(owner.post("/admin/programs/default/design/history/999/restore", &[]).await.status, 404);

    let restored = owner.post(&path, &[]).await;
    assert_eq!(restored.status, 303, "{}", restored.body);
    assert_eq!(restored.location.as_deref(), Some("/admin/programs/default/design?done=restored"));
    let after = program(&app).await;
    assert_eq!(after.design.background_color, "rgb(17, 17, 17)");
    assert_eq!(after.design.revision, published.design.revision + 1, "history only grows");
    let versions = app.store.design_versions(DEFAULT_PROGRAM_ID, 10).await.unwrap();
    assert_eq!(versions.len(), 3);
    let audit = owner.audit("design.restored").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].details["before"], published.design.revision);
    assert_eq!(audit[0].details["after"], after.design.revision);
}

async fn publishing_patches_the_google_class_and_every_object_through_the_push_worker(kind: StoreKind) {
    let fake = FakeGoogle::start(
        crate::google_fake::CLIENT_EMAIL,
        &TestKey::shared().public_pem,
        crate::google_fake::ISSUER_ID,
    );
    let mut env = google_env(&kind, &fake);
    env.set("LOY_PUSH_COALESCE_MS", "50").set("LOY_PUSH_POLL_MS", "5").set("LOY_PUSH_BACKOFF_MS", "50");
    let app = spawn_app_in(env).await;
    let worker = Arc::new(app.state.worker(None, crate::push::TOPIC));
    let runtime = PushRuntime::start(worker, 1);
    let mut serials = Vec::new();
    for _ in 0..2 {
        let body = app.enroll("Anna", &crate::helpers::unique_phone()).await;
        let serial = body["card"]["serial_number"].as_str().unwrap().to_owned();
        fake.wait_for_object(&object_id(&serial)).await;
        serials.push(serial);
    }
    let owner = app.signed_in(Role::Owner).await;
    let before = program(&app).await;
    let published = post_design(&owner, DESIGN, &fields(&before, "publish", &[("background_color", "#336699")])).await;
    assert_eq!(published.status, 303, "{}", published.body);

    let class_path = format!("loyaltyClass/{}", class_id());
    let class_patched = eventually(Duration::from_secs(30), || {
        fake.requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path == class_path && r.body["hexBackgroundColor"] == "#336699")
    })
    .await;
    assert!(class_patched, "the class is patched with the new colour: {:?}", fake.requests());
    for serial in &serials {
        let path = format!("loyaltyObject/{}", object_id(serial));
        let patched = eventually(Duration::from_secs(30), || {
            fake.requests().iter().any(|r| r.method == "PATCH" && r.path == path)
        })
        .await;
        assert!(patched, "the object of {serial} is patched");
    }
    let start = std::time::Instant::now();
    while app.store.program_push_progress(DEFAULT_PROGRAM_ID).await.unwrap().pending > 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "the fan-out's pushes finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = owner.get(DESIGN).await;
    assert_eq!(text_of_id(&page.body, "progress-queued").as_deref(), Some("0"));
    assert_eq!(text_of_id(&page.body, "progress-pushed").as_deref(), Some("2"));
    runtime.stop().await;
    fake.stop().await;
}
