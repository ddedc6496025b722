//! The normalised hazard.

use serde::{Deserialize, Serialize};

use crate::area::{AffectedArea, AreaCode};
use crate::severity::Severity;

/// What kind of hazard a telegram reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HazardKind {
    /// 震度速報 (VXSE51), 震源・震度に関する情報 (VXSE53).
    EarthquakeIntensity,
    /// 緊急地震速報（警報） (VXSE43).
    EarthquakeEarlyWarning,
    /// 津波警報・注意報・予報 (VTSE41), 津波情報 (VTSE51).
    Tsunami,
    /// 気象警報・注意報 incl. 特別警報 (VPWW50, VPWW53–61).
    Weather,
    /// 土砂災害警戒情報 (VXWW50).
    Landslide,
    /// 記録的短時間大雨情報 (VPOA50).
    RecordRain,
    /// 噴火警報・予報 (VFVO50).
    Volcano,
    /// Any other telegram, identified by its `Control/Title`.
    Other {
        /// `Control/Title`.
        title: String,
    },
}

/// A telegram normalised for dispatch rules.
///
/// `areas` lists the areas where the hazard is in effect, one entry per JIS code with the highest
/// severity stated for it, sorted by code. Lifted warnings, released tsunami regions and
/// cancellations (取消) contribute no areas. `severity` is the highest area severity, or
/// [`Severity::Info`] when there are no areas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hazard {
    /// Hazard kind.
    pub kind: HazardKind,
    /// Highest severity over `areas`.
    pub severity: Severity,
    /// Affected areas (JIS prefecture and/or municipality codes).
    pub areas: Vec<AffectedArea>,
    /// `Head/EventID` (trimmed; empty for weather warnings, which have none).
    pub event_id: String,
    /// `Head/Serial` when numeric.
    pub serial: Option<u32>,
    /// `Head/Headline/Text` (trimmed).
    pub headline: String,
}

impl Hazard {
    /// Severity that applies at `code`, using the most specific entry:
    /// - a municipality gets its own entry if listed; otherwise nothing if the hazard lists other
    ///   municipalities of the same prefecture (the telegram was specific and left it out);
    ///   otherwise its prefecture's entry;
    /// - a prefecture gets the highest severity of its own entry and its municipalities.
    pub fn severity_at(&self, code: &AreaCode) -> Option<Severity> {
        if code.is_prefecture() {
            return self.areas.iter().filter(|a| code.covers(&a.code)).map(|a| a.severity).max();
        }
        if let Some(own) = self.areas.iter().find(|a| &a.code == code) {
            return Some(own.severity);
        }
        let pref = code.prefecture_code();
        let has_municipalities = self.areas.iter().any(|a| !a.code.is_prefecture() && pref.covers(&a.code));
        if has_municipalities {
            return None;
        }
        self.areas.iter().find(|a| a.code == pref).map(|a| a.severity)
    }

    /// True if the severity at `code` meets `threshold` (same scale, at least as high).
    pub fn affects(&self, code: &AreaCode, threshold: &Severity) -> bool {
        self.severity_at(code).is_some_and(|s| s.meets(threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::Intensity;

    fn area(code: &str, i: Intensity) -> AffectedArea {
        AffectedArea { code: AreaCode::parse(code).unwrap(), name: String::new(), severity: Severity::Intensity(i) }
    }

    #[test]
    fn most_specific_entry_wins() {
        let hazard = Hazard {
            kind: HazardKind::EarthquakeIntensity,
            severity: Severity::Intensity(Intensity::SixLower),
            areas: vec![
                area("03", Intensity::FiveUpper),
                area("03381", Intensity::FiveLower),
                area("04", Intensity::SixLower),
                area("04213", Intensity::SixLower),
                area("05", Intensity::Four),
            ],
            event_id: String::new(),
            serial: None,
            headline: String::new(),
        };
        let at = |c: &str| hazard.severity_at(&AreaCode::parse(c).unwrap());
        assert_eq!(at("03381"), Some(Severity::Intensity(Intensity::FiveLower)));
        assert_eq!(at("03201"), None, "unlisted municipality of a prefecture with municipality detail");
        assert_eq!(at("05201"), Some(Severity::Intensity(Intensity::Four)), "prefecture-only detail");
        assert_eq!(at("03"), Some(Severity::Intensity(Intensity::FiveUpper)));
        assert_eq!(at("13"), None);
        let five_lower = Severity::Intensity(Intensity::FiveLower);
        assert!(hazard.affects(&AreaCode::parse("04213").unwrap(), &five_lower));
        assert!(!hazard.affects(&AreaCode::parse("05201").unwrap(), &five_lower));
    }
}
