//! OAuth access tokens for the Wallet API, from the service-account key.
//!
//! yup-oauth2's service-account flow signs an RS256 assertion with the key, exchanges it at the
//! key's `token_uri` (a JWT-bearer grant), caches the token in memory and fetches a new one a
//! minute before it expires. Tokens are secrets: they are never logged (see `telemetry`, which
//! keeps yup-oauth2's own debug lines, which print tokens, out of the log).

use std::time::Duration;

use secrecy::SecretString;
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::{DefaultHyperClientBuilder, HyperClientBuilder, ServiceAccountAuthenticator};

use super::config::{GoogleSetupError, ServiceAccount};
use super::error::GoogleError;

/// The one scope the Wallet API needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/wallet_object.issuer";

type Connector = <DefaultHyperClientBuilder as HyperClientBuilder>::Connector;

pub struct TokenSource {
    authenticator: Authenticator<Connector>,
}

impl TokenSource {
    pub async fn new(account: &ServiceAccount, timeout: Duration) -> Result<Self, GoogleSetupError> {
        let authenticator = ServiceAccountAuthenticator::builder(account.key.clone())
            .with_timeout(timeout)
            .build()
            .await
            .map_err(|e| GoogleSetupError(format!("LOY_GOOGLE_SERVICE_ACCOUNT_KEY: cannot use the key ({e})")))?;
        Ok(Self { authenticator })
    }

    /// A valid access token: the cached one, or a fresh one from the token endpoint.
    pub async fn token(&self) -> Result<SecretString, GoogleError> {
        match self.authenticator.token(&[SCOPE]).await {
            Ok(token) => match token.token() {
                Some(token) => Ok(SecretString::from(token.to_owned())),
                None => Err(GoogleError::no_answer("the token endpoint sent no access token")),
            },
            Err(e) => Err(classify(e)),
        }
    }
}

/// The token endpoint refusing the grant (a revoked key, a wrong clock) will refuse it again;
/// anything else (no connection, a timeout, an answer that is not JSON, as proxies and 5xx
/// pages send) may pass later.
fn classify(e: yup_oauth2::Error) -> GoogleError {
    match e {
        yup_oauth2::Error::AuthError(auth) => GoogleError::Permanent {
            status: None,
            message: format!("the OAuth token endpoint refused the service account: {auth}"),
        },
        other => GoogleError::no_answer(format!("no OAuth access token: {other}")),
    }
}
