//! The callbacks' verification against bodies signed the way Google signs them, and the root
//! keys' fetching and keeping against a local server.

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
        Self(EcdsaKeyPair::from_pkcs8(alg, EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap().as_ref(), &rng).unwrap())
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
                    let head =
                        format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
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
