//! The one seam between the push worker and APNs: a gateway sends one notification and says
//! what happened. The real one is a thin adapter over a2 ([`super::apns`]); tests use fakes.

use async_trait::async_trait;

/// One Wallet update notification: an empty payload to one device, for one pass type.
#[derive(Debug, Clone, Copy)]
pub struct WalletPush<'a> {
    pub device_token: &'a str,
    /// The pass type identifier (the APNs topic).
    pub topic: &'a str,
}

/// What a send achieved, and so what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The device token is dead (410 `Unregistered`, 400 `BadDeviceToken`): forget the
    /// registration.
    DeadToken(String),
    /// Worth trying again later (429, 5xx, timeouts, connection errors).
    Retry(String),
    /// The credentials or topic are wrong (403, `TopicDisallowed`, `DeviceTokenNotForTopic`,
    /// bad certificate): nothing goes through until an operator fixes the configuration.
    ConfigError(String),
    /// APNs refused this request for good (another 4xx): retrying would not help.
    Rejected(String),
}

impl PushOutcome {
    /// The label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::DeadToken(_) => "dead_token",
            Self::Retry(_) => "retry",
            Self::ConfigError(_) => "config_error",
            Self::Rejected(_) => "rejected",
        }
    }
}

#[async_trait]
pub trait PushGateway: Send + Sync + 'static {
    async fn send(&self, push: WalletPush<'_>) -> PushOutcome;
}

/// Maps an APNs answer (HTTP status and `reason`) to what to do, per Apple's documented
/// reasons ("Handling notification responses from APNs").
pub fn classify(status: u16, reason: &str) -> PushOutcome {
    let described = format!("{reason} ({status})");
    match (status, reason) {
        (200, _) => PushOutcome::Delivered,
        (410, _) | (400, "BadDeviceToken") => PushOutcome::DeadToken(described),
        (
            _,
            "TopicDisallowed"
            | "DeviceTokenNotForTopic"
            | "BadTopic"
            | "MissingTopic"
            | "BadCertificate"
            | "BadCertificateEnvironment"
            | "ExpiredProviderToken"
            | "InvalidProviderToken"
            | "MissingProviderToken"
            | "Forbidden",
        )
        | (403, _) => PushOutcome::ConfigError(described),
        (429, _) | (500..=599, _) => PushOutcome::Retry(described),
        _ => PushOutcome::Rejected(described),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_apns_answer_maps_to_the_right_action() {
        assert_eq!(classify(200, ""), PushOutcome::Delivered);
        assert!(matches!(classify(410, "Unregistered"), PushOutcome::DeadToken(_)));
        assert!(matches!(classify(410, "ExpiredToken"), PushOutcome::DeadToken(_)));
        assert!(matches!(classify(400, "BadDeviceToken"), PushOutcome::DeadToken(_)));
        for reason in [
            "TopicDisallowed",
            "DeviceTokenNotForTopic",
            "BadCertificate",
            "BadCertificateEnvironment",
            "InvalidProviderToken",
            "ExpiredProviderToken",
            "Forbidden",
        ] {
            assert!(matches!(classify(403, reason), PushOutcome::ConfigError(_)), "{reason}");
        }
        assert!(matches!(classify(400, "DeviceTokenNotForTopic"), PushOutcome::ConfigError(_)));
        assert!(matches!(classify(400, "TopicDisallowed"), PushOutcome::ConfigError(_)));
        for (status, reason) in [
            (429, "TooManyRequests"),
            (429, "TooManyProviderTokenUpdates"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (503, "Shutdown"),
        ] {
            assert!(matches!(classify(status, reason), PushOutcome::Retry(_)), "{reason}");
        }
        for (status, reason) in [
            (400, "BadCollapseId"),
            (413, "PayloadTooLarge"),
            (404, "BadPath"),
            (405, "MethodNotAllowed"),
            (400, "PayloadEmpty"),
        ] {
            assert!(matches!(classify(status, reason), PushOutcome::Rejected(_)), "{reason}");
        }
        assert_eq!(classify(429, "TooManyRequests"), PushOutcome::Retry("TooManyRequests (429)".into()));
    }
}
