//! The strips of a stamps program's cards: one image per number of stamps, drawn by
//! [`stamp_strip`](super::stamp_strip) in the design's colours with its stamp picture, for the
//! Apple pass (`strip.png` at 1x/2x/3x) and for the Google object's image module.
//!
//! A strip depends only on the design, the round's size and the stamps filled, so a program has
//! at most `stamps_per_reward + 1` of them per design: each is drawn once per node and kept, and
//! a pass build then costs what a points card's does — hashing `pass.json` and one signature.

use std::sync::Arc;

use image::RgbaImage;

use super::stamp_strip::{self as draw, Glyph, Icon, StripStyle};
use crate::domain::design::ImageFiles;
use crate::domain::{ImageSlot, Program, StampIcon, StampRules};
use crate::programs::images::{STAMP_IMAGE, is_image_id};
use crate::store::{DynStore, StoreError, StoreResult};

/// The pass's strip files and their sizes in pixels (Apple's store card strip: 375×144 points).
pub const APPLE_STRIPS: [(&str, u32, u32); 3] =
    [("strip.png", 375, 144), ("strip@2x.png", 750, 288), ("strip@3x.png", 1125, 432)];

/// The Google image module's strip: Google's wide image, 1032×336.
pub const GOOGLE_STRIP: (u32, u32) = (1032, 336);

/// What a strip is drawn from; equal keys draw equal images.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripKey {
    pub program_id: String,
    pub revision: i64,
    pub slots: u32,
    pub filled: u32,
    pub icon: StampIcon,
    /// The uploaded stamp picture's id, when the design uses one.
    pub image: Option<String>,
    pub colours: [String; 3],
}

impl StripKey {
    /// The strip of `program`'s published design with `filled` stamps.
    pub fn of(program: &Program, rules: &StampRules, filled: i64) -> Self {
        let design = &program.design;
        let slots = rules.stamps_per_reward;
        Self {
            program_id: program.id.clone(),
            revision: design.revision,
            slots,
            filled: u32::try_from(filled.clamp(0, i64::from(slots))).unwrap_or(0),
            icon: design.stamp_icon,
            image: stamp_image(&design.images),
            colours: [design.background_color.clone(), design.foreground_color.clone(), design.label_color.clone()],
        }
    }
}

/// The id of the uploaded stamp picture in a design's images.
pub fn stamp_image(images: &std::collections::BTreeMap<ImageSlot, ImageFiles>) -> Option<String> {
    images.get(&ImageSlot::Stamp).and_then(|files| files.get(STAMP_IMAGE)).filter(|id| is_image_id(id)).cloned()
}

/// The address of the Google strip of `program`'s cards with `filled` stamps. It names the
/// design revision and the round's size, so a published change gets new addresses and Google
/// fetches the new images.
pub fn google_path(program: &Program, filled: u32) -> String {
    let slots = program.rules.stamps.stamps_per_reward;
    format!("/media/stamps/{}/{}-{slots}-{filled}.png", program.id, program.design.revision)
}

/// Draws the strip of `key` at `width`×`height` as PNG; the uploaded stamp picture is read from
/// the store (an unreadable one falls back to the cup, logged).
pub async fn render(store: &DynStore, key: &StripKey, sizes: &[(u32, u32)]) -> StoreResult<Vec<Vec<u8>>> {
    let uploaded = match (&key.image, key.icon) {
        (Some(id), StampIcon::Uploaded) => load_picture(store, id).await?,
        _ => None,
    };
    let (key, sizes) = (key.clone(), sizes.to_vec());
    tokio::task::spawn_blocking(move || {
        let style = style(&key, uploaded.as_ref());
        sizes.iter().map(|(w, h)| draw::render_png(&style, *w, *h)).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| StoreError::unavailable(anyhow::anyhow!("drawing a stamp strip failed: {e}")))
}

/// The drawing style of `key`, with the uploaded picture when there is one.
pub fn style<'a>(key: &StripKey, uploaded: Option<&'a RgbaImage>) -> StripStyle<'a> {
    let colour = |i: usize, fallback: [u8; 3]| draw::parse_rgb(&key.colours[i]).unwrap_or(fallback);
    let icon = match (key.icon, uploaded) {
        (StampIcon::Uploaded, Some(picture)) => Icon::Image(picture),
        (StampIcon::Star, _) => Icon::Glyph(Glyph::Star),
        (StampIcon::Scissors, _) => Icon::Glyph(Glyph::Scissors),
        (StampIcon::Car, _) => Icon::Glyph(Glyph::Car),
        _ => Icon::Glyph(Glyph::Cup),
    };
    StripStyle {
        slots: key.slots,
        filled: key.filled,
        background: colour(0, [28, 43, 74]),
        foreground: colour(1, [255, 255, 255]),
        label: colour(2, [244, 196, 98]),
        icon,
    }
}

async fn load_picture(store: &DynStore, id: &str) -> StoreResult<Option<RgbaImage>> {
    let Some(bytes) = store.image(id).await? else {
        tracing::warn!(image = %id, "the stamp picture is missing from the store; drawing the cup");
        return Ok(None);
    };
    match image::load_from_memory_with_format(&bytes, image::ImageFormat::Png) {
        Ok(picture) => Ok(Some(picture.to_rgba8())),
        Err(e) => {
            tracing::warn!(image = %id, error = %e, "the stamp picture cannot be read; drawing the cup");
            Ok(None)
        }
    }
}

/// How many Google strips a node keeps (each some 20 KB).
const GOOGLE_STRIPS: u64 = 1024;

/// The Google strips this node has drawn.
pub struct GoogleStrips {
    cache: moka::future::Cache<StripKey, Arc<Vec<u8>>>,
}

impl Default for GoogleStrips {
    fn default() -> Self {
        Self { cache: moka::future::Cache::new(GOOGLE_STRIPS) }
    }
}

impl GoogleStrips {
    /// The PNG of `key`'s Google strip, drawn once (concurrent first requests share the drawing).
    pub async fn get(&self, store: &DynStore, key: StripKey) -> StoreResult<Arc<Vec<u8>>> {
        let draw = async {
            let mut pngs = render(store, &key, &[GOOGLE_STRIP]).await?;
            Ok::<_, StoreError>(Arc::new(pngs.pop().unwrap_or_default()))
        };
        self.cache.try_get_with(key.clone(), draw).await.map_err(|e| super::copy_error(&e))
    }
}
