//! anpi domain: roles and policy, surveys, targeting, areas, directory validation and CSV
//! import parsing. Pure: no I/O, no clock (time is always a parameter).

pub mod area;
pub mod clientcert;
pub mod clock;
pub mod csv_import;
pub mod directory;
pub mod label;
pub mod netlist;
pub mod password;
pub mod policy;
pub mod spreadsheet;
pub mod survey;
pub mod target;

pub use area::AreaCode;
pub use clock::{Clock, ManualClock, SystemClock};
pub use label::Label;
pub use policy::{Permission, Role};

/// Milliseconds since the Unix epoch, UTC. All stored times use this.
pub type Millis = i64;

/// Interface language of a page or a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    #[default]
    Ja,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ja" | "jp" | "日本語" => Some(Lang::Ja),
            "en" | "english" => Some(Lang::En),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }
    /// Picks Japanese or English text.
    pub fn pick<'a>(self, ja: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }
}
