//! Apple helpers for the black-box tests: development certificates, downloading and unzipping
//! passes, checking them with independent tools (the `openssl` command line, SHA-1 recomputed
//! here), PassKit requests, and running the `loy` binary.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use loy::apple::dev_certs;
use loy::config::apple::{DEV_PASS_TYPE_ID, DEV_TEAM_ID};
use loy::domain::PassTypeId;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::helpers::{TestApp, unique_phone};

/// The pass type test apps issue (the development default).
pub const PASS_TYPE: &str = DEV_PASS_TYPE_ID;
pub const TEAM: &str = DEV_TEAM_ID;

/// Development certificates made once per test run under Cargo's target directory.
pub fn shared_dev_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("apple-dev-certs");
        dev_certs::ensure(&dir, &PassTypeId::parse(PASS_TYPE).unwrap(), TEAM, false)
            .expect("development certificates can be made");
        dir
    })
}

/// The root CA of the shared development certificates.
pub fn shared_ca() -> PathBuf {
    shared_dev_dir().join(dev_certs::CA_FILE)
}

/// A downloaded pass, unzipped.
pub struct Pkpass {
    pub bytes: Vec<u8>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Pkpass {
    pub fn parse(bytes: Vec<u8>) -> Self {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes.clone())).expect("a .pkpass is a zip");
        let mut files = BTreeMap::new();
        for i in 0..archive.len() {
            let mut file = archive.by_index(i).unwrap();
            let mut contents = Vec::new();
            file.read_to_end(&mut contents).unwrap();
            files.insert(file.name().unwrap().to_string(), contents);
        }
        Self { bytes, files }
    }

    pub fn file(&self, name: &str) -> &[u8] {
        self.files.get(name).unwrap_or_else(|| panic!("{name} is in the pass"))
    }

    pub fn pass_json(&self) -> Value {
        serde_json::from_slice(self.file("pass.json")).expect("pass.json is JSON")
    }

    pub fn token(&self) -> String {
        self.pass_json()["authenticationToken"].as_str().unwrap().to_owned()
    }

    pub fn serial(&self) -> String {
        self.pass_json()["serialNumber"].as_str().unwrap().to_owned()
    }

    /// Recomputes every file's SHA-1 and compares it with manifest.json, both ways.
    pub fn assert_manifest_is_exact(&self) {
        let manifest: BTreeMap<String, String> = serde_json::from_slice(self.file("manifest.json")).unwrap();
        let listed: Vec<&String> = manifest.keys().collect();
        let present: Vec<&String> = self.files.keys().filter(|n| *n != "manifest.json" && *n != "signature").collect();
        assert_eq!(listed, present, "manifest.json lists exactly the files of the pass");
        for (name, hash) in &manifest {
            assert_eq!(*hash, hex::encode(Sha1::digest(&self.files[name])), "SHA-1 of {name}");
        }
    }

    /// `openssl smime -verify -inform DER -binary -content manifest.json -CAfile <ca>`.
    pub fn openssl_verify(&self, ca: &Path) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), self.file("manifest.json")).unwrap();
        std::fs::write(dir.path().join("signature"), self.file("signature")).unwrap();
        Command::new("openssl")
            .current_dir(dir.path())
            .args(["smime", "-verify", "-inform", "DER", "-binary", "-in", "signature", "-content", "manifest.json"])
            .arg("-CAfile")
            .arg(ca)
            .args(["-out", "/dev/null"])
            .output()
            .expect("the openssl command runs")
    }

    pub fn assert_openssl_verifies(&self, ca: &Path) {
        let output = self.openssl_verify(ca);
        assert!(output.status.success(), "openssl smime -verify failed: {}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stderr).contains("Verification successful"));
    }

    /// The signature's signed attributes as `openssl cms -cmsout -print` shows them.
    pub fn openssl_print(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("signature"), self.file("signature")).unwrap();
        let output = Command::new("openssl")
            .current_dir(dir.path())
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in", "signature"])
            .output()
            .expect("the openssl command runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Zips `files` again (to make broken variants for lint).
    pub fn zip(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            writer.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }
}

/// The path of a URL, whatever public address the app was given.
pub fn path_of_url(url: &str) -> String {
    url::Url::parse(url).expect("an absolute URL").path().to_owned()
}

/// Enrolls a customer; returns the card page path and the serial.
pub async fn enroll_card(app: &TestApp, name: &str) -> (String, String) {
    let body = app.enroll(name, &unique_phone()).await;
    let path = path_of_url(body["card"]["card_url"].as_str().unwrap());
    (path, body["card"]["serial_number"].as_str().unwrap().to_owned())
}

pub async fn download(app: &TestApp, card_path: &str) -> reqwest::Response {
    app.get(&format!("{card_path}/card.pkpass")).await
}

/// Enrolls a customer and downloads the card's pass from the card page.
pub async fn new_pass(app: &TestApp) -> Pkpass {
    let (path, _) = enroll_card(app, "Anna").await;
    let response = download(app, &path).await;
    assert_eq!(response.status(), 200);
    Pkpass::parse(response.bytes().await.unwrap().to_vec())
}

pub fn apple_auth(token: &str) -> String {
    format!("ApplePass {token}")
}

pub fn registration_path(device: &str, pass_type: &str, serial: &str) -> String {
    format!("/passkit/v1/devices/{device}/registrations/{pass_type}/{serial}")
}

fn with_auth(request: reqwest::RequestBuilder, auth: Option<&str>) -> reqwest::RequestBuilder {
    match auth {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

pub async fn register(
    app: &TestApp,
    device: &str,
    serial: &str,
    auth: Option<&str>,
    push_token: &str,
) -> reqwest::Response {
    let request = app.client.post(app.url(&registration_path(device, PASS_TYPE, serial)));
    with_auth(request, auth).json(&json!({ "pushToken": push_token })).send().await.unwrap()
}

pub async fn unregister(app: &TestApp, device: &str, serial: &str, auth: Option<&str>) -> reqwest::Response {
    let request = app.client.delete(app.url(&registration_path(device, PASS_TYPE, serial)));
    with_auth(request, auth).send().await.unwrap()
}

pub async fn updated_serials(app: &TestApp, device: &str, tag: Option<&str>) -> reqwest::Response {
    let mut path = format!("/passkit/v1/devices/{device}/registrations/{PASS_TYPE}");
    if let Some(tag) = tag {
        path.push_str(&format!(
            "?passesUpdatedSince={}",
            url::form_urlencoded::byte_serialize(tag.as_bytes()).collect::<String>()
        ));
    }
    app.get(&path).await
}

pub async fn latest_pass(app: &TestApp, serial: &str, auth: Option<&str>, since: Option<&str>) -> reqwest::Response {
    let mut request = with_auth(app.client.get(app.url(&format!("/passkit/v1/passes/{PASS_TYPE}/{serial}"))), auth);
    if let Some(since) = since {
        request = request.header("if-modified-since", since);
    }
    request.send().await.unwrap()
}

/// The exact JSON error body of the API.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    match field {
        Some(field) => json!({"error": {"code": code, "message": message, "field": field}}),
        None => json!({"error": {"code": code, "message": message}}),
    }
}

pub async fn assert_unauthorized(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    assert_eq!(response.headers()["www-authenticate"], "ApplePass", "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, error_body("unauthorized", "Missing or wrong pass authentication.", None), "{what}");
}

/// Runs the `loy` binary with only the given settings; returns its exit code and output.
pub fn run_loy(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_loy"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("LOY_LOG", "warn")
        .current_dir(cwd)
        .output()
        .expect("the loy binary runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// `loy pass lint` of `bytes` with the shared development certificates (and `--ca` if given).
pub fn lint(bytes: &[u8], ca: Option<&Path>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("card.pkpass");
    std::fs::write(&file, bytes).unwrap();
    let mut args = vec!["pass".to_owned(), "lint".to_owned(), file.display().to_string()];
    if let Some(ca) = ca {
        args.extend(["--ca".to_owned(), ca.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_loy(&args, &[("LOY_APPLE_DEV_DIR", &shared_dev_dir().display().to_string())], dir.path())
}
