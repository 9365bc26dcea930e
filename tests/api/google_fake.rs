//! A fake of Google for the tests: the OAuth token endpoint and the Wallet REST API's loyalty
//! classes and objects, served over HTTP on 127.0.0.1 by the test itself.
//!
//! It is strict where Google is: the token endpoint accepts only a JWT-bearer grant whose RS256
//! assertion verifies with the test service account's public key and names that account, the
//! wallet scope and the token endpoint as audience; the API accepts only tokens it issued and
//! bodies that validate against the discovery document (`google_schema`). Anything it refuses
//! is also recorded as a violation, which tests check with [`FakeGoogle::assert_clean`].

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::google_schema::validate;

pub const SCOPE: &str = "https://www.googleapis.com/auth/wallet_object.issuer";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// One API request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path below the API base, e.g. `loyaltyObject/3388.abc`.
    pub path: String,
    pub body: Value,
}

struct Failure {
    method: String,
    path_contains: String,
    status: u16,
    message: String,
    retry_after: Option<u64>,
    remaining: usize,
}

#[derive(Default)]
struct State {
    tokens: HashSet<String>,
    token_requests: usize,
    requests: Vec<Recorded>,
    classes: HashMap<String, Value>,
    objects: HashMap<String, Value>,
    failures: Vec<Failure>,
    violations: Vec<String>,
    /// The root signing keys of the callbacks, as Google publishes them, and how often asked.
    root_keys: String,
    root_key_requests: usize,
}

struct Config {
    client_email: String,
    public_key_pem: String,
    token_uri: String,
    issuer_id: String,
}

pub struct FakeGoogle {
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl FakeGoogle {
    /// Starts the fake for the service account `client_email` whose public key is
    /// `public_key_pem`, owning issuer `issuer_id`.
    pub fn start(client_email: &str, public_key_pem: &str, issuer_id: &str) -> Self {
        loy::google::jwt::install();
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State::default()));
        let config = Arc::new(Config {
            client_email: client_email.to_owned(),
            public_key_pem: public_key_pem.to_owned(),
            token_uri: format!("{url}/token"),
            issuer_id: issuer_id.to_owned(),
        });
        let (server_state, server_config) = (state.clone(), config.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(server_state.clone()))
                .app_data(web::Data::from(server_config.clone()))
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/token", web::post().to(token))
                .route("/keys", web::get().to(root_keys))
                .default_service(web::to(api))
        })
        .listen(listener)
        .expect("the fake listens")
        .workers(1)
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url, state, handle }
    }

    /// The API base URL to configure as `LOY_GOOGLE_API_BASE_URL`.
    pub fn api_base_url(&self) -> String {
        format!("{}/walletobjects/v1", self.url)
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    pub fn token_requests(&self) -> usize {
        self.with(|s| s.token_requests)
    }

    /// Every request the fake saw, token endpoint included.
    pub fn calls(&self) -> usize {
        self.with(|s| s.requests.len() + s.token_requests)
    }

    pub fn class(&self, id: &str) -> Option<Value> {
        self.with(|s| s.classes.get(id).cloned())
    }

    pub fn object(&self, id: &str) -> Option<Value> {
        self.with(|s| s.objects.get(id).cloned())
    }

    /// Puts an object in place as if it had been created earlier (or by another tool).
    pub fn put_object(&self, id: &str, object: Value) {
        self.with(|s| s.objects.insert(id.to_owned(), object));
    }

    /// Waits (up to 10 s) until the object exists.
    pub async fn wait_for_object(&self, id: &str) -> Value {
        for _ in 0..200 {
            if let Some(object) = self.object(id) {
                return object;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("object {id} was not created; requests: {:#?}", self.requests());
    }

    /// The next `times` API requests with `method` whose path contains `path_contains` fail
    /// with `status` and Google's error body carrying `message`.
    pub fn fail_next(&self, method: &str, path_contains: &str, status: u16, message: &str, times: usize) {
        self.with(|s| {
            s.failures.push(Failure {
                method: method.to_owned(),
                path_contains: path_contains.to_owned(),
                status,
                message: message.to_owned(),
                retry_after: None,
                remaining: times,
            })
        });
    }

    /// Like [`FakeGoogle::fail_next`] with 429 and a `Retry-After` header.
    pub fn throttle_next(&self, method: &str, path_contains: &str, retry_after_secs: u64) {
        self.with(|s| {
            s.failures.push(Failure {
                method: method.to_owned(),
                path_contains: path_contains.to_owned(),
                status: 429,
                message: "Quota exceeded for quota metric 'Requests'.".to_owned(),
                retry_after: Some(retry_after_secs),
                remaining: 1,
            })
        });
    }

    /// Where the callbacks' root keys are published (`LOY_GOOGLE_ROOT_KEYS_URL`).
    pub fn root_keys_url(&self) -> String {
        format!("{}/keys", self.url)
    }

    /// Publishes a key list (Google's format: `{"keys": [...]}`).
    pub fn publish_root_keys(&self, list: String) {
        self.with(|s| s.root_keys = list);
    }

    /// How often the root keys were fetched.
    pub fn root_key_requests(&self) -> usize {
        self.with(|s| s.root_key_requests)
    }

    /// Forgets scripted failures.
    pub fn heal(&self) {
        self.with(|s| s.failures.clear());
    }

    /// Asserts that nothing was refused for a protocol or schema mistake.
    pub fn assert_clean(&self) {
        let violations = self.with(|s| s.violations.clone());
        assert!(violations.is_empty(), "the fake Google saw mistakes: {violations:#?}");
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn google_error(status: u16, message: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status).unwrap();
    HttpResponse::build(code).json(json!({"error": {"code": status, "message": message, "status": "FAKE"}}))
}

/// `GET /keys`: the root signing keys of the callbacks.
async fn root_keys(state: web::Data<Mutex<State>>) -> HttpResponse {
    let list = {
        let mut state = state.lock().unwrap();
        state.root_key_requests += 1;
        state.root_keys.clone()
    };
    if list.is_empty() {
        return google_error(404, "no keys published");
    }
    HttpResponse::Ok().content_type("application/json").body(list)
}

/// `POST /token`: the OAuth 2.0 JWT-bearer grant (RFC 7523) as Google's token endpoint does it.
async fn token(
    state: web::Data<Mutex<State>>,
    config: web::Data<Config>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let refuse = |why: String| {
        state.lock().unwrap().violations.push(format!("token endpoint: {why}"));
        HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": why}))
    };
    state.lock().unwrap().token_requests += 1;
    if form.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return refuse(format!("grant_type is {:?}", form.get("grant_type")));
    }
    let Some(assertion) = form.get("assertion") else { return refuse("no assertion".into()) };
    // yup-oauth2 pads its base64url segments; Google's endpoint accepts that (RFC 7515 says
    // unpadded, which is all jsonwebtoken reads), so the padding is dropped before verifying.
    let assertion = assertion.split('.').map(|part| part.trim_end_matches('=')).collect::<Vec<_>>().join(".");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(config.public_key_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&config.token_uri]);
    validation.set_issuer(&[&config.client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let claims = match jsonwebtoken::decode::<Value>(&assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return refuse(format!("the assertion does not verify: {e}")),
    };
    let scopes: Vec<&str> = claims["scope"].as_str().unwrap_or("").split(' ').collect();
    if !scopes.contains(&SCOPE) {
        return refuse(format!("the assertion asks for scopes {scopes:?}"));
    }
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if !(1..=3600).contains(&lifetime) {
        return refuse(format!("the assertion is valid for {lifetime} s (at most 3600)"));
    }
    let token = format!("ya29.fake-{}", crate::helpers::random_suffix());
    state.lock().unwrap().tokens.insert(token.clone());
    HttpResponse::Ok().json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3599}))
}

/// The Wallet API's loyaltyClass and loyaltyObject resources.
async fn api(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
    config: web::Data<Config>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    let method = req.method().as_str().to_owned();
    let Some(path) = req.path().strip_prefix("/walletobjects/v1/").map(str::to_owned) else {
        s.violations.push(format!("{method} {} is not a Wallet API address", req.path()));
        return google_error(404, "Not found");
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                s.violations.push(format!("{method} {path}: the body is not JSON: {e}"));
                return google_error(400, "Invalid JSON payload received.");
            }
        }
    };
    s.requests.push(Recorded { method: method.clone(), path: path.clone(), body: body.clone() });
    let bearer =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| s.tokens.contains(t)) {
        s.violations.push(format!("{method} {path} without a token the fake issued"));
        return google_error(401, "Request had invalid authentication credentials.");
    }
    if let Some(failure) =
        s.failures.iter_mut().find(|f| f.remaining > 0 && f.method == method && path.contains(&f.path_contains))
    {
        failure.remaining -= 1;
        let mut response = google_error(failure.status, &failure.message);
        if let Some(secs) = failure.retry_after {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, secs.to_string().parse().unwrap());
        }
        return response;
    }
    let segments: Vec<&str> = path.split('/').collect();
    let (schema, store_is_classes) = match segments[0] {
        "loyaltyClass" => ("LoyaltyClass", true),
        "loyaltyObject" => ("LoyaltyObject", false),
        other => {
            s.violations.push(format!("{method} {path}: the fake has no resource {other}"));
            return google_error(404, "Not found");
        }
    };
    let check = |s: &mut State, schema: &str, insert: bool| -> Option<HttpResponse> {
        let errors = validate(schema, &body, insert);
        if errors.is_empty() {
            return None;
        }
        let message = format!("{method} {path}: {}", errors.join("; "));
        s.violations.push(message.clone());
        Some(google_error(400, &message))
    };
    match (method.as_str(), &segments[1..]) {
        ("POST", []) => {
            if let Some(refused) = check(&mut s, schema, true) {
                return refused;
            }
            let id = body["id"].as_str().unwrap_or("").to_owned();
            if let Some(problem) = id_problem(&id, &config.issuer_id) {
                s.violations.push(format!("POST {path}: {problem}"));
                return google_error(400, &problem);
            }
            if !store_is_classes {
                let class_id = body["classId"].as_str().unwrap_or("");
                if !s.classes.contains_key(class_id) {
                    s.violations.push(format!("object {id} inserted before its class {class_id}"));
                    return google_error(404, &format!("Class {class_id} not found."));
                }
            }
            let resources = if store_is_classes { &mut s.classes } else { &mut s.objects };
            if resources.contains_key(&id) {
                return google_error(409, &format!("Resource already exists: {id}"));
            }
            resources.insert(id, body.clone());
            HttpResponse::Ok().json(body)
        }
        ("GET", [id]) => {
            let resources = if store_is_classes { &s.classes } else { &s.objects };
            match resources.get(*id) {
                Some(resource) => HttpResponse::Ok().json(resource),
                None => google_error(404, &format!("Resource not found: {id}")),
            }
        }
        ("PATCH", [id]) => {
            if let Some(refused) = check(&mut s, schema, false) {
                return refused;
            }
            let resources = if store_is_classes { &mut s.classes } else { &mut s.objects };
            let Some(resource) = resources.get_mut(*id) else {
                return google_error(404, &format!("Resource not found: {id}"));
            };
            for (field, value) in body.as_object().into_iter().flatten() {
                resource[field] = value.clone();
            }
            HttpResponse::Ok().json(resource.clone())
        }
        ("POST", [id, "addMessage"]) => {
            if let Some(refused) = check(&mut s, "AddMessageRequest", false) {
                return refused;
            }
            let resources = if store_is_classes { &mut s.classes } else { &mut s.objects };
            let Some(resource) = resources.get_mut(*id) else {
                return google_error(404, &format!("Resource not found: {id}"));
            };
            let mut messages = resource["messages"].as_array().cloned().unwrap_or_default();
            if messages.iter().any(|m| m["id"] == body["message"]["id"]) {
                return google_error(409, "A message with this id already exists.");
            }
            messages.push(body["message"].clone());
            resource["messages"] = Value::Array(messages);
            HttpResponse::Ok().json(json!({"resource": resource.clone()}))
        }
        _ => {
            s.violations.push(format!("{method} {path} is not a method the fake knows (PUT is never used)"));
            google_error(405, "Method not allowed")
        }
    }
}

/// Ids are `{issuerId}.{suffix}` with only letters, digits, '.', '_' and '-'.
fn id_problem(id: &str, issuer_id: &str) -> Option<String> {
    let suffix = id.strip_prefix(issuer_id).and_then(|rest| rest.strip_prefix('.'));
    match suffix {
        Some(rest) if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) => None,
        _ => Some(format!("the id {id:?} is not {issuer_id}.<letters, digits, '.', '_' or '-'>")),
    }
}

/// The test issuer and service account.
pub const ISSUER_ID: &str = "3388000000022222222";
pub const CLIENT_EMAIL: &str = "loy-test@loy-test-project.iam.gserviceaccount.com";

/// An RSA key pair made with the `openssl` command line, as PEM (PKCS#8, like Google's keys).
pub struct TestKey {
    pub private_pem: String,
    pub public_pem: String,
}

impl TestKey {
    pub fn generate() -> Self {
        let private = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("the openssl command line is installed (scripts/test installs it)");
        assert!(private.status.success(), "openssl genpkey failed");
        let private_pem = String::from_utf8(private.stdout).unwrap();
        let public_pem = openssl_stdin(&["pkey", "-pubout"], private_pem.as_bytes());
        Self { private_pem, public_pem: String::from_utf8(public_pem).unwrap() }
    }

    /// The key every test shares (RSA key generation takes a moment).
    pub fn shared() -> &'static Self {
        static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
        KEY.get_or_init(Self::generate)
    }
}

/// Runs `openssl args…` with `input` on standard input and returns standard output.
pub fn openssl_stdin(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Writes a service-account JSON key like the ones Google issues, and returns its path.
pub fn write_service_account(dir: &std::path::Path, private_pem: &str, token_uri: &str) -> String {
    let key = json!({
        "type": "service_account",
        "project_id": "loy-test-project",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": private_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/loy-test",
        "universe_domain": "googleapis.com"
    });
    let path = dir.join("google-service-account.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&key).unwrap()).unwrap();
    path.display().to_string()
}

/// Settings that turn Google Wallet on against `fake`.
pub fn google_env(kind: &crate::helpers::StoreKind, fake: &FakeGoogle) -> crate::helpers::TestEnv {
    let mut env = crate::helpers::TestEnv::new(kind);
    let key_path = write_service_account(env.dir.path(), &TestKey::shared().private_pem, &fake.token_uri());
    env.set("LOY_GOOGLE_ISSUER_ID", ISSUER_ID)
        .set("LOY_GOOGLE_SERVICE_ACCOUNT_KEY", &key_path)
        .set("LOY_GOOGLE_API_BASE_URL", &fake.api_base_url())
        .set("LOY_GOOGLE_ROOT_KEYS_URL", &fake.root_keys_url())
        .set("LOY_GOOGLE_TIMEOUT_SECS", "5");
    env
}

/// The application with Google Wallet on, and the fake it talks to.
pub async fn spawn_app_with_google(kind: crate::helpers::StoreKind) -> (crate::helpers::TestApp, FakeGoogle) {
    let fake = FakeGoogle::start(CLIENT_EMAIL, &TestKey::shared().public_pem, ISSUER_ID);
    let app = crate::helpers::spawn_app_in(google_env(&kind, &fake)).await;
    (app, fake)
}

/// The object id of the card with `serial`.
pub fn object_id(serial: &str) -> String {
    format!("{ISSUER_ID}.{serial}")
}

pub fn class_id() -> String {
    format!("{ISSUER_ID}.default")
}
