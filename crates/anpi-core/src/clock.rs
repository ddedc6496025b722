//! Time as a parameter: code asks a `Clock`, tests supply their own.

use crate::Millis;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The system's UTC clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
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

#[cfg(test)]
mod tests {
    #[test]
    fn tokyo_is_default() {
        assert_eq!(super::format_local(0, "Asia/Tokyo"), "1970-01-01 09:00");
        assert_eq!(super::format_local(0, "nonsense"), "1970-01-01 09:00");
        assert_eq!(super::format_local(0, "UTC"), "1970-01-01 00:00");
    }
}
