//! A program's brand on the customer pages: its name, logo and colours, where its form is and
//! its terms — what the registration form, the card page and the message pages show.

use serde::Serialize;

use super::check::rgb;
use crate::domain::design::ImageSlot;
use crate::domain::{DEFAULT_PROGRAM_ID, Program};

/// The logo file the pages show (twice the pass's size, sharp on phones).
const PAGE_LOGO: &str = "logo@2x.png";

#[derive(Debug, Clone, Serialize)]
pub struct Brand {
    pub name: String,
    /// `/media/{id}.png` of the uploaded logo; `None` shows the name only.
    pub logo_url: Option<String>,
    /// CSS colours of the header and buttons (only ever a checked `rgb(…)` triple).
    pub background: String,
    pub foreground: String,
    /// The program's full terms, linked from the form's consent.
    pub terms_url: Option<String>,
    /// The registration form: `/` for the default program, `/p/{slug}` for the others.
    pub form_path: String,
}

/// The registration form of program `id`.
pub fn form_path(id: &str) -> String {
    if id == DEFAULT_PROGRAM_ID { "/".to_owned() } else { format!("/p/{id}") }
}

/// The "lost your card?" page of program `id`.
pub fn recover_path(id: &str) -> String {
    if id == DEFAULT_PROGRAM_ID { "/recover".to_owned() } else { format!("/p/{id}/recover") }
}

impl Brand {
    pub fn of(program: &Program) -> Self {
        let design = &program.design;
        let colour = |c: &str, fallback: &str| match rgb(c) {
            Some([r, g, b]) => format!("rgb({r}, {g}, {b})"),
            None => fallback.to_owned(),
        };
        let logo_url = design
            .images
            .get(&ImageSlot::Logo)
            .and_then(|files| files.get(PAGE_LOGO))
            .filter(|id| super::images::is_image_id(id))
            .map(|id| format!("/media/{id}.png"));
        let terms_url = url::Url::parse(design.terms_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .map(|u| u.to_string());
        Self {
            name: program.name.clone(),
            logo_url,
            background: colour(&design.background_color, "rgb(28, 43, 74)"),
            foreground: colour(&design.foreground_color, "rgb(255, 255, 255)"),
            terms_url,
            form_path: form_path(&program.id),
        }
    }

    /// The form's address with `?lang=`.
    pub fn form_link(&self, lang: &str) -> String {
        format!("{}?lang={lang}", self.form_path)
    }
}
