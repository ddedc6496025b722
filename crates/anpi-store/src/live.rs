//! Live updates across nodes: on PostgreSQL every node publishes the incidents that received
//! answers (`NOTIFY anpi_live`) and listens for the others', so a dashboard on node A sees an
//! answer that arrived at node B at once. Notifications carry ids only, never answers, and are
//! batched by the caller (one NOTIFY per window, not per answer: NOTIFY serialises commits).
//! SQLite is one node: nothing to share.

use crate::{Engine, Result, Store, StoreError};
use sqlx::postgres::PgListener;

const CHANNEL: &str = "anpi_live";
/// PostgreSQL's payload limit is 8000 bytes.
const MAX_PAYLOAD: usize = 7_900;

/// A node's subscription to the other nodes' events.
pub struct LiveListener {
    inner: PgListener,
    node: String,
}

impl Store {
    /// Whether other nodes may share this database (and so live events need publishing).
    pub fn shares_live_events(&self) -> bool {
        self.engine == Engine::Postgres
    }

    /// Tells the other nodes that these (tenant, incident) pairs received answers.
    pub async fn publish_live(&self, node: &str, events: &[(i64, i64)]) -> Result<()> {
        if !self.shares_live_events() || events.is_empty() {
            return Ok(());
        }
        let mut payload = String::from(node);
        for (tenant, incident) in events {
            let item = format!(" {tenant}:{incident}");
            if payload.len() + item.len() > MAX_PAYLOAD {
                sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&self.pool).await?;
                payload = String::from(node);
            }
            payload.push_str(&item);
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&self.pool).await?;
        Ok(())
    }

    /// Starts listening for the other nodes' events (PostgreSQL only).
    pub async fn listen_live(&self, node: &str) -> Result<LiveListener> {
        let url = self
            .url
            .as_deref()
            .filter(|_| self.shares_live_events())
            .ok_or_else(|| StoreError::Internal("live events are shared on PostgreSQL only".into()))?;
        let mut inner = PgListener::connect(url).await?;
        inner.listen(CHANNEL).await?;
        Ok(LiveListener { inner, node: node.to_string() })
    }
}

impl LiveListener {
    /// The next batch of other nodes' (tenant, incident) pairs (this node's own are skipped).
    /// An empty batch means the connection was lost and is being re-established: events in
    /// between may be missed, so listeners should refresh. Errors only when the database
    /// cannot be reached again.
    pub async fn next(&mut self) -> Result<Vec<(i64, i64)>> {
        loop {
            let Some(n) = self.inner.try_recv().await? else { return Ok(Vec::new()) };
            let mut parts = n.payload().split(' ');
            if parts.next() != Some(self.node.as_str()) {
                return Ok(parts.filter_map(|p| p.split_once(':')).filter_map(|(t, i)| Some((t.parse().ok()?, i.parse().ok()?))).collect());
            }
        }
    }
}
