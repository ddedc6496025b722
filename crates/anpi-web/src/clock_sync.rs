//! Is the system clock synchronised? Asked of chrony (`chronyc tracking`) or systemd-timesyncd
//! (`timedatectl show`), whichever answers; the answer is cached for a minute.

use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::Mutex;

/// What the time service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSync {
    Synchronised,
    NotSynchronised,
    /// No time service could be asked (e.g. in a container).
    Unknown,
}

/// `chronyc -n tracking`: synchronised when the leap status is Normal and the reference is set.
pub fn parse_chrony(out: &str) -> Option<ClockSync> {
    let leap = out.lines().find_map(|l| l.strip_prefix("Leap status"))?.trim_start_matches([' ', ':']).trim();
    let refid_unset = out.lines().any(|l| l.starts_with("Reference ID") && l.contains("00000000"));
    Some(if leap == "Normal" && !refid_unset { ClockSync::Synchronised } else { ClockSync::NotSynchronised })
}

/// `timedatectl show -p NTPSynchronized --value`: `yes` or `no`.
pub fn parse_timedatectl(out: &str) -> Option<ClockSync> {
    match out.trim() {
        "yes" => Some(ClockSync::Synchronised),
        "no" => Some(ClockSync::NotSynchronised),
        _ => None,
    }
}

async fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = tokio::time::timeout(Duration::from_secs(2), Command::new(cmd).args(args).kill_on_drop(true).output()).await.ok()?.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asks chrony, then timedatectl.
pub async fn probe() -> ClockSync {
    if let Some(s) = run("chronyc", &["-n", "tracking"]).await.as_deref().and_then(parse_chrony) {
        return s;
    }
    if let Some(s) = run("timedatectl", &["show", "-p", "NTPSynchronized", "--value"]).await.as_deref().and_then(parse_timedatectl) {
        return s;
    }
    ClockSync::Unknown
}

/// [`probe`] with a one-minute cache.
#[derive(Default)]
pub struct ClockCheck(Mutex<Option<(Instant, ClockSync)>>);

impl ClockCheck {
    pub async fn status(&self) -> ClockSync {
        let mut cached = self.0.lock().await;
        if let Some((at, s)) = *cached {
            if at.elapsed() < Duration::from_secs(60) {
                return s;
            }
        }
        let s = probe().await;
        *cached = Some((Instant::now(), s));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_time_services() {
        let synced = "Reference ID    : A9FEA97B (169.254.169.123)\nStratum         : 4\nLeap status     : Normal\n";
        assert_eq!(parse_chrony(synced), Some(ClockSync::Synchronised));
        let unsynced = "Reference ID    : 00000000 ()\nStratum         : 0\nLeap status     : Not synchronised\n";
        assert_eq!(parse_chrony(unsynced), Some(ClockSync::NotSynchronised));
        assert_eq!(parse_chrony("506 Cannot talk to daemon"), None);
        assert_eq!(parse_timedatectl("yes\n"), Some(ClockSync::Synchronised));
        assert_eq!(parse_timedatectl("no"), Some(ClockSync::NotSynchronised));
        assert_eq!(parse_timedatectl(""), None);
    }
}
