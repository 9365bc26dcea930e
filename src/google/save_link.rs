//! The "Add to Google Wallet" link: `https://pay.google.com/gp/v/save/{jwt}`.
//!
//! The JWT is "skinny": it names an object that already exists through the REST API instead of
//! carrying the object, so the link stays short (Google advises staying under about 1 800
//! characters, because some browsers cut longer URLs) and the object's content never travels
//! through the customer's browser. Claims as Google's JWT reference lists them: `iss` (the
//! service account's e-mail), `aud` = `google`, `typ` = `savetowallet`, `iat`, `origins` (the
//! pages allowed to show the button) and `payload`.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::config::{GoogleSetupError, ServiceAccount};
use super::error::GoogleError;

/// Where a save link points; the JWT follows.
pub const SAVE_URL_PREFIX: &str = "https://pay.google.com/gp/v/save/";

/// The claims of a save-link JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveClaims {
    pub iss: String,
    pub aud: String,
    pub typ: String,
    pub iat: i64,
    pub origins: Vec<String>,
    pub payload: SavePayload,
}

/// What the link saves: one loyalty object, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavePayload {
    pub loyalty_objects: Vec<ObjectReference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    pub id: String,
    pub class_id: String,
}

/// Signs save links with the service-account key.
pub struct SaveLinkSigner {
    key: EncodingKey,
    issuer_email: String,
    origin: String,
}

impl SaveLinkSigner {
    /// A signer for pages served from `public_url` (its origin goes into `origins`).
    pub fn new(account: &ServiceAccount, public_url: &str) -> Result<Self, GoogleSetupError> {
        super::jwt::install();
        let key = super::jwt::rsa_encoding_key(&account.key.private_key).map_err(|_| {
            GoogleSetupError("LOY_GOOGLE_SERVICE_ACCOUNT_KEY: the private_key is not an RSA private key".to_owned())
        })?;
        let origin = url::Url::parse(public_url)
            .map(|u| u.origin().ascii_serialization())
            .map_err(|_| GoogleSetupError(format!("LOY_PUBLIC_URL: `{public_url}` is not an absolute URL")))?;
        Ok(Self { key, issuer_email: account.key.client_email.clone(), origin })
    }

    pub fn claims(&self, object_id: &str, class_id: &str, now: DateTime<Utc>) -> SaveClaims {
        SaveClaims {
            iss: self.issuer_email.clone(),
            aud: "google".to_owned(),
            typ: "savetowallet".to_owned(),
            iat: now.timestamp(),
            origins: vec![self.origin.clone()],
            payload: SavePayload {
                loyalty_objects: vec![ObjectReference { id: object_id.to_owned(), class_id: class_id.to_owned() }],
            },
        }
    }

    /// The signed JWT for one object.
    pub fn jwt(&self, object_id: &str, class_id: &str, now: DateTime<Utc>) -> Result<String, GoogleError> {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &self.claims(object_id, class_id, now), &self.key)
            .map_err(|e| GoogleError::Permanent { status: None, message: format!("signing the save link failed: {e}") })
    }

    /// The whole link.
    pub fn link(&self, object_id: &str, class_id: &str, now: DateTime<Utc>) -> Result<String, GoogleError> {
        Ok(format!("{SAVE_URL_PREFIX}{}", self.jwt(object_id, class_id, now)?))
    }
}
