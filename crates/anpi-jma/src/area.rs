//! JIS area codes (prefecture 2 digits, municipality 5 digits) and their derivation from JMA codes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// A JIS X 0401/0402 area code: a prefecture (`"13"`) or a municipality without check digit
/// (`"13104"`). Always ASCII digits with a prefecture part in `01..=47`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AreaCode(String);

impl AreaCode {
    /// A 2-digit prefecture code (`"01"`..=`"47"`).
    pub fn prefecture(code: &str) -> Option<AreaCode> {
        let code = code.trim();
        (code.len() == 2 && valid_prefix(code)).then(|| AreaCode(code.to_string()))
    }

    /// A 5-digit municipality code. `PP999` is rejected: JMA uses it as a placeholder for
    /// municipalities not yet in its code table (e.g. `0599900` in older telegrams).
    pub fn municipality(code: &str) -> Option<AreaCode> {
        let code = code.trim();
        let placeholder = code.get(2..) == Some("999");
        (code.len() == 5 && valid_prefix(code) && !placeholder).then(|| AreaCode(code.to_string()))
    }

    /// A 2- or 5-digit JIS code.
    pub fn parse(code: &str) -> Option<AreaCode> {
        Self::prefecture(code).or_else(|| Self::municipality(code))
    }

    /// Normalises a JMA area code by length: 7 digits (気象・地震・火山情報／市町村等 = JIS 5 + 2)
    /// → municipality; 6 digits (府県予報区・細分区域等, prefecture-prefixed) → prefecture;
    /// 5 → municipality; 2 → prefecture. Anything else → `None`.
    pub fn from_jma(code: &str) -> Option<AreaCode> {
        let code = code.trim();
        match code.len() {
            7 if all_digits(code) => code.get(..5).and_then(Self::municipality),
            6 if all_digits(code) => code.get(..2).and_then(Self::prefecture),
            5 => Self::municipality(code),
            2 => Self::prefecture(code),
            _ => None,
        }
    }

    /// The code as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a 2-digit prefecture code.
    pub fn is_prefecture(&self) -> bool {
        self.0.len() == 2
    }

    /// The prefecture this code belongs to (itself for a prefecture).
    pub fn prefecture_code(&self) -> AreaCode {
        AreaCode(self.0.get(..2).unwrap_or(&self.0).to_string())
    }

    /// True if `other` is this area or lies inside it (a prefecture covers its municipalities).
    pub fn covers(&self, other: &AreaCode) -> bool {
        self == other || (self.is_prefecture() && other.0.starts_with(&self.0))
    }

    /// The prefecture's Japanese name (`"東京都"`).
    pub fn prefecture_name(&self) -> &'static str {
        let n: usize = self.0.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
        PREFECTURES.get(n.wrapping_sub(1)).copied().unwrap_or("")
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_prefix(code: &str) -> bool {
    all_digits(code) && matches!(code.get(..2).and_then(|p| p.parse::<u8>().ok()), Some(1..=47))
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AreaCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AreaCode::parse(&s).ok_or_else(|| format!("invalid JIS area code {s:?}"))
    }
}

impl From<AreaCode> for String {
    fn from(c: AreaCode) -> String {
        c.0
    }
}

/// One area affected by a hazard, with the severity stated for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedArea {
    /// JIS prefecture or municipality code.
    pub code: AreaCode,
    /// Name as given in the telegram (prefecture name where the code was derived from a region).
    pub name: String,
    /// Severity for this area.
    pub severity: Severity,
}

/// JIS prefecture names, index = code - 1.
pub(crate) const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// The prefecture whose name (with or without 都/道/府/県) starts `name`:
/// `"宮城県"`, `"愛媛"`, `"北海道太平洋沿岸東部"`, `"東京都２３区"`. No stem is a prefix of another.
pub fn prefecture_from_name(name: &str) -> Option<AreaCode> {
    let name = name.trim();
    PREFECTURES.iter().enumerate().find_map(|(i, full)| {
        let stem = if *full == "北海道" { full } else { full.trim_end_matches(['都', '府', '県']) };
        name.starts_with(stem).then(|| AreaCode(format!("{:02}", i + 1)))
    })
}

/// Collects areas, keeping one entry per code with the highest severity; yields them sorted by code.
#[derive(Debug, Default)]
pub(crate) struct AreaSet(BTreeMap<AreaCode, AffectedArea>);

impl AreaSet {
    pub(crate) fn add(&mut self, code: AreaCode, name: &str, severity: Severity) {
        match self.0.get_mut(&code) {
            Some(existing) => {
                if severity > existing.severity {
                    existing.severity = severity;
                }
            }
            None => {
                let area = AffectedArea { code: code.clone(), name: name.trim().to_string(), severity };
                self.0.insert(code, area);
            }
        }
    }

    pub(crate) fn into_vec(self) -> Vec<AffectedArea> {
        self.0.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_validate_and_normalise() {
        assert_eq!(AreaCode::from_jma("1310400").map(|c| c.0), Some("13104".into()));
        assert_eq!(AreaCode::from_jma("0338100").map(|c| c.0), Some("03381".into()));
        assert_eq!(AreaCode::from_jma("270000").map(|c| c.0), Some("27".into()));
        assert_eq!(AreaCode::from_jma("016010").map(|c| c.0), Some("01".into()));
        assert_eq!(AreaCode::from_jma("03").map(|c| c.0), Some("03".into()));
        for bad in ["", "00", "48", "99", "4800000", "13a0400", "210", "9380", "１３", "0599900", "05999"] {
            assert_eq!(AreaCode::from_jma(bad), None, "{bad:?}");
        }
        let pref = AreaCode::prefecture("13").unwrap();
        let muni = AreaCode::municipality("13104").unwrap();
        assert!(pref.covers(&muni) && pref.covers(&pref) && !muni.covers(&pref));
        assert!(!AreaCode::prefecture("01").unwrap().covers(&muni));
        assert_eq!(muni.prefecture_code(), pref);
        assert_eq!(muni.prefecture_name(), "東京都");
        assert!(serde_json::from_str::<AreaCode>("\"1\"").is_err());
        assert_eq!(serde_json::to_string(&muni).unwrap(), "\"13104\"");
    }

    #[test]
    fn prefecture_names() {
        let code = |n: &str| prefecture_from_name(n).map(|c| c.0);
        assert_eq!(code("宮城県"), Some("04".into()));
        assert_eq!(code("愛媛"), Some("38".into()));
        assert_eq!(code("北海道太平洋沿岸東部"), Some("01".into()));
        assert_eq!(code("京都府"), Some("26".into()));
        assert_eq!(code("東京都２３区"), Some("13".into()));
        assert_eq!(code("伊豆諸島"), None);
        for (i, name) in PREFECTURES.iter().enumerate() {
            assert_eq!(code(name), Some(format!("{:02}", i + 1)));
        }
    }
}
