//! The dashboards' live signal. An answer on this node is an [`AnswerEvent`] on the node's
//! broadcast channel; with PostgreSQL, [`relay`] also publishes this node's events to the
//! other nodes (batched every [`WINDOW`]) and re-broadcasts theirs here, so a dashboard on
//! node A updates when the answer arrived at node B.

use anpi_store::Store;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// An answer arrived for `incident` of `tenant`; `remote` when another node received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerEvent {
    pub tenant: i64,
    pub incident: i64,
    pub remote: bool,
}

/// How long this node's events are collected before one notification goes out.
pub const WINDOW: Duration = Duration::from_millis(200);

/// Shares live events with the other nodes until `stop` turns true. `node` names this process
/// (random per start) so it can skip its own notifications.
pub async fn relay(store: Store, events: broadcast::Sender<AnswerEvent>, node: String, mut stop: watch::Receiver<bool>) {
    if !store.shares_live_events() {
        return;
    }
    let publish = publish(store.clone(), events.subscribe(), node.clone());
    let listen = async {
        loop {
            match store.listen_live(&node).await {
                Ok(mut listener) => loop {
                    match listener.next().await {
                        Ok(batch) if batch.is_empty() => tracing::info!("live events: reconnecting to PostgreSQL"),
                        Ok(batch) => {
                            for (tenant, incident) in batch {
                                let _ = events.send(AnswerEvent { tenant, incident, remote: true });
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "live events: the listener stopped");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "live events: cannot listen"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    tokio::select! {
        _ = publish => {}
        _ = listen => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Collects this node's events for a window, then publishes the distinct incidents at once.
async fn publish(store: Store, mut local: broadcast::Receiver<AnswerEvent>, node: String) {
    loop {
        let mut batch = BTreeSet::new();
        match local.recv().await {
            Ok(e) if !e.remote => {
                batch.insert((e.tenant, e.incident));
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let until = tokio::time::Instant::now() + WINDOW;
        while let Ok(next) = tokio::time::timeout_at(until, local.recv()).await {
            match next {
                Ok(e) if !e.remote => {
                    batch.insert((e.tenant, e.incident));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        let pairs: Vec<(i64, i64)> = batch.into_iter().collect();
        if let Err(e) = store.publish_live(&node, &pairs).await {
            tracing::warn!(error = %e, "live events: cannot publish");
        }
    }
}
