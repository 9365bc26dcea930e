//! Throwaway development certificates shaped like Apple's, so passes can be built, signed and
//! checked on a machine without an Apple Developer account.
//!
//! The chain mirrors Apple's: a root CA (standing in for Apple's root) issues a "WWDR"
//! intermediate, which issues the pass signer whose subject carries the pass type identifier
//! as UID and the team identifier as OU. Such passes verify against `ca.pem` and open only where
//! that CA is trusted — never on a real iPhone.

use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder, X509Ref};

use super::certs::{CertError, Origin, SigningIdentity, issued_by, subject_entry, validity};
use crate::domain::PassTypeId;

/// The files of a development set, inside its directory.
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
pub const WWDR_FILE: &str = "wwdr.pem";
const WWDR_KEY_FILE: &str = "wwdr-key.pem";
pub const SIGNER_FILE: &str = "pass.pem";
pub const SIGNER_KEY_FILE: &str = "pass-key.pem";

const DAY: i64 = 86_400;

/// A development root CA and the intermediate that stands in for Apple's WWDR.
pub struct DevCa {
    pub root: X509,
    root_key: PKey<Private>,
    pub wwdr: X509,
    wwdr_key: PKey<Private>,
}

/// What a development signer certificate says, and when it is valid (Unix seconds).
#[derive(Debug, Clone)]
pub struct SignerSpec {
    pub pass_type_id: String,
    pub team_id: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl SignerSpec {
    /// A signer valid from a day ago for two years.
    pub fn valid_now(pass_type_id: &str, team_id: &str) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            pass_type_id: pass_type_id.to_owned(),
            team_id: team_id.to_owned(),
            not_before: now - DAY,
            not_after: now + 730 * DAY,
        }
    }
}

fn rsa_key() -> Result<PKey<Private>, ErrorStack> {
    PKey::from_rsa(Rsa::generate(2048)?)
}

fn serial() -> Result<Asn1Integer, ErrorStack> {
    let mut n = BigNum::new()?;
    n.rand(127, MsbOption::MAYBE_ZERO, false)?;
    n.to_asn1_integer()
}

fn name(entries: &[(Nid, &str)]) -> Result<X509Name, ErrorStack> {
    let mut builder = X509NameBuilder::new()?;
    for (nid, value) in entries {
        builder.append_entry_by_nid(*nid, value)?;
    }
    Ok(builder.build())
}

/// Starts a certificate for `subject`'s key, issued by `issuer` (itself when `None`).
fn certificate(
    subject: &X509Name,
    key: &PKey<Private>,
    issuer: Option<(&X509Ref, &PKey<Private>)>,
    not_before: i64,
    not_after: i64,
    ca: bool,
) -> Result<X509, ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer.map(|(cert, _)| cert.subject_name()).unwrap_or(subject))?;
    b.set_pubkey(key)?;
    let (from, until) = (Asn1Time::from_unix(not_before)?, Asn1Time::from_unix(not_after)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    } else {
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer.map(|(c, _)| c), None))?;
    b.append_extension(ski)?;
    if let Some((issuer_cert, _)) = issuer {
        let aki = AuthorityKeyIdentifier::new().keyid(false).build(&b.x509v3_context(Some(issuer_cert), None))?;
        b.append_extension(aki)?;
    }
    let signing_key = issuer.map(|(_, k)| k).unwrap_or(key);
    b.sign(signing_key, MessageDigest::sha256())?;
    Ok(b.build())
}

impl DevCa {
    /// A fresh root CA and WWDR-like intermediate, valid for ten years.
    pub fn generate() -> Result<Self, ErrorStack> {
        let now = chrono::Utc::now().timestamp();
        let (from, until) = (now - DAY, now + 3650 * DAY);
        let root_key = rsa_key()?;
        let root_name = name(&[
            (Nid::COMMONNAME, "loy Development Root CA"),
            (Nid::ORGANIZATIONNAME, "loy development (not Apple)"),
        ])?;
        let root = certificate(&root_name, &root_key, None, from, until, true)?;
        let wwdr_key = rsa_key()?;
        let wwdr_name = name(&[
            (Nid::COMMONNAME, "loy Development WWDR Intermediate"),
            (Nid::ORGANIZATIONALUNITNAME, "G4"),
            (Nid::ORGANIZATIONNAME, "loy development (not Apple)"),
        ])?;
        let wwdr = certificate(&wwdr_name, &wwdr_key, Some((&root, &root_key)), from, until, true)?;
        Ok(Self { root, root_key, wwdr, wwdr_key })
    }

    /// A pass signer certificate shaped like Apple's Pass Type ID certificates.
    pub fn issue_signer(&self, spec: &SignerSpec) -> Result<(X509, PKey<Private>), ErrorStack> {
        let key = rsa_key()?;
        let subject = name(&[
            (Nid::USERID, &spec.pass_type_id),
            (Nid::COMMONNAME, &format!("Pass Type ID: {}", spec.pass_type_id)),
            (Nid::ORGANIZATIONALUNITNAME, &spec.team_id),
            (Nid::ORGANIZATIONNAME, "loy development (not Apple)"),
            (Nid::COUNTRYNAME, "US"),
        ])?;
        let cert =
            certificate(&subject, &key, Some((&self.wwdr, &self.wwdr_key)), spec.not_before, spec.not_after, false)?;
        Ok((cert, key))
    }

    fn read(dir: &Path) -> Option<Self> {
        let root = X509::from_pem(&std::fs::read(dir.join(CA_FILE)).ok()?).ok()?;
        let root_key = PKey::private_key_from_pem(&std::fs::read(dir.join(CA_KEY_FILE)).ok()?).ok()?;
        let wwdr = X509::from_pem(&std::fs::read(dir.join(WWDR_FILE)).ok()?).ok()?;
        let wwdr_key = PKey::private_key_from_pem(&std::fs::read(dir.join(WWDR_KEY_FILE)).ok()?).ok()?;
        let usable = issued_by(&wwdr, &root)
            && issued_by(&root, &root)
            && validity(&root).is_ok()
            && validity(&wwdr).is_ok()
            && wwdr.public_key().is_ok_and(|k| k.public_eq(&wwdr_key))
            && root.public_key().is_ok_and(|k| k.public_eq(&root_key));
        usable.then_some(Self { root, root_key, wwdr, wwdr_key })
    }

    fn write(&self, dir: &Path) -> std::io::Result<()> {
        write_file(&dir.join(CA_FILE), &self.root.to_pem()?, false)?;
        write_file(&dir.join(CA_KEY_FILE), &self.root_key.private_key_to_pem_pkcs8()?, true)?;
        write_file(&dir.join(WWDR_FILE), &self.wwdr.to_pem()?, false)?;
        write_file(&dir.join(WWDR_KEY_FILE), &self.wwdr_key.private_key_to_pem_pkcs8()?, true)
    }
}

/// Writes a file through a temporary name and a rename, so a reader never sees half of it;
/// keys are readable by the owner only.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

fn read_signer(dir: &Path, ca: &DevCa, pass_type_id: &str, team_id: &str) -> Option<(X509, PKey<Private>)> {
    let cert = X509::from_pem(&std::fs::read(dir.join(SIGNER_FILE)).ok()?).ok()?;
    let key = PKey::private_key_from_pem(&std::fs::read(dir.join(SIGNER_KEY_FILE)).ok()?).ok()?;
    let usable = issued_by(&cert, &ca.wwdr)
        && validity(&cert).is_ok()
        && cert.public_key().is_ok_and(|k| k.public_eq(&key))
        && subject_entry(cert.subject_name(), Nid::USERID).as_deref() == Some(pass_type_id)
        && subject_entry(cert.subject_name(), Nid::ORGANIZATIONALUNITNAME).as_deref() == Some(team_id);
    usable.then_some((cert, key))
}

fn failure(dir: &Path, reason: impl std::fmt::Display) -> CertError {
    CertError::Development { dir: dir.display().to_string(), reason: reason.to_string() }
}

/// What `ensure` found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevOutcome {
    /// The certificates in the directory were usable as they were.
    Reused,
    /// A new signer was issued by the existing CA (new pass type or team, or it expired).
    NewSigner,
    /// Everything was generated afresh.
    NewCa,
}

/// Makes sure `dir` holds a usable development set for this pass type and team: keeps what is
/// usable (so devices that trust the CA keep trusting it) and generates the rest.
/// `force` generates everything afresh.
pub fn ensure(dir: &Path, pass_type_id: &PassTypeId, team_id: &str, force: bool) -> Result<DevOutcome, CertError> {
    std::fs::create_dir_all(dir).map_err(|e| failure(dir, format!("cannot create the directory ({e})")))?;
    let existing = if force { None } else { DevCa::read(dir) };
    let (ca, mut outcome) = match existing {
        Some(ca) => (ca, DevOutcome::Reused),
        None => {
            let ca = DevCa::generate().map_err(|e| failure(dir, e))?;
            ca.write(dir).map_err(|e| failure(dir, format!("cannot write the CA ({e})")))?;
            (ca, DevOutcome::NewCa)
        }
    };
    if read_signer(dir, &ca, pass_type_id.as_str(), team_id).is_none() {
        let (cert, key) =
            ca.issue_signer(&SignerSpec::valid_now(pass_type_id.as_str(), team_id)).map_err(|e| failure(dir, e))?;
        let cert_pem = cert.to_pem().map_err(|e| failure(dir, e))?;
        let key_pem = key.private_key_to_pem_pkcs8().map_err(|e| failure(dir, e))?;
        write_file(&dir.join(SIGNER_FILE), &cert_pem, false)
            .and_then(|()| write_file(&dir.join(SIGNER_KEY_FILE), &key_pem, true))
            .map_err(|e| failure(dir, format!("cannot write the signer ({e})")))?;
        if outcome == DevOutcome::Reused {
            outcome = DevOutcome::NewSigner;
        }
    }
    Ok(outcome)
}

/// The development identity in `dir`, generated or renewed there when needed; `true` when
/// something was generated.
pub fn load_or_generate(
    dir: &Path,
    pass_type_id: &PassTypeId,
    team_id: &str,
) -> Result<(SigningIdentity, bool), CertError> {
    let outcome = ensure(dir, pass_type_id, team_id, false)?;
    let ca = DevCa::read(dir).ok_or_else(|| failure(dir, "the CA files were changed while loy read them"))?;
    let (cert, key) = read_signer(dir, &ca, pass_type_id.as_str(), team_id)
        .ok_or_else(|| failure(dir, "the signer files were changed while loy read them"))?;
    let origin = Origin::Development { ca: ca.root.clone(), dir: PathBuf::from(dir) };
    let identity = SigningIdentity::new(cert, key, ca.wwdr, pass_type_id.clone(), team_id.to_owned(), origin)
        .map_err(|e| failure(dir, e))?;
    Ok((identity, outcome != DevOutcome::Reused))
}

/// The development root CA in `dir`, if there is one (the default trust anchor of `loy pass lint`).
pub fn read_ca(dir: &Path) -> Option<X509> {
    X509::from_pem(&std::fs::read(dir.join(CA_FILE)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_development_set_is_generated_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pass_type = PassTypeId::parse("pass.test.loy").unwrap();
        assert_eq!(ensure(dir.path(), &pass_type, "TEAM123456", false).unwrap(), DevOutcome::NewCa);
        let ca_before = std::fs::read(dir.path().join(CA_FILE)).unwrap();
        assert_eq!(ensure(dir.path(), &pass_type, "TEAM123456", false).unwrap(), DevOutcome::Reused);

        let other = PassTypeId::parse("pass.test.other").unwrap();
        assert_eq!(ensure(dir.path(), &other, "TEAM123456", false).unwrap(), DevOutcome::NewSigner);
        assert_eq!(std::fs::read(dir.path().join(CA_FILE)).unwrap(), ca_before, "the CA is kept");

        let (identity, generated) = load_or_generate(dir.path(), &other, "TEAM123456").unwrap();
        assert!(!generated);
        assert!(identity.is_development());
        assert_eq!(identity.pass_type_id, other);
        let cert = identity.certificate();
        assert_eq!(subject_entry(cert.subject_name(), Nid::USERID).as_deref(), Some("pass.test.other"));
        assert_eq!(subject_entry(cert.subject_name(), Nid::ORGANIZATIONALUNITNAME).as_deref(), Some("TEAM123456"));
        assert!(issued_by(cert, &identity.wwdr));
        assert!(issued_by(&identity.wwdr, identity.trust_anchor()));
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &PassTypeId::parse("pass.test.loy").unwrap(), "TEAM123456", false).unwrap();
        for file in [CA_KEY_FILE, WWDR_KEY_FILE, SIGNER_KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
}
