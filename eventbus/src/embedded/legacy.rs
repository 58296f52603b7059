//! State dirs of the layout before segments: events in redb's `messages`
//! table, the newest of them in a write-ahead log (`eventbus.wal.0` and
//! `.1`). The first open by this version moves those events into the first
//! segment, then removes the old table and files; sequences stay as they
//! were, so consumer positions still point at the same events.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::format;
use super::tables::{EVENTS_DIR, LAST_SEQ, META};
use crate::error::{Error, Result};

/// Events by sequence, as the old layout kept them.
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// The old write-ahead log files.
const WAL_FILES: [&str; 2] = ["eventbus.wal.0", "eventbus.wal.1"];

/// The old layout's events: consecutive records from `first_seq`.
pub(super) struct Events {
    first_seq: u64,
    records: Vec<Vec<u8>>,
}

/// Whether `dir` holds a store of the old layout that still has to be moved.
fn has_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir.join(EVENTS_DIR))
        .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))))
}

/// Reads the old layout's events when `dir` has no segment yet: those in
/// redb, then those of the write-ahead log that follow on.
pub(super) fn read(db: &Database, dir: &Path) -> Result<Option<Events>> {
    let err = |e: &dyn std::fmt::Display| Error::store(dir, e);
    let wal_exists = WAL_FILES.iter().any(|name| dir.join(name).exists());
    if has_segments(dir) {
        return Ok(None);
    }
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let mut stored = BTreeMap::new();
    let mut last = 0;
    let had_table = match txn.open_table(MESSAGES) {
        Ok(table) => {
            for row in table.iter().map_err(|e| err(&e))? {
                let (k, v) = row.map_err(|e| err(&e))?;
                stored.insert(k.value(), v.value().to_vec());
            }
            true
        }
        Err(redb::TableError::TableDoesNotExist(_)) => false,
        Err(e) => return Err(err(&e)),
    };
    if let Some((seq, _)) = stored.last_key_value() {
        last = *seq;
    }
    if let Ok(meta) = txn.open_table(META)
        && let Some(recorded) = meta.get(LAST_SEQ).map_err(|e| err(&e))?
    {
        last = last.max(recorded.value());
    }
    if !had_table && !wal_exists {
        return Ok(None);
    }
    // The log's events past redb's last, as long as sequences follow on.
    let mut logged = BTreeMap::new();
    for name in WAL_FILES {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            for (seq, record) in format::decode(&bytes) {
                logged.insert(seq, record.to_vec());
            }
        }
    }
    for (seq, record) in logged.range(last + 1..) {
        if *seq != last + 1 {
            break;
        }
        stored.insert(*seq, record.clone());
        last = *seq;
    }
    // Retention may have left gaps at the front only; keep what follows the
    // last gap so the segment is consecutive.
    let mut records: Vec<(u64, Vec<u8>)> = stored.into_iter().collect();
    if let Some(cut) = records.windows(2).rposition(|w| w[1].0 != w[0].0 + 1) {
        records.drain(..=cut);
    }
    let first_seq = records.first().map_or(last + 1, |(seq, _)| *seq);
    tracing::info!(
        events = records.len(),
        "embedded bus: moving events of the previous store layout into the event log"
    );
    Ok(Some(Events {
        first_seq,
        records: records.into_iter().map(|(_, r)| r).collect(),
    }))
}

/// Writes the old events as the first segment: to a temporary file, synced,
/// then renamed into place, so a crash leaves either no segment (and the old
/// layout, read again next time) or the whole one.
pub(super) fn write_segment(events_dir: &Path, events: Events) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::store(events_dir, e);
    let mut bytes = Vec::new();
    for (i, record) in events.records.iter().enumerate() {
        format::encode_record(&mut bytes, events.first_seq + i as u64, record);
    }
    let path = format::segment_path(events_dir, events.first_seq);
    let temporary = path.with_extension("log.partial");
    std::fs::create_dir_all(events_dir)
        .and_then(|()| std::fs::write(&temporary, &bytes))
        .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
        .and_then(|()| std::fs::rename(&temporary, &path))
        .and_then(|()| std::fs::File::open(events_dir)?.sync_all())
        .map_err(|e| err(&e))
}

/// Removes the old layout's table and files once the segment holds their
/// events (again after a crash: it does nothing when they are gone).
pub(super) fn finish(db: &Database, dir: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::store(dir, e);
    if !has_segments(dir) {
        return Ok(());
    }
    let txn = db.begin_write().map_err(|e| err(&e))?;
    txn.delete_table(MESSAGES).map_err(|e| err(&e))?;
    txn.commit().map_err(|e| err(&e))?;
    for name in WAL_FILES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt as _;

    use super::*;
    use crate::embedded::EmbeddedBus;
    use crate::embedded::log::StoredMessage;
    use crate::{ConsumerSpec, EmbeddedConfig, Event, EventBus};

    fn record(n: u64) -> Vec<u8> {
        let event = Event::new("s", "e", "webhook", &serde_json::json!({ "n": n }));
        StoredMessage::encode(
            super::super::tables::now_ms(),
            &format!("id-{n}"),
            "default.s.e",
            &event.to_json(),
        )
    }

    /// A state dir as the old layout left it after a crash: events 1-3 in
    /// redb, 4-5 only in the write-ahead log (with a torn record after them),
    /// and a consumer that had acked up to 2.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_layout_is_moved_into_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(super::super::tables::FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut messages = txn.open_table(MESSAGES).unwrap();
                for n in 1..=3 {
                    messages.insert(n, record(n).as_slice()).unwrap();
                }
                txn.open_table(META).unwrap().insert(LAST_SEQ, 3).unwrap();
                txn.open_table(super::super::tables::CONSUMER_POS)
                    .unwrap()
                    .insert("c", (2, 3))
                    .unwrap();
            }
            txn.commit().unwrap();
            let mut wal = Vec::new();
            format::encode_record(&mut wal, 3, &record(3));
            format::encode_record(&mut wal, 4, &record(4));
            format::encode_record(&mut wal, 5, &record(5));
            let mut torn = Vec::new();
            format::encode_record(&mut torn, 6, &record(6));
            wal.extend_from_slice(&torn[..torn.len() / 2]);
            std::fs::write(dir.path().join(WAL_FILES[0]), wal).unwrap();
        }

        let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
        let mut sub = bus
            .subscribe(&ConsumerSpec::new("c").ack_wait(Duration::from_secs(60)))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push((d.sequence, d.event.data.to_value().unwrap()["n"].as_u64().unwrap()));
            d.ack().await.unwrap();
        }
        assert_eq!(
            seen,
            vec![(3, 3), (4, 4), (5, 5)],
            "the consumer resumes after its old position and gets the logged events"
        );
        let ack = bus
            .publish(&Event::new("s", "e", "webhook", &serde_json::json!({})))
            .await
            .unwrap();
        assert_eq!(ack.sequence, 6, "sequences go on from the old ones");
        drop(sub);
        drop(bus);
        for name in WAL_FILES {
            assert!(!dir.path().join(name).exists(), "{name} removed");
        }
        // Retries while the subscription's task lets go of the store.
        let db = super::super::store::open_database(dir.path()).unwrap();
        assert!(matches!(
            db.begin_read().unwrap().open_table(MESSAGES),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
    }
}
