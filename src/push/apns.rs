//! The APNs gateway through a2. a2's endpoint is fixed to Apple's hosts, so this adapter stays
//! thin and everything else is tested through [`PushGateway`] fakes; the unit tests here check
//! exactly what it builds.

use a2::request::notification::{NotificationOptions, Priority, PushType};
use a2::request::payload::PayloadLike;
use async_trait::async_trait;
use serde::Serialize;

use super::gateway::{PushGateway, PushOutcome, WalletPush, classify};

/// Production (Wallet push tokens are production tokens) or Apple's development servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApnsEndpoint {
    Production,
    Sandbox,
}

impl From<ApnsEndpoint> for a2::Endpoint {
    fn from(e: ApnsEndpoint) -> Self {
        match e {
            ApnsEndpoint::Production => a2::Endpoint::Production,
            ApnsEndpoint::Sandbox => a2::Endpoint::Sandbox,
        }
    }
}

/// A Wallet update: an empty JSON dictionary `{}` as the payload (Apple, "Adding a Web Service
/// to Update Passes"), addressed to the pass type's topic as a background push, which APNs
/// requires to carry priority 5.
#[derive(Debug, Serialize)]
pub struct WalletPayload<'a> {
    #[serde(skip)]
    device_token: &'a str,
    #[serde(skip)]
    options: NotificationOptions<'a>,
}

impl<'a> WalletPayload<'a> {
    /// `expires_at`: unix seconds until which APNs keeps retrying an offline device.
    pub fn new(push: WalletPush<'a>, expires_at: u64) -> Self {
        Self {
            device_token: push.device_token,
            options: NotificationOptions {
                apns_topic: Some(push.topic),
                apns_push_type: Some(PushType::Background),
                apns_priority: Some(Priority::Normal),
                apns_expiration: Some(expires_at),
                ..Default::default()
            },
        }
    }
}

impl PayloadLike for WalletPayload<'_> {
    fn get_device_token(&self) -> &str {
        self.device_token
    }

    fn get_options(&self) -> &NotificationOptions<'_> {
        &self.options
    }
}

pub struct ApnsGateway {
    client: a2::Client,
}

fn config(endpoint: ApnsEndpoint, timeout_secs: u64) -> a2::ClientConfig {
    a2::ClientConfig {
        endpoint: endpoint.into(),
        request_timeout_secs: Some(timeout_secs),
        pool_idle_timeout_secs: Some(600),
    }
}

impl ApnsGateway {
    /// Certificate authentication with the Pass Type ID certificate as PKCS#12.
    pub fn with_pkcs12(
        der: &[u8],
        password: &str,
        endpoint: ApnsEndpoint,
        timeout_secs: u64,
    ) -> Result<Self, a2::Error> {
        let client = a2::Client::certificate(&mut std::io::Cursor::new(der), password, config(endpoint, timeout_secs))?;
        Ok(Self { client })
    }

    /// Certificate authentication with PEM files (a2 wants the key as PKCS#8).
    pub fn with_pem(
        cert_pem: &[u8],
        key_pkcs8_pem: &[u8],
        endpoint: ApnsEndpoint,
        timeout_secs: u64,
    ) -> Result<Self, a2::Error> {
        let client = a2::Client::certificate_parts(cert_pem, key_pkcs8_pem, config(endpoint, timeout_secs))?;
        Ok(Self { client })
    }

    /// Token authentication with a `.p8` key; its team must own the pass type.
    pub fn with_token(
        p8_pem: &[u8],
        key_id: &str,
        team_id: &str,
        endpoint: ApnsEndpoint,
        timeout_secs: u64,
    ) -> Result<Self, a2::Error> {
        let client =
            a2::Client::token(&mut std::io::Cursor::new(p8_pem), key_id, team_id, config(endpoint, timeout_secs))?;
        Ok(Self { client })
    }
}

/// What an a2 result means for the worker.
pub fn outcome(result: Result<a2::Response, a2::Error>) -> PushOutcome {
    match result {
        Ok(response) => classify(response.code, ""),
        Err(a2::Error::ResponseError(response)) => {
            let reason = response.error.map(|e| format!("{:?}", e.reason)).unwrap_or_default();
            classify(response.code, &reason)
        }
        Err(e @ (a2::Error::ConnectionError(_) | a2::Error::ClientError(_))) => PushOutcome::Retry(e.to_string()),
        Err(e) => PushOutcome::ConfigError(e.to_string()),
    }
}

#[async_trait]
impl PushGateway for ApnsGateway {
    async fn send(&self, push: WalletPush<'_>) -> PushOutcome {
        let expires_at = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0) + 24 * 3600;
        outcome(self.client.send(WalletPayload::new(push, expires_at)).await)
    }
}

/// The gateway the settings ask for: `None` when APNs is off (including `auto` with
/// development certificates, whose passes real iPhones never register).
pub fn from_settings(
    settings: &crate::config::Settings,
    apple: &crate::apple::Apple,
) -> anyhow::Result<Option<std::sync::Arc<dyn PushGateway>>> {
    use crate::config::push::ApnsMode;
    use anyhow::Context;
    let apns = &settings.push.apns;
    let endpoint = if apns.sandbox { ApnsEndpoint::Sandbox } else { ApnsEndpoint::Production };
    let timeout = settings.push.send_timeout.as_secs().max(1);
    let identity = &apple.identity;
    if let Some(url) = &apns.test_url
        && apns.mode != ApnsMode::Off
    {
        // The configuration refuses this in production.
        tracing::warn!(endpoint = %url, "APNs is replaced by the test stand-in at LOY_APNS_ENDPOINT: nothing reaches Apple");
        let gateway = super::apns_test::TestApnsGateway::new(url, settings.push.send_timeout)?;
        return Ok(Some(std::sync::Arc::new(gateway)));
    }
    let use_token = match apns.mode {
        ApnsMode::Off => return Ok(None),
        ApnsMode::Token => true,
        ApnsMode::Certificate => false,
        ApnsMode::Auto if apns.key.is_some() => true,
        ApnsMode::Auto if identity.is_development() => {
            tracing::info!(
                "APNs is off: passes are signed with development certificates, which real iPhones do not accept; \
                 configure LOY_APPLE_CERTIFICATE (or LOY_APNS_KEY) to push updates"
            );
            return Ok(None);
        }
        ApnsMode::Auto => false,
    };
    let gateway: ApnsGateway = if use_token {
        let key_path = apns.key.as_ref().context("LOY_APNS_KEY is required for token authentication")?;
        let key_id = apns.key_id.as_deref().context("LOY_APNS_KEY_ID is required for token authentication")?;
        // Apple accepts a token key's pushes for a pass type only from the team that owns it.
        let team_id = apns.team_id.clone().unwrap_or_else(|| identity.team_id.clone());
        anyhow::ensure!(
            team_id == identity.team_id,
            "LOY_APNS_TEAM_ID ({team_id}) is not the team that owns the pass type {} ({}): Apple refuses such pushes",
            identity.pass_type_id,
            identity.team_id
        );
        let pem =
            std::fs::read(key_path).with_context(|| format!("LOY_APNS_KEY: cannot read {}", key_path.display()))?;
        ApnsGateway::with_token(&pem, key_id, &team_id, endpoint, timeout)
            .map_err(|e| anyhow::anyhow!("LOY_APNS_KEY: {} is not a usable .p8 key ({e})", key_path.display()))?
    } else {
        anyhow::ensure!(
            !identity.is_development(),
            "LOY_APNS=certificate needs a real Pass Type ID certificate (LOY_APPLE_CERTIFICATE); \
             development certificates cannot push"
        );
        let (cert, key) = identity.pem_parts().context("while exporting the pass certificate for APNs")?;
        ApnsGateway::with_pem(&cert, &key, endpoint, timeout)
            .map_err(|e| anyhow::anyhow!("the pass certificate cannot be used for APNs: {e}"))?
    };
    tracing::info!(auth = if use_token { "token" } else { "certificate" }, topic = %identity.pass_type_id, sandbox = apns.sandbox, "APNs configured");
    Ok(Some(std::sync::Arc::new(gateway)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_an_empty_dictionary_for_the_pass_type_topic_as_a_background_push() {
        let payload =
            WalletPayload::new(WalletPush { device_token: "abcd", topic: "pass.com.example.loy" }, 1_900_000_000);
        assert_eq!(payload.to_json_string().unwrap(), "{}");
        assert_eq!(payload.get_device_token(), "abcd");
        let options = payload.get_options();
        assert_eq!(options.apns_topic, Some("pass.com.example.loy"));
        assert!(matches!(options.apns_push_type, Some(PushType::Background)));
        assert!(matches!(options.apns_priority, Some(Priority::Normal)));
        assert_eq!(options.apns_expiration, Some(1_900_000_000));
        assert!(options.apns_collapse_id.is_none() && options.apns_id.is_none());
    }

    fn response(code: u16, reason: Option<a2::ErrorReason>) -> a2::Error {
        a2::Error::ResponseError(a2::Response {
            error: reason.map(|reason| a2::ErrorBody { reason, timestamp: None }),
            apns_id: None,
            code,
        })
    }

    #[test]
    fn a2_answers_map_to_outcomes() {
        use a2::ErrorReason as R;
        assert_eq!(outcome(Ok(a2::Response { error: None, apns_id: None, code: 200 })), PushOutcome::Delivered);
        assert!(matches!(outcome(Err(response(410, Some(R::Unregistered)))), PushOutcome::DeadToken(_)));
        assert!(matches!(outcome(Err(response(400, Some(R::BadDeviceToken)))), PushOutcome::DeadToken(_)));
        assert!(matches!(outcome(Err(response(429, Some(R::TooManyRequests)))), PushOutcome::Retry(_)));
        assert!(matches!(outcome(Err(response(503, Some(R::ServiceUnavailable)))), PushOutcome::Retry(_)));
        assert!(matches!(outcome(Err(response(403, Some(R::BadCertificate)))), PushOutcome::ConfigError(_)));
        assert!(matches!(outcome(Err(response(400, Some(R::DeviceTokenNotForTopic)))), PushOutcome::ConfigError(_)));
        assert!(matches!(outcome(Err(response(400, Some(R::TopicDisallowed)))), PushOutcome::ConfigError(_)));
        assert!(matches!(outcome(Err(response(413, Some(R::PayloadTooLarge)))), PushOutcome::Rejected(_)));
    }
}
