//! Tsunami forecast regions (津波予報区) → JIS prefectures.
//!
//! The 66 regions of JMA's 津波予報区 code table, as they appear in VTSE41/VTSE51 `Item/Area`.
//! Each region's coast lies in the prefectures listed. Most names start with their prefecture;
//! the others were assigned from JMA's region definitions:
//! - 陸奥湾 → 青森; 佐渡 → 新潟; 隠岐 → 島根; 壱岐・対馬 → 長崎; 淡路島南部 → 兵庫;
//!   伊豆諸島, 小笠原諸島 → 東京; 相模湾・三浦半島 → 神奈川; オホーツク海沿岸 → 北海道;
//!   種子島・屋久島地方, 奄美群島・トカラ列島 → 鹿児島; 沖縄本島地方, 大東島地方, 宮古島・八重山地方 → 沖縄.
//! - Shared bays: 東京湾内湾 → 千葉, 東京, 神奈川 (富津岬–観音崎 inside the bay);
//!   伊勢・三河湾 → 愛知, 三重; 有明・八代海 → 福岡, 佐賀, 長崎, 熊本, 鹿児島 (出水・長島 on 八代海).
//!
//! Unknown codes fall back to the prefecture named at the start of the region name.

use crate::area::{prefecture_from_name, AreaCode};

/// (code, name, JIS prefecture codes).
pub const TSUNAMI_REGIONS: &[(&str, &str, &[&str])] = &[
    ("100", "北海道太平洋沿岸東部", &["01"]),
    ("101", "北海道太平洋沿岸中部", &["01"]),
    ("102", "北海道太平洋沿岸西部", &["01"]),
    ("110", "北海道日本海沿岸北部", &["01"]),
    ("111", "北海道日本海沿岸南部", &["01"]),
    ("120", "オホーツク海沿岸", &["01"]),
    ("200", "青森県日本海沿岸", &["02"]),
    ("201", "青森県太平洋沿岸", &["02"]),
    ("202", "陸奥湾", &["02"]),
    ("210", "岩手県", &["03"]),
    ("220", "宮城県", &["04"]),
    ("230", "秋田県", &["05"]),
    ("240", "山形県", &["06"]),
    ("250", "福島県", &["07"]),
    ("300", "茨城県", &["08"]),
    ("310", "千葉県九十九里・外房", &["12"]),
    ("311", "千葉県内房", &["12"]),
    ("312", "東京湾内湾", &["12", "13", "14"]),
    ("320", "伊豆諸島", &["13"]),
    ("321", "小笠原諸島", &["13"]),
    ("330", "相模湾・三浦半島", &["14"]),
    ("340", "新潟県上中下越", &["15"]),
    ("341", "佐渡", &["15"]),
    ("350", "富山県", &["16"]),
    ("360", "石川県能登", &["17"]),
    ("361", "石川県加賀", &["17"]),
    ("370", "福井県", &["18"]),
    ("380", "静岡県", &["22"]),
    ("390", "愛知県外海", &["23"]),
    ("391", "伊勢・三河湾", &["23", "24"]),
    ("400", "三重県南部", &["24"]),
    ("500", "京都府", &["26"]),
    ("510", "大阪府", &["27"]),
    ("520", "兵庫県北部", &["28"]),
    ("521", "兵庫県瀬戸内海沿岸", &["28"]),
    ("522", "淡路島南部", &["28"]),
    ("530", "和歌山県", &["30"]),
    ("540", "鳥取県", &["31"]),
    ("550", "島根県出雲・石見", &["32"]),
    ("551", "隠岐", &["32"]),
    ("560", "岡山県", &["33"]),
    ("570", "広島県", &["34"]),
    ("580", "徳島県", &["36"]),
    ("590", "香川県", &["37"]),
    ("600", "愛媛県宇和海沿岸", &["38"]),
    ("601", "愛媛県瀬戸内海沿岸", &["38"]),
    ("610", "高知県", &["39"]),
    ("700", "山口県日本海沿岸", &["35"]),
    ("701", "山口県瀬戸内海沿岸", &["35"]),
    ("710", "福岡県瀬戸内海沿岸", &["40"]),
    ("711", "福岡県日本海沿岸", &["40"]),
    ("712", "有明・八代海", &["40", "41", "42", "43", "46"]),
    ("720", "佐賀県北部", &["41"]),
    ("730", "長崎県西方", &["42"]),
    ("731", "壱岐・対馬", &["42"]),
    ("740", "熊本県天草灘沿岸", &["43"]),
    ("750", "大分県瀬戸内海沿岸", &["44"]),
    ("751", "大分県豊後水道沿岸", &["44"]),
    ("760", "宮崎県", &["45"]),
    ("770", "鹿児島県東部", &["46"]),
    ("771", "種子島・屋久島地方", &["46"]),
    ("772", "奄美群島・トカラ列島", &["46"]),
    ("773", "鹿児島県西部", &["46"]),
    ("800", "沖縄本島地方", &["47"]),
    ("801", "大東島地方", &["47"]),
    ("802", "宮古島・八重山地方", &["47"]),
];

/// Prefectures covered by a tsunami forecast region, by code, else by name (empty if unknown).
pub fn prefectures_for_region(code: &str, name: &str) -> Vec<AreaCode> {
    let code = code.trim();
    let name = name.trim();
    let by_code = TSUNAMI_REGIONS.iter().find(|(c, n, _)| *c == code || (code.is_empty() && *n == name));
    match by_code {
        Some((_, _, prefs)) => prefs.iter().filter_map(|p| AreaCode::prefecture(p)).collect(),
        None => prefecture_from_name(name).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(code: &str, name: &str) -> Vec<String> {
        prefectures_for_region(code, name).into_iter().map(String::from).collect()
    }

    #[test]
    fn table_is_complete_and_consistent() {
        assert_eq!(TSUNAMI_REGIONS.len(), 66);
        let mut seen = std::collections::HashSet::new();
        for (code, name, prefs) in TSUNAMI_REGIONS {
            assert!(seen.insert(*code), "duplicate {code}");
            assert!(!prefs.is_empty());
            assert!(prefs.iter().all(|p| AreaCode::prefecture(p).is_some()), "{code}");
            // A region named after a prefecture maps to (at least) that prefecture.
            if let Some(p) = prefecture_from_name(name) {
                assert!(prefs.contains(&p.as_str()), "{code} {name}");
            }
        }
        // Every prefecture with a coast appears; the landlocked eight do not.
        let covered: std::collections::BTreeSet<&str> = TSUNAMI_REGIONS.iter().flat_map(|(_, _, p)| p.iter().copied()).collect();
        for landlocked in ["09", "10", "11", "19", "20", "21", "25", "29"] {
            assert!(!covered.contains(landlocked));
        }
        assert_eq!(covered.len(), 47 - 8);
    }

    #[test]
    fn lookups() {
        assert_eq!(codes("220", "宮城県"), ["04"]);
        assert_eq!(codes("100", "北海道太平洋沿岸東部"), ["01"]);
        assert_eq!(codes("320", "伊豆諸島"), ["13"]);
        assert_eq!(codes("321", "小笠原諸島"), ["13"]);
        assert_eq!(codes("312", "東京湾内湾"), ["12", "13", "14"]);
        assert_eq!(codes("510", "大阪府"), ["27"]);
        assert_eq!(codes("521", "兵庫県瀬戸内海沿岸"), ["28"]);
        // Unknown code: by name; nothing if the name names no prefecture.
        assert_eq!(codes("999", "高知県東部"), ["39"]);
        assert_eq!(codes("", "東京湾内湾"), ["12", "13", "14"]);
        assert!(codes("999", "関東地方").is_empty());
    }
}
