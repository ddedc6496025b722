//! Telegram type codes (`VXSE53`, …) from `Control/Title`.
//!
//! The XML carries no type code; JMA's feed file names do. Titles map to codes one-to-one except:
//! - 台風解析・予報情報（３日予報|５日予報|…（Ｈ３０）） are shared by one code per typhoon slot
//!   (VPTW40–45, VPTW50–55, VPTW60–65); the first code of the family is returned.
//! - 南海トラフ地震関連解説情報 is VYSE51 when `Head/Title` carries an issue number （第N号）, else VYSE52.
//! - 季節予報 titles (１か月予報, ３か月予報, 暖・寒候期予報) share VPZK50/VPCK50.

/// `Control/Title` → type code. Titles carry JMA's own suffixes ("津波情報a", "（Ｈ２７）").
const TITLES: &[(&str, &str)] = &[
    ("火山現象に関する海上警報・海上予報", "VFSVii"),
    ("噴火警報・予報", "VFVO50"),
    ("火山の状況に関する解説情報", "VFVO51"),
    ("噴火に関する火山観測報", "VFVO52"),
    ("降灰予報（定時）", "VFVO53"),
    ("降灰予報（速報）", "VFVO54"),
    ("降灰予報（詳細）", "VFVO55"),
    ("噴火速報", "VFVO56"),
    ("推定噴煙流向報", "VFVO60"),
    ("季節観測", "VGSK50"),
    ("生物季節観測", "VGSK55"),
    ("特殊気象報", "VGSK60"),
    ("紫外線観測データ", "VGUV50"),
    ("全般潮位情報", "VMCJ50"),
    ("地方潮位情報", "VMCJ51"),
    ("府県潮位情報", "VMCJ52"),
    ("全般気象解説情報（潮位）", "VMCJ53"),
    ("地方気象解説情報（潮位）", "VMCJ54"),
    ("府県気象解説情報（潮位）", "VMCJ55"),
    ("早期天候情報", "VPAW51"),
    ("府県気象防災速報", "VPBS50"),
    ("地方天候情報", "VPCI50"),
    ("地方気象情報", "VPCJ50"),
    ("地方気象解説情報", "VPCJ51"),
    ("地方暖・寒候期予報", "VPCK50"),
    ("地方１か月予報", "VPCK50"),
    ("地方３か月予報", "VPCK50"),
    ("地方季節予報（２週間気温予報）", "VPCK70"),
    ("地方海上警報", "VPCU50"),
    ("地方海上警報（Ｈ２８）", "VPCU51"),
    ("地方海上予報", "VPCY50"),
    ("地方海上予報（Ｈ２８）", "VPCY51"),
    ("府県天気予報", "VPFD50"),
    ("府県天気予報（Ｒ１）", "VPFD51"),
    ("警報級の可能性（明日まで）", "VPFD60"),
    ("早期注意情報（明後日まで）", "VPFD61"),
    ("府県天気概況", "VPFG50"),
    ("府県気象情報", "VPFJ50"),
    ("府県気象解説情報", "VPFJ51"),
    ("熱中症警戒アラート", "VPFT50"),
    ("府県週間天気予報", "VPFW50"),
    ("警報級の可能性（明後日以降）", "VPFW60"),
    ("竜巻注意情報", "VPHW50"),
    ("竜巻注意情報（目撃情報付き）", "VPHW51"),
    ("気象特別警報報知", "VPNO50"),
    ("記録的短時間大雨情報", "VPOA50"),
    ("大雨危険度通知", "VPRN50"),
    ("台風の暴風域に入る確率", "VPTA50"),
    ("全般台風情報", "VPTI50"),
    ("全般台風情報（定型）", "VPTI51"),
    ("全般台風情報（詳細）", "VPTI52"),
    ("台風解析・予報情報（３日予報）", "VPTW40"),
    ("台風解析・予報情報（５日予報）", "VPTW50"),
    ("台風解析・予報情報（５日予報）（Ｈ３０）", "VPTW60"),
    ("気象警報・注意報時系列情報（Ｒ０６）", "VPWP50"),
    ("気象警報・注意報", "VPWW50"),
    ("気象特別警報・警報・注意報", "VPWW53"),
    ("気象警報・注意報（Ｈ２７）", "VPWW54"),
    ("気象警報・注意報（Ｒ０６）（大雨）", "VPWW55"),
    ("気象警報・注意報（Ｒ０６）（土砂災害）", "VPWW56"),
    ("気象警報・注意報（Ｒ０６）（土砂）", "VPWW56"),
    ("気象警報・注意報（Ｒ０６）（高潮）", "VPWW57"),
    ("気象警報・注意報（Ｒ０６）（暴風）", "VPWW58"),
    ("気象警報・注意報（Ｒ０６）（波浪）", "VPWW59"),
    ("気象警報・注意報（Ｒ０６）（大雪）", "VPWW60"),
    ("気象警報・注意報（Ｒ０６）（その他注意報）", "VPWW61"),
    ("全般天候情報", "VPZI50"),
    ("全般気象情報", "VPZJ50"),
    ("全般気象解説情報", "VPZJ51"),
    ("全般暖・寒候期予報", "VPZK50"),
    ("全般１か月予報", "VPZK50"),
    ("全般３か月予報", "VPZK50"),
    ("全般季節予報（２週間気温予報）", "VPZK70"),
    ("全般海上警報（定時）", "VPZU50"),
    ("全般海上警報（臨時）", "VPZU51"),
    ("全般海上警報（定時）（Ｈ２９）", "VPZU52"),
    ("全般海上警報（臨時）（Ｈ２９）", "VPZU53"),
    ("津波警報・注意報・予報a", "VTSE41"),
    ("津波情報a", "VTSE51"),
    ("沖合の津波観測に関する情報", "VTSE52"),
    ("指定河川洪水予報", "VXKOii"),
    ("緊急地震速報配信テスト", "VXSE42"),
    ("緊急地震速報（警報）", "VXSE43"),
    ("緊急地震速報（予報）", "VXSE44"),
    ("緊急地震速報（地震動予報）", "VXSE45"),
    ("震度速報", "VXSE51"),
    ("震源に関する情報", "VXSE52"),
    ("震源・震度に関する情報", "VXSE53"),
    ("地震の活動状況等に関する情報", "VXSE56"),
    ("地震回数に関する情報", "VXSE60"),
    ("顕著な地震の震源要素更新のお知らせ", "VXSE61"),
    ("長周期地震動に関する観測情報", "VXSE62"),
    ("水位周知河川に関する情報", "VXSUii"),
    ("土砂災害警戒情報", "VXWW50"),
    ("南海トラフ地震臨時情報", "VYSE50"),
    ("南海トラフ地震関連解説情報", "VYSE51"),
    ("北海道・三陸沖後発地震注意情報", "VYSE60"),
    ("地上実況図", "VZSA50"),
    ("アジア太平洋地上実況図", "VZSA60"),
    ("地震・津波に関するお知らせ", "VZSE40"),
    ("地上２４時間予想図", "VZSF50"),
    ("地上４８時間予想図", "VZSF51"),
    ("アジア太平洋海上悪天２４時間予想図", "VZSF60"),
    ("アジア太平洋海上悪天４８時間予想図", "VZSF61"),
    ("火山に関するお知らせ", "VZVO40"),
];

/// The type code for a telegram, from `Control/Title` (and `Head/Title` where titles are shared);
/// `""` when the title is not known.
pub fn type_code_for(control_title: &str, head_title: &str) -> &'static str {
    let title = control_title.trim();
    let code = TITLES.iter().find(|(t, _)| *t == title).map(|(_, c)| *c).unwrap_or("");
    if code == "VYSE51" && !(head_title.contains("（第") && head_title.contains("号）")) {
        return "VYSE52";
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(type_code_for("震源・震度に関する情報", ""), "VXSE53");
        assert_eq!(type_code_for(" 津波情報a\n", ""), "VTSE51");
        assert_eq!(type_code_for("気象警報・注意報（Ｈ２７）", ""), "VPWW54");
        assert_eq!(type_code_for("南海トラフ地震関連解説情報", "南海トラフ地震関連解説情報（第２号）"), "VYSE51");
        assert_eq!(type_code_for("南海トラフ地震関連解説情報", "南海トラフ地震関連解説情報"), "VYSE52");
        assert_eq!(type_code_for("未知の情報", ""), "");
    }
}
