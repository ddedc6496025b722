//! Tenant dispatch rules: which hazards, how severe, where, whom (home / work area), what to
//! send, how long to hold, and when a repeat is suppressed. Evaluation and decision are pure.

use anpi_core::survey::Survey;
use anpi_core::target::AreaBasis;
use anpi_core::{Lang, Millis};
use anpi_jma::{AreaCode, Hazard, HazardKind, Intensity, Severity, TsunamiLevel, VolcanicAlert, WeatherLevel};
use anpi_store::{PeopleAreas, RuleRow};

/// The hazard family a rule listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Earthquake,
    EarlyWarning,
    Tsunami,
    Weather,
    Landslide,
    RecordRain,
    Volcano,
}

impl RuleKind {
    pub const ALL: [RuleKind; 7] =
        [RuleKind::Earthquake, RuleKind::EarlyWarning, RuleKind::Tsunami, RuleKind::Weather, RuleKind::Landslide, RuleKind::RecordRain, RuleKind::Volcano];

    /// The family of a hazard; `None` for telegrams no rule can act on.
    pub fn of(kind: &HazardKind) -> Option<RuleKind> {
        Some(match kind {
            HazardKind::EarthquakeIntensity => RuleKind::Earthquake,
            HazardKind::EarthquakeEarlyWarning => RuleKind::EarlyWarning,
            HazardKind::Tsunami => RuleKind::Tsunami,
            HazardKind::Weather => RuleKind::Weather,
            HazardKind::Landslide => RuleKind::Landslide,
            HazardKind::RecordRain => RuleKind::RecordRain,
            HazardKind::Volcano => RuleKind::Volcano,
            HazardKind::Other { .. } => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            RuleKind::Earthquake => "earthquake",
            RuleKind::EarlyWarning => "eew",
            RuleKind::Tsunami => "tsunami",
            RuleKind::Weather => "weather",
            RuleKind::Landslide => "landslide",
            RuleKind::RecordRain => "record_rain",
            RuleKind::Volcano => "volcano",
        }
    }

    pub fn parse(s: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| k.code() == s)
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            RuleKind::Earthquake => lang.pick("地震（震度）", "Earthquake (intensity)"),
            RuleKind::EarlyWarning => lang.pick("緊急地震速報（警報）", "Earthquake early warning"),
            RuleKind::Tsunami => lang.pick("津波", "Tsunami"),
            RuleKind::Weather => lang.pick("気象警報・特別警報", "Weather warnings"),
            RuleKind::Landslide => lang.pick("土砂災害警戒情報", "Landslide alert"),
            RuleKind::RecordRain => lang.pick("記録的短時間大雨情報", "Record short-time heavy rain"),
            RuleKind::Volcano => lang.pick("噴火警報", "Volcanic warning"),
        }
    }

    /// The thresholds a rule of this kind may use, weakest first.
    pub fn thresholds(self) -> Vec<Severity> {
        use Intensity::*;
        match self {
            RuleKind::Earthquake => [Three, Four, FiveLower, FiveUpper, SixLower, SixUpper, Seven].map(Severity::Intensity).to_vec(),
            RuleKind::EarlyWarning => [Four, FiveLower, FiveUpper, SixLower, SixUpper, Seven].map(Severity::Intensity).to_vec(),
            RuleKind::Tsunami => [TsunamiLevel::Advisory, TsunamiLevel::Warning, TsunamiLevel::MajorWarning].map(Severity::Tsunami).to_vec(),
            RuleKind::Weather => [WeatherLevel::Warning, WeatherLevel::DangerWarning, WeatherLevel::EmergencyWarning].map(Severity::Weather).to_vec(),
            RuleKind::Landslide => vec![Severity::Landslide],
            RuleKind::RecordRain => vec![Severity::RecordRain],
            RuleKind::Volcano => [VolcanicAlert::Level3, VolcanicAlert::Level4, VolcanicAlert::Level5].map(Severity::Volcano).to_vec(),
        }
    }
}

/// How a severity reads on screen and in mail.
pub fn severity_label(s: &Severity, lang: Lang) -> String {
    let t = |ja: &str, en: &str| lang.pick(ja, en).to_string();
    match s {
        Severity::Info => t("情報", "information"),
        Severity::Intensity(i) => match lang {
            Lang::Ja => i.label_ja().to_string(),
            Lang::En => format!("intensity {}", i.code()),
        },
        Severity::Tsunami(TsunamiLevel::Forecast) => t("津波予報", "tsunami forecast"),
        Severity::Tsunami(TsunamiLevel::Advisory) => t("津波注意報", "tsunami advisory"),
        Severity::Tsunami(TsunamiLevel::Warning) => t("津波警報", "tsunami warning"),
        Severity::Tsunami(TsunamiLevel::MajorWarning) => t("大津波警報", "major tsunami warning"),
        Severity::Weather(WeatherLevel::Advisory) => t("注意報", "advisory"),
        Severity::Weather(WeatherLevel::Warning) => t("警報", "warning"),
        Severity::Weather(WeatherLevel::DangerWarning) => t("危険警報", "danger warning"),
        Severity::Weather(WeatherLevel::EmergencyWarning) => t("特別警報", "emergency warning"),
        Severity::Landslide => t("土砂災害警戒情報", "landslide alert"),
        Severity::RecordRain => t("記録的短時間大雨情報", "record short-time heavy rain"),
        Severity::Volcano(v) => match lang {
            Lang::Ja => format!("噴火警戒レベル{}", v.level()),
            Lang::En => format!("volcanic alert level {}", v.level()),
        },
    }
}

/// A threshold as "at least": 震度5弱以上 / intensity 5- or more. Single-level kinds need no suffix.
pub fn threshold_label(s: &Severity, lang: Lang) -> String {
    match s {
        Severity::Landslide | Severity::RecordRain | Severity::Info => severity_label(s, lang),
        _ => format!("{}{}", severity_label(s, lang), lang.pick("以上", " or higher")),
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub kind: RuleKind,
    pub threshold: Severity,
    /// Restricts the rule to these areas; empty means wherever the tenant's people are.
    pub areas: Vec<AreaCode>,
    pub basis: AreaBasis,
    pub survey: Survey,
    pub message: String,
    pub hold_secs: i64,
    /// Besides repeats of the same event, also suppress any match within this many minutes
    /// that is not stronger than what was sent (aftershocks carry their own event ids).
    pub suppress_min: i64,
    pub reminder_interval_min: i64,
    pub reminder_count: i64,
    /// The classification label of the incidents it starts.
    pub label_id: Option<i64>,
}

/// Longest hold: a day.
pub const MAX_HOLD_SECS: i64 = 86_400;
/// Longest suppression window: a week.
pub const MAX_SUPPRESS_MIN: i64 = 10_080;

impl Rule {
    /// Checks a rule as entered or stored; the error says what is wrong, in both languages.
    pub fn from_row(r: &RuleRow) -> Result<Rule, String> {
        let name = r.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err("ルール名は1〜100文字です (rule name: 1–100 characters)".into());
        }
        let kind = RuleKind::parse(&r.kind).ok_or("種類を選んでください (choose a hazard kind)")?;
        let threshold: Severity = r.threshold.parse().map_err(|_| "基準を選んでください (choose a threshold)".to_string())?;
        if !kind.thresholds().contains(&threshold) {
            return Err("基準がこの種類に合いません (the threshold does not fit the hazard kind)".into());
        }
        let areas = r
            .areas
            .split(|c: char| c.is_whitespace() || c == ',' || c == '、')
            .filter(|s| !s.is_empty())
            .map(|s| {
                AreaCode::parse(s).ok_or_else(|| format!("地域コードが不正です: {s} (bad area code; use 2-digit prefecture or 5-digit municipality JIS codes)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let basis = AreaBasis::parse(&r.basis).ok_or("対象の地域（自宅・勤務地）を選んでください (choose home, work or both)")?;
        let survey: Survey = serde_json::from_str(&r.survey).map_err(|_| "設問が不正です (invalid survey)".to_string())?;
        if !(0..=MAX_HOLD_SECS).contains(&r.hold_secs) {
            return Err("保留時間は0〜86400秒です (hold: 0–86400 seconds)".into());
        }
        if !(0..=MAX_SUPPRESS_MIN).contains(&r.suppress_min) {
            return Err("重複抑止は0〜10080分です (suppression: 0–10080 minutes)".into());
        }
        if r.message.chars().count() > 5000 {
            return Err("本文は5000文字以内です (message: at most 5000 characters)".into());
        }
        Ok(Rule {
            id: r.id,
            name,
            enabled: r.enabled != 0,
            kind,
            threshold,
            areas,
            basis,
            survey,
            message: r.message.trim().to_string(),
            hold_secs: r.hold_secs,
            suppress_min: r.suppress_min,
            reminder_interval_min: r.reminder_interval_min.clamp(0, 24 * 60),
            reminder_count: r.reminder_count.clamp(0, 10),
            label_id: r.label_id,
        })
    }

    pub fn to_row(&self) -> RuleRow {
        RuleRow {
            id: self.id,
            name: self.name.clone(),
            enabled: self.enabled as i64,
            kind: self.kind.code().into(),
            threshold: self.threshold.to_string(),
            areas: self.areas.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" "),
            basis: self.basis.code().into(),
            survey: serde_json::to_string(&self.survey).unwrap_or_default(),
            message: self.message.clone(),
            hold_secs: self.hold_secs,
            suppress_min: self.suppress_min,
            reminder_interval_min: self.reminder_interval_min,
            reminder_count: self.reminder_count,
            label_id: self.label_id,
        }
    }

    fn in_scope(&self, code: &AreaCode) -> bool {
        self.areas.is_empty() || self.areas.iter().any(|a| a.covers(code))
    }
}

/// A rule's view of a hazard.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// The hazard meets the threshold where some of the tenant's people are.
    Match {
        /// The strongest severity over those areas.
        severity: Severity,
        /// The people's area codes (home or site, per the rule's basis) that are affected.
        areas: Vec<String>,
    },
    /// The hazard reaches the tenant's areas, but below the threshold.
    Below { strongest: Severity },
    /// The hazard does not reach any of the tenant's areas in the rule's scope.
    Elsewhere,
}

/// Checks a hazard against a rule and the areas where the tenant's people live and work.
pub fn evaluate(rule: &Rule, hazard: &Hazard, people: &PeopleAreas) -> Evaluation {
    if RuleKind::of(&hazard.kind) != Some(rule.kind) {
        return Evaluation::Elsewhere;
    }
    let mut codes: Vec<&String> = Vec::new();
    if rule.basis.uses_home() {
        codes.extend(&people.home);
    }
    if rule.basis.uses_work() {
        codes.extend(&people.work);
    }
    codes.sort();
    codes.dedup();
    let (mut matched, mut strongest, mut below) = (Vec::new(), Severity::Info, None::<Severity>);
    for raw in codes {
        let Some(code) = AreaCode::parse(raw) else { continue };
        if !rule.in_scope(&code) {
            continue;
        }
        match hazard.severity_at(&code) {
            Some(s) if s.meets(&rule.threshold) => {
                matched.push(raw.clone());
                strongest = strongest.max(s);
            }
            Some(s) => below = below.max(Some(s)),
            None => {}
        }
    }
    match (matched.is_empty(), below) {
        (false, _) => Evaluation::Match { severity: strongest, areas: matched },
        (true, Some(strongest)) => Evaluation::Below { strongest },
        (true, None) => Evaluation::Elsewhere,
    }
}

/// An earlier held or sent decision of the same rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    pub severity: Severity,
    pub same_event: bool,
    pub at: Millis,
}

/// What a match leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A drill or test telegram: never sent.
    Drill,
    /// Reported too long ago (e.g. read from a long feed on first start): never sent.
    Stale { age_min: i64 },
    /// Something at least as strong was already sent (or is held) for this event or window.
    Suppressed { by: Severity },
    /// Send when the hold time is over (`due_at` is now when there is none).
    Dispatch { due_at: Millis },
}

/// Decides about a match: drills never dispatch; repeats are suppressed unless stronger.
pub fn decide(rule: &Rule, severity: &Severity, live: bool, priors: &[Prior], now: Millis) -> Decision {
    if !live {
        return Decision::Drill;
    }
    let window_start = now - rule.suppress_min * 60_000;
    let covering = priors.iter().filter(|p| p.same_event || p.at >= window_start).map(|p| p.severity).filter(|p| p.meets(severity)).max();
    match covering {
        Some(by) => Decision::Suppressed { by },
        None => Decision::Dispatch { due_at: now + rule.hold_secs * 1000 },
    }
}

/// A reason in both languages, stored as one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub ja: String,
    pub en: String,
}

const REASON_SEP: char = '\u{1f}';

impl Reason {
    pub fn new(ja: impl Into<String>, en: impl Into<String>) -> Reason {
        Reason { ja: ja.into(), en: en.into() }
    }
    pub fn encode(&self) -> String {
        format!("{}{REASON_SEP}{}", self.ja, self.en)
    }
    /// The text of a stored reason in `lang`.
    pub fn text(stored: &str, lang: Lang) -> &str {
        match stored.split_once(REASON_SEP) {
            Some((ja, en)) => lang.pick(ja, en),
            None => stored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_jma::AffectedArea;

    fn area(code: &str, s: Severity) -> AffectedArea {
        AffectedArea { code: AreaCode::parse(code).unwrap(), name: String::new(), severity: s }
    }
    fn quake(areas: Vec<AffectedArea>) -> Hazard {
        let severity = areas.iter().map(|a| a.severity).max().unwrap_or(Severity::Info);
        Hazard { kind: HazardKind::EarthquakeIntensity, severity, areas, event_id: "1".into(), serial: Some(1), headline: String::new() }
    }
    fn rule(threshold: Intensity, areas: &str, basis: &str) -> Rule {
        Rule::from_row(&RuleRow {
            id: 1,
            name: "地震".into(),
            enabled: 1,
            kind: "earthquake".into(),
            threshold: Severity::Intensity(threshold).to_string(),
            areas: areas.into(),
            basis: basis.into(),
            survey: serde_json::to_string(&Survey::default_safety()).unwrap(),
            suppress_min: 60,
            ..Default::default()
        })
        .unwrap()
    }
    fn people(home: &[&str], work: &[&str]) -> PeopleAreas {
        PeopleAreas { home: home.iter().map(|s| s.to_string()).collect(), work: work.iter().map(|s| s.to_string()).collect() }
    }
    const I5L: Severity = Severity::Intensity(Intensity::FiveLower);
    const I5U: Severity = Severity::Intensity(Intensity::FiveUpper);
    const I3: Severity = Severity::Intensity(Intensity::Three);

    #[test]
    fn threshold_and_basis() {
        let h = quake(vec![area("17", I5U), area("17201", I5U), area("13", I3), area("13101", I3)]);
        let p = people(&["17201", "13101"], &["13101"]);
        assert_eq!(evaluate(&rule(Intensity::FiveLower, "", "both"), &h, &p), Evaluation::Match { severity: I5U, areas: vec!["17201".into()] });
        assert_eq!(evaluate(&rule(Intensity::FiveLower, "", "work"), &h, &p), Evaluation::Below { strongest: I3 }, "nobody works in Ishikawa");
        assert_eq!(evaluate(&rule(Intensity::SixLower, "", "home"), &h, &p), Evaluation::Below { strongest: I5U });
        assert_eq!(evaluate(&rule(Intensity::FiveLower, "13", "both"), &h, &p), Evaluation::Below { strongest: I3 }, "rule limited to Tokyo");
        assert_eq!(evaluate(&rule(Intensity::FiveLower, "", "both"), &h, &people(&["01101"], &[])), Evaluation::Elsewhere);
        let prefecture_only = people(&["17"], &[]);
        assert!(matches!(evaluate(&rule(Intensity::FiveLower, "", "both"), &h, &prefecture_only), Evaluation::Match { .. }));
    }

    #[test]
    fn repeats_are_suppressed_unless_stronger() {
        let r = rule(Intensity::FiveLower, "", "both");
        let now = 10_000_000;
        assert_eq!(decide(&r, &I5L, false, &[], now), Decision::Drill);
        assert_eq!(decide(&r, &I5L, true, &[], now), Decision::Dispatch { due_at: now });
        let sent = |s, same_event, at| Prior { severity: s, same_event, at };
        assert_eq!(decide(&r, &I5L, true, &[sent(I5U, true, 0)], now), Decision::Suppressed { by: I5U }, "same event, weaker");
        assert_eq!(decide(&r, &I5U, true, &[sent(I5L, true, now - 1000)], now), Decision::Dispatch { due_at: now }, "stronger update");
        assert_eq!(decide(&r, &I5L, true, &[sent(I5L, false, now - 30 * 60_000)], now), Decision::Suppressed { by: I5L }, "aftershock in window");
        assert_eq!(decide(&r, &I5L, true, &[sent(I5L, false, now - 61 * 60_000)], now), Decision::Dispatch { due_at: now }, "window over");
        let held = Rule { hold_secs: 120, ..r };
        assert_eq!(decide(&held, &I5L, true, &[], now), Decision::Dispatch { due_at: now + 120_000 });
    }

    #[test]
    fn rows_are_checked() {
        let mut row = rule(Intensity::FiveLower, "13 27100", "home").to_row();
        assert_eq!(Rule::from_row(&row).unwrap().to_row(), row, "round trip");
        row.threshold = "tsunami:warning".into();
        assert!(Rule::from_row(&row).is_err(), "threshold of another kind");
        row.threshold = "intensity:5-".into();
        row.areas = "13 999".into();
        assert!(Rule::from_row(&row).unwrap_err().contains("999"));
        assert_eq!(Reason::text(&Reason::new("保留", "held").encode(), Lang::En), "held");
    }
}
