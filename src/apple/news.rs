//! The news field of a pass: the latest message sent to the card, first on the back of the pass.
//!
//! Its `changeMessage` is `%@`, so when a message changes it (and nothing else changes in that
//! version) iOS shows the message's text itself on the lock screen. The field is on every pass,
//! with a placeholder before the first message, because Wallet announces changes of fields the
//! pass already had, not fields that appear.

use serde_json::{Value, json};

use crate::domain::{Card, Locale};

/// Adds the news field to the back of `pass`.
pub fn add(pass: &mut Value, card: &Card) {
    let locale = card.locale();
    let t = |en: &str, ru: &str| if locale == Locale::Ru { ru.to_owned() } else { en.to_owned() };
    let Some(store_card) = pass.get_mut("storeCard").and_then(Value::as_object_mut) else { return };
    let field = match &card.news {
        Some(news) => {
            let label = if news.title.is_empty() { t("News", "Новости") } else { news.title.clone() };
            let value = match &news.link {
                Some(link) => format!("{}\n{link}", news.body),
                None => news.body.clone(),
            };
            json!({ "key": "news", "label": label, "value": value, "changeMessage": "%@" })
        }
        None => json!({
            "key": "news",
            "label": t("News", "Новости"),
            "value": t("Messages from us will appear here.", "Здесь появятся наши сообщения."),
            "changeMessage": "%@",
        }),
    };
    let mut back = vec![field];
    if let Some(fields) = store_card.get("backFields").and_then(Value::as_array) {
        back.extend(fields.iter().filter(|f| f["key"] != "news").cloned());
    }
    store_card.insert("backFields".into(), Value::Array(back));
}
