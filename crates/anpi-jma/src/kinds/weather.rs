//! Meteorology bodies: 気象警報・注意報 (VPWW5x), 土砂災害警戒情報 (VXWW50), 記録的短時間大雨情報 (VPOA50).

use jmaxml::model::{MeteArea, MeteBody, MeteItem, MeteKind};

use crate::area::{AffectedArea, AreaCode, AreaSet};
use crate::severity::{Severity, WeatherLevel};

/// Statuses meaning "not in effect" for a kind.
fn in_effect(kind: &MeteKind) -> bool {
    !matches!(kind.status.as_deref().map(str::trim), Some("解除" | "発表警報・注意報はなし" | "なし"))
}

fn item_areas(item: &MeteItem) -> impl Iterator<Item = &MeteArea> {
    item.area.iter().chain(item.areas.iter().flat_map(|a| a.areas.iter()))
}

/// Adds `item`'s areas: 7-digit codes become municipalities (name as given), 6-digit forecast
/// area codes become their prefecture (named as the prefecture).
fn add_item(set: &mut AreaSet, item: &MeteItem, severity: Severity) {
    for area in item_areas(item) {
        let Some(code) = area.code.as_deref().and_then(AreaCode::from_jma) else {
            continue;
        };
        let name = if code.is_prefecture() { code.prefecture_name() } else { area.name.as_str() };
        set.add(code, name, severity);
    }
}

/// `Warning[@type="気象警報・注意報（市町村等）"]`: each municipality with the highest level in effect.
pub(super) fn warnings(body: &MeteBody) -> Vec<AffectedArea> {
    let mut set = AreaSet::default();
    for warning in body.warnings.iter().filter(|w| w.ty.trim() == "気象警報・注意報（市町村等）") {
        for item in &warning.items {
            let level = item
                .kinds
                .iter()
                .filter(|k| in_effect(k))
                .filter_map(|k| WeatherLevel::from_kind(k.name.as_deref().unwrap_or(""), k.code.as_deref().unwrap_or("")))
                .max();
            if let Some(level) = level {
                add_item(&mut set, item, Severity::Weather(level));
            }
        }
    }
    set.into_vec()
}

/// `Warning[@type="土砂災害警戒情報"]`: municipalities whose kind is 警戒 (code 3), announced or continued.
pub(super) fn landslide(body: &MeteBody) -> Vec<AffectedArea> {
    let mut set = AreaSet::default();
    for warning in body.warnings.iter().filter(|w| w.ty.contains("土砂災害警戒情報")) {
        for item in &warning.items {
            let alert =
                item.kinds.iter().any(|k| in_effect(k) && (k.code.as_deref().map(str::trim) == Some("3") || k.name.as_deref().map(str::trim) == Some("警戒")));
            if alert {
                add_item(&mut set, item, Severity::Landslide);
            }
        }
    }
    set.into_vec()
}

/// `Warning[@type="記録的短時間大雨情報…"]`: areas where the information is issued (code 1).
/// The areas are forecast sub-areas (6 digits) → prefectures; municipality codes are used if present.
pub(super) fn record_rain(body: &MeteBody) -> Vec<AffectedArea> {
    let mut set = AreaSet::default();
    for warning in body.warnings.iter().filter(|w| w.ty.contains("記録的短時間大雨情報")) {
        for item in &warning.items {
            let issued = item
                .kinds
                .iter()
                .any(|k| in_effect(k) && (k.code.as_deref().map(str::trim) == Some("1") || k.name.as_deref().map(str::trim) == Some("記録的短時間大雨情報")));
            if issued {
                add_item(&mut set, item, Severity::RecordRain);
            }
        }
    }
    set.into_vec()
}
