//! Per-family normalisation of `jmaxml` bodies into affected areas.

mod earthquake;
mod tsunami;
mod volcano;
mod weather;

use jmaxml::Body;

use crate::area::AffectedArea;
use crate::hazard::{Hazard, HazardKind};
use crate::severity::Severity;
use crate::telegram::{Control, Head, InfoType};

/// Weather warning telegrams sharing the 気象警報・注意報 body layout.
const WEATHER_CODES: &[&str] = &["VPWW50", "VPWW53", "VPWW54", "VPWW55", "VPWW56", "VPWW57", "VPWW58", "VPWW59", "VPWW60", "VPWW61"];

/// Builds the hazard for a telegram whose body jmaxml parsed.
pub(crate) fn normalise(type_code: &str, control: &Control, head: &Head, body: &Body) -> Hazard {
    let (kind, areas) = match (type_code, body) {
        ("VXSE51" | "VXSE53", Body::Seismology(b)) => (HazardKind::EarthquakeIntensity, earthquake::observed(b)),
        ("VXSE43", Body::Seismology(b)) => (HazardKind::EarthquakeEarlyWarning, earthquake::early_warning(b)),
        ("VTSE41" | "VTSE51", Body::Seismology(b)) => (HazardKind::Tsunami, tsunami::forecast(b)),
        (code, Body::Meteorology(b)) if WEATHER_CODES.contains(&code) => (HazardKind::Weather, weather::warnings(b)),
        ("VXWW50", Body::Meteorology(b)) => (HazardKind::Landslide, weather::landslide(b)),
        ("VPOA50", Body::Meteorology(b)) => (HazardKind::RecordRain, weather::record_rain(b)),
        ("VFVO50", Body::Volcanology(b)) => (HazardKind::Volcano, volcano::eruption_warning(b)),
        _ => return other(control, head),
    };
    build(kind, areas, head)
}

/// The hazard for a telegram of an unhandled type (or whose body could not be modelled).
pub(crate) fn other(control: &Control, head: &Head) -> Hazard {
    build(HazardKind::Other { title: control.title.clone() }, Vec::new(), head)
}

fn build(kind: HazardKind, areas: Vec<AffectedArea>, head: &Head) -> Hazard {
    // A cancellation withdraws the event: it affects nothing, whatever the body says.
    let areas = if head.info_type == InfoType::Cancellation { Vec::new() } else { areas };
    let severity = areas.iter().map(|a| a.severity).max().unwrap_or(Severity::Info);
    Hazard { kind, severity, areas, event_id: head.event_id.clone(), serial: head.serial, headline: head.headline.clone() }
}
