//! What clients do over HTTP against one node or another: enroll, POS writes, Wallet's
//! registration, the staff login.

use loy::domain::{Card, CardNumber, Scope};
use loy::store::CardLookup;
use serde_json::{Value, json};

use crate::Cluster;
use crate::phone::unique_phone;
use crate::procs::Proc;

/// A POS answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub fn random_key() -> String {
    loy::domain::tokens::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 16)
}

impl Cluster {
    /// A new API key, stored as `loy api-key create` does.
    pub async fn api_key(&self, scope: Scope) -> String {
        let (key, plaintext) = loy::domain::ApiKey::generate("cluster", scope, chrono::Utc::now());
        self.store.insert_api_key(&key).await.unwrap();
        plaintext
    }

    /// Enrolls a customer through `node`; returns the 201 body's card.
    pub async fn enroll(&self, node: &Proc, key: &str) -> Value {
        let phone = unique_phone();
        let response = self
            .http
            .post(node.url("/api/v1/enrollments"))
            .bearer_auth(key)
            .json(&json!({"first_name": "Anna", "phone": phone, "consent": true}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.json::<Value>().await.unwrap();
        assert_eq!(status, 201, "enrollment of {phone} through {}: {body}", node.name);
        body["card"].clone()
    }

    /// A POS POST through `node` with the given idempotency key; `Err` when no answer came.
    pub async fn pos_post(
        &self,
        node: &Proc,
        path: &str,
        api_key: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> Result<Answer, reqwest::Error> {
        let response = self
            .http
            .post(node.url(path))
            .bearer_auth(api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    pub async fn card(&self, number: &str) -> Card {
        let number = CardNumber::parse(number).unwrap();
        self.store.find_card(CardLookup::Number(&number)).await.unwrap().expect("the card exists")
    }

    /// Registers a device for the card's pass through `node`, as Wallet does; returns its push
    /// token.
    pub async fn register_device(&self, node: &Proc, card: &Card) -> String {
        let device = format!("device{}", random_key());
        let token = format!("{}{}", random_key(), random_key());
        let path = format!("/passkit/v1/devices/{device}/registrations/{}/{}", crate::TOPIC, card.serial.as_str());
        let response = self
            .http
            .post(node.url(&path))
            .header("authorization", format!("ApplePass {}", card.auth_token.expose()))
            .json(&json!({ "pushToken": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registration through {}", node.name);
        token
    }

    /// Signs a staff member in through `node` (the login form, then its POST); returns the
    /// session cookie's value.
    pub async fn staff_login(&self, node: &Proc, email: &str, password: &str) -> String {
        let form = self.http.get(node.url("/admin/login")).send().await.unwrap();
        let cookie = cookie_value(form.headers(), "loy_admin_login").expect("the login form sets its token cookie");
        let body = form.text().await.unwrap();
        let at = body.find(r#"name="csrf" value=""#).expect("the form carries its token") + 19;
        let csrf = body[at..at + body[at..].find('"').unwrap()].to_owned();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let response = client
            .post(node.url("/admin/login"))
            .header("cookie", format!("loy_admin_login={cookie}"))
            .form(&[("email", email), ("password", password), ("next", "/admin"), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "login through {}", node.name);
        cookie_value(response.headers(), "loy_admin").expect("the login sets the session cookie")
    }
}

fn cookie_value(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| Some(line.strip_prefix(&format!("{name}="))?.split(';').next()?.to_owned()))
        .filter(|v| !v.is_empty())
}
