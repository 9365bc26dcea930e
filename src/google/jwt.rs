//! RS256 for `jsonwebtoken`, computed by `ring`.
//!
//! jsonwebtoken 10+ leaves the cryptography to a pluggable [`CryptoProvider`]. Its built-in
//! choices are `aws_lc_rs` (a C library build of several minutes) and `rust_crypto` (about twenty
//! more crates, and the `rsa` crate's unfixed timing advisory RUSTSEC-2023-0071). loy already
//! links `ring` through rustls, and yup-oauth2 signs its OAuth assertions with the same ring RSA
//! code, so this provider adds no crate. It handles exactly what loy needs: RS256 signing with
//! the service-account key and RS256 verification (used by the tests and by callers that check
//! tokens). Other algorithms are refused with `UnsupportedAlgorithm`.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, new_error};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey};

/// The provider; [`install`] makes it the process default.
pub static RING_RS256: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes [`RING_RS256`] jsonwebtoken's provider for this process. Calling it again does nothing.
pub fn install() {
    // `Err` means a provider is already installed: this one, by an earlier call.
    let _ = RING_RS256.install_default();
}

/// Parses an RSA private key in PEM (PKCS#1 or PKCS#8) into a key ring accepts for RS256.
pub fn rsa_encoding_key(pem: &str) -> Result<EncodingKey, jsonwebtoken::errors::Error> {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes())?;
    RsaKeyPair::from_der(key.as_bytes()).map_err(|e| new_error(ErrorKind::InvalidRsaKey(e.to_string())))?;
    Ok(key)
}

struct RingSigner(RsaKeyPair);

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut signature).map_err(|_| SignatureError::new())?;
        Ok(signature)
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

struct RingVerifier(Vec<u8>);

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.0)
            .verify(msg, signature)
            .map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::RS256 {
        return Err(new_error(ErrorKind::UnsupportedAlgorithm));
    }
    if key.family() != AlgorithmFamily::Rsa {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    // The key is PKCS#1 DER, which is what `EncodingKey::from_rsa_pem` produces.
    let pair = RsaKeyPair::from_der(key.as_bytes()).map_err(|e| new_error(ErrorKind::InvalidRsaKey(e.to_string())))?;
    Ok(Box::new(RingSigner(pair)))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::RS256 {
        return Err(new_error(ErrorKind::UnsupportedAlgorithm));
    }
    match key.kind() {
        // PKCS#1 RSAPublicKey DER, as `DecodingKey::from_rsa_pem` produces.
        DecodingKeyKind::SecretOrDer(der) if key.family() == AlgorithmFamily::Rsa => {
            Ok(Box::new(RingVerifier(der.clone())))
        }
        _ => Err(new_error(ErrorKind::InvalidKeyFormat)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_algorithms_are_refused_rather_than_mis_signed() {
        let key = EncodingKey::from_secret(b"secret");
        assert!(matches!(
            new_signer(&Algorithm::HS256, &key).err().map(|e| e.into_kind()),
            Some(ErrorKind::UnsupportedAlgorithm)
        ));
        assert!(matches!(
            new_signer(&Algorithm::RS256, &key).err().map(|e| e.into_kind()),
            Some(ErrorKind::InvalidKeyFormat)
        ));
        let key = DecodingKey::from_secret(b"secret");
        assert!(new_verifier(&Algorithm::RS256, &key).is_err());
    }

    #[test]
    fn a_pem_that_is_not_an_rsa_key_is_refused() {
        assert!(rsa_encoding_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(rsa_encoding_key("not a pem").is_err());
    }
}
