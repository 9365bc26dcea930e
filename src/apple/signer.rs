//! The pass signature: a detached PKCS#7 SignedData in DER over `manifest.json`.
//!
//! Wallet requires the signed attributes (it reads the signing time) and the WWDR intermediate
//! in the certificate set, so the signature is made with `BINARY | DETACHED` and without
//! `NOATTR`; OpenSSL adds the content type, signing time and message digest attributes.

use openssl::error::ErrorStack;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};

use super::certs::SigningIdentity;

/// Signs the manifest bytes; the result is the bundle's `signature` file.
pub fn sign_manifest(identity: &SigningIdentity, manifest: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    // NOSMIMECAP leaves out the S/MIME capabilities attribute, which only matters for e-mail.
    let flags = Pkcs7Flags::BINARY | Pkcs7Flags::DETACHED | Pkcs7Flags::NOSMIMECAP;
    Pkcs7::sign(&identity.certificate, &identity.key, &identity.chain, manifest, flags)?.to_der()
}
