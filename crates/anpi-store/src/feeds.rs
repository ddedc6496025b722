//! Polling state of the JMA Atom feeds and the telegram URLs already fetched. Public data, global
//! (not tenant-owned).

use crate::{Result, Store};
use anpi_core::Millis;

/// Conditional-GET validators and health of one polled feed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FeedStatus {
    pub url: String,
    /// `ETag` of the last successful response; empty when none.
    pub etag: String,
    /// `Last-Modified` of the last successful response; empty when none.
    pub last_modified: String,
    pub last_polled_at: Option<Millis>,
    pub last_ok_at: Option<Millis>,
    /// Why the last poll failed; empty after a success.
    pub last_error: String,
    /// Consecutive failed polls.
    pub failures: i64,
    pub next_poll_at: Millis,
    /// New entries fetched from this feed, in total.
    pub entries_seen: i64,
}

const COLUMNS: &str = "url, etag, last_modified, last_polled_at, last_ok_at, last_error, failures, next_poll_at, entries_seen";

impl Store {
    /// The state of one feed; `None` before its first poll.
    pub async fn feed_state(&self, url: &str) -> Result<Option<FeedStatus>> {
        let sql = format!("SELECT {COLUMNS} FROM feeds WHERE url = $1");
        Ok(sqlx::query_as(&sql).bind(url).fetch_optional(&self.pool).await?)
    }

    /// Every feed polled so far, by URL, for status pages.
    pub async fn feeds(&self) -> Result<Vec<FeedStatus>> {
        let sql = format!("SELECT {COLUMNS} FROM feeds ORDER BY url");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    /// Records a successful poll: new validators, failures reset, `new_entries` added.
    pub async fn record_feed_success(&self, url: &str, etag: &str, last_modified: &str, now: Millis, next_poll_at: Millis, new_entries: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO feeds (url, etag, last_modified, last_polled_at, last_ok_at, last_error, failures, next_poll_at, entries_seen) \
             VALUES ($1, $2, $3, $4, $4, '', 0, $5, $6) \
             ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified, \
               last_polled_at = excluded.last_polled_at, last_ok_at = excluded.last_ok_at, last_error = '', failures = 0, \
               next_poll_at = excluded.next_poll_at, entries_seen = feeds.entries_seen + excluded.entries_seen",
        )
        .bind(url)
        .bind(etag)
        .bind(last_modified)
        .bind(now)
        .bind(next_poll_at)
        .bind(new_entries)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed poll: one more failure, the reason, the next attempt, and the
    /// `new_entries` handled before it failed. Validators are kept.
    pub async fn record_feed_failure(&self, url: &str, error: &str, now: Millis, next_poll_at: Millis, new_entries: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO feeds (url, last_polled_at, last_error, failures, next_poll_at, entries_seen) VALUES ($1, $2, $3, 1, $4, $5) \
             ON CONFLICT (url) DO UPDATE SET last_polled_at = excluded.last_polled_at, last_error = excluded.last_error, \
               failures = feeds.failures + 1, next_poll_at = excluded.next_poll_at, entries_seen = feeds.entries_seen + excluded.entries_seen",
        )
        .bind(url)
        .bind(now)
        .bind(error)
        .bind(next_poll_at)
        .bind(new_entries)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the telegram at `url` was already fetched.
    pub async fn feed_entry_known(&self, url: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM feed_entries WHERE url = $1").bind(url).fetch_optional(&self.pool).await?;
        Ok(found.is_some())
    }

    /// Notes the telegram at `url` as fetched (with its telegram when it was stored). Idempotent.
    pub async fn mark_feed_entry(&self, url: &str, telegram_id: Option<i64>, now: Millis) -> Result<()> {
        sqlx::query("INSERT INTO feed_entries (url, telegram_id, fetched_at) VALUES ($1, $2, $3) ON CONFLICT (url) DO NOTHING")
            .bind(url)
            .bind(telegram_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
