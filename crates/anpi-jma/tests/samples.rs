//! Conformance against JMA's official sample telegrams (出典：気象庁ホームページ), read from
//! `../shared/jma/samples` beside the project checkout. Skipped with a message when the folder is
//! absent, except under `CI`, where its absence fails the run.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use std::path::PathBuf;

use anpi_jma::{parse_telegram, AreaCode, HazardKind, InfoType, ParseError, Severity, Status, Telegram};

#[path = "../fuzz/invariants.rs"]
mod invariants;

fn samples_dir() -> Option<PathBuf> {
    // crates/anpi-jma → repository root → ../shared/jma/samples
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/jma/samples");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("JMA samples not found at {} (required when CI is set)", dir.display());
    }
    eprintln!("skipping: JMA samples not found at {}", dir.display());
    None
}

/// All sample file names, sorted.
fn sample_names(dir: &PathBuf) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".xml")).collect();
    names.sort();
    names
}

/// Parses one sample; `None` when the samples are absent (and not in CI).
fn sample(name: &str) -> Option<Telegram> {
    let dir = samples_dir()?;
    let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Some(parse_telegram(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// `code:severity` for every area, in the hazard's (code) order.
fn areas(t: &Telegram) -> Vec<String> {
    t.hazard.areas.iter().map(|a| format!("{}:{}", a.code, a.severity)).collect()
}

/// Severity stated for one code (exact entry).
fn at(t: &Telegram, code: &str) -> Option<String> {
    t.hazard.areas.iter().find(|a| a.code.as_str() == code).map(|a| a.severity.to_string())
}

fn sev(s: &str) -> Severity {
    s.parse().unwrap()
}

/// Type code from the sample file name (`…_VXSE53.xml`).
fn file_type(name: &str) -> &str {
    name.trim_end_matches(".xml").rsplit('_').next().unwrap()
}

#[test]
fn every_sample_parses() {
    let Some(dir) = samples_dir() else { return };
    let names = sample_names(&dir);
    assert!(names.len() >= 500, "expected the full sample set, found {}", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let t = match parse_telegram(&bytes) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if let Some(err) = &t.body_error {
            failures.push(format!("{name}: body not modelled: {err}"));
        }
        // Type code from the title matches the file name, except where JMA shares a title
        // between codes (typhoon slots VPTW4x/5x/6x all map to the first code of the family).
        let expected = file_type(name);
        let shared = expected.starts_with("VPTW") && t.type_code.get(..5) == expected.get(..5);
        if t.type_code != expected && !shared {
            failures.push(format!("{name}: type code {:?}", t.type_code));
        }
        let kind_ok = match t.type_code.as_str() {
            "VXSE51" | "VXSE53" => t.hazard.kind == HazardKind::EarthquakeIntensity,
            "VXSE43" => t.hazard.kind == HazardKind::EarthquakeEarlyWarning,
            "VTSE41" | "VTSE51" => t.hazard.kind == HazardKind::Tsunami,
            "VXWW50" => t.hazard.kind == HazardKind::Landslide,
            "VPOA50" => t.hazard.kind == HazardKind::RecordRain,
            "VFVO50" => t.hazard.kind == HazardKind::Volcano,
            c if c.starts_with("VPWW") && c != "VPWP50" => t.hazard.kind == HazardKind::Weather,
            _ => t.hazard.kind == HazardKind::Other { title: t.control.title.clone() },
        };
        if !kind_ok {
            failures.push(format!("{name}: kind {:?}", t.hazard.kind));
        }
        // The invariants the fuzzers check (severity is the max over areas, areas sorted and
        // unique with valid codes, cancellations empty, header carried over, JSON round trip).
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| invariants::check(&t)));
        if checked.is_err() {
            failures.push(format!("{name}: invariant broken (panic message above)"));
        }
        for a in &t.hazard.areas {
            assert!(!a.name.is_empty(), "{name}: {} has no name", a.code);
        }
        // Status comes straight from the XML.
        let raw = String::from_utf8_lossy(&bytes);
        let drill = raw.contains("<Status>訓練</Status>");
        assert_eq!(t.control.status == Status::Drill, drill, "{name}");
    }
    assert!(failures.is_empty(), "{} of {} samples failed:\n{}", failures.len(), names.len(), failures.join("\n"));
}

#[test]
fn hazardous_kinds_have_areas_in_samples() {
    // Each normalised kind yields areas for at least one sample, so the mapping is exercised.
    let Some(dir) = samples_dir() else { return };
    let mut seen = std::collections::BTreeSet::new();
    for name in sample_names(&dir) {
        let t = parse_telegram(&std::fs::read(dir.join(&name)).unwrap()).unwrap();
        if !t.hazard.areas.is_empty() {
            seen.insert(format!("{:?}", t.hazard.kind));
        }
    }
    for kind in ["EarthquakeIntensity", "EarthquakeEarlyWarning", "Tsunami", "Weather", "Landslide", "RecordRain", "Volcano"] {
        assert!(seen.contains(kind), "no sample of {kind} had areas: {seen:?}");
    }
}

#[test]
fn vxse51_intensity_flash() {
    let Some(t) = sample("32-35_08_01_100915_VXSE51.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VXSE51");
    assert_eq!(t.control.status, Status::Normal);
    assert_eq!((t.head.event_id.as_str(), t.head.serial), ("20100705065511", None));
    assert_eq!(areas(&t), ["03:intensity:3"]);
    assert!(t.hazard.headline.contains("震度３以上が観測された地域"));

    // 2011-03-11 14:46: prefectures only (no municipalities in 震度速報).
    let Some(t) = sample("32-39_11_01_120615_VXSE51.xml") else {
        return;
    };
    assert_eq!(areas(&t), ["03:intensity:6-", "04:intensity:6+", "05:intensity:4", "06:intensity:5-", "07:intensity:5+", "08:intensity:4"]);
    assert_eq!(t.hazard.severity, sev("intensity:6+"));

    let Some(t) = sample("32-35_10_01_220510_VXSE51.xml") else {
        return;
    };
    assert_eq!(t.head.info_type, InfoType::Cancellation);
    assert!(t.hazard.areas.is_empty());
    assert_eq!(t.hazard.severity, Severity::Info);
}

#[test]
fn vxse53_intensity_by_municipality() {
    // 2011 東北地方太平洋沖地震: 41 prefectures + 1275 municipalities.
    let Some(t) = sample("32-39_11_05_240613_VXSE53.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VXSE53");
    assert_eq!((t.head.event_id.as_str(), t.head.serial), ("20110311144640", Some(1)));
    assert_eq!(t.hazard.severity, sev("intensity:7"));
    assert_eq!(t.hazard.areas.len(), 41 + 1275);
    assert_eq!(at(&t, "04").as_deref(), Some("intensity:7"));
    assert_eq!(at(&t, "04213").as_deref(), Some("intensity:7")); // 栗原市
    assert_eq!(at(&t, "04212").as_deref(), Some("intensity:6+")); // 登米市
    assert_eq!(at(&t, "04205").as_deref(), Some("intensity:6-")); // 気仙沼市
    assert_eq!(at(&t, "07").as_deref(), Some("intensity:6+"));
    assert_eq!(at(&t, "13").as_deref(), Some("intensity:5+"));
    let kurihara = t.hazard.areas.iter().find(|a| a.code.as_str() == "04213").unwrap();
    assert_eq!(kurihara.name, "栗原市");

    // 2008 岩手・宮城内陸地震: 震度５弱以上未入電 counts as 5弱; PP99900 placeholders are dropped.
    let Some(t) = sample("32-35_06_03_240613_VXSE53.xml") else {
        return;
    };
    // 620 City entries, 6 of them placeholders (0599900, 1299900, …): 19 prefectures + 614.
    assert_eq!(t.hazard.areas.len(), 19 + 614);
    assert_eq!(at(&t, "03").as_deref(), Some("intensity:6+"));
    assert_eq!(at(&t, "03215").as_deref(), Some("intensity:6+")); // 奥州市
    assert_eq!(at(&t, "03381").as_deref(), Some("intensity:5-")); // 金ケ崎町: 未入電
    assert_eq!(at(&t, "05463").as_deref(), Some("intensity:5-")); // 羽後町: 未入電
    assert_eq!(at(&t, "04215").as_deref(), Some("intensity:6-")); // 大崎市
    assert_eq!(at(&t, "05999"), None);
    // Rule helpers: most specific entry wins.
    let five_lower = sev("intensity:5-");
    assert!(t.hazard.affects(&AreaCode::parse("03381").unwrap(), &five_lower));
    assert_eq!(t.hazard.severity_at(&AreaCode::parse("04215").unwrap()), Some(sev("intensity:6-")));

    // Drill telegram.
    let Some(t) = sample("32-35_01_03_240613_VXSE53.xml") else {
        return;
    };
    assert_eq!(t.control.status, Status::Drill);
    assert!(!t.control.status.is_live());
    assert_eq!(at(&t, "22").as_deref(), Some("intensity:5-"));
    assert_eq!(at(&t, "22212").as_deref(), Some("intensity:5-")); // 焼津市
    assert_eq!(at(&t, "14206").as_deref(), Some("intensity:4")); // 小田原市

    // Distant earthquake: no intensities in Japan.
    let Some(t) = sample("32-39_05_01_100831_VXSE53.xml") else {
        return;
    };
    assert_eq!(t.hazard.kind, HazardKind::EarthquakeIntensity);
    assert!(t.hazard.areas.is_empty());

    // Cancellation keeps event id and serial.
    let Some(t) = sample("32-35_06_06_100915_VXSE53.xml") else {
        return;
    };
    assert_eq!(t.head.info_type, InfoType::Cancellation);
    assert_eq!((t.hazard.event_id.as_str(), t.hazard.serial), ("20080614084350", Some(3)));
    assert!(t.hazard.areas.is_empty());
}

#[test]
fn vxse43_early_warning() {
    let Some(t) = sample("37_01_01_240613_VXSE43.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VXSE43");
    assert_eq!(t.hazard.kind, HazardKind::EarthquakeEarlyWarning);
    assert_eq!((t.head.event_id.as_str(), t.head.serial), ("20240417231454", Some(1)));
    // 府県予報区 9340 広島, 9350 山口, 9380 愛媛, 9390 高知, 9440 大分.
    assert_eq!(areas(&t), ["34:intensity:4", "35:intensity:4", "38:intensity:5-", "39:intensity:4", "44:intensity:4"]);
    assert_eq!(t.hazard.areas[2].name, "愛媛県");

    let Some(t) = sample("37_01_02_240613_VXSE43.xml") else {
        return;
    };
    assert_eq!(t.hazard.areas.len(), 14);
    assert_eq!(at(&t, "38").as_deref(), Some("intensity:6-"));
    assert_eq!(at(&t, "39").as_deref(), Some("intensity:5+"));
    assert_eq!(at(&t, "44").as_deref(), Some("intensity:5-")); // 大分県中部 4〜5弱: upper bound
    assert_eq!(at(&t, "45").as_deref(), Some("intensity:5-"));
    assert_eq!(at(&t, "32").as_deref(), Some("intensity:4")); // 島根県西部 3〜4

    let Some(t) = sample("37_01_03_240613_VXSE43.xml") else {
        return;
    };
    assert_eq!(t.head.info_type, InfoType::Cancellation);
    assert!(t.hazard.areas.is_empty());
}

#[test]
fn vtse41_tsunami_warning() {
    // 2011: 大津波警報 for 岩手・宮城・福島; 津波警報 incl. 伊豆諸島 (→ 東京都).
    let Some(t) = sample("32-39_11_02_250206_VTSE41.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VTSE41");
    assert_eq!(t.hazard.severity, sev("tsunami:major_warning"));
    assert_eq!(at(&t, "03").as_deref(), Some("tsunami:major_warning"));
    assert_eq!(at(&t, "04").as_deref(), Some("tsunami:major_warning"));
    assert_eq!(at(&t, "07").as_deref(), Some("tsunami:major_warning"));
    assert_eq!(at(&t, "01").as_deref(), Some("tsunami:warning"));
    assert_eq!(at(&t, "13").as_deref(), Some("tsunami:warning"));
    assert_eq!(at(&t, "14").as_deref(), Some("tsunami:advisory"));
    assert_eq!(at(&t, "28").as_deref(), Some("tsunami:forecast"));
    assert_eq!(at(&t, "26"), None); // 京都府: not listed
    let tokyo = t.hazard.areas.iter().find(|a| a.code.as_str() == "13").unwrap();
    assert_eq!(tokyo.name, "東京都（伊豆諸島）");
    let warned: Vec<_> = t.hazard.areas.iter().filter(|a| a.severity.meets(&sev("tsunami:warning"))).map(|a| a.code.as_str()).collect();
    assert_eq!(warned, ["01", "02", "03", "04", "07", "08", "12", "13"]);

    // Drill: 津波注意報 for 千葉県内房, 東京湾内湾 (→ 千葉・東京・神奈川), 伊豆諸島, 相模湾・三浦半島, 静岡県.
    let Some(t) = sample("32-39_13_02_250206_VTSE41.xml") else {
        return;
    };
    assert_eq!(t.control.status, Status::Drill);
    assert_eq!(areas(&t), ["12:tsunami:advisory", "13:tsunami:advisory", "14:tsunami:advisory", "22:tsunami:advisory", "23:tsunami:forecast"]);

    // 2015 薩摩半島西方沖: 津波注意報 for the three 鹿児島 regions, forecasts elsewhere
    // (有明・八代海 covers 福岡・佐賀・長崎・熊本・鹿児島).
    let Some(t) = sample("38-39_02_01_250206_VTSE41.xml") else {
        return;
    };
    assert_eq!(
        areas(&t),
        [
            "39:tsunami:forecast",
            "40:tsunami:forecast",
            "41:tsunami:forecast",
            "42:tsunami:forecast",
            "43:tsunami:forecast",
            "45:tsunami:forecast",
            "46:tsunami:advisory",
            "47:tsunami:forecast"
        ]
    );
    // All released.
    let Some(t) = sample("38-39_02_04_250206_VTSE41.xml") else {
        return;
    };
    assert!(t.hazard.areas.is_empty());
    assert_eq!(t.hazard.kind, HazardKind::Tsunami);
    let Some(t) = sample("38-39_03_01_210805_VTSE41.xml") else {
        return;
    };
    assert_eq!(t.head.info_type, InfoType::Cancellation);
}

#[test]
fn vtse51_tsunami_information() {
    let Some(t) = sample("32-39_11_03_250206_VTSE51.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VTSE51");
    assert_eq!((t.head.event_id.as_str(), t.head.serial), ("20110311144640", Some(1)));
    assert_eq!(at(&t, "04").as_deref(), Some("tsunami:major_warning"));
    assert_eq!(at(&t, "08").as_deref(), Some("tsunami:warning"));

    let Some(t) = sample("38-39_02_02_250206_VTSE51.xml") else {
        return;
    };
    assert_eq!(at(&t, "46").as_deref(), Some("tsunami:advisory"));
    assert_eq!(t.hazard.severity, sev("tsunami:advisory"));

    // Several event ids in one telegram are kept verbatim.
    let Some(t) = sample("38-39_02_03_250206_VTSE51.xml") else {
        return;
    };
    assert_eq!(t.hazard.event_id, "20151114055157 20151114061750");
    assert_eq!(t.hazard.serial, Some(2));

    let Some(t) = sample("38-39_03_02_210805_VTSE51.xml") else {
        return;
    };
    assert_eq!(t.head.info_type, InfoType::Cancellation);
    assert!(t.hazard.areas.is_empty());
}

#[test]
fn vpww53_54_weather_warnings() {
    // 2017 東京: 大雨特別警報 in 新宿区 and 奥多摩町; 大雨警報 in 荒川区, 足立区.
    for name in ["15_14_01_170216_VPWW53.xml", "15_14_01_170216_VPWW54.xml"] {
        let Some(t) = sample(name) else { return };
        assert_eq!(t.hazard.kind, HazardKind::Weather, "{name}");
        assert_eq!(
            areas(&t),
            ["13104:weather:emergency_warning", "13118:weather:warning", "13121:weather:warning", "13308:weather:emergency_warning"],
            "{name}"
        );
        assert_eq!(t.hazard.event_id, "");
        assert_eq!(t.hazard.serial, None);
    }

    // 小笠原 特別警報; 23区 mixed warnings/advisories; municipalities without any are absent.
    let Some(t) = sample("15_12_02_161130_VPWW53.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VPWW53");
    assert_eq!(t.hazard.severity, sev("weather:emergency_warning"));
    assert_eq!(at(&t, "13421").as_deref(), Some("weather:emergency_warning")); // 小笠原村
    assert_eq!(at(&t, "13101").as_deref(), Some("weather:warning")); // 千代田区
    assert_eq!(at(&t, "13102").as_deref(), Some("weather:advisory")); // 中央区
    assert_eq!(at(&t, "13201"), None); // 八王子市: 発表警報・注意報はなし
    assert_eq!(t.hazard.areas.len(), 41);

    // 特別警報 → 警報/注意報 transitions; lifted kinds (解除) do not count.
    let Some(t) = sample("15_09_03_130826_VPWW53.xml") else {
        return;
    };
    assert_eq!(t.hazard.severity, sev("weather:warning"));
    assert_eq!(at(&t, "30201").as_deref(), Some("weather:warning")); // 和歌山市: 波浪警報
    assert_eq!(at(&t, "30203").as_deref(), Some("weather:advisory")); // 橋本市: 強風注意報
    assert_eq!(t.hazard.areas.len(), 30);

    // Everything lifted: no areas.
    let Some(t) = sample("15_08_05_130412_VPWW53.xml") else {
        return;
    };
    assert!(t.hazard.areas.is_empty());
    assert_eq!(t.hazard.severity, Severity::Info);

    // VPWW54 (H27) with 大雪特別警報.
    let Some(t) = sample("15_11_03_150916_VPWW54.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VPWW54");
    assert_eq!(t.hazard.severity, sev("weather:emergency_warning"));

    // R06 scheme: レベル４土砂災害危険警報 is a danger warning.
    let Some(t) = sample("15_16_01_241031_VPWW56.xml") else {
        return;
    };
    assert_eq!(at(&t, "01214").as_deref(), Some("weather:danger_warning")); // 稚内市
    assert_eq!(at(&t, "01511").as_deref(), Some("weather:warning"));
    assert_eq!(at(&t, "01512").as_deref(), Some("weather:advisory"));
}

#[test]
fn vxww50_landslide() {
    let Some(t) = sample("17_03_01_190529_VXWW50.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VXWW50");
    assert_eq!(t.hazard.kind, HazardKind::Landslide);
    assert_eq!(areas(&t), ["33209:landslide"]); // 高梁市
    assert_eq!((t.hazard.event_id.as_str(), t.hazard.serial), ("岡山県土砂災害警戒情報", Some(1)));

    let Some(t) = sample("17_02_02_190529_VXWW50.xml") else {
        return;
    };
    assert_eq!(areas(&t), ["01331:landslide", "01332:landslide", "01333:landslide"]);

    // 解除 and なし items are not in force.
    let Some(t) = sample("17_03_08_190529_VXWW50.xml") else {
        return;
    };
    assert_eq!(t.hazard.areas.len(), 9);
    let Some(t) = sample("17_03_10_190529_VXWW50.xml") else {
        return;
    };
    assert!(t.hazard.areas.is_empty());
    assert_eq!(t.hazard.serial, Some(10));
}

#[test]
fn vpoa50_record_rain() {
    let Some(t) = sample("18_01_01_100806_VPOA50.xml") else {
        return;
    };
    assert_eq!(t.hazard.kind, HazardKind::RecordRain);
    assert_eq!(areas(&t), ["27:record_rain"]); // 大阪府 (270000)
    assert_eq!(t.hazard.areas[0].name, "大阪府");

    // 石狩地方 (016010) and 後志地方 (016030) issued, 空知地方 なし → 北海道.
    let Some(t) = sample("18_03_01_190412_VPOA50.xml") else {
        return;
    };
    assert_eq!(areas(&t), ["01:record_rain"]);
    assert_eq!((t.hazard.event_id.as_str(), t.hazard.serial), ("JPSP201903281834_201903281953", Some(2)));
}

#[test]
fn vfvo50_volcano() {
    // 浅間山 レベル３: 嬬恋村, 小諸市, 軽井沢町, 御代田町.
    let Some(t) = sample("45_01_01_200522_VFVO50.xml") else {
        return;
    };
    assert_eq!(t.hazard.kind, HazardKind::Volcano);
    assert_eq!(areas(&t), ["10425:volcano:3", "20208:volcano:3", "20321:volcano:3", "20323:volcano:3"]);
    assert_eq!(t.hazard.event_id, "306");

    // 箱根山 レベル５.
    let Some(t) = sample("45_02_01_200522_VFVO50.xml") else {
        return;
    };
    assert_eq!(areas(&t), ["14382:volcano:5"]);
    assert!(t.hazard.affects(&AreaCode::parse("14382").unwrap(), &sev("volcano:4")));

    // 草津白根山 レベル１ (噴火予報: 警報解除).
    let Some(t) = sample("45_03_01_200731_VFVO50.xml") else {
        return;
    };
    assert_eq!(areas(&t), ["10425:volcano:1", "10426:volcano:1"]);
}

#[test]
fn other_types_keep_their_title() {
    let Some(t) = sample("32-35_01_02_240613_VXSE52.xml") else {
        return;
    };
    assert_eq!(t.type_code, "VXSE52");
    assert!(matches!(&t.hazard.kind, HazardKind::Other { title } if title == &t.control.title));
    assert_eq!(t.hazard.severity, Severity::Info);
}

#[test]
fn truncated_and_foreign_documents_fail_clearly() {
    let Some(dir) = samples_dir() else { return };
    let bytes = std::fs::read(dir.join("32-35_08_01_100915_VXSE51.xml")).unwrap();
    for cut in [10, 100, bytes.len() / 2, bytes.len() - 12] {
        let err = parse_telegram(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, ParseError::Xml { .. }), "cut {cut}: {err}");
        assert!(err.to_string().starts_with("malformed XML"), "cut {cut}: {err}");
    }
    // The sample's body under a foreign root is not JMA.
    let text = String::from_utf8(bytes).unwrap();
    let foreign = text.replace("http://xml.kishou.go.jp/jmaxml1/\" xmlns:jmx", "urn:other\" xmlns:jmx");
    let err = parse_telegram(foreign.as_bytes()).unwrap_err();
    assert!(matches!(err, ParseError::NotJma(_)), "{err}");
}

/// Small deterministic PRNG (xorshift64*), so mutation positions are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `bytes`: truncation, bit flip, syntax-character overwrite, deletion or duplication.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let pos = rng.below(bytes.len());
    let mut out = bytes.to_vec();
    match rng.below(6) {
        0 => out.truncate(pos),
        1 => out[pos] ^= 1 << rng.below(8),
        2 => out[pos] = b"<>&\"/;=\0"[rng.below(8)],
        3 => {
            out.remove(pos);
        }
        4 => {
            let end = (pos + 1 + rng.below(64)).min(bytes.len());
            out.splice(pos..pos, bytes[pos..end].iter().copied());
        }
        _ => out[pos] = b"0123456789-+ "[rng.below(13)],
    }
    out
}

/// Mutation smoke test: parse_telegram never panics on damaged telegrams, and what it returns
/// keeps the normalisation invariants. Every sample gets a few mutations; one small sample per
/// normalised kind gets a few hundred.
#[test]
fn mutated_samples_never_panic() {
    let Some(dir) = samples_dir() else { return };
    let dense = [
        "32-35_08_01_100915_VXSE51.xml",
        "32-35_08_07_240613_VXSE53.xml",
        "37_01_01_240613_VXSE43.xml",
        "32-39_13_02_250206_VTSE41.xml",
        "38-39_02_02_250206_VTSE51.xml",
        "15_14_01_170216_VPWW54.xml",
        "17_02_02_190529_VXWW50.xml",
        "18_03_01_190412_VPOA50.xml",
        "45_01_01_200522_VFVO50.xml",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0usize;
    let mut ok = 0usize;
    for name in sample_names(&dir) {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let count = if dense.contains(&name.as_str()) {
            300
        } else if bytes.len() > 256 * 1024 {
            1
        } else {
            4
        };
        for _ in 0..count {
            let input = mutate(&bytes, &mut rng);
            // A panic or a broken invariant fails the test; errors and degraded results are fine.
            if invariants::parse_and_check(&input) {
                ok += 1;
            }
            runs += 1;
        }
    }
    eprintln!("mutation smoke: {runs} inputs, {ok} still parsed");
    assert!(runs > 2000);
}
