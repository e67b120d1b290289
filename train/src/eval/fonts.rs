//! Text in the PNG plots: a TrueType font loaded from disk at run time, or no text at all.
//!
//! The font is not compiled into the binary (it would add ~700 KB and a licence to ship) and no
//! system font library is linked; instead [`load_font`] tries a few well-known paths (Debian's
//! `fonts-dejavu-core` first) and registers the first readable one with plotters' `ab_glyph`
//! renderer. When none is found the plots are drawn without captions, tick labels or legends:
//! still useful pictures, and `eval` never fails because of fonts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::{FontStyle, IntoFont, TextStyle};
use plotters::style::{RGBColor, WHITE};

/// Family name the loaded font is registered under. Deliberately not `sans-serif`: every text
/// the plots draw names this family, so a label that forgot to check [`TextRendering`] fails
/// loudly in the no-font tests instead of silently depending on a default family.
pub const FONT_FAMILY: &str = "melfuse-eval-sans";

/// Where [`load_font`] looks, in order: DejaVu Sans (Debian/Ubuntu `fonts-dejavu-core`, Fedora,
/// Arch), then Liberation Sans and Noto Sans as common alternatives.
pub const FONT_CANDIDATES: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];

/// Whether the plots may draw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextRendering {
    /// A font is registered under [`FONT_FAMILY`]; holds the file it came from.
    Font(PathBuf),
    /// No usable font: draw lines and tiles only.
    None,
}

impl TextRendering {
    /// True when text can be drawn.
    pub fn enabled(&self) -> bool {
        matches!(self, TextRendering::Font(_))
    }

    /// The text style of `size` pixels in `color`, or `None` when there is no font — callers skip
    /// the text then.
    pub fn style(&self, size: f64, color: RGBColor) -> Option<TextStyle<'static>> {
        self.enabled().then(|| (FONT_FAMILY, size).into_font().color(&color))
    }

    /// White text of `size` pixels, for labels drawn on the dark spectrogram grid.
    pub fn light(&self, size: f64) -> Option<TextStyle<'static>> {
        self.style(size, WHITE)
    }
}

/// The first font of [`FONT_CANDIDATES`] that loads, registered once per process; later calls
/// return the same answer without touching the disk.
pub fn load_font() -> TextRendering {
    static LOADED: OnceLock<TextRendering> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = FONT_CANDIDATES.iter().map(PathBuf::from).collect();
            let found = load_font_from(&candidates);
            if !found.enabled() {
                tracing::warn!(
                    "no TrueType font found (tried {}); plots are drawn without text — install fonts-dejavu-core \
                     for labelled plots",
                    FONT_CANDIDATES.join(", ")
                );
            }
            found
        })
        .clone()
}

/// Registers the first of `candidates` that reads and parses as a font under [`FONT_FAMILY`].
/// The bytes are leaked: plotters keeps `&'static` font data, and a process registers at most a
/// few fonts.
pub fn load_font_from(candidates: &[PathBuf]) -> TextRendering {
    for path in candidates {
        if let Some(rendering) = register(path) {
            return rendering;
        }
    }
    TextRendering::None
}

fn register(path: &Path) -> Option<TextRendering> {
    let bytes = std::fs::read(path).ok()?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    match plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes) {
        Ok(()) => Some(TextRendering::Font(path.to_path_buf())),
        Err(_) => {
            tracing::warn!(path = %path.display(), "not a usable TrueType font; trying the next one");
            None
        }
    }
}
