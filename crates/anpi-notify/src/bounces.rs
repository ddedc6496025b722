//! Bounces read from a Maildir: the MTA that receives mail for the return-path domain delivers
//! the delivery status notifications (RFC 3464) there, and this reader takes each new one, finds
//! the message it reports on by its return path (VERP, see `anpi_store::Store::return_path_tag`),
//! and records the permanent failures (`Action: failed`, status 5.x.x). Each file is moved to
//! `cur/` once read, whatever it was: a notification is read once.
//!
//! MIME by the `mailparse` crate; the fields of the `message/delivery-status` part are header
//! blocks, parsed by the same crate.

use anpi_core::Clock;
use anpi_store::{Bounce, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One permanent failure a notification reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The tag after `+` in the return path the notification was sent to.
    pub tag: String,
    pub recipient: String,
    pub status: String,
}

/// The permanent failures in one notification sent to `local+TAG@…`; empty for anything else
/// (an auto-reply, a delay notice, a message not sent to a return path of ours).
pub fn failures(raw: &[u8], local: &str) -> Vec<Failure> {
    let Ok(mail) = mailparse::parse_mail(raw) else { return vec![] };
    // The return path the MTA delivered to: Delivered-To / X-Original-To (Postfix), else To.
    let prefix = format!("{}+", local.to_ascii_lowercase());
    let tag = ["Delivered-To", "X-Original-To", "To"]
        .iter()
        .flat_map(|h| mail.headers.iter().filter(move |x| x.get_key_ref().eq_ignore_ascii_case(h)))
        .find_map(|h| {
            let v = h.get_value().to_ascii_lowercase();
            let start = v.find(&prefix)? + prefix.len();
            let rest = &v[start..];
            Some(rest[..rest.find('@')?].to_string())
        });
    let Some(tag) = tag else { return vec![] };
    let mut out = Vec::new();
    let mut parts = vec![&mail];
    while let Some(part) = parts.pop() {
        parts.extend(part.subparts.iter());
        if !part.ctype.mimetype.eq_ignore_ascii_case("message/delivery-status") {
            continue;
        }
        let Ok(body) = part.get_body_raw() else { continue };
        let text = String::from_utf8_lossy(&body).replace("\r\n", "\n");
        // The first block is about the message; each further one about a recipient.
        for block in text.split("\n\n").skip(1) {
            let Ok((fields, _)) = mailparse::parse_headers(block.as_bytes()) else { continue };
            let field = |name: &str| fields.iter().find(|f| f.get_key_ref().eq_ignore_ascii_case(name)).map(|f| f.get_value().trim().to_string());
            let (Some(action), Some(status)) = (field("Action"), field("Status")) else { continue };
            let recipient = field("Final-Recipient").or_else(|| field("Original-Recipient")).unwrap_or_default();
            let recipient = recipient.split_once(';').map(|(_, a)| a.trim().to_string()).unwrap_or(recipient);
            if action.eq_ignore_ascii_case("failed") && status.starts_with('5') && !recipient.is_empty() {
                out.push(Failure { tag: tag.clone(), recipient, status: status.split_whitespace().next().unwrap_or("").to_string() });
            }
        }
    }
    out
}

/// Reads `maildir/new` every `every` until `stop`.
pub struct BounceReader {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub maildir: PathBuf,
    /// The local part of the return path (before `+`).
    pub local: String,
}

impl BounceReader {
    pub async fn run(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.read_new().await {
                tracing::warn!(error = %e, dir = %self.maildir.display(), "reading bounces failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Reads every file in `new/` once; returns how many failures were recorded.
    pub async fn read_new(&self) -> Result<usize, String> {
        let new = self.maildir.join("new");
        let cur = self.maildir.join("cur");
        let mut entries = tokio::fs::read_dir(&new).await.map_err(|e| format!("{}: {e}", new.display()))?;
        let mut recorded = 0;
        while let Some(entry) = entry_or_none(entries.next_entry().await) {
            let path = entry.path();
            let raw = tokio::fs::read(&path).await.map_err(|e| format!("{}: {e}", path.display()))?;
            for f in failures(&raw, &self.local) {
                match self.record(&f).await {
                    Ok(true) => recorded += 1,
                    Ok(false) => tracing::warn!(tag = %f.tag, "a bounce names no message of ours: ignored"),
                    Err(e) => tracing::warn!(error = %e, "recording a bounce failed"),
                }
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let seen = if name.contains(":2,") { name } else { format!("{name}:2,S") };
            tokio::fs::rename(&path, cur.join(seen)).await.map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(recorded)
    }

    async fn record(&self, f: &Failure) -> Result<bool, anpi_store::StoreError> {
        let Some(outbox) = self.store.outbox_of_return_tag(&f.tag)? else { return Ok(false) };
        let done = self.store.record_bounce(outbox, &f.recipient, &f.status, self.clock.now()).await?;
        tracing::info!(outbox, status = %f.status, outcome = ?done, "bounce recorded");
        Ok(done != Bounce::Unknown)
    }
}

fn entry_or_none(e: std::io::Result<Option<tokio::fs::DirEntry>>) -> Option<tokio::fs::DirEntry> {
    e.ok().flatten()
}

/// Creates `new/`, `cur/` and `tmp/` under `dir` if missing.
pub fn ensure_maildir(dir: &Path) -> std::io::Result<()> {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification as Postfix writes it (bounce(8), RFC 3464).
    pub(crate) fn postfix_dsn(to_tag: &str, recipient: &str, action: &str, status: &str) -> String {
        format!(
            "Return-Path: <>\r\nDelivered-To: bounces+{to_tag}@anpi.example\r\nFrom: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\nTo: bounces+{to_tag}@anpi.example\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\r\n\
--B1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
--B1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\nArrival-Date: Sat,  5 Dec 2026 10:00:00 +0900 (JST)\r\n\r\n\
Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n\
--B1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: anpi@anpi.example\r\nSubject: x\r\n\r\n--B1--\r\n"
        )
    }

    #[test]
    fn permanent_failures_are_read_and_the_rest_ignored() {
        let dsn = postfix_dsn("42.0011223344556677", "Taro@Example.JP", "failed", "5.1.1");
        assert_eq!(
            failures(dsn.as_bytes(), "bounces"),
            vec![Failure { tag: "42.0011223344556677".into(), recipient: "Taro@Example.JP".into(), status: "5.1.1".into() }]
        );
        assert!(failures(postfix_dsn("42.aa", "a@b.jp", "delayed", "4.4.1").as_bytes(), "bounces").is_empty(), "a delay is not a failure");
        assert!(failures(postfix_dsn("42.aa", "a@b.jp", "failed", "4.2.2").as_bytes(), "bounces").is_empty(), "a transient status is not a failure");
        assert!(failures(postfix_dsn("42.aa", "a@b.jp", "failed", "5.1.1").as_bytes(), "other").is_empty(), "not our return path");
        assert!(failures(b"Subject: out of office\r\nTo: bounces+42.aa@anpi.example\r\n\r\nI am away.\r\n", "bounces").is_empty(), "an auto-reply");
        assert!(failures(b"\xff\xfe garbage", "bounces").is_empty());
    }
}
