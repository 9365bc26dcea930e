//! Just enough DER to read the signing time out of a PKCS#7 signature: OpenSSL's Rust binding
//! exposes no signed attributes, and Wallet refuses signatures without a signing time.

use chrono::{DateTime, NaiveDateTime, Utc};

/// `1.2.840.113549.1.9.5` (pkcs-9 signingTime), DER-encoded with its tag and length.
const SIGNING_TIME_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];

/// One DER element: its tag and contents.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Splits the first element off `input` (definite lengths only, as DER requires).
fn next(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((Tlv { tag, content: &rest[..len] }, &rest[len..]))
}

/// The elements inside a constructed element's contents.
fn children(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, rest) = next(content)?;
        out.push(tlv);
        content = rest;
    }
    Some(out)
}

/// The signing times of every signer of a DER PKCS#7 SignedData; `None` when the structure
/// cannot be read, an empty list when no signer has one.
pub fn signing_times(der: &[u8]) -> Option<Vec<DateTime<Utc>>> {
    // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
    let (content_info, _) = next(der)?;
    let content_info = children(content_info.content)?;
    let explicit = content_info.get(1).filter(|t| t.tag == 0xa0)?;
    let (signed_data, _) = next(explicit.content)?;
    // SignedData ::= SEQUENCE { version, digestAlgorithms, contentInfo, [0] certs, [1] crls, signerInfos }
    let signer_infos = children(signed_data.content)?.into_iter().rev().find(|t| t.tag == 0x31)?;
    let mut times = Vec::new();
    for signer in children(signer_infos.content)? {
        // SignerInfo ::= SEQUENCE { version, issuerAndSerial, digestAlg, [0] IMPLICIT authenticatedAttributes, … }
        let Some(attributes) = children(signer.content)?.into_iter().find(|t| t.tag == 0xa0) else { continue };
        for attribute in children(attributes.content)? {
            // Attribute ::= SEQUENCE { type OID, values SET OF value }
            let parts = children(attribute.content)?;
            let (Some(oid), Some(values)) = (parts.first(), parts.get(1)) else { continue };
            if oid.tag != 0x06 || [&[0x06, 0x09][..], oid.content].concat() != SIGNING_TIME_OID {
                continue;
            }
            let (value, _) = next(values.content)?;
            times.push(parse_time(value.tag, value.content)?);
        }
    }
    Some(times)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, content: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let full = match tag {
        0x17 => {
            let year: u32 = text.get(..2)?.parse().ok()?;
            // RFC 5280: two-digit years 50–99 are 19xx, 00–49 are 20xx.
            format!("{}{text}", if year >= 50 { "19" } else { "20" })
        }
        0x18 => text.to_owned(),
        _ => return None,
    };
    NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S").ok().map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_encodings_are_read() {
        let utc = parse_time(0x17, b"250601123000Z").unwrap();
        assert_eq!(utc.to_rfc3339(), "2025-06-01T12:30:00+00:00");
        let generalized = parse_time(0x18, b"20510101000000Z").unwrap();
        assert_eq!(generalized.to_rfc3339(), "2051-01-01T00:00:00+00:00");
        assert!(parse_time(0x17, b"garbage").is_none());
    }

    #[test]
    fn truncated_or_random_input_is_refused_not_a_panic() {
        assert!(signing_times(&[]).is_none());
        assert!(signing_times(&[0x30, 0x82, 0xff]).is_none());
        assert!(signing_times(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_none());
        for seed in 0u8..=255 {
            let noise: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(seed).wrapping_add(seed)).collect();
            let _ = signing_times(&noise);
        }
    }
}
