//! The files a program's design puts into its passes: the uploaded images (`logo.png`,
//! `logo@2x.png`, `strip@3x.png`, …) that replace the template's files of the same name.
//!
//! They are read from the store once per (program, design revision) and kept in memory with
//! their SHA-1 computed, like the template's own files, so a pass build still hashes only
//! `pass.json` and makes one RSA signature. A published design never changes under its revision;
//! the image ids it was loaded from are kept too, so an unpublished edit of the stored design
//! (same revision, other images) is noticed and loaded again rather than served stale.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bundle::sha1_hex;
use super::template::{StaticFile, png_size};
use crate::domain::design::{GOOGLE_IMAGE, ImageFiles};
use crate::domain::{Card, ImageSlot, Program};
use crate::programs::images::is_image_id;
use crate::programs::stamp_strips::{self, APPLE_STRIPS, StripKey};
use crate::store::{DynStore, StoreError, StoreResult};

/// One design's replacement files.
#[derive(Debug, Default)]
pub struct DesignFiles {
    /// What they were loaded from.
    images: BTreeMap<ImageSlot, ImageFiles>,
    /// Sorted by name.
    pub files: Vec<StaticFile>,
}

impl DesignFiles {
    /// `(name, PNG bytes)` pairs of a design made of `images`.
    pub fn new(images: BTreeMap<ImageSlot, ImageFiles>, files: Vec<(String, Vec<u8>)>) -> Self {
        let mut files: Vec<StaticFile> = files
            .into_iter()
            .map(|(name, bytes)| StaticFile { sha1: sha1_hex(&bytes), name, bytes, stored: true })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Self { images, files }
    }

    /// The files of a pass: the template's, each replaced by the design's file of the same name,
    /// plus the design's files the template lacks; sorted by name.
    pub fn merge<'a>(&'a self, template: &'a [StaticFile]) -> Vec<&'a StaticFile> {
        let replaced = |name: &str| self.files.binary_search_by(|f| f.name.as_str().cmp(name)).is_ok();
        let mut all: Vec<&StaticFile> =
            template.iter().filter(|f| !replaced(&f.name)).chain(self.files.iter()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// How many designs are kept (each a few hundred KB at most).
const DESIGNS: u64 = 256;

/// How many stamp cards' file sets are kept: one per (design, stamps filled), each the
/// design's files plus a strip at three sizes.
const STAMPED: u64 = 512;

/// Loaded designs by (program id, design revision).
pub struct DesignFileCache {
    cache: moka::future::Cache<(String, i64), Arc<DesignFiles>>,
    /// Stamps programs: the design's files with the strip of a number of stamps.
    stamped: moka::future::Cache<StripKey, Arc<DesignFiles>>,
    empty: Arc<DesignFiles>,
}

impl Default for DesignFileCache {
    fn default() -> Self {
        Self {
            cache: moka::future::Cache::new(DESIGNS),
            stamped: moka::future::Cache::new(STAMPED),
            empty: Arc::default(),
        }
    }
}

impl DesignFileCache {
    /// The replacement files of `program`'s design, from memory or read from the store.
    pub async fn get(&self, store: &DynStore, program: &Program) -> StoreResult<Arc<DesignFiles>> {
        let images = &program.design.images;
        if images.is_empty() {
            return Ok(self.empty.clone());
        }
        let key = (program.id.clone(), program.design.revision);
        if let Some(files) = self.cache.get(&key).await {
            if files.images == *images {
                return Ok(files);
            }
        }
        let files = Arc::new(load(store, program).await?);
        self.cache.insert(key, files.clone()).await;
        Ok(files)
    }

    /// The files of `card`'s pass: the design's, and for a stamps program the strip showing the
    /// card's stamps (drawn the first time this node needs that number of stamps, then kept).
    pub async fn for_card(&self, store: &DynStore, program: &Program, card: &Card) -> StoreResult<Arc<DesignFiles>> {
        let base = self.get(store, program).await?;
        let Some(rules) = program.rules.stamp_rules() else { return Ok(base) };
        let key = StripKey::of(program, rules, card.balance);
        let build = async {
            let sizes: Vec<(u32, u32)> = APPLE_STRIPS.iter().map(|(_, w, h)| (*w, *h)).collect();
            let pngs = stamp_strips::render(store, &key, &sizes).await?;
            let strips: Vec<StaticFile> = APPLE_STRIPS
                .iter()
                .zip(pngs)
                .map(|((name, ..), bytes)| StaticFile {
                    sha1: sha1_hex(&bytes),
                    name: (*name).to_owned(),
                    bytes,
                    stored: true,
                })
                .collect();
            let mut files: Vec<StaticFile> =
                base.files.iter().filter(|f| !strips.iter().any(|s| s.name == f.name)).cloned().collect();
            files.extend(strips);
            files.sort_by(|a, b| a.name.cmp(&b.name));
            Ok::<_, StoreError>(Arc::new(DesignFiles { images: base.images.clone(), files }))
        };
        self.stamped.try_get_with(key.clone(), build).await.map_err(|e| crate::programs::copy_error(&e))
    }
}

/// Reads the design's pass images from the store. An image that is missing or not a PNG is left
/// out (logged): the pass then keeps the template's file of that name rather than failing.
async fn load(store: &DynStore, program: &Program) -> StoreResult<DesignFiles> {
    let mut files = Vec::new();
    // The stamp picture is drawn into the strip (`stamp_strips`), not a file of the pass.
    let pass_images = program.design.images.iter().filter(|(slot, _)| **slot != ImageSlot::Stamp);
    for (_, entry) in pass_images {
        for (name, id) in entry.iter().filter(|(name, _)| name.as_str() != GOOGLE_IMAGE) {
            let bytes = if is_image_id(id) { store.image(id).await? } else { None };
            match bytes {
                Some(bytes) if png_size(&bytes).is_some() => files.push((name.clone(), bytes)),
                _ => tracing::warn!(program = %program.id, file = %name, image = %id,
                    "a design image is missing from the store; the pass uses the template's file"),
            }
        }
    }
    Ok(DesignFiles::new(program.design.images.clone(), files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, byte: u8) -> StaticFile {
        let bytes = vec![byte];
        StaticFile { sha1: sha1_hex(&bytes), name: name.to_owned(), bytes, stored: true }
    }

    #[test]
    fn design_files_replace_the_templates_of_the_same_name_and_add_the_others() {
        let template = [file("icon.png", 1), file("logo.png", 1), file("pass.strings", 1)];
        let design =
            DesignFiles::new(BTreeMap::new(), vec![("strip.png".into(), vec![2]), ("logo.png".into(), vec![2])]);
        let merged: Vec<(&str, u8)> = design.merge(&template).iter().map(|f| (f.name.as_str(), f.bytes[0])).collect();
        assert_eq!(merged, [("icon.png", 1), ("logo.png", 2), ("pass.strings", 1), ("strip.png", 2)]);
        assert_eq!(DesignFiles::default().merge(&template).len(), 3);
    }
}
