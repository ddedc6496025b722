//! JMA disaster-prevention XML telegrams (気象庁防災情報XML) → normalised [`Hazard`].
//!
//! [`parse_telegram`] checks the document, reads `Control` and `Head` with a lean quick-xml pass,
//! models the body with the `jmaxml` crate and normalises it:
//!
//! | type | [`HazardKind`] | areas | [`Severity`] |
//! |---|---|---|---|
//! | VXSE51, VXSE53 | `EarthquakeIntensity` | prefectures + municipalities (City 7 → 5 digits) | observed [`Intensity`] |
//! | VXSE43 | `EarthquakeEarlyWarning` | prefectures (府県予報区 `9PPx` → `PP`) | forecast [`Intensity`] (upper bound) |
//! | VTSE41, VTSE51 | `Tsunami` | prefectures covered by each 津波予報区 ([`tsunami_regions`]) | [`TsunamiLevel`] |
//! | VPWW50, VPWW53–61 | `Weather` | municipalities (市町村等 items, 7 → 5 digits) | [`WeatherLevel`] |
//! | VXWW50 | `Landslide` | municipalities under 警戒 | `Landslide` |
//! | VPOA50 | `RecordRain` | issued areas (forecast sub-area → prefecture; municipality if given) | `RecordRain` |
//! | VFVO50 | `Volcano` | municipalities of 対象市町村等 | [`VolcanicAlert`] |
//! | anything else | `Other { title }` | none | `Info` |
//!
//! Drill/test status, info type (発表/訂正/遅延/取消), event id and serial are kept on every
//! [`Telegram`]. The crate does no I/O.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod area;
mod error;
mod hazard;
mod header;
mod kinds;
mod severity;
mod telegram;
pub mod tsunami_regions;
mod type_code;

pub use area::{prefecture_from_name, AffectedArea, AreaCode};
pub use error::ParseError;
pub use hazard::{Hazard, HazardKind};
pub use severity::{Intensity, Severity, SeverityParseError, TsunamiLevel, VolcanicAlert, WeatherLevel};
pub use telegram::{parse_telegram, Control, Head, InfoType, Status, Telegram};
pub use type_code::type_code_for;
