//! Signs save and delete callbacks the way Google does (`ECv2SigningOnly`, as in Google's "use
//! callbacks for saves and deletions" guide): a root key, published in Google's key-list format,
//! signs a short-lived intermediate key, which signs the message for the issuer. The keys are
//! P-256 test keys made with ring; the length-prefixed encoding is written out here, apart from
//! the code under test.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Duration, Utc};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

pub struct EcKey(EcdsaKeyPair);

impl EcKey {
    pub fn generate() -> Self {
        let (alg, rng) = (&ECDSA_P256_SHA256_ASN1_SIGNING, SystemRandom::new());
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    /// Base64 DER SubjectPublicKeyInfo: the fixed P-256 header, then the uncompressed point.
    pub fn spki(&self) -> String {
        let header = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        BASE64.encode([header.as_slice(), self.0.public_key().as_ref()].concat())
    }

    /// Each part as its 4-byte little-endian length and its bytes, signed (ECDSA P-256, DER).
    pub fn sign(&self, parts: &[&str]) -> String {
        let signed: Vec<u8> = parts
            .iter()
            .flat_map(|p| [&u32::try_from(p.len()).unwrap().to_le_bytes()[..], p.as_bytes()].concat())
            .collect();
        BASE64.encode(self.0.sign(&SystemRandom::new(), &signed).unwrap().as_ref())
    }
}

/// Google's callback signer: one root key and one intermediate key.
pub struct GoogleSigner {
    pub root: EcKey,
    pub intermediate: EcKey,
    pub key_expires: DateTime<Utc>,
}

impl Default for GoogleSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl GoogleSigner {
    pub fn new() -> Self {
        Self { root: EcKey::generate(), intermediate: EcKey::generate(), key_expires: Utc::now() + Duration::days(7) }
    }

    /// The root key list as `https://pay.google.com/gp/m/issuer/keys` serves it.
    pub fn key_list(&self) -> String {
        let expires = (Utc::now() + Duration::days(30)).timestamp_millis().to_string();
        json!({"keys": [
            {"keyValue": self.root.spki(), "protocolVersion": "ECv2SigningOnly", "keyExpiration": expires},
        ]})
        .to_string()
    }

    /// The message Google signs, as the JSON string it sends.
    pub fn message(class_id: &str, object_id: &str, event: &str, nonce: &str) -> String {
        let expires = (Utc::now() + Duration::minutes(5)).timestamp_millis();
        json!({
            "classId": class_id, "objectId": object_id, "eventType": event,
            "expTimeMillis": expires, "count": 1, "nonce": nonce,
        })
        .to_string()
    }

    /// The request body for `message`, signed for `issuer`.
    pub fn body(&self, issuer: &str, message: &str) -> Value {
        let expiration = self.key_expires.timestamp_millis().to_string();
        let signed_key = json!({ "keyValue": self.intermediate.spki(), "keyExpiration": expiration }).to_string();
        json!({
            "signature": self.intermediate.sign(&["GooglePayPasses", issuer, "ECv2SigningOnly", message]),
            "intermediateSigningKey": {
                "signedKey": signed_key,
                "signatures": [self.root.sign(&["GooglePayPasses", "ECv2SigningOnly", &signed_key])],
            },
            "protocolVersion": "ECv2SigningOnly",
            "signedMessage": message,
        })
    }
}
