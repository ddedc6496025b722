//! Time as a parameter: code asks a `Clock`, tests supply their own.

use crate::Millis;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The system's UTC clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one wall-clock read: everything else takes a Clock")]
    fn now(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that tests set and move by hand (shared, so a test can advance the clock a
/// component already holds).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(at: Millis) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(at))
    }
    pub fn set(&self, at: Millis) {
        self.0.store(at, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance(&self, by: Millis) {
        self.0.fetch_add(by, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A fixed time is a clock that always reads it (tests).
impl Clock for Millis {
    fn now(&self) -> Millis {
        *self
    }
}

/// Formats a time in a zone, e.g. `2026-11-23 23:05`.
pub fn format_local(at: Millis, zone: &str) -> String {
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::Asia::Tokyo);
    match chrono::DateTime::from_timestamp_millis(at) {
        Some(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        None => String::new(),
    }
}

/// Whether `zone` is a known IANA time zone name (e.g. `Asia/Tokyo`).
pub fn valid_zone(zone: &str) -> bool {
    zone.parse::<chrono_tz::Tz>().is_ok()
}

/// Formats a time in a zone to the second, e.g. `2026-11-23 23:05:09` (logs).
pub fn format_local_seconds(at: Millis, zone: &str) -> String {
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::Asia::Tokyo);
    match chrono::DateTime::from_timestamp_millis(at) {
        Some(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => String::new(),
    }
}

/// The first moment of a day (`YYYY-MM-DD`) in a zone, as UTC milliseconds.
pub fn local_day_start(date: &str, zone: &str) -> Option<Millis> {
    use chrono::TimeZone;
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::Asia::Tokyo);
    let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    Some(tz.from_local_datetime(&day.and_hms_opt(0, 0, 0)?).earliest()?.timestamp_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_start_at_local_midnight() {
        assert_eq!(super::local_day_start("1970-01-02", "Asia/Tokyo"), Some(15 * 3_600_000));
        assert_eq!(super::local_day_start("1970-01-02", "UTC"), Some(24 * 3_600_000));
        assert_eq!(super::local_day_start("2026-13-01", "UTC"), None);
        assert_eq!(super::format_local_seconds(1_000, "UTC"), "1970-01-01 00:00:01");
        assert!(super::valid_zone("Asia/Tokyo") && super::valid_zone("UTC") && !super::valid_zone("Mars/Olympus"));
    }

    #[test]
    fn tokyo_is_default() {
        assert_eq!(super::format_local(0, "Asia/Tokyo"), "1970-01-01 09:00");
        assert_eq!(super::format_local(0, "nonsense"), "1970-01-01 09:00");
        assert_eq!(super::format_local(0, "UTC"), "1970-01-01 00:00");
    }
}
