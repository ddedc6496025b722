//! parse_telegram on arbitrary bytes: must return Ok or Err, never panic, overflow or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = anpi_jma::parse_telegram(data) {
        // Invariants the rest of anpi relies on.
        let max = t
            .hazard
            .areas
            .iter()
            .map(|a| a.severity)
            .max()
            .unwrap_or(anpi_jma::Severity::Info);
        assert_eq!(t.hazard.severity, max);
        assert!(t.hazard.areas.windows(2).all(|w| w[0].code < w[1].code));
    }
});
