//! The `.pkpass` bundle: `manifest.json` (the SHA-1 of every file) and the zip around it.
//!
//! The zip is deterministic: a fixed entry order and a fixed timestamp, so the same card
//! version always gives the same bytes except for the signature (its signing time).
//! Images are stored as they are (PNG is already compressed); text is deflated.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use sha1::{Digest, Sha1};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "signature";
pub const PASS_JSON: &str = "pass.json";

/// Lowercase hex SHA-1, as `manifest.json` lists it.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// `manifest.json` for `(name, sha1)` pairs: a JSON object, keys sorted.
pub fn manifest<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let map: BTreeMap<&str, &str> = entries.into_iter().collect();
    serde_json::to_vec(&map).expect("a map of strings always serialises")
}

/// One file of the bundle.
pub struct Entry<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
    /// Store as is (images, the signature) instead of deflating.
    pub stored: bool,
}

/// Zips the entries in the order given.
pub fn zip(entries: &[Entry<'_>]) -> zip::result::ZipResult<Vec<u8>> {
    let capacity = entries.iter().map(|e| e.bytes.len() + e.name.len() + 100).sum();
    let mut writer = ZipWriter::new(Cursor::new(Vec::with_capacity(capacity)));
    let base = SimpleFileOptions::default().last_modified_time(DateTime::default()).unix_permissions(0o644);
    for entry in entries {
        let options = if entry.stored {
            base.compression_method(CompressionMethod::Stored)
        } else {
            base.compression_method(CompressionMethod::Deflated)
        };
        writer.start_file(entry.name, options)?;
        writer.write_all(entry.bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_lists_lowercase_hex_sha1_sorted_by_name() {
        let a = sha1_hex(b"abc");
        assert_eq!(a, "a9993e364706816aba3e25717850c26c9cd0d89d");
        let m = manifest([("pass.json", a.as_str()), ("icon.png", "00")]);
        assert_eq!(String::from_utf8(m).unwrap(), format!(r#"{{"icon.png":"00","pass.json":"{a}"}}"#));
    }

    #[test]
    fn the_same_files_zip_to_the_same_bytes_and_unzip_intact() {
        let png = [0x89u8, b'P', b'N', b'G', 1, 2, 3];
        let entries = [
            Entry { name: "pass.json", bytes: br#"{"a": 1}"#, stored: false },
            Entry { name: "icon.png", bytes: &png, stored: true },
        ];
        let first = zip(&entries).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(zip(&entries).unwrap(), first, "no clock in the bytes");
        let mut archive = zip::ZipArchive::new(Cursor::new(first)).unwrap();
        let icon = archive.by_name("icon.png").unwrap();
        assert_eq!(icon.compression(), CompressionMethod::Stored);
        drop(icon);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("pass.json").unwrap(), &mut text).unwrap();
        assert_eq!(text, r#"{"a": 1}"#);
    }
}
