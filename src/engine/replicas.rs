//! Several replicas on one PostgreSQL database. Work is shared through leases (see
//! `worker`); events through `LISTEN/NOTIFY`: each commit notifies `(replica, execution, seq
//! range)`, and every other replica reads those events from the database and publishes them to
//! its own subscribers. Subscribers already fill gaps from the database and drop repeats, so an
//! event that arrives twice, late, or out of order is still seen once and in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use serde_json::{Value, json};

use crate::engine::Inner;
use crate::engine::types::{Event, ExecutionId};

/// Executions per NOTIFY payload: PostgreSQL refuses payloads of 8,000 bytes or more, and an
/// entry takes about 60.
const EXECUTIONS_PER_NOTIFY: usize = 100;

/// The NOTIFY payloads for the events of one transaction: the replica, and for each execution
/// the range of seqs committed; several payloads when many executions moved.
pub(crate) fn payloads(replica: &str, events: &[Event]) -> Vec<String> {
    let mut ranges: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for event in events {
        let range = ranges.entry(event.execution_id.to_string()).or_insert((event.seq, event.seq));
        range.0 = range.0.min(event.seq);
        range.1 = range.1.max(event.seq);
    }
    let executions: Vec<Value> = ranges.into_iter().map(|(id, (from, to))| json!([id, from, to])).collect();
    executions.chunks(EXECUTIONS_PER_NOTIFY).map(|chunk| json!({"r": replica, "e": chunk}).to_string()).collect()
}

/// Listens for other replicas' commits and republishes their events here, reconnecting after
/// any failure.
pub(crate) async fn listen(engine: Arc<Inner>, url: String) {
    let channel = engine.notify_channel();
    tracing::info!(%channel, "listening for other replicas' events");
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(&channel).await {
                    tracing::warn!(%error, "LISTEN failed; retrying");
                } else {
                    tracing::debug!(%channel, "LISTEN established");
                    loop {
                        match listener.recv().await {
                            Ok(notification) => republish(&engine, notification.payload()).await,
                            Err(error) => {
                                tracing::warn!(%error, "the event listener lost its connection; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot connect the event listener; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn republish(engine: &Arc<Inner>, payload: &str) {
    let Ok(message) = serde_json::from_str::<Value>(payload) else { return };
    if message["r"] == engine.replica_id.as_str() {
        return;
    }
    for range in message["e"].as_array().into_iter().flatten() {
        let (Some(id), Some(from), Some(to)) = (range[0].as_str(), range[1].as_i64(), range[2].as_i64()) else {
            continue;
        };
        let Ok(execution) = id.parse::<ExecutionId>() else { continue };
        match crate::engine::events::read(engine, execution, from - 1, Some(to), 10_000).await {
            Ok(events) => events.into_iter().for_each(|event| engine.publish(event)),
            Err(error) => tracing::warn!(%error, "reading another replica's events failed"),
        }
    }
}
