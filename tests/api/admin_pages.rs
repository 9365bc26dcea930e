//! The console's pages: language, the home page per role.

use loy::domain::Role;

use crate::helpers::{StoreKind, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    the_console_speaks_the_language_asked_for_and_remembers_the_switch,
    the_home_page_counts_cards_for_managers_and_leads_cashiers_to_the_till,
);

async fn the_console_speaks_the_language_asked_for_and_remembers_the_switch(kind: StoreKind) {
    let app = spawn_app(kind).await;

    let russian =
        app.client.get(app.url("/admin/login")).header("Accept-Language", "ru-RU,ru;q=0.9").send().await.unwrap();
    assert!(russian.text().await.unwrap().contains("Вход"));
    let english = app.client.get(app.url("/admin/login")).header("Accept-Language", "en-GB").send().await.unwrap();
    assert!(english.text().await.unwrap().contains("Log in"));

    let switched =
        app.client.get(app.url("/admin/login?lang=ru")).header("Accept-Language", "en").send().await.unwrap();
    let cookie = switched
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|l| l.starts_with("loy_admin_lang=ru"))
        .expect("the switch is remembered")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let later = app.client.get(app.url("/admin/login")).header("Accept-Language", "en").header("Cookie", cookie);
    let body = later.send().await.unwrap().text().await.unwrap();
    assert!(body.contains("Вход") && body.contains(r#"<html lang="ru">"#));
}

async fn the_home_page_counts_cards_for_managers_and_leads_cashiers_to_the_till(kind: StoreKind) {
    let app = spawn_app(kind).await;
    for _ in 0..3 {
        app.new_card().await;
    }
    let manager = app.signed_in(Role::Manager).await;
    let cashier = app.signed_in(Role::Cashier).await;

    let home = manager.get("/admin").await;

    assert_eq!(home.status, 200);
    assert!(home.body.contains("<b>3</b>cards"), "{}", home.body);
    assert!(home.body.contains("<b>2</b>active staff accounts"));
    let till = cashier.get("/admin").await;
    assert!(till.body.contains(r#"class="button big" href="/admin/cashier""#), "{}", till.body);
    assert!(!till.body.contains("cards</div>"), "a cashier sees no business figures");
}
