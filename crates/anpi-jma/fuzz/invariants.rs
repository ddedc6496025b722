//! Invariants of a normalised telegram, asserted by the fuzz harnesses: the cargo-fuzz target
//! (`fuzz_targets/parse_telegram.rs`), the stable fuzz loop (`examples/fuzz_stable.rs`) and the
//! sample tests (`tests/samples.rs`), which include this file with `#[path]`.
//!
//! Harness code: it panics (asserts) on a violation, which the fuzzers report as a crash.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use anpi_jma::{AreaCode, HazardKind, InfoType, Severity, Telegram};

/// What `parse_telegram` puts in `body_error` when it caught a panic inside jmaxml.
const JMAXML_PANIC: &str = "jmaxml panicked on this input";

thread_local! {
    /// True while `parse_telegram` runs: panics there are recorded, not printed.
    static IN_PARSE: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic recorded inside `parse_telegram` on this thread.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}
/// Panics inside jmaxml that `parse_telegram` caught and reported as designed.
pub static CAUGHT_JMAXML_PANICS: AtomicU64 = AtomicU64::new(0);

/// Installs (once) a panic hook that records panics raised while `parse_telegram` runs instead
/// of printing them (or, under libFuzzer, aborting on them): `parse_telegram` catches panics
/// inside jmaxml by design, and [`parse_and_check`] decides whether a recorded panic is a bug.
/// Panics elsewhere go to the previous hook (under libFuzzer: print and abort).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PARSE.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
            } else {
                previous(info);
            }
        }));
    });
}

fn take_last_panic() -> String {
    LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// `parse_telegram` on arbitrary bytes, then [`check`] when it returned a telegram; true if it
/// did. Errors are fine. A bug panics here: `parse_telegram` unwinding, a panic that it caught
/// but did not report as a jmaxml panic, or a broken invariant.
pub fn parse_and_check(data: &[u8]) -> bool {
    install_panic_hook();
    take_last_panic();
    IN_PARSE.with(|f| f.set(true));
    let result = std::panic::catch_unwind(|| anpi_jma::parse_telegram(data));
    IN_PARSE.with(|f| f.set(false));
    let recorded = take_last_panic();
    match result {
        Err(_) => panic!("parse_telegram panicked: {recorded}"),
        Ok(Ok(t)) => {
            if !recorded.is_empty() {
                assert_eq!(t.body_error.as_deref(), Some(JMAXML_PANIC), "a panic inside parse_telegram was caught but not reported: {recorded}");
                if CAUGHT_JMAXML_PANICS.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!(
                        "note: jmaxml panicked; parse_telegram caught it as designed \
                         (counted, not a failure): {recorded}"
                    );
                }
            }
            check(&t);
            true
        }
        Ok(Err(e)) => {
            assert!(recorded.is_empty(), "parse_telegram caught a panic but returned an error ({e}): {recorded}");
            let _ = e.to_string(); // errors render
            false
        }
    }
}

/// True if `s` belongs to the severity scale of `kind`.
fn same_scale(kind: &HazardKind, s: &Severity) -> bool {
    matches!(
        (kind, s),
        (HazardKind::EarthquakeIntensity | HazardKind::EarthquakeEarlyWarning, Severity::Intensity(_))
            | (HazardKind::Tsunami, Severity::Tsunami(_))
            | (HazardKind::Weather, Severity::Weather(_))
            | (HazardKind::Landslide, Severity::Landslide)
            | (HazardKind::RecordRain, Severity::RecordRain)
            | (HazardKind::Volcano, Severity::Volcano(_))
    )
}

/// Asserts what the rest of anpi relies on in a parsed telegram's normalised hazard.
pub fn check(t: &Telegram) {
    let h = &t.hazard;

    // Overall severity is the highest area severity (Info without areas); each area is ≤ it.
    let max = h.areas.iter().map(|a| a.severity).max().unwrap_or(Severity::Info);
    assert_eq!(h.severity, max, "hazard severity is not the max over its areas");
    for a in &h.areas {
        assert!(a.severity <= h.severity, "area {} above the hazard severity", a.code);
    }
    // Areas: one entry per code, sorted by code.
    assert!(h.areas.windows(2).all(|w| w[0].code < w[1].code), "areas not sorted/unique: {:?}", h.areas.iter().map(|a| a.code.as_str()).collect::<Vec<_>>());

    for a in &h.areas {
        // Codes are valid JIS codes (2 or 5 digits, prefecture 01..=47, no PP999 placeholder).
        assert_eq!(AreaCode::parse(a.code.as_str()).as_ref(), Some(&a.code), "invalid area code {:?}", a.code.as_str());
        // Area severities are on the hazard kind's own scale (never Info).
        assert!(same_scale(&h.kind, &a.severity), "{:?} area {} has severity {:?}", h.kind, a.code, a.severity);
        // Severity's string form (used for stored thresholds) round-trips.
        let text = a.severity.to_string();
        assert_eq!(text.parse::<Severity>().ok(), Some(a.severity), "{text}");
        // The rule helpers agree with the list: a listed municipality gets its own severity, a
        // listed prefecture at least its own, and every area meets its own severity.
        let at = h.severity_at(&a.code);
        if a.code.is_prefecture() {
            assert!(at.is_some_and(|s| s >= a.severity), "severity_at({})", a.code);
        } else {
            assert_eq!(at, Some(a.severity), "severity_at({})", a.code);
        }
        assert!(h.affects(&a.code, &a.severity), "affects({}, {})", a.code, a.severity);
        // The prefecture of a listed area is always affected at some severity.
        assert!(h.severity_at(&a.code.prefecture_code()).is_some(), "prefecture of {}", a.code);
    }

    // A cancellation, an unmodelled body and an unhandled type affect nothing.
    if t.head.info_type == InfoType::Cancellation {
        assert!(h.areas.is_empty(), "cancellation with areas");
    }
    if t.body_error.is_some() {
        assert!(matches!(h.kind, HazardKind::Other { .. }), "body_error but kind {:?}", h.kind);
    }
    if let HazardKind::Other { title } = &h.kind {
        assert_eq!(title, &t.control.title);
        assert!(h.areas.is_empty(), "Other with areas");
    }

    // Header fields are carried over verbatim.
    assert_eq!(h.event_id, t.head.event_id);
    assert_eq!(h.serial, t.head.serial);
    assert_eq!(h.headline, t.head.headline);
    assert_eq!(t.type_code, anpi_jma::type_code_for(&t.control.title, &t.head.title));
    assert!(!t.control.title.trim().is_empty() && !t.head.title.trim().is_empty());

    // The telegram survives a JSON round trip (Telegram is Serialize + Deserialize).
    let json = serde_json::to_string(t).expect("telegram serialises to JSON");
    let back: Telegram = serde_json::from_str(&json).unwrap_or_else(|e| panic!("telegram JSON does not parse back: {e}\n{json}"));
    assert_eq!(&back, t, "JSON round trip changed the telegram");
}
