//! A stand-in for APNs at a configured address (`LOY_APNS_ENDPOINT=http://…`), refused in
//! production: the request a2 sends Apple — `POST /3/device/{token}` with `apns-topic`,
//! `apns-push-type: background`, `apns-priority: 5`, `apns-expiration` and the body `{}` — over
//! HTTP/1.1 and without Apple's authentication, answered the way APNs answers (a status and a
//! JSON `reason`).
//!
//! a2 connects only to Apple's two hosts, so processes started by a test (`tests/cluster/`)
//! could not otherwise reach a fake. Everything after the gateway — classification, retries,
//! dead letters, what is recorded as pushed — is the production path.

use std::time::Duration;

use async_trait::async_trait;

use super::gateway::{PushGateway, PushOutcome, WalletPush, classify};

pub struct TestApnsGateway {
    client: reqwest::Client,
    base: String,
}

impl TestApnsGateway {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { client, base: base.trim_end_matches('/').to_owned() })
    }
}

#[derive(serde::Deserialize)]
struct Refusal {
    #[serde(default)]
    reason: String,
}

#[async_trait]
impl PushGateway for TestApnsGateway {
    async fn send(&self, push: WalletPush<'_>) -> PushOutcome {
        let expires_at = chrono::Utc::now().timestamp() + 24 * 3600;
        let sent = self
            .client
            .post(format!("{}/3/device/{}", self.base, push.device_token))
            .header("apns-topic", push.topic)
            .header("apns-push-type", "background")
            .header("apns-priority", "5")
            .header("apns-expiration", expires_at.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // Without the address: it holds the device's push token.
            Err(e) => return PushOutcome::Retry(format!("the APNs stand-in did not answer: {}", e.without_url())),
        };
        let status = response.status().as_u16();
        if status == 200 {
            return PushOutcome::Delivered;
        }
        let reason = response.json::<Refusal>().await.map(|r| r.reason).unwrap_or_default();
        classify(status, &reason)
    }
}
