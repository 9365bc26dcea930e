//! Images uploaded in the designer: checked, decoded (PNG, JPEG or WebP, by content, with the
//! `image` crate), and converted to the PNG files Apple Wallet wants at 1x, 2x and 3x and to the
//! image Google Wallet shows — then kept in the store under their SHA-256, so every node serves
//! the same bytes and a design refers to them by id.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, ImageFormat, ImageReader, Limits, RgbaImage};
use sha2::{Digest, Sha256};

use crate::domain::ImageSlot;
use crate::domain::design::{GOOGLE_IMAGE, ImageFiles};
use crate::store::{DynStore, StoreError};

/// The file name of an uploaded stamp picture.
pub const STAMP_IMAGE: &str = "stamp.png";

/// The largest upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;

/// The largest width or height decoded (a small file can claim a huge picture).
const MAX_SIDE: u32 = 8000;

/// Why an upload was refused; the message is shown to the staff member as it is.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the file is larger than 2 MB; save it smaller and upload it again")]
    TooLarge,
    #[error("the file is not a PNG, JPEG or WebP image")]
    NotAnImage,
    #[error("the image is larger than {MAX_SIDE}×{MAX_SIDE} pixels")]
    TooManyPixels,
    #[error("the image cannot be read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an image is fitted into a box.
#[derive(Debug, Clone, Copy)]
enum Fit {
    /// Scaled to fit inside, keeping its proportions (logos: never cropped).
    Inside,
    /// Scaled and cropped to fill the box exactly (icons, strips).
    Fill,
    /// Scaled to fit inside and centred on a transparent box of exactly that size.
    Pad,
}

/// The files of `slot`: name, box in pixels, and how the image is fitted.
fn outputs(slot: ImageSlot) -> &'static [(&'static str, u32, u32, Fit)] {
    match slot {
        // Apple: store card logo at most 160×50 points; icon 29×29; strip 375×144.
        ImageSlot::Logo => &[
            ("logo.png", 160, 50, Fit::Inside),
            ("logo@2x.png", 320, 100, Fit::Inside),
            ("logo@3x.png", 480, 150, Fit::Inside),
            // Google: a square program logo of 660×660 (shown in a circle).
            (GOOGLE_IMAGE, 660, 660, Fit::Pad),
        ],
        ImageSlot::Icon => {
            &[("icon.png", 29, 29, Fit::Fill), ("icon@2x.png", 58, 58, Fit::Fill), ("icon@3x.png", 87, 87, Fit::Fill)]
        }
        ImageSlot::Strip => &[
            ("strip.png", 375, 144, Fit::Fill),
            ("strip@2x.png", 750, 288, Fit::Fill),
            ("strip@3x.png", 1125, 432, Fit::Fill),
            // Google: the hero image, 1032×336.
            (GOOGLE_IMAGE, 1032, 336, Fit::Fill),
        ],
        // Drawn into every slot of a stamp card's strip (see `stamp_strips`), never a pass file.
        ImageSlot::Stamp => &[(STAMP_IMAGE, 256, 256, Fit::Pad)],
    }
}

/// The names of the files an upload for `slot` becomes (`logo.png`, …, and `google` where
/// Google Wallet shows the image).
pub fn file_names(slot: ImageSlot) -> impl Iterator<Item = &'static str> {
    outputs(slot).iter().map(|(name, ..)| *name)
}

/// Decodes an upload after checking its size and type.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(ImageError::TooLarge);
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| ImageError::NotAnImage)?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP) => {}
        _ => return Err(ImageError::NotAnImage),
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooManyPixels,
        other => ImageError::Unreadable(other.to_string()),
    })
}

fn fit(image: &DynamicImage, width: u32, height: u32, how: Fit) -> RgbaImage {
    match how {
        Fit::Inside => image.resize(width, height, FilterType::Lanczos3).to_rgba8(),
        Fit::Fill => image.resize_to_fill(width, height, FilterType::Lanczos3).to_rgba8(),
        Fit::Pad => {
            let inside = image.resize(width, height, FilterType::Lanczos3);
            let mut canvas = RgbaImage::new(width, height);
            let (w, h) = inside.dimensions();
            image::imageops::overlay(
                &mut canvas,
                &inside.to_rgba8(),
                i64::from((width - w) / 2),
                i64::from((height - h) / 2),
            );
            canvas
        }
    }
}

fn png(image: &RgbaImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

/// The id of a stored image: the hex SHA-256 of its bytes.
pub fn image_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `id` looks like an image id (so routes refuse anything else before the store).
pub fn is_image_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Converts an upload for `slot` into its PNG files (name → bytes). CPU work: call it off the
/// async runtime (see [`store_upload`]).
pub fn convert(slot: ImageSlot, bytes: &[u8]) -> Result<Vec<(&'static str, Vec<u8>)>, ImageError> {
    let image = decode(bytes)?;
    Ok(outputs(slot).iter().map(|&(name, w, h, how)| (name, png(&fit(&image, w, h, how)))).collect())
}

/// Converts an upload for `slot` and keeps its files in the store; answers the design's entry
/// for the slot (file name → image id).
pub async fn store_upload(store: &DynStore, slot: ImageSlot, bytes: Vec<u8>) -> Result<ImageFiles, ImageError> {
    let files = tokio::task::spawn_blocking(move || convert(slot, &bytes))
        .await
        .map_err(|e| ImageError::Unreadable(e.to_string()))??;
    let mut entry = ImageFiles::new();
    for (name, png) in files {
        let id = image_id(&png);
        store.put_image(&id, &png).await?;
        entry.insert(name.to_owned(), id);
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbaImage::from_fn(width, height, |x, y| image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(image).to_rgb8().write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn a_wide_logo_fits_apples_box_at_every_scale_and_googles_square() {
        let files = convert(ImageSlot::Logo, &jpeg(1200, 300)).unwrap();
        let sizes: Vec<_> = files.iter().map(|(name, png)| (*name, size(png))).collect();
        assert_eq!(
            sizes,
            [
                ("logo.png", (160, 40)),
                ("logo@2x.png", (320, 80)),
                ("logo@3x.png", (480, 120)),
                (GOOGLE_IMAGE, (660, 660))
            ]
        );
    }

    #[test]
    fn strips_and_icons_fill_their_boxes_exactly() {
        let strip = convert(ImageSlot::Strip, &jpeg(800, 800)).unwrap();
        assert_eq!(
            strip.iter().map(|(_, p)| size(p)).collect::<Vec<_>>(),
            [(375, 144), (750, 288), (1125, 432), (1032, 336)]
        );
        let icon = convert(ImageSlot::Icon, &jpeg(100, 60)).unwrap();
        assert_eq!(icon.iter().map(|(_, p)| size(p)).collect::<Vec<_>>(), [(29, 29), (58, 58), (87, 87)]);
    }

    #[test]
    fn large_files_and_non_images_are_refused_with_a_reason() {
        assert!(matches!(decode(&vec![0u8; MAX_UPLOAD_BYTES + 1]), Err(ImageError::TooLarge)));
        assert!(matches!(decode(b"GIF89a not really"), Err(ImageError::NotAnImage)));
        assert!(matches!(decode(b"%PDF-1.7"), Err(ImageError::NotAnImage)));
        assert_eq!(
            ImageError::TooLarge.to_string(),
            "the file is larger than 2 MB; save it smaller and upload it again"
        );
    }

    #[test]
    fn ids_are_content_hashes() {
        let id = image_id(b"x");
        assert!(is_image_id(&id));
        assert!(!is_image_id("../etc/passwd"));
    }
}
