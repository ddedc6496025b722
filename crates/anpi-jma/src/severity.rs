//! Ordered severity scales.
//!
//! Each hazard family has its own small, totally ordered enum (`Intensity`, `TsunamiLevel`,
//! `WeatherLevel`, `VolcanicAlert`); [`Severity`] wraps them. A rule such as "intensity ≥ 5弱" is
//! `sev.meets(&Severity::Intensity(Intensity::FiveLower))`.
//!
//! `Severity` also derives `Ord` (so it can be a map key or be maximised within one hazard), but the
//! order *between* variants is only declaration order and means nothing: a tsunami forecast is
//! not "more" than intensity 7. Use [`Severity::meets`] for thresholds; it is false across families.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// JMA seismic intensity (震度), observed or forecast. `Zero < One < … < Seven`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Intensity {
    /// 震度0
    #[serde(rename = "0")]
    Zero,
    /// 震度1
    #[serde(rename = "1")]
    One,
    /// 震度2
    #[serde(rename = "2")]
    Two,
    /// 震度3
    #[serde(rename = "3")]
    Three,
    /// 震度4
    #[serde(rename = "4")]
    Four,
    /// 震度5弱
    #[serde(rename = "5-")]
    FiveLower,
    /// 震度5強
    #[serde(rename = "5+")]
    FiveUpper,
    /// 震度6弱
    #[serde(rename = "6-")]
    SixLower,
    /// 震度6強
    #[serde(rename = "6+")]
    SixUpper,
    /// 震度7
    #[serde(rename = "7")]
    Seven,
}

impl Intensity {
    /// All values, lowest first.
    pub const ALL: [Intensity; 10] =
        [Self::Zero, Self::One, Self::Two, Self::Three, Self::Four, Self::FiveLower, Self::FiveUpper, Self::SixLower, Self::SixUpper, Self::Seven];

    /// Parses the telegram form (`"5-"`, `"6+"`, `"4"`) and the Japanese form (`"5弱"`, `"震度６強"`,
    /// full-width digits accepted). Surrounding whitespace is ignored. Anything else is `None`
    /// (including `"over"`, `"不明"` and `"震度５弱以上未入電"`, which callers handle explicitly).
    pub fn parse(s: &str) -> Option<Intensity> {
        let s = s.trim();
        let s = s.strip_prefix("震度").unwrap_or(s);
        let mut chars = s.chars();
        let digit = match chars.next()? {
            c @ '0'..='9' => c as u32 - '0' as u32,
            c @ '０'..='９' => c as u32 - '０' as u32,
            _ => return None,
        };
        let rest = chars.as_str();
        let lower = matches!(rest, "-" | "弱" | "－");
        let upper = matches!(rest, "+" | "強" | "＋");
        match (digit, rest.is_empty(), lower, upper) {
            (0, true, ..) => Some(Self::Zero),
            (1, true, ..) => Some(Self::One),
            (2, true, ..) => Some(Self::Two),
            (3, true, ..) => Some(Self::Three),
            (4, true, ..) => Some(Self::Four),
            (5, _, true, _) => Some(Self::FiveLower),
            (5, _, _, true) => Some(Self::FiveUpper),
            (6, _, true, _) => Some(Self::SixLower),
            (6, _, _, true) => Some(Self::SixUpper),
            (7, true, ..) => Some(Self::Seven),
            _ => None,
        }
    }

    /// The telegram form: `"5-"`, `"6+"`, `"7"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Zero => "0",
            Self::One => "1",
            Self::Two => "2",
            Self::Three => "3",
            Self::Four => "4",
            Self::FiveLower => "5-",
            Self::FiveUpper => "5+",
            Self::SixLower => "6-",
            Self::SixUpper => "6+",
            Self::Seven => "7",
        }
    }

    /// The Japanese label: `"震度5弱"`.
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Zero => "震度0",
            Self::One => "震度1",
            Self::Two => "震度2",
            Self::Three => "震度3",
            Self::Four => "震度4",
            Self::FiveLower => "震度5弱",
            Self::FiveUpper => "震度5強",
            Self::SixLower => "震度6弱",
            Self::SixUpper => "震度6強",
            Self::Seven => "震度7",
        }
    }
}

impl fmt::Display for Intensity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Tsunami level of one forecast region: 津波予報（若干の海面変動） < 津波注意報 < 津波警報 < 大津波警報.
/// Released regions (警報解除, 津波注意報解除, 津波なし) have no level and are not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsunamiLevel {
    /// 津波予報（若干の海面変動）, codes 71–73.
    Forecast,
    /// 津波注意報, code 62.
    Advisory,
    /// 津波警報, code 51.
    Warning,
    /// 大津波警報, codes 52–53.
    MajorWarning,
}

impl TsunamiLevel {
    /// From a 警報等情報要素／津波警報・注意報・予報 kind code, with the kind name as fallback.
    pub fn from_kind(code: &str, name: &str) -> Option<TsunamiLevel> {
        match code.trim() {
            "52" | "53" => return Some(Self::MajorWarning),
            "51" => return Some(Self::Warning),
            "62" => return Some(Self::Advisory),
            "71" | "72" | "73" => return Some(Self::Forecast),
            "00" | "50" | "60" => return None,
            _ => {}
        }
        let name = name.trim();
        if name.contains("解除") || name.contains("なし") {
            None
        } else if name.contains("大津波警報") {
            Some(Self::MajorWarning)
        } else if name.contains("津波警報") {
            Some(Self::Warning)
        } else if name.contains("津波注意報") {
            Some(Self::Advisory)
        } else if name.contains("津波予報") {
            Some(Self::Forecast)
        } else {
            None
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Forecast => "forecast",
            Self::Advisory => "advisory",
            Self::Warning => "warning",
            Self::MajorWarning => "major_warning",
        }
    }
}

/// Weather warning level: 注意報 < 警報 < 危険警報 (level 4 of the 2026 scheme) < 特別警報.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherLevel {
    /// 注意報
    Advisory,
    /// 警報
    Warning,
    /// 危険警報 (レベル４…危険警報, VPWW55–61)
    DangerWarning,
    /// 特別警報
    EmergencyWarning,
}

impl WeatherLevel {
    /// From a weather warning kind: by name (特別警報 / 危険警報 / 警報 / 注意報), else by code
    /// (3x special warning, 4x danger warning, 02–09 warning, 10–29 advisory). `"解除"`/`"00"` → `None`.
    pub fn from_kind(name: &str, code: &str) -> Option<WeatherLevel> {
        let name = name.trim();
        if name.contains("解除") {
            return None;
        }
        if name.contains("特別警報") {
            return Some(Self::EmergencyWarning);
        }
        if name.contains("危険警報") {
            return Some(Self::DangerWarning);
        }
        if name.contains("警報") {
            return Some(Self::Warning);
        }
        if name.contains("注意報") {
            return Some(Self::Advisory);
        }
        let n: u8 = code.trim().parse().ok()?;
        match n {
            2..=9 => Some(Self::Warning),
            10..=29 => Some(Self::Advisory),
            30..=39 => Some(Self::EmergencyWarning),
            40..=49 => Some(Self::DangerWarning),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Advisory => "advisory",
            Self::Warning => "warning",
            Self::DangerWarning => "danger_warning",
            Self::EmergencyWarning => "emergency_warning",
        }
    }
}

/// Volcanic alert level (噴火警戒レベル) 1–5.
///
/// Volcanoes without alert levels use keywords; they map to the top of the level range JMA
/// equates them with: 活火山であることに留意 → 1, 火口周辺危険 → 2, 入山危険 → 3,
/// 周辺海域警戒 → 3, 居住地域厳重警戒 → 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VolcanicAlert {
    /// レベル1
    #[serde(rename = "1")]
    Level1,
    /// レベル2
    #[serde(rename = "2")]
    Level2,
    /// レベル3
    #[serde(rename = "3")]
    Level3,
    /// レベル4
    #[serde(rename = "4")]
    Level4,
    /// レベル5
    #[serde(rename = "5")]
    Level5,
}

impl VolcanicAlert {
    /// From a level number 1–5.
    pub fn from_level(n: u8) -> Option<VolcanicAlert> {
        match n {
            1 => Some(Self::Level1),
            2 => Some(Self::Level2),
            3 => Some(Self::Level3),
            4 => Some(Self::Level4),
            5 => Some(Self::Level5),
            _ => None,
        }
    }

    /// The level number 1–5.
    pub fn level(self) -> u8 {
        self as u8 + 1
    }

    /// From a 噴火警報・予報（対象火山） kind: codes 11–15 are levels 1–5; otherwise the name
    /// (`レベル３（入山規制）` or a keyword, see the type docs).
    pub fn from_kind(code: &str, name: &str) -> Option<VolcanicAlert> {
        if let Ok(n @ 11..=15) = code.trim().parse::<u8>() {
            return Self::from_level(n - 10);
        }
        let name = name.trim();
        for (i, digit) in ["１", "２", "３", "４", "５"].iter().enumerate() {
            let ascii = (b'1' + i as u8) as char;
            if name.starts_with(&format!("レベル{digit}")) || name.starts_with(&format!("レベル{ascii}")) {
                return Self::from_level(i as u8 + 1);
            }
        }
        if name.contains("居住地域厳重警戒") {
            Some(Self::Level5)
        } else if name.contains("入山危険") || name.contains("周辺海域警戒") {
            Some(Self::Level3)
        } else if name.contains("火口周辺危険") {
            Some(Self::Level2)
        } else if name.contains("活火山であることに留意") {
            Some(Self::Level1)
        } else {
            None
        }
    }
}

/// Severity of a hazard or of one affected area. See the module docs for ordering rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scale", content = "level", rename_all = "snake_case")]
pub enum Severity {
    /// No hazard level: cancellations, releases, informational or unrecognised telegrams.
    Info,
    /// Seismic intensity (observed for VXSE51/53, forecast upper bound for VXSE43).
    Intensity(Intensity),
    /// Tsunami warning level (VTSE41/51).
    Tsunami(TsunamiLevel),
    /// Weather warning level (VPWW50/53–61).
    Weather(WeatherLevel),
    /// 土砂災害警戒情報 in effect (VXWW50; 警戒レベル4相当).
    Landslide,
    /// 記録的短時間大雨情報 issued (VPOA50).
    RecordRain,
    /// Volcanic alert level (VFVO50).
    Volcano(VolcanicAlert),
}

impl Severity {
    /// True if `self` is on the same scale as `threshold` and at least as high.
    /// Every severity meets `Info`.
    pub fn meets(&self, threshold: &Severity) -> bool {
        match (self, threshold) {
            (_, Severity::Info) => true,
            (Severity::Intensity(a), Severity::Intensity(b)) => a >= b,
            (Severity::Tsunami(a), Severity::Tsunami(b)) => a >= b,
            (Severity::Weather(a), Severity::Weather(b)) => a >= b,
            (Severity::Volcano(a), Severity::Volcano(b)) => a >= b,
            (Severity::Landslide, Severity::Landslide) => true,
            (Severity::RecordRain, Severity::RecordRain) => true,
            _ => false,
        }
    }
}

/// `info`, `intensity:5-`, `tsunami:warning`, `weather:emergency_warning`, `landslide`,
/// `record_rain`, `volcano:3` (parsed back by `FromStr`; handy for stored rule thresholds).
impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Severity::Info => f.write_str("info"),
            Severity::Intensity(i) => write!(f, "intensity:{}", i.code()),
            Severity::Tsunami(t) => write!(f, "tsunami:{}", t.code()),
            Severity::Weather(w) => write!(f, "weather:{}", w.code()),
            Severity::Landslide => f.write_str("landslide"),
            Severity::RecordRain => f.write_str("record_rain"),
            Severity::Volcano(v) => write!(f, "volcano:{}", v.level()),
        }
    }
}

/// Error from parsing a [`Severity`] string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid severity {0:?} (expected e.g. \"intensity:5-\", \"tsunami:warning\", \"weather:emergency_warning\", \"volcano:3\", \"landslide\", \"record_rain\", \"info\")")]
pub struct SeverityParseError(pub String);

impl FromStr for Severity {
    type Err = SeverityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SeverityParseError(s.to_string());
        let (scale, level) = match s.trim().split_once(':') {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (s.trim(), None),
        };
        let sev = match (scale, level) {
            ("info", None) => Severity::Info,
            ("landslide", None) => Severity::Landslide,
            ("record_rain", None) => Severity::RecordRain,
            ("intensity", Some(l)) => Severity::Intensity(Intensity::parse(l).ok_or_else(err)?),
            ("tsunami", Some(l)) => Severity::Tsunami(match l {
                "forecast" => TsunamiLevel::Forecast,
                "advisory" => TsunamiLevel::Advisory,
                "warning" => TsunamiLevel::Warning,
                "major_warning" => TsunamiLevel::MajorWarning,
                _ => return Err(err()),
            }),
            ("weather", Some(l)) => Severity::Weather(match l {
                "advisory" => WeatherLevel::Advisory,
                "warning" => WeatherLevel::Warning,
                "danger_warning" => WeatherLevel::DangerWarning,
                "emergency_warning" => WeatherLevel::EmergencyWarning,
                _ => return Err(err()),
            }),
            ("volcano", Some(l)) => Severity::Volcano(l.parse().ok().and_then(VolcanicAlert::from_level).ok_or_else(err)?),
            _ => return Err(err()),
        };
        Ok(sev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_parse_forms() {
        assert_eq!(Intensity::parse("5-"), Some(Intensity::FiveLower));
        assert_eq!(Intensity::parse(" 5+ "), Some(Intensity::FiveUpper));
        assert_eq!(Intensity::parse("6-"), Some(Intensity::SixLower));
        assert_eq!(Intensity::parse("6+"), Some(Intensity::SixUpper));
        assert_eq!(Intensity::parse("7"), Some(Intensity::Seven));
        assert_eq!(Intensity::parse("4 "), Some(Intensity::Four));
        assert_eq!(Intensity::parse("0"), Some(Intensity::Zero));
        assert_eq!(Intensity::parse("震度５弱"), Some(Intensity::FiveLower));
        assert_eq!(Intensity::parse("6強"), Some(Intensity::SixUpper));
        assert_eq!(Intensity::parse("震度３"), Some(Intensity::Three));
        for bad in ["", "5", "6", "8", "4-", "over", "不明", "震度５弱以上未入電", "5--", "x"] {
            assert_eq!(Intensity::parse(bad), None, "{bad:?}");
        }
        for i in Intensity::ALL {
            assert_eq!(Intensity::parse(i.code()), Some(i));
            assert_eq!(Intensity::parse(i.label_ja()), Some(i));
        }
    }

    #[test]
    fn scales_are_ordered() {
        assert!(Intensity::ALL.windows(2).all(|w| w[0] < w[1]));
        assert!(TsunamiLevel::Forecast < TsunamiLevel::Advisory);
        assert!(TsunamiLevel::Advisory < TsunamiLevel::Warning);
        assert!(TsunamiLevel::Warning < TsunamiLevel::MajorWarning);
        assert!(WeatherLevel::Advisory < WeatherLevel::Warning);
        assert!(WeatherLevel::Warning < WeatherLevel::DangerWarning);
        assert!(WeatherLevel::DangerWarning < WeatherLevel::EmergencyWarning);
        assert!(VolcanicAlert::Level2 < VolcanicAlert::Level5);
    }

    #[test]
    fn meets_is_scale_aware() {
        let five_lower = Severity::Intensity(Intensity::FiveLower);
        assert!(Severity::Intensity(Intensity::SixLower).meets(&five_lower));
        assert!(Severity::Intensity(Intensity::FiveLower).meets(&five_lower));
        assert!(!Severity::Intensity(Intensity::Four).meets(&five_lower));
        // A tsunami is never "≥ 5弱", even though derived Ord puts the variant later.
        assert!(!Severity::Tsunami(TsunamiLevel::MajorWarning).meets(&five_lower));
        assert!(Severity::Tsunami(TsunamiLevel::MajorWarning) > five_lower);
        let warning_or_more = Severity::Tsunami(TsunamiLevel::Warning);
        assert!(Severity::Tsunami(TsunamiLevel::MajorWarning).meets(&warning_or_more));
        assert!(!Severity::Tsunami(TsunamiLevel::Advisory).meets(&warning_or_more));
        assert!(Severity::Weather(WeatherLevel::EmergencyWarning).meets(&Severity::Weather(WeatherLevel::EmergencyWarning)));
        assert!(!Severity::Weather(WeatherLevel::Warning).meets(&Severity::Weather(WeatherLevel::EmergencyWarning)));
        assert!(Severity::Landslide.meets(&Severity::Landslide));
        assert!(Severity::Landslide.meets(&Severity::Info));
        assert!(!Severity::Info.meets(&Severity::Landslide));
    }

    #[test]
    fn severity_string_round_trip() {
        let all = [
            Severity::Info,
            Severity::Intensity(Intensity::SixUpper),
            Severity::Tsunami(TsunamiLevel::MajorWarning),
            Severity::Weather(WeatherLevel::DangerWarning),
            Severity::Landslide,
            Severity::RecordRain,
            Severity::Volcano(VolcanicAlert::Level3),
        ];
        for s in all {
            assert_eq!(s.to_string().parse::<Severity>(), Ok(s));
        }
        assert!("intensity:9".parse::<Severity>().is_err());
        assert!("volcano:0".parse::<Severity>().is_err());
        assert!("tsunami".parse::<Severity>().is_err());
    }

    #[test]
    fn kind_mappings() {
        assert_eq!(TsunamiLevel::from_kind("53", "大津波警報：発表"), Some(TsunamiLevel::MajorWarning));
        assert_eq!(TsunamiLevel::from_kind("60", "津波注意報解除"), None);
        assert_eq!(TsunamiLevel::from_kind("50", "警報解除"), None);
        assert_eq!(TsunamiLevel::from_kind("", "津波警報"), Some(TsunamiLevel::Warning));
        assert_eq!(WeatherLevel::from_kind("大雨特別警報", "33"), Some(WeatherLevel::EmergencyWarning));
        assert_eq!(WeatherLevel::from_kind("レベル４土砂災害危険警報", "49"), Some(WeatherLevel::DangerWarning));
        assert_eq!(WeatherLevel::from_kind("洪水警報", "04"), Some(WeatherLevel::Warning));
        assert_eq!(WeatherLevel::from_kind("雷注意報", "14"), Some(WeatherLevel::Advisory));
        assert_eq!(WeatherLevel::from_kind("解除", "00"), None);
        assert_eq!(WeatherLevel::from_kind("", "38"), Some(WeatherLevel::EmergencyWarning));
        assert_eq!(VolcanicAlert::from_kind("13", "レベル３（入山規制）"), Some(VolcanicAlert::Level3));
        assert_eq!(VolcanicAlert::from_kind("", "レベル４（高齢者等避難）"), Some(VolcanicAlert::Level4));
        assert_eq!(VolcanicAlert::from_kind("23", "入山危険"), Some(VolcanicAlert::Level3));
        assert_eq!(VolcanicAlert::from_kind("21", "活火山であることに留意"), Some(VolcanicAlert::Level1));
        assert_eq!(VolcanicAlert::from_kind("99", "何か"), None);
    }
}
