//! The Apple Wallet settings (`LOY_APPLE_*`): which certificate signs passes, for which pass type
//! and team, and where the card design comes from.
//!
//! Only the shape of each value is checked here; whether the files exist and fit together
//! (password, validity, UID/OU, WWDR issuer) is checked by `apple::certs` at start-up, so that
//! `loy certs check` can report every problem at once.

use std::path::PathBuf;

use secrecy::SecretString;

use super::ConfigError;
use super::sources::{RawSettings, parse};
use crate::domain::PassTypeId;

/// Used for development certificates when no pass type identifier is configured.
pub const DEV_PASS_TYPE_ID: &str = "pass.dev.loy.loyalty";
/// Used for development certificates when no team identifier is configured.
pub const DEV_TEAM_ID: &str = "LOYDEVTEAM";

#[derive(Debug, Clone)]
pub struct AppleSettings {
    /// `LOY_APPLE_PASS_TYPE_ID`: must equal the certificate's subject UID.
    pub pass_type_id: Option<PassTypeId>,
    /// `LOY_APPLE_TEAM_ID`: must equal the certificate's subject OU.
    pub team_id: Option<String>,
    /// The Pass Type ID certificate; `None` means development certificates are used.
    pub signer: Option<SignerFiles>,
    /// Where development certificates are kept (and generated when missing).
    pub dev_dir: PathBuf,
    /// A directory replacing the built-in card design (`templates/default`).
    pub template: Option<PathBuf>,
    /// The most memory signed passes may take in the per-process cache.
    pub pass_cache_bytes: usize,
}

/// The files of a real Pass Type ID certificate.
#[derive(Debug, Clone)]
pub struct SignerFiles {
    /// `LOY_APPLE_CERTIFICATE`: a PKCS#12 file (certificate and key) or a PEM certificate.
    pub certificate: PathBuf,
    /// `LOY_APPLE_CERTIFICATE_PASSWORD`: of the PKCS#12 file or of an encrypted PEM key.
    pub password: Option<SecretString>,
    /// `LOY_APPLE_KEY`: the PEM private key when the certificate file does not hold it.
    pub key: Option<PathBuf>,
    /// `LOY_APPLE_WWDR`: Apple's WWDR (G4) intermediate that issued the certificate.
    pub wwdr: Option<PathBuf>,
}

impl AppleSettings {
    /// The pass type identifier passes carry: the configured one, or the development default.
    pub fn effective_pass_type_id(&self) -> PassTypeId {
        self.pass_type_id
            .clone()
            .unwrap_or_else(|| PassTypeId::parse(DEV_PASS_TYPE_ID).expect("the development pass type id is valid"))
    }

    /// The team identifier passes carry: the configured one, or the development default.
    pub fn effective_team_id(&self) -> String {
        self.team_id.clone().unwrap_or_else(|| DEV_TEAM_ID.to_owned())
    }
}

fn path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// Parses the `apple_*` settings.
pub fn from_raw(raw: &RawSettings) -> Result<AppleSettings, ConfigError> {
    let pass_type_id = raw.parse_opt("apple_pass_type_id", |s| {
        let id = PassTypeId::parse(s).map_err(|e| format!("`{s}`: {e}"))?;
        if !s.starts_with("pass.") {
            return Err(format!("`{s}` must start with `pass.` like pass.com.example.loyalty"));
        }
        Ok(id)
    })?;
    let team_id = raw.parse_opt("apple_team_id", |s| {
        if s.len() == 10 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            Ok(s.to_owned())
        } else {
            Err(format!("`{s}` is not an Apple team identifier (10 capital letters and digits, like A1B2C3D4E5)"))
        }
    })?;
    let certificate = raw.parse_opt("apple_certificate", path)?;
    let password = raw.parse_opt("apple_certificate_password", |s| Ok(SecretString::from(s.to_owned())))?;
    let key = raw.parse_opt("apple_key", path)?;
    let wwdr = raw.parse_opt("apple_wwdr", path)?;
    let signer = match certificate {
        Some(certificate) => Some(SignerFiles { certificate, password, key, wwdr }),
        None => {
            for (name, given) in [
                ("apple_certificate_password", password.is_some()),
                ("apple_key", key.is_some()),
                ("apple_wwdr", wwdr.is_some()),
            ] {
                if given {
                    return Err(ConfigError(format!(
                        "{} is set but LOY_APPLE_CERTIFICATE is not: set the certificate too, or neither to use \
                         development certificates",
                        raw.origin(name)
                    )));
                }
            }
            None
        }
    };
    let dev_dir = raw.parse_or("apple_dev_dir", PathBuf::from("certificates/dev"), path)?;
    let template = raw.parse_opt("apple_template", path)?;
    let cache_mb = raw.parse_or("apple_pass_cache_mb", 32usize, parse::number(0, 4096))?;
    Ok(AppleSettings { pass_type_id, team_id, signer, dev_dir, template, pass_cache_bytes: cache_mb * 1024 * 1024 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apple(env: &[(&str, &str)]) -> Result<AppleSettings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        from_raw(&RawSettings::load(None, env, super::super::KEYS)?)
    }

    #[test]
    fn without_a_certificate_development_certificates_are_used() {
        let s = apple(&[]).unwrap();
        assert!(s.signer.is_none());
        assert_eq!(s.dev_dir, PathBuf::from("certificates/dev"));
        assert_eq!(s.effective_pass_type_id().as_str(), DEV_PASS_TYPE_ID);
        assert_eq!(s.effective_team_id(), DEV_TEAM_ID);
        assert_eq!(s.pass_cache_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn a_configured_certificate_carries_its_companions() {
        let s = apple(&[
            ("LOY_APPLE_CERTIFICATE", "certificates/pass.p12"),
            ("LOY_APPLE_CERTIFICATE_PASSWORD", "secret"),
            ("LOY_APPLE_WWDR", "certificates/wwdr.pem"),
            ("LOY_APPLE_PASS_TYPE_ID", "pass.com.example.loyalty"),
            ("LOY_APPLE_TEAM_ID", "A1B2C3D4E5"),
        ])
        .unwrap();
        let signer = s.signer.clone().unwrap();
        assert_eq!(signer.certificate, PathBuf::from("certificates/pass.p12"));
        assert_eq!(signer.wwdr, Some(PathBuf::from("certificates/wwdr.pem")));
        assert!(signer.password.is_some());
        assert_eq!(s.effective_team_id(), "A1B2C3D4E5");
    }

    #[test]
    fn each_mistake_is_one_sentence_naming_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("LOY_APPLE_PASS_TYPE_ID", "com.example")],
                "LOY_APPLE_PASS_TYPE_ID: `com.example` must start with `pass.`",
            ),
            (&[("LOY_APPLE_PASS_TYPE_ID", "pass/x")], "LOY_APPLE_PASS_TYPE_ID"),
            (&[("LOY_APPLE_TEAM_ID", "abc")], "LOY_APPLE_TEAM_ID: `abc` is not an Apple team identifier"),
            (&[("LOY_APPLE_WWDR", "wwdr.pem")], "LOY_APPLE_WWDR is set but LOY_APPLE_CERTIFICATE is not"),
            (&[("LOY_APPLE_PASS_CACHE_MB", "lots")], "LOY_APPLE_PASS_CACHE_MB"),
        ];
        for (env, expected) in cases {
            let err = apple(env).unwrap_err().0;
            assert!(err.contains(expected), "{env:?} gave {err:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }
}
