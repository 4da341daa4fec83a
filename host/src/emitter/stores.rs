//! The stores of one host: opened on demand in the data directory; appends
//! are announced on the `events` channel, topic `<store>:<stream>`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bus::{Bus, Channel};
use crate::messages::Envelope;
use crate::store::{
    AppendResult, Direction, Durability, ExpectedVersion, NewEvent, RecordedEvent, Store,
    StoreError,
};

/// The stores of a host.
#[derive(Debug)]
pub struct Stores {
    data_dir: PathBuf,
    durability: Durability,
    bus: Bus,
    open: Mutex<BTreeMap<String, Store>>,
}

/// The envelope announcing a recorded event on `events`: topic
/// `<store>:<stream>`, kind = the event type, payload = the recorded event.
pub fn announcement(store: &str, e: &RecordedEvent, node: &str) -> Envelope {
    Envelope::new(
        Channel::Events,
        format!("{store}:{}", e.stream_id),
        e.event_type.clone(),
        serde_json::to_value(e).unwrap_or_default(),
        node,
    )
}

impl Stores {
    /// Stores in `data_dir` (created on first open).
    pub fn new(data_dir: impl Into<PathBuf>, durability: Durability, bus: Bus) -> Arc<Stores> {
        Arc::new(Stores {
            data_dir: data_dir.into(),
            durability,
            bus,
            open: Mutex::default(),
        })
    }

    /// The store `id`, opened (and created) on first use.
    ///
    /// # Errors
    /// [`StoreError`] naming the store (bad id, locked by another process, I/O).
    pub fn get(&self, id: &str) -> Result<Store, StoreError> {
        if let Some(s) = self.open.lock().get(id) {
            return Ok(s.clone());
        }
        let store = Store::open(&self.data_dir, id, self.durability)?;
        self.open.lock().insert(id.to_owned(), store.clone());
        Ok(store)
    }

    /// The ids of the stores opened so far.
    pub fn ids(&self) -> Vec<String> {
        self.open.lock().keys().cloned().collect()
    }

    /// Appends atomically (see [`Store::append`]), then announces each event
    /// on `events`. Runs the write on the blocking pool.
    ///
    /// # Errors
    /// [`StoreError`] (expected-version conflict with the current version, …).
    pub async fn append(
        &self,
        store: &str,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let s = self.get(store)?;
        let stream_owned = stream.to_owned();
        let result = tokio::task::spawn_blocking(move || s.append(&stream_owned, expected, events))
            .await
            .map_err(|e| StoreError::Db {
                store: store.to_owned(),
                context: "append task".into(),
                message: e.to_string(),
            })??;
        self.announce(store, stream, &result).await;
        Ok(result)
    }

    async fn announce(&self, store: &str, stream: &str, r: &AppendResult) {
        let Ok(s) = self.get(store) else { return };
        let count = (r.last_event_number - r.first_event_number + 1) as usize;
        let from = r.first_event_number;
        let stream = stream.to_owned();
        let read = tokio::task::spawn_blocking(move || {
            s.read_stream(&stream, from, count, Direction::Forward)
        })
        .await;
        let Ok(Ok(events)) = read else { return };
        for e in &events {
            if let Err(err) = self
                .bus
                .broadcast(announcement(store, e, self.bus.node()))
                .await
            {
                tracing::warn!(
                    "cannot announce {}:{} #{}: {err}",
                    store,
                    e.stream_id,
                    e.event_number
                );
            }
        }
    }
}
