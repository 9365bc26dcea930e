//! Google Wallet's save and delete callbacks: the POST Google sends to a class's
//! `callbackOptions.url` when a customer saves or deletes a pass.
//!
//! The body is signed with the `ECv2SigningOnly` protocol of Tink's `PaymentMethodTokenRecipient`
//! (sender id `GooglePayPasses`, recipient id = our issuer id), as Google's "use callbacks for
//! saves and deletions" guide prescribes: a Google root key (published at
//! [`GOOGLE_ROOT_KEYS_URL`]) signs a short-lived intermediate key, which signs the message.
//! [`verify`] checks a body against root keys; [`RootKeys`] fetches and keeps those keys.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

use crate::clock::Clock;

/// Where Google publishes the root signing keys of its callbacks.
pub const GOOGLE_ROOT_KEYS_URL: &str = "https://pay.google.com/gp/m/issuer/keys";
/// The sender id Google signs pass callbacks with (a constant of the protocol).
const SENDER_ID: &str = "GooglePayPasses";
const PROTOCOL: &str = "ECv2SigningOnly";
/// Root keys are fetched again at least this often, even when they expire later.
const ROOT_KEYS_MAX_AGE: chrono::Duration = chrono::Duration::hours(24);
/// After a failed fetch, callers get the failure (or the keys kept) without a new request.
const RETRY_AFTER_FAILURE: chrono::Duration = chrono::Duration::minutes(1);

/// A verified callback: a customer saved or deleted the pass `object_id` of class `class_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub class_id: String,
    pub object_id: String,
    pub event: CallbackEvent,
    /// Google may deliver a callback more than once; the nonce identifies the event.
    pub nonce: String,
    /// When the signed message expires (`expTimeMillis`).
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEvent {
    Save,
    Delete,
}

/// Why a callback body was refused, or why no root keys are at hand to check it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback body is not a signed Google Wallet message: {0}")]
    Malformed(String),
    #[error("the callback is signed with protocol {0:?}; only ECv2SigningOnly is accepted")]
    WrongProtocol(String),
    #[error("no signature of the callback's intermediate signing key verifies with a Google root key")]
    UntrustedIntermediateKey,
    #[error("the callback's intermediate signing key expired at {0}")]
    IntermediateKeyExpired(DateTime<Utc>),
    #[error("the callback's message signature does not verify for this issuer")]
    BadMessageSignature,
    #[error("the callback's message expired at {0}")]
    MessageExpired(DateTime<Utc>),
    #[error("no Google root signing keys are available: {0}")]
    NoRootKeys(String),
}

/// One of Google's root signing keys: a P-256 public key and when it stops being trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKey {
    /// The uncompressed point, as ring's `UnparsedPublicKey` takes it.
    point: Vec<u8>,
    expires_at: DateTime<Utc>,
}

impl RootKey {
    /// A key from its `keyValue`: a base64 DER SubjectPublicKeyInfo.
    pub fn from_spki_base64(key_value: &str, expires_at: DateTime<Utc>) -> Result<Self, String> {
        Ok(Self { point: p256_point(key_value)?, expires_at })
    }
}

/// The request body, field for field; like Tink, nothing else is allowed at these two levels.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    protocol_version: String,
    signature: String,
    intermediate_signing_key: IntermediateKey,
    signed_message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IntermediateKey {
    signed_key: String,
    signatures: Vec<String>,
}

/// `signedKey`, a JSON string; further fields are allowed (Tink keeps room to extend it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedKey {
    key_value: String,
    key_expiration: serde_json::Value,
}

/// `signedMessage`, a JSON string. Google also sends a `count`, which loy does not need.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    class_id: String,
    object_id: String,
    event_type: String,
    exp_time_millis: serde_json::Value,
    nonce: String,
}

/// Milliseconds since the epoch. Google writes `keyExpiration` as a string and `expTimeMillis`
/// as a number; either form is read for both.
fn millis(value: &serde_json::Value, field: &str) -> Result<DateTime<Utc>, CallbackError> {
    value
        .as_i64()
        .or_else(|| value.as_str()?.parse().ok())
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| CallbackError::Malformed(format!("{field} is not a time in milliseconds")))
}

/// Checks a callback body as Tink's `PaymentMethodTokenRecipient` does for `ECv2SigningOnly`,
/// and also refuses an expired message (`expTimeMillis`). `roots` are Google's root keys;
/// those expired at `now` are not used.
pub fn verify(body: &[u8], issuer_id: &str, roots: &[RootKey], now: DateTime<Utc>) -> Result<Callback, CallbackError> {
    let envelope: Envelope = parse(body, "the body")?;
    if envelope.protocol_version != PROTOCOL {
        return Err(CallbackError::WrongProtocol(envelope.protocol_version));
    }
    let key = &envelope.intermediate_signing_key;
    let key_signatures =
        key.signatures.iter().map(|s| decode(s, "a signature of the signed key")).collect::<Result<Vec<_>, _>>()?;
    let roots: Vec<&[u8]> = roots.iter().filter(|r| r.expires_at > now).map(|r| r.point.as_slice()).collect();
    if roots.is_empty() {
        return Err(CallbackError::NoRootKeys("every root key has expired".to_owned()));
    }
    if !verifies_any(&roots, &key_signatures, &length_prefixed(&[SENDER_ID, PROTOCOL, &key.signed_key])) {
        return Err(CallbackError::UntrustedIntermediateKey);
    }

    let signed_key: SignedKey = parse(key.signed_key.as_bytes(), "signedKey")?;
    let key_expires = millis(&signed_key.key_expiration, "keyExpiration")?;
    if key_expires <= now {
        return Err(CallbackError::IntermediateKeyExpired(key_expires));
    }
    let intermediate = p256_point(&signed_key.key_value).map_err(CallbackError::Malformed)?;
    let signature = decode(&envelope.signature, "signature")?;
    let signed = length_prefixed(&[SENDER_ID, issuer_id, PROTOCOL, &envelope.signed_message]);
    if !verifies_any(&[&intermediate], &[signature], &signed) {
        return Err(CallbackError::BadMessageSignature);
    }

    let message: Message = parse(envelope.signed_message.as_bytes(), "signedMessage")?;
    let expires_at = millis(&message.exp_time_millis, "expTimeMillis")?;
    if expires_at <= now {
        return Err(CallbackError::MessageExpired(expires_at));
    }
    let event = match message.event_type.as_str() {
        "save" => CallbackEvent::Save,
        "del" => CallbackEvent::Delete,
        other => return Err(CallbackError::Malformed(format!("unknown eventType {other:?}"))),
    };
    Ok(Callback { class_id: message.class_id, object_id: message.object_id, event, nonce: message.nonce, expires_at })
}

fn parse<'a, T: Deserialize<'a>>(json: &'a [u8], what: &str) -> Result<T, CallbackError> {
    serde_json::from_slice(json).map_err(|e| CallbackError::Malformed(format!("{what}: {e}")))
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, CallbackError> {
    BASE64.decode(text).map_err(|_| CallbackError::Malformed(format!("{what} is not base64")))
}

/// What Tink signs: each part as its 4-byte little-endian length, then its UTF-8 bytes.
fn length_prefixed(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Whether any of `signatures` (ECDSA P-256 SHA-256, DER) verifies with any of `keys`.
fn verifies_any(keys: &[&[u8]], signatures: &[Vec<u8>], signed: &[u8]) -> bool {
    keys.iter().any(|key| {
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key);
        signatures.iter().any(|signature| key.verify(signed, signature).is_ok())
    })
}

/// The uncompressed point of a base64 DER SubjectPublicKeyInfo holding a P-256 key. openssl
/// (already linked for pass signing) reads the DER, so no ASN.1 is parsed by hand here.
fn p256_point(key_value: &str) -> Result<Vec<u8>, String> {
    use openssl::{bn::BigNumContext, ec::PointConversionForm, nid::Nid, pkey::PKey};
    let der = BASE64.decode(key_value).map_err(|_| "keyValue is not base64".to_owned())?;
    let key = PKey::public_key_from_der(&der)
        .and_then(|key| key.ec_key())
        .map_err(|_| "keyValue is not an EC SubjectPublicKeyInfo".to_owned())?;
    if key.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
        return Err("keyValue is not a P-256 key".to_owned());
    }
    BigNumContext::new()
        .and_then(|mut ctx| key.public_key().to_bytes(key.group(), PointConversionForm::UNCOMPRESSED, &mut ctx))
        .map_err(|e| format!("keyValue cannot be read: {e}"))
}

/// The usable keys of Google's key list: like Tink, keys of other protocols, keys without an
/// expiration and expired keys are skipped, and a list with none left is an error.
fn parse_key_list(body: &[u8], now: DateTime<Utc>) -> Result<Vec<RootKey>, String> {
    let list: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the key list is not JSON: {e}"))?;
    let listed = list["keys"].as_array().ok_or("the key list has no \"keys\" array")?;
    let mut keys = Vec::new();
    for key in listed.iter().filter(|key| key["protocolVersion"] == PROTOCOL) {
        let Some(expiration) = key.get("keyExpiration") else { continue };
        let expires_at = millis(expiration, "keyExpiration").map_err(|e| e.to_string())?;
        if expires_at > now {
            keys.push(RootKey::from_spki_base64(key["keyValue"].as_str().unwrap_or_default(), expires_at)?);
        }
    }
    if keys.is_empty() {
        return Err("the key list has no unexpired ECv2SigningOnly key".to_owned());
    }
    Ok(keys)
}

/// Google's root keys, fetched from a configurable URL and kept until the earliest of them
/// expires (at most 24 hours). Callers arriving during a fetch wait for it instead of starting
/// their own, and a failed fetch is tried again at most once a minute, so a burst of callbacks
/// never turns into a burst of requests to Google.
pub struct RootKeys {
    http: reqwest::Client,
    url: String,
    clock: Arc<dyn Clock>,
    /// Held across a fetch: that is what makes concurrent callers share it.
    state: tokio::sync::Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    keys: Option<Arc<Vec<RootKey>>>,
    fresh_until: Option<DateTime<Utc>>,
    /// When the last fetch failed, and why.
    failure: Option<(DateTime<Utc>, String)>,
}

impl Kept {
    /// The kept keys while any of them is still valid (served when a refresh failed).
    fn usable(&self, now: DateTime<Utc>) -> Option<Arc<Vec<RootKey>>> {
        self.keys.clone().filter(|keys| keys.iter().any(|k| k.expires_at > now))
    }
}

impl RootKeys {
    pub fn new(url: impl Into<String>, timeout: Duration, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("loy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, url: url.into(), clock, state: tokio::sync::Mutex::new(Kept::default()) })
    }

    /// The current root keys, fetched when none are fresh and the last failure is over a minute old.
    pub async fn get(&self) -> Result<Arc<Vec<RootKey>>, CallbackError> {
        let mut kept = self.state.lock().await;
        let now = self.clock.now();
        if let (Some(keys), Some(until)) = (&kept.keys, kept.fresh_until) {
            if now < until {
                return Ok(Arc::clone(keys));
            }
        }
        if let Some((at, reason)) = &kept.failure {
            if now < *at + RETRY_AFTER_FAILURE {
                return kept.usable(now).ok_or_else(|| CallbackError::NoRootKeys(reason.clone()));
            }
        }
        match self.fetch(now).await {
            Ok(keys) => {
                let earliest = keys.iter().map(|k| k.expires_at).min().unwrap_or(now);
                let keys = Arc::new(keys);
                *kept = Kept {
                    keys: Some(Arc::clone(&keys)),
                    fresh_until: Some(earliest.min(now + ROOT_KEYS_MAX_AGE)),
                    failure: None,
                };
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, error = %reason, "Google Wallet root keys could not be fetched");
                kept.failure = Some((now, reason.clone()));
                kept.usable(now).ok_or(CallbackError::NoRootKeys(reason))
            }
        }
    }

    /// [`verify`] with the current root keys.
    pub async fn verify(&self, body: &[u8], issuer_id: &str) -> Result<Callback, CallbackError> {
        let roots = self.get().await?;
        verify(body, issuer_id, &roots, self.clock.now())
    }

    async fn fetch(&self, now: DateTime<Utc>) -> Result<Vec<RootKey>, String> {
        let response = self.http.get(&self.url).send().await.map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered HTTP {}", self.url, response.status().as_u16()));
        }
        let body = response.bytes().await.map_err(|e| format!("cannot read the answer of {}: {e}", self.url))?;
        parse_key_list(&body, now)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Duration as Span;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::clock::TestClock;

    const ISSUER: &str = "3388000000022025937";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// A P-256 key pair made with ring, published as Google publishes keys.
    struct TestKey(EcdsaKeyPair);

    impl TestKey {
        fn generate() -> Self {
            let (alg, rng) = (&ECDSA_P256_SHA256_ASN1_SIGNING, SystemRandom::new());
            Self(
                EcdsaKeyPair::from_pkcs8(alg, EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap().as_ref(), &rng).unwrap(),
            )
        }

        /// Base64 DER SubjectPublicKeyInfo: the fixed P-256 header, then the uncompressed point.
        fn spki(&self) -> String {
            let header = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
            BASE64.encode([header.as_slice(), self.0.public_key().as_ref()].concat())
        }

        /// Signs the parts as Tink does, with its own length-prefixing (not the code under test).
        fn sign(&self, parts: &[&str]) -> String {
            let signed: Vec<u8> = parts
                .iter()
                .flat_map(|p| [&u32::try_from(p.len()).unwrap().to_le_bytes()[..], p.as_bytes()].concat())
                .collect();
            BASE64.encode(self.0.sign(&SystemRandom::new(), &signed).unwrap().as_ref())
        }

        fn root(&self) -> RootKey {
            RootKey::from_spki_base64(&self.spki(), now() + Span::days(30)).unwrap()
        }
    }

    /// Signs callbacks the way Google does: root key -> intermediate key -> message.
    struct Google {
        root: TestKey,
        intermediate: TestKey,
        key_expires: DateTime<Utc>,
        message_expires: DateTime<Utc>,
    }

    impl Google {
        fn new() -> Self {
            let (root, intermediate) = (TestKey::generate(), TestKey::generate());
            Self { root, intermediate, key_expires: now() + Span::days(7), message_expires: now() + Span::minutes(5) }
        }

        fn body(&self, recipient: &str, event: &str) -> Value {
            let expiration = self.key_expires.timestamp_millis().to_string();
            let signed_key = json!({ "keyValue": self.intermediate.spki(), "keyExpiration": expiration }).to_string();
            let message = json!({
                "classId": format!("{ISSUER}.gold"), "objectId": format!("{ISSUER}.L-0001"), "eventType": event,
                "expTimeMillis": self.message_expires.timestamp_millis(), "count": 1, "nonce": "4e0b-n1",
            })
            .to_string();
            json!({
                "signature": self.intermediate.sign(&["GooglePayPasses", recipient, "ECv2SigningOnly", &message]),
                "intermediateSigningKey": {
                    "signedKey": signed_key,
                    "signatures": [self.root.sign(&["GooglePayPasses", "ECv2SigningOnly", &signed_key])],
                },
                "protocolVersion": "ECv2SigningOnly",
                "signedMessage": message,
            })
        }

        /// Verifies with two roots: an unrelated one and this signer's.
        fn check(&self, body: &Value) -> Result<Callback, CallbackError> {
            verify(body.to_string().as_bytes(), ISSUER, &[TestKey::generate().root(), self.root.root()], now())
        }
    }

    /// What `verify` says about one of `google`'s bodies after `change`; it must refuse it.
    fn refusal(google: &Google, change: impl FnOnce(&mut Value)) -> CallbackError {
        let mut body = google.body(ISSUER, "save");
        change(&mut body);
        google.check(&body).expect_err("the callback was accepted")
    }

    fn replace(body: &mut Value, pointer: &str, from: &str, to: &str) {
        let field = body.pointer_mut(pointer).unwrap();
        *field = json!(field.as_str().unwrap().replace(from, to));
    }

    #[test]
    fn a_save_signed_like_google_verifies_and_names_the_pass() {
        let google = Google::new();
        let callback = google.check(&google.body(ISSUER, "save")).unwrap();
        let (class_id, object_id, nonce) = (format!("{ISSUER}.gold"), format!("{ISSUER}.L-0001"), "4e0b-n1".to_owned());
        let expires_at = now() + Span::minutes(5);
        assert_eq!(callback, Callback { class_id, object_id, event: CallbackEvent::Save, nonce, expires_at });
    }

    #[test]
    fn a_delete_verifies_when_any_one_signature_of_the_intermediate_key_does() {
        let google = Google::new();
        let mut body = google.body(ISSUER, "del");
        let stranger = TestKey::generate().sign(&["GooglePayPasses", "ECv2SigningOnly", "other"]);
        body["intermediateSigningKey"]["signatures"].as_array_mut().unwrap().insert(0, json!(stranger));
        assert_eq!(google.check(&body).unwrap().event, CallbackEvent::Delete);
    }

    #[test]
    fn length_prefixes_are_four_bytes_little_endian() {
        assert_eq!(length_prefixed(&["ab", ""]), [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
    }

    #[test]
    fn a_tampered_message_is_refused() {
        let refused = refusal(&Google::new(), |body| replace(body, "/signedMessage", "\"save\"", "\"del\""));
        assert_eq!(refused, CallbackError::BadMessageSignature);
    }

    #[test]
    fn a_tampered_intermediate_key_is_refused() {
        let google = Google::new();
        let (ours, other) = (google.intermediate.spki(), TestKey::generate().spki());
        let refused = refusal(&google, |body| replace(body, "/intermediateSigningKey/signedKey", &ours, &other));
        assert_eq!(refused, CallbackError::UntrustedIntermediateKey);
    }

    #[test]
    fn an_intermediate_key_signed_by_a_key_that_is_not_a_root_is_refused() {
        let impostor = Google::new();
        let refused = refusal(&Google::new(), |body| *body = impostor.body(ISSUER, "save"));
        assert_eq!(refused, CallbackError::UntrustedIntermediateKey);
    }

    #[test]
    fn an_expired_intermediate_key_is_refused() {
        let refused = refusal(&Google { key_expires: now(), ..Google::new() }, |_| {});
        assert_eq!(refused, CallbackError::IntermediateKeyExpired(now()));
    }

    #[test]
    fn an_expired_message_is_refused() {
        let refused = refusal(&Google { message_expires: now(), ..Google::new() }, |_| {});
        assert_eq!(refused, CallbackError::MessageExpired(now()));
    }

    #[test]
    fn a_message_signed_for_another_issuer_is_refused() {
        let google = Google::new();
        let refused = refusal(&google, |body| *body = google.body("3388000000099999999", "save"));
        assert_eq!(refused, CallbackError::BadMessageSignature);
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let refused = refusal(&Google::new(), |body| body["protocolVersion"] = json!("ECv2"));
        assert_eq!(refused, CallbackError::WrongProtocol("ECv2".to_owned()));
    }

    #[test]
    fn expired_root_keys_are_not_used() {
        let google = Google::new();
        let expired = RootKey { expires_at: now(), ..google.root.root() };
        let refused = verify(google.body(ISSUER, "save").to_string().as_bytes(), ISSUER, &[expired], now());
        assert!(matches!(refused, Err(CallbackError::NoRootKeys(_))), "{refused:?}");
    }

    #[test]
    fn garbage_bodies_are_refused_as_malformed() {
        let google = Google::new();
        let changes: [(&str, Value); 6] = [
            ("", json!("not an object")),
            ("", json!({})),
            ("/signature", json!("not base64!")),
            ("/intermediateSigningKey/signatures", json!(["%%%"])),
            ("/intermediateSigningKey/signedKey", json!(42)),
            ("/unexpected", json!(1)),
        ];
        for (pointer, value) in changes {
            let refused = refusal(&google, |body| match body.pointer_mut(pointer) {
                Some(field) => *field = value,
                None => _ = body.as_object_mut().unwrap().insert(pointer[1..].to_owned(), value),
            });
            assert!(matches!(refused, CallbackError::Malformed(_)), "{pointer}: {refused:?}");
        }
        let missing = refusal(&google, |body| _ = body.as_object_mut().unwrap().remove("signature"));
        assert!(matches!(missing, CallbackError::Malformed(_)), "{missing:?}");
        let unknown_event = google.check(&google.body(ISSUER, "open")).unwrap_err();
        assert!(matches!(unknown_event, CallbackError::Malformed(_)), "{unknown_event:?}");
        let refused = verify(b"{not json", ISSUER, &[google.root.root()], now());
        assert!(matches!(refused, Err(CallbackError::Malformed(_))), "{refused:?}");
    }

    /// A local key server that counts the requests it answers, after `delay`.
    struct KeyServer {
        url: String,
        requests: AtomicUsize,
        answer: std::sync::Mutex<(u16, String)>,
        delay: Duration,
    }

    impl KeyServer {
        async fn start(status: u16, body: String, delay: Duration) -> Arc<Self> {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/keys", listener.local_addr().unwrap());
            let server = Arc::new(Self { url, requests: AtomicUsize::new(0), answer: (status, body).into(), delay });
            let shared = Arc::clone(&server);
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let server = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = socket.read(&mut buf).await.unwrap();
                            assert!(n > 0, "the client closed the connection early");
                            head.extend_from_slice(&buf[..n]);
                        }
                        server.requests.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(server.delay).await;
                        let (status, body) = server.answer.lock().unwrap().clone();
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        socket.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
                    });
                }
            });
            server
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }

        fn answer(&self, status: u16, body: String) {
            *self.answer.lock().unwrap() = (status, body);
        }
    }

    /// Google's key list format, with keys expiring `after` from the real now.
    fn key_list(keys: &[(&TestKey, Span)]) -> String {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(key, after)| {
                let expires = (Utc::now() + *after).timestamp_millis().to_string();
                json!({"keyValue": key.spki(), "protocolVersion": "ECv2SigningOnly", "keyExpiration": expires})
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    fn root_keys(server: &KeyServer) -> (RootKeys, Arc<TestClock>) {
        let clock = Arc::new(TestClock::default());
        (RootKeys::new(&server.url, Duration::from_secs(5), Arc::clone(&clock) as Arc<dyn Clock>).unwrap(), clock)
    }

    #[tokio::test]
    async fn root_keys_are_fetched_once_and_kept_until_the_earliest_expires() {
        let google = Google {
            key_expires: Utc::now() + Span::days(7),
            message_expires: Utc::now() + Span::hours(1),
            ..Google::new()
        };
        let other = TestKey::generate();
        let list = key_list(&[(&google.root, Span::days(30)), (&other, Span::hours(2))]);
        let server = KeyServer::start(200, list, Duration::ZERO).await;
        let (keys, clock) = root_keys(&server);

        for _ in 0..3 {
            let callback = keys.verify(google.body(ISSUER, "save").to_string().as_bytes(), ISSUER).await.unwrap();
            assert_eq!(callback.event, CallbackEvent::Save);
        }
        assert_eq!(server.requests(), 1);

        clock.advance(Span::minutes(119));
        assert_eq!(keys.get().await.unwrap().len(), 2);
        assert_eq!(server.requests(), 1, "kept while every key is valid");

        clock.advance(Span::minutes(2));
        server.answer(200, key_list(&[(&google.root, Span::days(30)), (&other, Span::days(1))]));
        assert_eq!(keys.get().await.unwrap().len(), 2);
        assert_eq!(server.requests(), 2, "fetched again once a key expired");
    }

    #[tokio::test]
    async fn root_keys_are_fetched_again_after_a_day_and_kept_when_that_fetch_fails() {
        let server = KeyServer::start(200, key_list(&[(&TestKey::generate(), Span::days(30))]), Duration::ZERO).await;
        let (keys, clock) = root_keys(&server);
        let first = keys.get().await.unwrap();

        clock.advance(Span::hours(25));
        server.answer(503, "{}".to_owned());
        assert_eq!(keys.get().await.unwrap(), first, "the kept keys are still valid");
        assert_eq!(server.requests(), 2);
    }

    #[tokio::test]
    async fn a_failing_key_url_is_asked_at_most_once_a_minute() {
        let server = KeyServer::start(500, "oops".to_owned(), Duration::ZERO).await;
        let (keys, clock) = root_keys(&server);

        for _ in 0..5 {
            let refused = keys.verify(b"{}", ISSUER).await;
            assert!(matches!(&refused, Err(CallbackError::NoRootKeys(why)) if why.contains("HTTP 500")), "{refused:?}");
        }
        assert_eq!(server.requests(), 1);

        clock.advance(Span::seconds(61));
        server.answer(200, key_list(&[(&TestKey::generate(), Span::days(30))]));
        assert_eq!(keys.get().await.unwrap().len(), 1);
        assert_eq!(server.requests(), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let list = key_list(&[(&TestKey::generate(), Span::days(30))]);
        let server = KeyServer::start(200, list, Duration::from_millis(200)).await;
        let keys = Arc::new(root_keys(&server).0);

        let callers: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn({
                    let keys = Arc::clone(&keys);
                    async move { keys.get().await }
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap().len(), 1);
        }
        assert_eq!(server.requests(), 1);
    }

    #[test]
    fn keys_of_other_protocols_without_expiration_or_expired_are_skipped() {
        let (kept, other) = (TestKey::generate(), TestKey::generate());
        let (later, expired) = ("9999999999999", now().timestamp_millis().to_string());
        let list = json!({"keys": [
            {"keyValue": other.spki(), "protocolVersion": "ECv2", "keyExpiration": later},
            {"keyValue": other.spki(), "protocolVersion": "ECv2SigningOnly"},
            {"keyValue": other.spki(), "protocolVersion": "ECv2SigningOnly", "keyExpiration": expired},
            {"keyValue": kept.spki(), "protocolVersion": "ECv2SigningOnly", "keyExpiration": later},
        ]});
        let keys = parse_key_list(list.to_string().as_bytes(), now()).unwrap();
        let expires_at = DateTime::from_timestamp_millis(9_999_999_999_999).unwrap();
        assert_eq!(keys, vec![RootKey { expires_at, ..kept.root() }]);
        assert!(parse_key_list(br#"{"keys": []}"#, now()).is_err());
    }
}
