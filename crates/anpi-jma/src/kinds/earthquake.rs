//! 震度速報 / 震源・震度に関する情報 (observed intensity) and 緊急地震速報（警報） (forecast intensity).

use jmaxml::model::{SeisBody, SeisForecastInt};

use crate::area::{prefecture_from_name, AffectedArea, AreaCode, AreaSet};
use crate::severity::{Intensity, Severity};

/// `震度５弱以上未入電`: intensity 5弱 or more estimated but not yet received; counted as 5弱.
fn observed_level(max_int: Option<&String>, condition: Option<&String>) -> Option<Intensity> {
    let unreported = |s: &String| s.contains("震度５弱以上未入電").then_some(Intensity::FiveLower);
    max_int.and_then(|s| Intensity::parse(s).or_else(|| unreported(s))).or_else(|| condition.and_then(unreported))
}

/// `Intensity/Observation`: each prefecture (`Pref`, JIS 2 digits) with the highest intensity in it,
/// and each municipality (`City`, JMA 7 digits → JIS 5) with its own.
pub(super) fn observed(body: &SeisBody) -> Vec<AffectedArea> {
    let mut set = AreaSet::default();
    let Some(obs) = body.intensity.as_ref().and_then(|i| i.observation.as_ref()) else {
        return Vec::new();
    };
    for pref in &obs.prefs {
        let mut pref_max = observed_level(pref.max_int.as_ref(), pref.condition.as_ref());
        for area in &pref.areas {
            pref_max = pref_max.max(observed_level(area.max_int.as_ref(), area.condition.as_ref()));
            for city in &area.cities {
                let Some(level) = observed_level(city.max_int.as_ref(), city.condition.as_ref()) else {
                    continue;
                };
                pref_max = pref_max.max(Some(level));
                if let Some(code) = AreaCode::from_jma(&city.code).filter(|c| !c.is_prefecture()) {
                    set.add(code, &city.name, Severity::Intensity(level));
                }
            }
        }
        let code = AreaCode::prefecture(&pref.code).or_else(|| prefecture_from_name(&pref.name));
        if let (Some(code), Some(level)) = (code, pref_max) {
            set.add(code, &pref.name, Severity::Intensity(level));
        }
    }
    set.into_vec()
}

/// 緊急地震速報／府県予報区 codes are `9` + JIS prefecture + one digit (`9380` 愛媛, `9011` 北海道道央).
fn eew_prefecture(code: &str, name: &str) -> Option<AreaCode> {
    let code = code.trim();
    let by_code = (code.len() == 4 && code.starts_with('9')).then(|| code.get(1..3)).flatten();
    by_code.and_then(AreaCode::prefecture).or_else(|| prefecture_from_name(name))
}

/// Upper bound of a forecast range (`To`; `From` when `To` is `over` or absent).
fn forecast_upper(f: Option<&SeisForecastInt>) -> Option<Intensity> {
    let f = f?;
    let to = f.to.as_deref().and_then(Intensity::parse);
    to.or_else(|| f.from.as_deref().and_then(Intensity::parse))
}

/// `Intensity/Forecast/Pref`: each warned prefecture with the upper bound of the highest forecast
/// intensity among its areas. A warned prefecture without a usable forecast counts as 4 (the
/// 警報 criterion for regions).
pub(super) fn early_warning(body: &SeisBody) -> Vec<AffectedArea> {
    let mut set = AreaSet::default();
    let Some(forecast) = body.intensity.as_ref().and_then(|i| i.forecast.as_ref()) else {
        return Vec::new();
    };
    for pref in &forecast.prefs {
        let Some(code) = eew_prefecture(&pref.code, &pref.name) else {
            continue;
        };
        let mut best = forecast_upper(pref.forecast_int.as_ref());
        for area in &pref.areas {
            best = best.max(forecast_upper(area.forecast_int.as_ref()));
        }
        let level = best.unwrap_or(Intensity::Four);
        let name = code.prefecture_name();
        set.add(code, name, Severity::Intensity(level));
    }
    set.into_vec()
}
