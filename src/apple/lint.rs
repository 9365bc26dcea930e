//! `loy pass lint`: checks a `.pkpass` the way Wallet does and says exactly what is wrong,
//! where Wallet only says "cannot add pass".
//!
//! A bundle is valid when it is a zip; `pass.json` follows the rules (`rules.rs`); `icon.png`
//! is there; every file is listed in `manifest.json` with its SHA-1 and nothing else is; the
//! signature verifies over the manifest, chains to the trusted CA, carries a signing time and
//! the intermediate, and its signer is the certificate of the pass's type and team.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;

use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509PurposeId};
use serde_json::Value;

use super::bundle::{MANIFEST, PASS_JSON, SIGNATURE, sha1_hex};
use super::certs::{read_certificate, subject_entry};
use super::rules::{self, Mode, Problem, Severity};
use super::{der, dev_certs, strings};
use crate::config::apple::AppleSettings;

/// The largest file and bundle lint reads (a zip can claim anything; Wallet passes are small).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

/// What lint found. The pass is valid when there is no error; warnings do not count.
#[derive(Debug, Default)]
pub struct LintReport {
    pub problems: Vec<Problem>,
}

impl LintReport {
    pub fn is_valid(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    fn error(&mut self, message: impl Into<String>) {
        self.problems.push(Problem::error(message));
    }

    fn warning(&mut self, message: impl Into<String>) {
        self.problems.push(Problem::warning(message));
    }
}

/// The CA `loy pass lint` checks signatures against when none is given: the configured WWDR
/// intermediate, or the development CA. Returns it with a description for the report.
pub fn default_trust(settings: &AppleSettings) -> Result<(X509, String), String> {
    match &settings.signer {
        Some(files) => {
            let path = files.wwdr.as_ref().ok_or("LOY_APPLE_WWDR is not set: pass --ca FILE")?;
            let cert = read_certificate(path, "LOY_APPLE_WWDR").map_err(|e| e.to_string())?;
            Ok((cert, format!("the configured WWDR intermediate {}", path.display())))
        }
        None => {
            let path = settings.dev_dir.join(dev_certs::CA_FILE);
            let cert = dev_certs::read_ca(&settings.dev_dir).ok_or_else(|| {
                format!(
                    "{} does not exist (run `loy certs dev` or `loy serve` first), or pass --ca FILE",
                    path.display()
                )
            })?;
            Ok((cert, format!("the development CA {}", path.display())))
        }
    }
}

/// Reads a CA given with `--ca` (PEM or DER).
pub fn read_ca(path: &Path) -> Result<X509, String> {
    read_certificate(path, "--ca").map_err(|e| e.to_string())
}

/// Checks a bundle's bytes, trusting `ca` for the signature.
pub fn lint(bytes: &[u8], ca: &X509) -> LintReport {
    let mut report = LintReport::default();
    let Some(files) = read_zip(bytes, &mut report) else { return report };
    check_manifest(&files, &mut report);
    let pass = check_pass_json(&files, &mut report);
    if !files.contains_key("icon.png") {
        report.error("icon.png is missing (Wallet refuses a pass without an icon)");
    }
    for (name, bytes) in files.iter().filter(|(n, _)| n.ends_with(".strings")) {
        let parsed = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned()).and_then(strings::parse);
        if let Err(e) = parsed {
            report.warning(format!("{name} cannot be read ({e}): Wallet will show the keys instead of texts"));
        }
    }
    match (files.get(SIGNATURE), files.get(MANIFEST)) {
        (None, _) => report.error("signature is missing: the pass is not signed"),
        (Some(_), None) => {}
        (Some(signature), Some(manifest_bytes)) => {
            check_signature(signature, manifest_bytes, ca, pass.as_ref(), &mut report);
        }
    }
    report
}

fn read_zip(bytes: &[u8], report: &mut LintReport) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => {
            report.error(format!(
                "not a zip archive ({e}): a .pkpass is a zip of pass.json, images, manifest and signature"
            ));
            return None;
        }
    };
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut file = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                report.error(format!("entry {i} of the zip cannot be read ({e})"));
                continue;
            }
        };
        if file.is_dir() {
            continue;
        }
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if name.starts_with('/') || name.split('/').any(|p| p == "..") {
            report.error(format!("{name}: file names in a pass must be relative"));
            continue;
        }
        if name.starts_with("__MACOSX/") || name.ends_with(".DS_Store") {
            report.error(format!("{name} is an operating-system leftover: remove it (it is not in the manifest)"));
            continue;
        }
        total += file.size();
        if file.size() > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES {
            report.error(format!("{name} is too large ({} bytes) for a pass", file.size()));
            return None;
        }
        let mut contents = Vec::with_capacity(file.size() as usize);
        if let Err(e) = (&mut file).take(MAX_FILE_BYTES + 1).read_to_end(&mut contents) {
            report.error(format!("{name} cannot be unzipped ({e})"));
            continue;
        }
        if files.insert(name.clone(), contents).is_some() {
            report.error(format!("{name} is in the zip twice"));
        }
    }
    Some(files)
}

/// Every file listed with the right SHA-1, nothing unlisted, nothing listed that is missing.
fn check_manifest(files: &BTreeMap<String, Vec<u8>>, report: &mut LintReport) {
    let Some(bytes) = files.get(MANIFEST) else {
        report.error("manifest.json is missing");
        return;
    };
    let manifest: BTreeMap<String, String> = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => {
            report.error(format!("manifest.json is not a JSON object of file names to SHA-1 hashes ({e})"));
            return;
        }
    };
    for (name, bytes) in files {
        if name == MANIFEST || name == SIGNATURE {
            continue;
        }
        match manifest.get(name) {
            None => report.error(format!("{name} is not listed in manifest.json")),
            Some(listed) => {
                if listed.len() != 40 || !listed.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    report.error(format!("manifest.json: the hash of {name} is not 40 lowercase hex digits"));
                } else if *listed != sha1_hex(bytes) {
                    report.error(format!(
                        "{name} does not match its SHA-1 in manifest.json (it was changed after signing)"
                    ));
                }
            }
        }
    }
    for name in manifest.keys() {
        if !files.contains_key(name) {
            report.error(format!("manifest.json lists {name}, which is not in the bundle"));
        }
    }
}

fn check_pass_json(files: &BTreeMap<String, Vec<u8>>, report: &mut LintReport) -> Option<Value> {
    let Some(bytes) = files.get(PASS_JSON) else {
        report.error("pass.json is missing");
        return None;
    };
    let pass: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            report.error(format!("pass.json is not valid JSON ({e})"));
            return None;
        }
    };
    report.problems.extend(rules::check_pass_json(&pass, Mode::Wallet));
    Some(pass)
}

fn check_signature(signature: &[u8], manifest: &[u8], ca: &X509, pass: Option<&Value>, report: &mut LintReport) {
    let pkcs7 = match Pkcs7::from_der(signature) {
        Ok(p) => p,
        Err(_) => {
            report.error("signature is not a DER PKCS#7 structure");
            return;
        }
    };
    match trust_store(ca).and_then(|store| {
        let none = Stack::new()?;
        pkcs7.verify(&none, &store, Some(manifest), None, Pkcs7Flags::BINARY)
    }) {
        Ok(()) => {}
        Err(e) => {
            let reasons: Vec<String> = e
                .errors()
                .iter()
                .map(|e| match (e.reason(), e.data()) {
                    (Some(r), Some(d)) => format!("{r}: {d}"),
                    (Some(r), None) => r.to_owned(),
                    (None, _) => "unknown reason".to_owned(),
                })
                .collect();
            report.error(format!(
                "the signature does not verify over manifest.json against the CA ({})",
                reasons.join("; ")
            ));
        }
    }
    match der::signing_times(signature) {
        None => report.error("the signature's signer information cannot be read"),
        Some(times) if times.is_empty() => report.error("the signature has no signing time (Wallet requires one)"),
        Some(_) => {}
    }
    let certificates = pkcs7.signed().and_then(|s| s.certificates()).map(|c| c.len()).unwrap_or(0);
    if certificates < 2 {
        report.error("the signature does not include the WWDR intermediate certificate");
    }
    let signer = Stack::new().and_then(|none| pkcs7.signers(&none, Pkcs7Flags::empty()));
    let signer = signer.ok().and_then(|s| s.iter().next().map(|c| c.to_owned()));
    let (Some(signer), Some(pass)) = (signer, pass) else { return };
    let uid = subject_entry(signer.subject_name(), Nid::USERID);
    let ou = subject_entry(signer.subject_name(), Nid::ORGANIZATIONALUNITNAME);
    if let Some(id) = pass.get("passTypeIdentifier").and_then(Value::as_str) {
        if uid.as_deref() != Some(id) {
            report.error(format!("the signing certificate is for {} but pass.json says {id}", uid.unwrap_or_default()));
        }
    }
    if let Some(team) = pass.get("teamIdentifier").and_then(Value::as_str) {
        if ou.as_deref() != Some(team) {
            report.error(format!(
                "the signing certificate belongs to team {} but pass.json says {team}",
                ou.unwrap_or_default()
            ));
        }
    }
}

/// A store trusting `ca` alone: it may be a root or an intermediate (Apple's root is not shipped
/// with loy, so a real pass is checked up to the WWDR intermediate). Pass Type ID certificates
/// are not e-mail certificates, so the S/MIME purpose check is off.
fn trust_store(ca: &X509) -> Result<openssl::x509::store::X509Store, openssl::error::ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    builder.add_cert(ca.clone())?;
    builder.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
    builder.set_purpose(X509PurposeId::ANY)?;
    Ok(builder.build())
}
