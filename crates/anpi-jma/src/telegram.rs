//! Telegram envelope (`Control`, `Head`) and [`parse_telegram`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::hazard::Hazard;
use crate::header::{self, Field, RawHeader};
use crate::kinds;
use crate::type_code::type_code_for;

/// A parsed and normalised JMA telegram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telegram {
    /// `<Control>`: transmission information.
    pub control: Control,
    /// `<Head>`: information header.
    pub head: Head,
    /// Type code inferred from the titles (`"VXSE53"`), `""` if unknown. See [`crate::type_code_for`].
    pub type_code: String,
    /// The normalised hazard.
    pub hazard: Hazard,
    /// Set when `jmaxml` could not model the body; the hazard is then `HazardKind::Other`.
    pub body_error: Option<String>,
}

/// `<Control>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// `Control/Title`, e.g. `震源・震度に関する情報`.
    pub title: String,
    /// `Control/DateTime` (transmission time).
    pub date_time: DateTime<Utc>,
    /// `Control/Status`.
    pub status: Status,
    /// `Control/EditorialOffice`.
    pub editorial_office: String,
    /// `Control/PublishingOffice` (a whitespace-separated list in the XML; kept as text).
    pub publishing_office: String,
}

/// `Control/Status` (運用種別).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 通常: a real telegram.
    Normal,
    /// 訓練: drill; never dispatch for real.
    Drill,
    /// 試験: test; never dispatch for real.
    Test,
    /// Any other value the schema admits (`CC?`, `RR?`, `AA?` patterns), kept verbatim.
    Other(String),
}

impl Status {
    /// Only `通常` telegrams may trigger real dispatch.
    pub fn is_live(&self) -> bool {
        matches!(self, Status::Normal)
    }

    fn parse(s: &str) -> Status {
        match s.trim() {
            "通常" => Status::Normal,
            "訓練" => Status::Drill,
            "試験" => Status::Test,
            other => Status::Other(other.to_string()),
        }
    }
}

/// `Head/InfoType` (情報形態).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfoType {
    /// 発表
    Issue,
    /// 訂正: replaces an earlier telegram of the same event.
    Correction,
    /// 遅延: a late issue.
    Delay,
    /// 取消: withdraws the event's earlier telegrams.
    Cancellation,
}

impl InfoType {
    fn parse(s: &str) -> Result<InfoType, ParseError> {
        match s.trim() {
            "発表" => Ok(InfoType::Issue),
            "訂正" => Ok(InfoType::Correction),
            "遅延" => Ok(InfoType::Delay),
            "取消" => Ok(InfoType::Cancellation),
            other => Err(ParseError::invalid("Head/InfoType", other, "発表, 訂正, 遅延 or 取消")),
        }
    }
}

/// `<Head>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// `Head/Title`, e.g. `震源・震度情報` or `岡山県土砂災害警戒情報`.
    pub title: String,
    /// `Head/ReportDateTime` (issue time).
    pub report_datetime: DateTime<Utc>,
    /// `Head/TargetDateTime` (time the information refers to), if present and valid.
    pub target_datetime: Option<DateTime<Utc>>,
    /// `Head/EventID` (trimmed; may be empty, or several space-separated IDs).
    pub event_id: String,
    /// `Head/InfoType`.
    pub info_type: InfoType,
    /// `Head/Serial` when numeric (empty for 震度速報, weather warnings, …).
    pub serial: Option<u32>,
    /// `Head/InfoKind`, e.g. `震度速報`.
    pub info_kind: String,
    /// `Head/Headline/Text` (trimmed).
    pub headline: String,
}

/// Parses a JMA disaster-prevention XML telegram and normalises it into a [`Hazard`].
///
/// Errors only when the input is not a well-formed JMA telegram with the required header
/// (`Control/Title`, `Control/DateTime`, `Control/Status`, `Head/Title`, `Head/ReportDateTime`,
/// `Head/InfoType`). Telegrams whose body `jmaxml` cannot model still parse, as
/// `HazardKind::Other`, with [`Telegram::body_error`] set. Never panics.
pub fn parse_telegram(xml: &[u8]) -> Result<Telegram, ParseError> {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    if xml.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let text = match std::str::from_utf8(xml) {
        Ok(text) => text,
        Err(e) => return Err(utf8_error(xml, e)),
    };
    let raw = header::scan(text)?;
    let control = control_from(&raw)?;
    let head = head_from(&raw)?;
    let type_code = type_code_for(&control.title, &head.title).to_string();

    // jmaxml is a dependency we do not control; a panic inside it must not take the service down.
    let report = catch_unwind(AssertUnwindSafe(|| jmaxml::Report::from_str(text)));
    let (hazard, body_error) = match report {
        Ok(Ok(report)) => (kinds::normalise(&type_code, &control, &head, &report.body), None),
        Ok(Err(e)) => (kinds::other(&control, &head), Some(format!("jmaxml: {e}"))),
        Err(_) => (kinds::other(&control, &head), Some("jmaxml panicked on this input".to_string())),
    };
    Ok(Telegram { control, head, type_code, hazard, body_error })
}

/// Input cut inside a multi-byte character is reported as the truncation it is.
fn utf8_error(xml: &[u8], e: std::str::Utf8Error) -> ParseError {
    let offset = e.valid_up_to();
    if e.error_len().is_none() {
        if let Some(Err(scan_error)) = xml.get(..offset).and_then(|p| std::str::from_utf8(p).ok()).map(header::scan) {
            return scan_error;
        }
    }
    ParseError::NotUtf8 { offset }
}

fn required<'a>(raw: &'a RawHeader, field: Field, path: &'static str) -> Result<&'a str, ParseError> {
    match raw.get(field).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParseError::Missing(path)),
    }
}

fn optional(raw: &RawHeader, field: Field) -> String {
    raw.get(field).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn control_from(raw: &RawHeader) -> Result<Control, ParseError> {
    let title = required(raw, Field::ControlTitle, "Control/Title")?.to_string();
    let dt = required(raw, Field::ControlDateTime, "Control/DateTime")?;
    let date_time = parse_datetime(dt).ok_or_else(|| ParseError::invalid("Control/DateTime", dt, "an xs:dateTime such as 2024-01-01T00:00:00Z"))?;
    let status = Status::parse(required(raw, Field::ControlStatus, "Control/Status")?);
    let publishing_office = optional(raw, Field::PublishingOffice).split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Control { title, date_time, status, editorial_office: optional(raw, Field::EditorialOffice), publishing_office })
}

fn head_from(raw: &RawHeader) -> Result<Head, ParseError> {
    let title = required(raw, Field::HeadTitle, "Head/Title")?.to_string();
    let dt = required(raw, Field::ReportDateTime, "Head/ReportDateTime")?;
    let report_datetime =
        parse_datetime(dt).ok_or_else(|| ParseError::invalid("Head/ReportDateTime", dt, "an xs:dateTime such as 2024-01-01T09:00:00+09:00"))?;
    let info_type = InfoType::parse(required(raw, Field::InfoType, "Head/InfoType")?)?;
    Ok(Head {
        title,
        report_datetime,
        target_datetime: raw.get(Field::TargetDateTime).and_then(parse_datetime),
        event_id: optional(raw, Field::EventId),
        info_type,
        serial: optional(raw, Field::Serial).parse().ok(),
        info_kind: optional(raw, Field::InfoKind),
        headline: optional(raw, Field::HeadlineText),
    })
}

/// xs:dateTime with offset; without one, JMA local time (JST, +09:00) is assumed.
fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let jst = FixedOffset::east_opt(9 * 3600)?;
    jst.from_local_datetime(&naive).single().map(|dt| dt.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HazardKind, Intensity, Severity};

    /// A minimal 震度速報 in the shape JMA sends (drill, one prefecture).
    const SHINDO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/" xmlns:jmx="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>震度速報</Title><DateTime>2010-07-04T21:57:11Z</DateTime><Status>訓練</Status>
<EditorialOffice>大阪管区気象台</EditorialOffice><PublishingOffice>気象庁</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/"><Title>震度速報</Title>
<ReportDateTime>2010-07-05T06:57:00+09:00</ReportDateTime><TargetDateTime>2010-07-05T06:55:00+09:00</TargetDateTime>
<EventID>20100705065511</EventID><InfoType>発表</InfoType><Serial></Serial><InfoKind>震度速報</InfoKind>
<InfoKindVersion>1.0_0</InfoKindVersion><Headline><Text>　強い揺れを感じました。</Text></Headline></Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/seismology1/"><Intensity><Observation><MaxInt>5+</MaxInt>
<Pref><Name>岩手県</Name><Code>03</Code><MaxInt>5+</MaxInt>
<Area><Name>岩手県沿岸北部</Name><Code>210</Code><MaxInt>5+</MaxInt></Area></Pref>
</Observation></Intensity></Body></Report>
"#;

    #[test]
    fn parses_minimal_telegram() {
        let t = parse_telegram(SHINDO.as_bytes()).unwrap();
        assert_eq!(t.type_code, "VXSE51");
        assert_eq!(t.control.status, Status::Drill);
        assert_eq!(t.head.info_type, InfoType::Issue);
        assert_eq!(t.head.serial, None);
        assert_eq!(t.head.headline, "強い揺れを感じました。");
        assert_eq!(t.hazard.kind, HazardKind::EarthquakeIntensity);
        assert_eq!(t.hazard.severity, Severity::Intensity(Intensity::FiveUpper));
        assert_eq!(t.hazard.areas.len(), 1);
        assert_eq!(t.hazard.areas[0].code.as_str(), "03");
        assert_eq!(t.body_error, None);
        // A UTF-8 BOM is fine.
        let bom = [b"\xEF\xBB\xBF".as_slice(), SHINDO.as_bytes()].concat();
        assert!(parse_telegram(&bom).is_ok());
    }

    #[test]
    fn cancellation_has_no_areas() {
        let t = parse_telegram(SHINDO.replace("発表", "取消").as_bytes()).unwrap();
        assert_eq!(t.head.info_type, InfoType::Cancellation);
        assert!(t.hazard.areas.is_empty());
        assert_eq!(t.hazard.severity, Severity::Info);
    }

    #[test]
    fn unmodelled_body_falls_back_to_other() {
        // Header fine, body unknown to jmaxml: still a telegram, kind Other, body_error set.
        let odd = SHINDO.replace("body/seismology1/", "body/unknown1/");
        let t = parse_telegram(odd.as_bytes()).unwrap();
        assert_eq!(t.hazard.kind, HazardKind::Other { title: "震度速報".into() });
        assert!(t.body_error.is_some());
        // Unknown title: type code empty, Other.
        let t = parse_telegram(SHINDO.replace("<Title>震度速報</Title><DateTime>", "<Title>新しい情報</Title><DateTime>").as_bytes()).unwrap();
        assert_eq!(t.type_code, "");
        assert_eq!(t.hazard.kind, HazardKind::Other { title: "新しい情報".into() });
    }

    #[test]
    fn malformed_inputs_give_clear_errors() {
        let err = |input: &[u8]| parse_telegram(input).unwrap_err().to_string();
        assert_eq!(err(b""), "empty input: expected a JMA XML telegram");
        assert_eq!(err(b"  \n"), "empty input: expected a JMA XML telegram");
        assert!(err(b"\xff\xfe<Report/>").starts_with("not UTF-8"), "{}", err(b"\xff"));
        let truncated = &SHINDO.as_bytes()[..SHINDO.len() * 2 / 3];
        let e = err(truncated);
        assert!(e.starts_with("malformed XML") && e.contains("not closed"), "{e}");
        assert!(err(b"hello, world").starts_with("malformed XML"), "{}", err(b"hello, world"));
        assert!(err(b"{\"json\": true}").starts_with("malformed XML"));
        let e = err(b"<html><body>hi</body></html>");
        assert_eq!(e, "not a JMA telegram: root element is <html>, expected <Report xmlns=\"http://xml.kishou.go.jp/jmaxml1/\">");
        let atom = br#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>JMA</title></feed>"#;
        assert!(err(atom).starts_with("not a JMA telegram: root element is <feed>"));
        // Right name, wrong namespace.
        assert!(err(b"<Report><Control/></Report>").starts_with("not a JMA telegram"));
        let e = err(SHINDO.replace("<InfoType>発表</InfoType>", "").as_bytes());
        assert_eq!(e, "JMA telegram lacks required element Head/InfoType");
        let e = err(SHINDO.replace("<Title>震度速報</Title><DateTime>", "<Title> </Title><DateTime>").as_bytes());
        assert_eq!(e, "JMA telegram lacks required element Control/Title");
        let e = err(SHINDO.replace("2010-07-04T21:57:11Z", "yesterday").as_bytes());
        assert!(e.starts_with("JMA telegram has invalid Control/DateTime: \"yesterday\""), "{e}");
        let e = err(SHINDO.replace("<InfoType>発表", "<InfoType>発令").as_bytes());
        assert!(e.contains("Head/InfoType"), "{e}");
    }

    #[test]
    fn datetimes() {
        let utc = |s: &str| parse_datetime(s).map(|d| d.to_rfc3339());
        assert_eq!(utc("2010-07-04T21:57:11Z"), Some("2010-07-04T21:57:11+00:00".into()));
        assert_eq!(utc(" 2010-07-05T06:57:00+09:00 "), Some("2010-07-04T21:57:00+00:00".into()));
        assert_eq!(utc("2010-07-05T06:57:00"), Some("2010-07-04T21:57:00+00:00".into()));
        assert_eq!(utc("yesterday"), None);
        assert_eq!(utc(""), None);
    }

    #[test]
    fn status_and_info_type() {
        assert!(Status::parse("通常").is_live());
        assert_eq!(Status::parse(" 訓練 "), Status::Drill);
        assert!(!Status::parse("試験").is_live());
        assert_eq!(Status::parse("CCA"), Status::Other("CCA".into()));
        assert!(!Status::parse("CCA").is_live());
        assert_eq!(InfoType::parse("取消"), Ok(InfoType::Cancellation));
        assert_eq!(InfoType::parse("訂正"), Ok(InfoType::Correction));
        assert!(matches!(InfoType::parse("発令"), Err(ParseError::Invalid { field: "Head/InfoType", .. })));
    }
}
