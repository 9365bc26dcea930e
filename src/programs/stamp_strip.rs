//! Stamp-card strips: the slots of a stamp card ("buy 10 coffees, get one free"), the collected ones
//! filled, drawn as the Apple Wallet strip image and Google Wallet's image module. Drawn with
//! anti-aliased `tiny_skia` paths, every measure taken from the layout, so each size is sharp; the
//! caller caches one PNG per design, stamp count and size.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbaImage};
use tiny_skia::{
    BlendMode, Color, FillRule, IntSize, LineCap, LineJoin, Paint, Path, PathBuilder, Pixmap, PixmapPaint, Stroke,
    Transform,
};

/// The most slots a card can have.
pub const MAX_SLOTS: u32 = 30;
/// The margin around the slots, as a share of the image height.
const MARGIN: f32 = 0.08;
/// The least gap between neighbouring slots, as a share of the radius.
const GAP: f32 = 0.2;
/// The furthest apart (in radii) neighbouring slots are spread when the image has room to spare.
const MAX_PITCH: f32 = 2.7;
/// The ring of an empty slot: where it runs and how thick it is, as shares of the radius.
const RING_AT: f32 = 0.92;
const RING_WIDTH: f32 = 0.08;
/// Half the side of the box a glyph or uploaded picture fits in, as a share of the radius.
const GLYPH_HALF: f32 = 0.55;
const RING_OPACITY: f32 = 0.55;
const GLYPH_OPACITY: f32 = 0.3;
/// Below this WCAG contrast against the background the label colour cannot mark a filled slot.
const MIN_CONTRAST: f32 = 1.6;

/// The built-in stamp pictures the designer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Glyph {
    Cup,
    Star,
    Scissors,
    Car,
}

/// What a slot shows: a built-in glyph or an uploaded picture (RGBA, any size).
#[derive(Debug, Clone, Copy)]
pub enum Icon<'a> {
    Glyph(Glyph),
    Image(&'a image::RgbaImage),
}

/// A card design and stamp count, as the strip shows them.
#[derive(Debug, Clone, Copy)]
pub struct StripStyle<'a> {
    /// How many stamps fill the card: 1..=30 (0 is drawn as 1, more than 30 as 30).
    pub slots: u32,
    /// How many are collected: 0..=slots (more is drawn as all).
    pub filled: u32,
    pub background: [u8; 3],
    pub foreground: [u8; 3],
    pub label: [u8; 3],
    pub icon: Icon<'a>,
}

/// Where the slots are in a `width`×`height` image.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub centres: Vec<(f32, f32)>,
    pub radius: f32,
}

/// Places `slots` (clamped to 1..=30) in evenly spaced, centred rows: one row up to 6 slots, one or two
/// up to 20, two or three past that, whichever gives the largest slots (the top rows hold the extra
/// slots); the slots are as large as fit, 8 % of the height in from the edges.
pub fn layout(slots: u32, width: u32, height: u32) -> Layout {
    let slots = slots.clamp(1, MAX_SLOTS);
    let (w, h) = (width as f32, height as f32);
    let margin = MARGIN * h;
    let (room_x, room_y) = ((w - 2.0 * margin).max(0.0), (h - 2.0 * margin).max(0.0));
    let span = |n: u32| 2.0 * n as f32 + GAP * (n - 1) as f32;
    let fit = |rows: u32| (room_x / span(slots.div_ceil(rows))).min(room_y / span(rows));
    let allowed = |rows: u32| [slots <= 20, slots > 6, slots > 20][rows as usize - 1];
    // The row count giving the largest slots (the fewest rows on a tie).
    let rows = (1..=3).rev().filter(|&r| allowed(r)).max_by(|&a, &b| fit(a).total_cmp(&fit(b))).unwrap_or(1);
    let radius = fit(rows);
    let per_row: Vec<u32> = (0..rows).map(|i| slots / rows + u32::from(i < slots % rows)).collect();
    let pitch = |room: f32, n: u32| {
        if n > 1 { ((room - 2.0 * radius) / (n - 1) as f32).min(MAX_PITCH * radius) } else { 0.0 }
    };
    let (pitch_x, pitch_y) = (pitch(room_x, per_row[0]), pitch(room_y, rows));
    let offset = |i: usize, n: u32| i as f32 - (n - 1) as f32 / 2.0;
    let mut centres = Vec::with_capacity(slots as usize);
    for (row, &n) in per_row.iter().enumerate() {
        let y = h / 2.0 + offset(row, rows) * pitch_y;
        centres.extend((0..n as usize).map(|i| (w / 2.0 + offset(i, n) * pitch_x, y)));
    }
    Layout { centres, radius }
}

/// A pixel inside slot `i` that shows the fill colour of a filled slot and the background colour of an
/// empty one: never covered by the glyph or the ring (tests read filled/empty there).
pub fn probe(layout: &Layout, i: usize) -> (u32, u32) {
    let (x, y) = layout.centres[i];
    (x.max(0.0) as u32, (y - 0.75 * layout.radius).max(0.0) as u32)
}

/// The colour a filled slot is painted with (what `probe` reads in a filled slot): the label colour,
/// unless it is too close to the background to tell a filled slot from an empty one.
pub fn fill_colour(style: &StripStyle) -> [u8; 3] {
    if contrast(style.label, style.background) < MIN_CONTRAST { style.foreground } else { style.label }
}

/// The WCAG 2 contrast ratio of two sRGB colours (1 to 21).
fn contrast(a: [u8; 3], b: [u8; 3]) -> f32 {
    let luminance = |c: [u8; 3]| {
        let linear = |v: u8| {
            let v = f32::from(v) / 255.0;
            if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2])
    };
    let (a, b) = (luminance(a), luminance(b));
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

/// Draws the strip: opaque background, empty slots as a faint ring around a faint glyph, filled slots as
/// a disc with the glyph cut in the background colour (or the uploaded picture on it).
///
/// # Panics
/// If `width` or `height` is 0.
pub fn render(style: &StripStyle, width: u32, height: u32) -> RgbaImage {
    let mut canvas = Pixmap::new(width, height).expect("a strip is at least 1×1 pixel");
    let [red, green, blue] = style.background;
    canvas.fill(Color::from_rgba8(red, green, blue, 255));
    let layout = layout(style.slots, width, height);
    let r = layout.radius;
    let (full, empty) = layout.centres.split_at((style.filled as usize).min(layout.centres.len()));
    let (disc, ring) = (paint(fill_colour(style), 1.0), paint(style.label, RING_OPACITY));
    let ring_line = Stroke { width: RING_WIDTH * r, ..Stroke::default() };
    for (i, &(x, y)) in layout.centres.iter().enumerate() {
        let Some(circle) = PathBuilder::from_circle(x, y, RING_AT * r) else { continue };
        // A filled slot's disc reaches the outer edge of an empty slot's ring.
        if i < full.len() {
            canvas.fill_path(&circle, &disc, FillRule::Winding, Transform::identity(), None);
        }
        let edge = if i < full.len() { &disc } else { &ring };
        canvas.stroke_path(&circle, edge, &ring_line, Transform::identity(), None);
    }
    let faded = |opacity| PixmapPaint { opacity, ..PixmapPaint::default() };
    match style.icon {
        Icon::Glyph(glyph) => {
            // Each glyph is drawn opaque on a layer (so its overlapping parts and cut-outs stay clean),
            // then the layer is laid on the canvas at the slot state's opacity.
            let mut layer = Pixmap::new(width, height).expect("same size as the canvas");
            for (centres, ink, opacity) in [(full, style.background, 1.0), (empty, style.label, GLYPH_OPACITY)] {
                if centres.is_empty() {
                    continue;
                }
                layer.fill(Color::TRANSPARENT);
                for &(x, y) in centres {
                    let at = Transform::from_row(GLYPH_HALF * r, 0.0, 0.0, GLYPH_HALF * r, x, y);
                    draw_glyph(&mut Pen { layer: &mut layer, at, ink: paint(ink, 1.0) }, glyph);
                }
                canvas.draw_pixmap(0, 0, layer.as_ref(), &faded(opacity), Transform::identity(), None);
            }
        }
        Icon::Image(picture) => {
            if let Some(picture) = fitted(picture, (2.0 * GLYPH_HALF * r).round() as u32) {
                let (w, h) = (picture.width() as f32, picture.height() as f32);
                for (centres, opacity) in [(full, 1.0), (empty, GLYPH_OPACITY)] {
                    for &(x, y) in centres {
                        let (left, top) = ((x - w / 2.0).round() as i32, (y - h / 2.0).round() as i32);
                        canvas.draw_pixmap(left, top, picture.as_ref(), &faded(opacity), Transform::identity(), None);
                    }
                }
            }
        }
    }
    let straight = canvas.pixels().iter().flat_map(|p| {
        let c = p.demultiply();
        [c.red(), c.green(), c.blue(), c.alpha()]
    });
    RgbaImage::from_raw(width, height, straight.collect()).expect("a pixmap holds width × height pixels")
}

/// `render` encoded as PNG (RGB: the strip is opaque, and Wallet passes are kept small).
pub fn render_png(style: &StripStyle, width: u32, height: u32) -> Vec<u8> {
    let rgb = DynamicImage::ImageRgba8(render(style, width, height)).into_rgb8();
    let mut out = Cursor::new(Vec::new());
    rgb.write_to(&mut out, ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

/// Parses `rgb(r, g, b)` (Apple's pass.json colour form; spaces optional) — None if malformed.
pub fn parse_rgb(s: &str) -> Option<[u8; 3]> {
    let inner = s.trim().strip_prefix("rgb")?.trim_start().strip_prefix('(')?.strip_suffix(')')?;
    let mut parts = inner.split(',').map(|part| {
        let part = part.trim();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) { None } else { part.parse::<u8>().ok() }
    });
    let rgb = [parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some(rgb)
}

fn paint([r, g, b]: [u8; 3], opacity: f32) -> Paint<'static> {
    let mut paint = Paint { anti_alias: true, ..Paint::default() };
    paint.set_color_rgba8(r, g, b, (opacity * 255.0).round() as u8);
    paint
}

/// `picture` scaled, keeping its proportions, to fit a `side`×`side` box, as a premultiplied pixmap.
fn fitted(picture: &RgbaImage, side: u32) -> Option<Pixmap> {
    let (w, h) = picture.dimensions();
    if w == 0 || h == 0 || side == 0 {
        return None;
    }
    let scale = side as f32 / w.max(h) as f32;
    let (w, h) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
    // `resize` expects premultiplied alpha: straight alpha would bleed the colour of transparent pixels
    // into the picture's edges.
    let mut premultiplied = picture.clone();
    for p in premultiplied.pixels_mut() {
        let a = u16::from(p[3]);
        p.0[..3].iter_mut().for_each(|c| *c = ((u16::from(*c) * a + 127) / 255) as u8);
    }
    let mut data = image::imageops::resize(&premultiplied, w, h, FilterType::Lanczos3).into_raw();
    for p in data.chunks_exact_mut(4) {
        let a = p[3];
        p[..3].iter_mut().for_each(|c| *c = (*c).min(a)); // Lanczos overshoots; keep it premultiplied
    }
    Pixmap::from_vec(data, IntSize::from_wh(w, h)?)
}

/// Draws on a glyph layer in the glyph's own square, -1..1 on both axes (y down), mapped by `at`.
struct Pen<'a> {
    layer: &'a mut Pixmap,
    at: Transform,
    ink: Paint<'static>,
}

impl Pen<'_> {
    fn fill(&mut self, path: Option<Path>) {
        let Some(path) = path else { return };
        self.layer.fill_path(&path, &self.ink, FillRule::Winding, self.at, None);
    }

    fn line(&mut self, path: Option<Path>, width: f32) {
        let stroke = Stroke { width, line_cap: LineCap::Round, line_join: LineJoin::Round, ..Stroke::default() };
        let Some(path) = path else { return };
        self.layer.stroke_path(&path, &self.ink, &stroke, self.at, None);
    }

    /// Fills the polygon through `points`, its corners rounded by a line `round` wide around it.
    fn blob(&mut self, points: &[(f32, f32)], round: f32) {
        self.fill(polygon(points));
        self.line(polygon(points), round);
    }

    /// Erases `path` from the layer, so what lies beneath the glyph shows through.
    fn cut(&mut self, path: Option<Path>) {
        let clear = Paint { blend_mode: BlendMode::Clear, ..self.ink.clone() };
        let Some(path) = path else { return };
        self.layer.fill_path(&path, &clear, FillRule::Winding, self.at, None);
    }
}

fn polygon(points: &[(f32, f32)]) -> Option<Path> {
    let mut pb = PathBuilder::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        if i == 0 { pb.move_to(x, y) } else { pb.line_to(x, y) }
    }
    pb.close();
    pb.finish()
}

fn draw_glyph(pen: &mut Pen, glyph: Glyph) {
    let circle = PathBuilder::from_circle;
    match glyph {
        Glyph::Cup => {
            pen.blob(&[(-0.6, -0.15), (0.5, -0.15), (0.39, 0.43), (0.22, 0.59), (-0.32, 0.59), (-0.49, 0.43)], 0.1);
            pen.line(tiny_skia::Rect::from_xywh(0.3, -0.08, 0.54, 0.42).and_then(PathBuilder::from_oval), 0.14);
            pen.line(polygon(&[(-0.86, 0.82), (0.66, 0.82)]), 0.14);
            for x in [-0.34, -0.04, 0.26] {
                let mut steam = PathBuilder::new();
                steam.move_to(x, -0.38);
                steam.cubic_to(x - 0.14, -0.52, x + 0.14, -0.66, x, -0.84);
                pen.line(steam.finish(), 0.11);
            }
        }
        Glyph::Star => {
            let point = |i: usize| {
                let (angle, reach) = (std::f32::consts::PI * (i as f32 / 5.0 - 0.5), [0.92, 0.42][i % 2]);
                (reach * angle.cos(), 0.09 + reach * angle.sin())
            };
            pen.blob(&(0..10).map(point).collect::<Vec<_>>(), 0.12);
        }
        Glyph::Scissors => {
            for side in [-1.0, 1.0] {
                // One half: the finger ring, and the arm from it through the pivot to the opposite tip.
                pen.line(circle(0.4 * side, 0.58, 0.27), 0.15);
                let (d, n) = ((0.537, -0.844), (0.844, 0.537)); // along the arm towards its tip, and across it
                let at = |t: f32, w: f32| (-side * (t * d.0 + w * n.0), -0.1 + t * d.1 + w * n.1);
                let points =
                    [at(-0.5, 0.08), at(0.0, 0.14), at(0.5, 0.09), at(0.92, 0.0), at(0.0, -0.09), at(-0.5, -0.08)];
                pen.fill(polygon(&points));
            }
            pen.cut(circle(0.0, -0.1, 0.06));
        }
        Glyph::Car => {
            let body = [(-0.85, 0.35), (-0.85, -0.03), (-0.48, -0.09), (-0.3, -0.39), (0.22, -0.39), (0.47, -0.09)];
            pen.blob(&[&body[..], &[(0.78, -0.02), (0.85, 0.06), (0.85, 0.35)]].concat(), 0.14);
            pen.cut(polygon(&[(-0.4, -0.17), (-0.27, -0.38), (-0.08, -0.38), (-0.08, -0.17)]));
            pen.cut(polygon(&[(0.0, -0.17), (0.0, -0.38), (0.18, -0.38), (0.36, -0.17)]));
            for x in [-0.5, 0.5] {
                pen.cut(circle(x, 0.42, 0.3));
                pen.fill(circle(x, 0.42, 0.22));
                pen.cut(circle(x, 0.42, 0.08));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apple's strip at 1x, 2x and 3x, and Google's hero image.
    const SIZES: [(u32, u32); 4] = [(375, 144), (750, 288), (1125, 432), (1032, 336)];
    const GLYPHS: [Glyph; 4] = [Glyph::Cup, Glyph::Star, Glyph::Scissors, Glyph::Car];
    const BROWN: [u8; 3] = [60, 38, 27];
    const CREAM: [u8; 3] = [236, 214, 178];
    const WHITE: [u8; 3] = [255, 255, 255];

    fn style(slots: u32, filled: u32, icon: Icon) -> StripStyle {
        StripStyle { slots, filled, background: BROWN, foreground: WHITE, label: CREAM, icon }
    }

    fn near(pixel: &image::Rgba<u8>, rgb: [u8; 3]) -> bool {
        (0..3).all(|c| pixel[c].abs_diff(rgb[c]) <= 8)
    }

    /// Which slots read as filled at their probe pixel; panics on a probe showing neither state.
    fn filled_slots(image: &RgbaImage, style: &StripStyle) -> Vec<bool> {
        let layout = layout(style.slots, image.width(), image.height());
        (0..layout.centres.len())
            .map(|i| {
                let (x, y) = probe(&layout, i);
                let pixel = image.get_pixel(x, y);
                assert!(near(pixel, fill_colour(style)) || near(pixel, style.background), "slot {i}: {pixel:?}");
                near(pixel, fill_colour(style))
            })
            .collect()
    }

    #[test]
    fn the_probes_of_a_decoded_png_show_exactly_the_filled_slots_at_every_size() {
        let picture = RgbaImage::from_pixel(50, 80, image::Rgba([200, 30, 30, 255]));
        for (n, slots) in [1, 6, 7, 10, 12, 20, 30].into_iter().enumerate() {
            let icon = GLYPHS.get(n % 5).map_or(Icon::Image(&picture), |&g| Icon::Glyph(g));
            for filled in [0, 1, slots - 1, slots] {
                for (w, h) in SIZES {
                    let style = style(slots, filled, icon);
                    let image = image::load_from_memory(&render_png(&style, w, h)).unwrap().to_rgba8();
                    assert_eq!(image.dimensions(), (w, h));
                    let states = filled_slots(&image, &style);
                    assert_eq!(states.iter().filter(|f| **f).count(), filled as usize, "{slots} slots at {w}×{h}");
                    assert!(states[..filled as usize].iter().all(|f| *f), "the first slots fill first");
                }
            }
        }
    }

    #[test]
    fn every_slot_lies_inside_the_image_and_apart_from_the_others() {
        for (w, h) in SIZES.into_iter().chain([(300, 300), (900, 100), (40, 30)]) {
            for slots in 1..=MAX_SLOTS {
                let Layout { centres, radius: r } = layout(slots, w, h);
                assert_eq!(centres.len(), slots as usize);
                assert!(r > 0.0);
                for (i, &(x, y)) in centres.iter().enumerate() {
                    let inside = (r..=w as f32 - r).contains(&x) && (r..=h as f32 - r).contains(&y);
                    assert!(inside, "{slots} slots in {w}×{h}: one sticks out");
                    for &(u, v) in &centres[i + 1..] {
                        assert!((x - u).hypot(y - v) >= (2.0 + GAP) * r - 1e-3, "{slots} slots in {w}×{h} overlap");
                    }
                }
            }
        }
    }

    #[test]
    fn up_to_six_slots_share_one_row_and_more_take_two_or_three_with_the_extra_slot_on_top() {
        let rows = |slots| {
            let ys: Vec<i32> = layout(slots, 750, 288).centres.iter().map(|c| c.1.round() as i32).collect();
            ys.chunk_by(|a, b| a == b).map(<[i32]>::len).collect::<Vec<_>>()
        };
        assert_eq!(rows(6), [6]);
        assert_eq!(rows(7), [4, 3]);
        assert_eq!(rows(10), [5, 5]);
        assert_eq!(rows(23), [8, 8, 7]);
        assert_eq!(rows(30), [10, 10, 10]);
    }

    #[test]
    fn every_glyph_draws_its_own_shape_in_filled_and_empty_slots() {
        let Layout { centres, radius } = layout(2, 750, 288);
        let area = std::f32::consts::PI * (0.5 * radius).powi(2);
        let mut shapes = Vec::new();
        for glyph in GLYPHS {
            let image = render(&style(2, 1, Icon::Glyph(glyph)), 750, 288);
            // The pixels within half a radius of slot `i`'s centre that are (or are not) the background.
            let inner = |i: usize, background: bool| -> Vec<(u32, u32)> {
                let (cx, cy) = centres[i];
                let within = |x: u32, y: u32| (x as f32 + 0.5 - cx).hypot(y as f32 + 0.5 - cy) <= 0.5 * radius;
                let pixels = image.enumerate_pixels().filter(|&(x, y, p)| within(x, y) && near(p, BROWN) == background);
                pixels.map(|(x, y, _)| (x, y)).collect()
            };
            let ink = inner(0, true);
            assert!(ink.len() as f32 > 0.1 * area, "{glyph:?} shows in a filled slot");
            assert!(inner(1, false).len() as f32 > 0.1 * area, "{glyph:?} shows in an empty slot");
            assert!(!shapes.contains(&ink), "{glyph:?} looks like another glyph");
            shapes.push(ink);
        }
    }

    #[test]
    fn an_uploaded_picture_keeps_its_proportions_in_filled_slots_and_is_faint_in_empty_ones() {
        let red = [200, 30, 30];
        let picture = RgbaImage::from_pixel(50, 80, image::Rgba([red[0], red[1], red[2], 255]));
        let image = render(&style(2, 1, Icon::Image(&picture)), 750, 288);
        let Layout { centres, radius } = layout(2, 750, 288);
        let (x, y) = (centres[0].0 as u32, centres[0].1 as u32);
        let tall = (0..288).filter(|&v| near(image.get_pixel(x, v), red)).count() as f32;
        let wide = (0..750).filter(|&u| near(image.get_pixel(u, y), red)).count() as f32;
        assert!((tall - 1.1 * radius).abs() <= 2.0, "{tall} px tall for a radius of {radius}");
        assert!((wide - 1.1 * radius * 50.0 / 80.0).abs() <= 2.0, "{wide} px wide");
        let faint = |c: usize| (0.3 * f32::from(red[c]) + 0.7 * f32::from(BROWN[c])).round() as u8;
        assert!(near(image.get_pixel(centres[1].0 as u32, centres[1].1 as u32), [faint(0), faint(1), faint(2)]));
    }

    #[test]
    fn rgb_colours_parse_in_apples_form_only() {
        assert_eq!(parse_rgb("rgb(12, 34, 255)"), Some([12, 34, 255]));
        assert_eq!(parse_rgb("rgb(0,0,0)"), Some([0, 0, 0]));
        assert_eq!(parse_rgb(" rgb( 1 ,2 , 3 ) "), Some([1, 2, 3]));
        let bad = ["", "#fff", "rgb(256,0,0)", "rgb(1,2)", "rgb(1,2,3,4)", "rgb(1,2,3", "rgb(-1,2,3)", "rgb(+1,2,3)"];
        for bad in bad.into_iter().chain(["rgba(1,2,3)", "rgb(,,)", "rgb(1 2,3)"]) {
            assert_eq!(parse_rgb(bad), None, "{bad}");
        }
    }

    #[test]
    fn slot_and_stamp_counts_are_clamped() {
        let cup = Icon::Glyph(Glyph::Cup);
        for (slots, filled, shown) in [(0, 5, vec![true]), (10, 99, vec![true; 10]), (40, 40, vec![true; 30])] {
            let style = style(slots, filled, cup);
            assert_eq!(filled_slots(&render(&style, 750, 288), &style), shown, "{slots} slots, {filled} filled");
        }
    }

    #[test]
    fn filled_slots_switch_to_the_foreground_when_the_label_is_close_to_the_background() {
        let cup = Icon::Glyph(Glyph::Cup);
        assert_eq!(fill_colour(&style(10, 3, cup)), CREAM);
        let dim = StripStyle { label: [80, 52, 38], ..style(10, 3, cup) };
        assert_eq!(fill_colour(&dim), WHITE);
        assert_eq!(filled_slots(&render(&dim, 375, 144), &dim).iter().filter(|f| **f).count(), 3);
        assert!(contrast([0, 0, 0], [255, 255, 255]) > 20.9 && contrast(BROWN, BROWN) == 1.0);
    }

    #[test]
    fn rendering_the_largest_apple_strip_is_timed() {
        let style = style(30, 17, Icon::Glyph(Glyph::Scissors));
        let started = std::time::Instant::now();
        let image = render(&style, 1125, 432);
        eprintln!("render of 1125×432, 30 slots: {:?}", started.elapsed());
        assert_eq!(image.dimensions(), (1125, 432));
        assert!(image.pixels().all(|p| p[3] == 255), "the strip is opaque");
    }
}
