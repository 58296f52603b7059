//! The write-ahead log of the embedded bus and its writer thread.
//!
//! Publishing is the hot path, so it touches neither redb nor any B-tree: the
//! log writer takes every publish queued while its previous sync ran, gives
//! each new event the next sequence (or answers a duplicate id from the dedup
//! window), writes the batch's records with one `write` and one `fdatasync`,
//! puts the events in memory ([`Bounds::recent`], where consumers read them)
//! and only then answers the publishers. Moving events into redb is the store
//! writer's job ([`super::store`]), in the background: a checkpoint.
//!
//! The log is two files used in turn. When the active one has grown past
//! [`ROTATE_BYTES`] or [`ROTATE_EVERY`] has passed (and the other file's events
//! are all in redb), writing switches to the other file, from its start, and a
//! checkpoint of everything logged so far is asked for. Files are never
//! truncated: they grow by zero-filled chunks and are written over, so a sync
//! rarely has a file length (an inode write) to persist. Whatever lies past a
//! file's current records is zeros, a torn record, or records older than a
//! checkpoint, whose sequences redb already has; replay skips those.
//!
//! The log is ours rather than a crate's because it must share redb's
//! sequence numbers and the dedup window, and hand events to readers before
//! they reach redb; it is plain checksummed records.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, ReadableTable as _};
use tokio::sync::oneshot;

use super::store::{Bounds, LAST_SEQ, MESSAGES, META, Op, StoredMessage, now_ms, write};
use crate::PublishAck;
use crate::config::EmbeddedConfig;
use crate::error::{Error, Result};

/// The two log files inside the state dir.
const FILE_NAMES: [&str; 2] = ["eventbus.wal.0", "eventbus.wal.1"];
/// Writing moves to the other file once the active one is this long...
const ROTATE_BYTES: u64 = 16 << 20;
/// ... or has taken events for this long. Short on purpose: a checkpoint's
/// syncs slow the log's own for a moment (one disk), and many small moments
/// keep publish latency low where a few long ones would not.
const ROTATE_EVERY: Duration = Duration::from_millis(250);
/// A writer idle this long asks for a checkpoint of what it logged.
const IDLE_CHECKPOINT: Duration = Duration::from_millis(200);
/// How long the writer polls for work before it sleeps.
const SPIN: Duration = Duration::from_micros(100);
/// Length and CRC-32 of a record, before its body.
const HEADER: usize = 8;
/// Log files grow by this much at a time.
const GROWTH: u64 = 1 << 20;

/// A publish handed to the log writer.
pub(super) struct Append {
    pub id: String,
    pub subject: String,
    pub payload: Vec<u8>,
    pub reply: oneshot::Sender<Result<PublishAck>>,
}

struct LogFile {
    file: File,
    /// Bytes of records written since the file was last started over.
    len: u64,
    /// Allocated (written or zero-filled) length.
    size: u64,
    /// Highest sequence written since the file was last started over.
    max_seq: u64,
}

/// The log writer: owns the sequence counter, the dedup window and the log.
pub(super) struct LogWriter {
    dir: PathBuf,
    config: EmbeddedConfig,
    bounds: Arc<Bounds>,
    /// Sequence up to which redb holds every event (set by the store writer).
    durable: Arc<AtomicU64>,
    store: Sender<Op>,
    last_seq: u64,
    /// Highest sequence a checkpoint was asked for.
    requested: u64,
    dedup: HashMap<String, u64>,
    dedup_order: VecDeque<(u64, String)>,
    files: [LogFile; 2],
    active: usize,
    active_since: Instant,
    buf: Vec<u8>,
}

impl LogWriter {
    /// `last_seq` and the dedup window come from redb after [`replay`].
    pub(super) fn new(
        config: EmbeddedConfig,
        bounds: Arc<Bounds>,
        durable: Arc<AtomicU64>,
        store: Sender<Op>,
        last_seq: u64,
        dedup: (HashMap<String, u64>, VecDeque<(u64, String)>),
    ) -> Result<Self> {
        let dir = config.dir.clone();
        let open = |name: &str| -> Result<LogFile> {
            let file = open_file(&dir.join(name)).map_err(|e| Error::store(&dir, e))?;
            let size = file.metadata().map_err(|e| Error::store(&dir, e))?.len();
            Ok(LogFile {
                file,
                len: 0,
                size,
                max_seq: 0,
            })
        };
        Ok(LogWriter {
            files: [open(FILE_NAMES[0])?, open(FILE_NAMES[1])?],
            dir,
            config,
            bounds,
            durable,
            store,
            last_seq,
            requested: last_seq,
            dedup: dedup.0,
            dedup_order: dedup.1,
            active: 0,
            active_since: Instant::now(),
            buf: Vec::new(),
        })
    }

    /// Runs until every sender is gone, then asks for a last checkpoint.
    pub(super) fn run(mut self, rx: Receiver<Append>) {
        loop {
            // Spin briefly before sleeping: waking a sleeping thread costs
            // more than a short wait, most of all on virtual machines.
            let until = Instant::now() + SPIN;
            let spun = loop {
                match rx.try_recv() {
                    Ok(op) => break Some(op),
                    Err(_) if Instant::now() < until => std::thread::yield_now(),
                    Err(_) => break None,
                }
            };
            let first = match spun.map_or_else(|| rx.recv_timeout(IDLE_CHECKPOINT), Ok) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.request_checkpoint();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.request_checkpoint();
                    return;
                }
            };
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.rotate_if_due();
            self.log_batch(batch);
        }
    }

    fn request_checkpoint(&mut self) {
        if self.last_seq > self.requested && self.store.send(Op::Checkpoint).is_ok() {
            self.requested = self.last_seq;
        }
    }

    /// Starts over files whose events are all in redb, and moves to the other
    /// file when the active one is due for it.
    fn rotate_if_due(&mut self) {
        let durable = self.durable.load(Ordering::Acquire);
        for f in &mut self.files {
            if f.len > 0 && f.max_seq <= durable {
                f.len = 0;
                f.max_seq = 0;
            }
        }
        let active = &self.files[self.active];
        let due = active.len >= ROTATE_BYTES || (active.len > 0 && self.active_since.elapsed() >= ROTATE_EVERY);
        // While the other file still holds events redb lacks, keep writing
        // this one: it grows until the checkpoint catches up.
        if due && self.files[1 - self.active].len == 0 {
            self.active = 1 - self.active;
            self.active_since = Instant::now();
            self.request_checkpoint();
        }
    }

    /// Makes the batch's events durable in the log, then visible in memory.
    fn log_batch(&mut self, batch: Vec<Append>) {
        let now = now_ms();
        self.expire_dedup(now);
        let saved_last = self.last_seq;
        let mut new_ids = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        self.buf.clear();
        for Append {
            id,
            subject,
            payload,
            reply,
        } in batch
        {
            if let Some(&seq) = self.dedup.get(&id) {
                let ack = PublishAck {
                    sequence: seq,
                    duplicate: true,
                };
                replies.push((reply, ack));
                continue;
            }
            self.last_seq += 1;
            let seq = self.last_seq;
            encode_record(&mut self.buf, seq, &StoredMessage::encode(now, &id, &subject, &payload));
            self.dedup.insert(id.clone(), seq);
            self.dedup_order.push_back((now, id.clone()));
            new_ids.push(id.clone());
            replies.push((
                reply,
                PublishAck {
                    sequence: seq,
                    duplicate: false,
                },
            ));
            events.push((
                seq,
                Arc::new(StoredMessage {
                    time_ms: now,
                    id,
                    subject,
                    payload: Bytes::from(payload),
                }),
            ));
        }
        match self.write_batch() {
            Ok(()) => {
                if !events.is_empty() {
                    write(&self.bounds.recent).extend(events);
                    self.bounds.last_seq.send_replace(self.last_seq);
                }
                for (reply, ack) in replies {
                    // A publisher that went away no longer needs its answer.
                    let _ = reply.send(Ok(ack));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded bus: write-ahead log write failed");
                self.last_seq = saved_last;
                for id in new_ids {
                    self.dedup.remove(&id);
                }
                while self
                    .dedup_order
                    .back()
                    .is_some_and(|(_, id)| !self.dedup.contains_key(id))
                {
                    self.dedup_order.pop_back();
                }
                for (reply, _) in replies {
                    let _ = reply.send(Err(Error::store(&self.dir, &e)));
                }
            }
        }
    }

    /// Writes the batch's records after the active file's current ones and
    /// syncs them, growing the file by a zero-filled chunk when needed.
    fn write_batch(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let f = &mut self.files[self.active];
        let end = f.len + self.buf.len() as u64;
        let written = f.file.write_all_at(&self.buf, f.len).and_then(|()| {
            if end > f.size {
                let size = end.next_multiple_of(GROWTH);
                let zeros = vec![0; usize::try_from(size - end).unwrap_or(0)];
                f.file.write_all_at(&zeros, end)?;
                f.size = size;
            }
            f.file.sync_data()
        });
        match written {
            Ok(()) => {
                f.len = end;
                f.max_seq = self.last_seq;
                Ok(())
            }
            Err(e) => {
                // Not acknowledged: make sure a replay cannot find it. If even
                // that fails, stop using this file until a checkpoint covers
                // everything before it.
                let zeros = vec![0; self.buf.len()];
                if f.file
                    .write_all_at(&zeros, f.len)
                    .and_then(|()| f.file.sync_data())
                    .is_err()
                {
                    tracing::error!("embedded bus: could not erase a failed batch from the write-ahead log");
                    f.len = f.len.max(ROTATE_BYTES);
                    f.max_seq = u64::MAX;
                }
                Err(e)
            }
        }
    }

    fn expire_dedup(&mut self, now: u64) {
        let horizon = now.saturating_sub(self.config.dedup_window.as_millis() as u64);
        while let Some((time, _)) = self.dedup_order.front() {
            if *time >= horizon {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
    }
}

fn open_file(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// `len u32 LE | crc32 u32 LE | seq u64 LE | record`, where `len` and the
/// CRC cover `seq | record`.
pub(super) fn encode_record(out: &mut Vec<u8>, seq: u64, record: &[u8]) {
    let seq = seq.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq);
    crc.update(record);
    out.extend_from_slice(&((seq.len() + record.len()) as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq);
    out.extend_from_slice(record);
}

/// Splits a log file into `(seq, record)` pairs, stopping at the first torn
/// or corrupt record (or the zeros past the last one).
pub(super) fn decode(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= HEADER {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        let Some(body) = rest.get(HEADER..HEADER + len) else {
            break;
        };
        if len < 8 || crc32fast::hash(body) != crc {
            break;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
        out.push((seq, &body[8..]));
        rest = &rest[HEADER + len..];
    }
    out
}

/// Puts the logged events past redb's last durable sequence back into redb
/// (both files, in sequence order, as long as sequences follow on) and
/// commits durably. Runs before the writers start.
pub(super) fn replay(db: &Database, dir: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::store(dir, e);
    let mut contents = Vec::new();
    for name in FILE_NAMES {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| err(&e))?;
        contents.push(bytes);
    }
    let records: BTreeMap<u64, &[u8]> = contents.iter().flat_map(|bytes| decode(bytes)).collect();
    if records.is_empty() {
        return Ok(());
    }
    let txn = db.begin_write().map_err(|e| err(&e))?;
    let mut restored = 0usize;
    {
        let mut messages = txn.open_table(MESSAGES).map_err(|e| err(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
        let stored_last = messages.last().map_err(|e| err(&e))?.map_or(0, |(k, _)| k.value());
        let recorded_last = meta.get(LAST_SEQ).map_err(|e| err(&e))?.map_or(0, |v| v.value());
        let mut last = stored_last.max(recorded_last);
        for (seq, record) in records.range(last + 1..) {
            if *seq != last + 1 {
                tracing::warn!(
                    expected = last + 1,
                    found = seq,
                    "embedded bus: gap in the write-ahead log; replay stops there"
                );
                break;
            }
            messages.insert(*seq, *record).map_err(|e| err(&e))?;
            last = *seq;
            restored += 1;
        }
        meta.insert(LAST_SEQ, last).map_err(|e| err(&e))?;
    }
    txn.commit().map_err(|e| err(&e))?;
    if restored > 0 {
        tracing::info!(
            events = restored,
            "embedded bus: events restored from the write-ahead log"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, record) in records {
            encode_record(&mut out, *seq, record);
        }
        out
    }

    #[test]
    fn round_trip() {
        let bytes = log(&[(1, b"one"), (2, b""), (3, b"three")]);
        assert_eq!(
            decode(&bytes),
            vec![(1, &b"one"[..]), (2, &b""[..]), (3, &b"three"[..])]
        );
    }

    #[test]
    fn torn_tail_is_dropped() {
        let mut bytes = log(&[(1, b"one"), (2, b"two")]);
        let whole = bytes.len();
        encode_record(&mut bytes, 3, b"three");
        for cut in whole..bytes.len() {
            assert_eq!(decode(&bytes[..cut]).len(), 2, "cut at {cut}");
        }
    }

    #[test]
    fn stops_at_a_corrupt_record() {
        let mut bytes = log(&[(1, b"one"), (2, b"two"), (3, b"three")]);
        // Flip a bit in the second record's body.
        let second = HEADER + 8 + 3 + HEADER + 8;
        bytes[second] ^= 1;
        assert_eq!(decode(&bytes), vec![(1, &b"one"[..])]);
    }

    fn message(n: u64) -> Vec<u8> {
        StoredMessage::encode(
            now_ms(),
            &format!("id-{n}"),
            "argon.s.e",
            format!("{{\"n\":{n}}}").as_bytes(),
        )
    }

    /// Replays the log in `dir` into its store; returns the ids in order.
    fn replayed(dir: &Path) -> Vec<(u64, String)> {
        use redb::{ReadableDatabase as _, ReadableTable as _};
        let db = super::super::store::open_database(dir).unwrap();
        super::super::store::create_tables(&db, dir).unwrap();
        replay(&db, dir).unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(MESSAGES).unwrap();
        table
            .iter()
            .unwrap()
            .map(|row| {
                let (k, v) = row.unwrap();
                (k.value(), StoredMessage::decode(v.value()).unwrap().id)
            })
            .collect()
    }

    #[test]
    fn replay_restores_logged_events_and_skips_stale_and_torn_ones() {
        let dir = tempfile::tempdir().unwrap();
        // As a crash leaves them: file 0 has events 1-2 then a torn record,
        // file 1 has event 3 (written after a switch).
        let mut zero = log(&[(1, &message(1)), (2, &message(2))]);
        let mut torn = Vec::new();
        encode_record(&mut torn, 4, &message(4));
        zero.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(dir.path().join(FILE_NAMES[0]), &zero).unwrap();
        std::fs::write(dir.path().join(FILE_NAMES[1]), log(&[(3, &message(3))])).unwrap();
        let ids: Vec<_> = replayed(dir.path()).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, ["id-1", "id-2", "id-3"]);

        // File 0 started over: new events 4-5 at its start, then older
        // records (already in the store) and zeros; file 1 is stale.
        let mut zero = log(&[(4, &message(4)), (5, &message(5))]);
        zero.extend(log(&[(2, &message(102))]));
        zero.extend_from_slice(&[0; 64]);
        std::fs::write(dir.path().join(FILE_NAMES[0]), &zero).unwrap();
        let events = replayed(dir.path());
        let ids: Vec<_> = events.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["id-1", "id-2", "id-3", "id-4", "id-5"]);
        assert_eq!(events.last().map(|(seq, _)| *seq), Some(5));

        // A gap (event 6 lost with its file) stops the replay before 7.
        std::fs::write(dir.path().join(FILE_NAMES[1]), log(&[(7, &message(7))])).unwrap();
        assert_eq!(replayed(dir.path()).len(), 5);
    }
}
