//! Group commit for answers (issue #10): during a burst every answer waits for a transaction
//! that writes all the answers waiting with it, in one statement, and is confirmed only after
//! that transaction commits — so no accepted answer is lost, and a burst costs a commit per
//! batch instead of one per answer.

use crate::{Engine, Result, Rows, StoreError};
use anpi_core::Millis;
use sqlx::AnyPool;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// At most this many answers per transaction.
const BATCH: usize = 512;

/// An answer waiting for its batch; `done` gets its incident, or `None` when the recipient is
/// not the tenant's or the incident has closed.
pub(crate) struct Pending {
    pub tenant: i64,
    pub recipient: i64,
    pub answers: String,
    pub at: Millis,
    pub done: oneshot::Sender<Result<Option<i64>, String>>,
}

/// Starts the writer; it ends when every sender is gone.
pub(crate) fn spawn(pool: AnyPool, engine: Engine) -> mpsc::Sender<Pending> {
    let (tx, rx) = mpsc::channel(4 * BATCH);
    tokio::spawn(run(pool, engine, rx));
    tx
}

async fn run(pool: AnyPool, engine: Engine, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match write(&pool, engine, &batch).await {
            Ok(saved) => {
                for p in batch.drain(..) {
                    let _ = p.done.send(Ok(saved.get(&p.recipient).copied()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, answers = batch.len(), "writing a batch of answers failed");
                for p in batch.drain(..) {
                    let _ = p.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Writes a batch in one transaction; returns recipient → incident for the rows written. When
/// one recipient answered twice in the batch, the later answer stands.
async fn write(pool: &AnyPool, engine: Engine, batch: &[Pending]) -> Result<HashMap<i64, i64>> {
    let mut last: HashMap<i64, &Pending> = HashMap::with_capacity(batch.len());
    for p in batch {
        last.insert(p.recipient, p);
    }
    let rows: Vec<serde_json::Value> =
        last.values().map(|p| serde_json::json!({ "rid": p.recipient, "tid": p.tenant, "ans": p.answers, "at": p.at })).collect();
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Internal(e.to_string()))?;
    let values = match engine {
        Engine::Postgres => "SELECT * FROM json_to_recordset($1::json) AS x(rid BIGINT, tid BIGINT, ans TEXT, at BIGINT)",
        Engine::Sqlite => {
            "SELECT json_extract(value, '$.rid') AS rid, json_extract(value, '$.tid') AS tid, json_extract(value, '$.ans') AS ans, \
             json_extract(value, '$.at') AS at FROM json_each($1)"
        }
    };
    // Every row names its own tenant (from the caller's `TenantScope`); the transaction spans
    // tenants, so it sees all rows and the statement filters `tenant_id` per answer.
    let sql = format!(
        "UPDATE recipients SET answers = v.ans, answered_at = v.at FROM ({values}) AS v \
         WHERE recipients.id = v.rid AND recipients.tenant_id = v.tid \
         AND recipients.incident_id IN (SELECT i.id FROM incidents i WHERE i.tenant_id = v.tid AND i.closed_at IS NULL) \
         RETURNING id, incident_id"
    );
    let mut tx = crate::begin(pool, engine, Rows::All).await?;
    let saved: Vec<(i64, i64)> = sqlx::query_as(&sql).bind(rows).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(saved.into_iter().collect())
}
