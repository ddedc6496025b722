//! 津波警報・注意報・予報 (VTSE41) and 津波情報 (VTSE51): `Tsunami/Forecast/Item` per forecast region.

use std::collections::BTreeMap;

use jmaxml::model::SeisBody;

use crate::area::{AffectedArea, AreaCode};
use crate::severity::{Severity, TsunamiLevel};
use crate::tsunami_regions::prefectures_for_region;

/// Each prefecture covered by a region in force, at the highest level among its regions, named
/// `県名（region、…）` after the regions at that level (just `県名` when the region is the
/// prefecture itself). Released regions (解除, 津波なし) are left out.
pub(super) fn forecast(body: &SeisBody) -> Vec<AffectedArea> {
    let Some(forecast) = body.tsunami.as_ref().and_then(|t| t.forecast.as_ref()) else {
        return Vec::new();
    };
    let mut by_pref: BTreeMap<AreaCode, (TsunamiLevel, Vec<&str>)> = BTreeMap::new();
    for item in &forecast.items {
        let Some(category) = &item.category else {
            continue;
        };
        let Some(level) = TsunamiLevel::from_kind(&category.kind.code, &category.kind.name) else {
            continue;
        };
        let region = item.area.name.trim();
        for pref in prefectures_for_region(&item.area.code, region) {
            let entry = by_pref.entry(pref).or_insert((level, Vec::new()));
            if level > entry.0 {
                *entry = (level, Vec::new());
            }
            if level == entry.0 && !entry.1.contains(&region) {
                entry.1.push(region);
            }
        }
    }
    by_pref
        .into_iter()
        .map(|(code, (level, regions))| {
            let pref_name = code.prefecture_name();
            let regions: Vec<&str> = regions.into_iter().filter(|r| *r != pref_name).collect();
            let name = if regions.is_empty() { pref_name.to_string() } else { format!("{pref_name}（{}）", regions.join("、")) };
            AffectedArea { code, name, severity: Severity::Tsunami(level) }
        })
        .collect()
}
