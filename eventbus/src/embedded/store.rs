//! The redb store of the embedded bus and its writer thread.
//!
//! redb holds the events (once checkpointed from the write-ahead log, see
//! [`super::wal`]), consumer positions and pending deliveries, and the
//! key-value buckets. One store writer thread commits every queued write
//! together (group commit), durably, and answers each caller after the
//! commit returned. A checkpoint asked for by the log writer rides on the
//! same commit: the events in memory up to its sequence go into redb, and
//! only after the commit are they dropped from memory and their log space
//! given back. Publishing never waits for any of this.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, WriteTransaction};
use tokio::sync::{oneshot, watch};

use super::wal::{self, LogWriter};
use crate::config::EmbeddedConfig;
use crate::error::{Error, Result};

/// Events by sequence: see [`StoredMessage::encode`].
pub(super) const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Consumer position: (ack floor, next sequence to consider).
pub(super) const CONSUMER_POS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("consumer_pos");
/// Delivered, unsettled events of a consumer: (consumer, sequence) -> deliveries so far.
pub(super) const CONSUMER_PENDING: TableDefinition<(&str, u64), u32> = TableDefinition::new("consumer_pending");
/// Key-value buckets: (bucket, key) -> revision (8 bytes LE) ++ value.
pub(super) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// Counters.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const KV_REVISION: &str = "kv_revision";
/// The last sequence in redb as of its last commit (the messages table
/// alone forgets it once retention removed every event).
pub(super) const LAST_SEQ: &str = "last_seq";

/// The database file inside the state dir.
pub(super) const FILE_NAME: &str = "eventbus.redb";

/// One stored event.
#[derive(Clone, Debug)]
pub(super) struct StoredMessage {
    pub time_ms: u64,
    pub id: String,
    pub subject: String,
    pub payload: Bytes,
}

impl StoredMessage {
    /// `time_ms u64 LE | id_len u16 LE | id | subject_len u16 LE | subject | payload`.
    pub(super) fn encode(time_ms: u64, id: &str, subject: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + id.len() + subject.len() + payload.len());
        out.extend_from_slice(&time_ms.to_le_bytes());
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
        out.extend_from_slice(subject.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Stands in for an event removed by retention before it was redelivered.
    pub(super) fn removed() -> Self {
        StoredMessage {
            time_ms: 0,
            id: String::new(),
            subject: String::new(),
            payload: Bytes::new(),
        }
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let time_ms = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let (id, rest) = take_str(&bytes[8..])?;
        let (subject, rest) = take_str(rest)?;
        Some(StoredMessage {
            time_ms,
            id: id.to_owned(),
            subject: subject.to_owned(),
            payload: Bytes::copy_from_slice(rest),
        })
    }
}

fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len = usize::from(u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?));
    let s = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    Some((s, &bytes[2 + len..]))
}

/// What a key-value write expects to find.
#[derive(Clone, Copy, Debug)]
pub(super) enum Expect {
    Anything,
    Absent,
    Revision(u64),
}

/// A write handed to the store writer.
pub(super) enum Op {
    /// Move the events in memory into redb (asked for by the log writer).
    Checkpoint,
    /// Record a consumer's position and the deliveries it just made. Nobody
    /// waits: losing it in a crash only means an extra redelivery.
    Delivered {
        consumer: String,
        deliveries: Vec<(u64, u32)>,
        pos: (u64, u64),
    },
    /// A consumer settled `seq` (ack, term, or max deliveries reached).
    Settled {
        consumer: String,
        seq: u64,
        pos: (u64, u64),
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    /// Create a consumer position.
    CreateConsumer {
        consumer: String,
        pos: (u64, u64),
        reply: oneshot::Sender<Result<()>>,
    },
    /// Put (`Some`) or delete (`None`) a key.
    Kv {
        bucket: String,
        key: String,
        value: Option<Vec<u8>>,
        expect: Expect,
        reply: oneshot::Sender<Result<u64>>,
    },
}

/// Positions shared with readers: the first and last stored sequence, and
/// the events that are durable in the log but not yet in redb.
pub(super) struct Bounds {
    pub first_seq: AtomicU64,
    pub last_seq: watch::Sender<u64>,
    /// Consecutive events after redb's last one, oldest first. The store
    /// writer drops them only after a commit put them in redb, so a reader
    /// that looks here first and then in redb misses none.
    pub recent: RwLock<VecDeque<(u64, Arc<StoredMessage>)>>,
}

/// Opens (creating) the database, retrying briefly while a previous instance
/// in this process is still closing.
pub(super) fn open_database(dir: &Path) -> Result<Database> {
    std::fs::create_dir_all(dir).map_err(|e| Error::store(dir, e))?;
    let path = dir.join(FILE_NAME);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Database::builder().set_cache_size(64 << 20).create(&path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::store(
                    dir,
                    "another process has the store open; run one Argon per state dir",
                ));
            }
            Err(e) => return Err(Error::store(dir, e)),
        }
    }
}

/// Creates the tables if missing.
pub(super) fn create_tables(db: &Database, dir: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::store(dir, e);
    let txn = db.begin_write().map_err(|e| err(&e))?;
    {
        txn.open_table(MESSAGES).map_err(|e| err(&e))?;
        txn.open_table(CONSUMER_POS).map_err(|e| err(&e))?;
        txn.open_table(CONSUMER_PENDING).map_err(|e| err(&e))?;
        txn.open_table(KV).map_err(|e| err(&e))?;
        txn.open_table(META).map_err(|e| err(&e))?;
    }
    txn.commit().map_err(|e| err(&e))
}

/// Both writers of an opened store, ready to run on their threads.
pub(super) struct Writers {
    pub log: LogWriter,
    pub store: StoreWriter,
    pub store_rx: Receiver<Op>,
    pub bounds: Arc<Bounds>,
    /// For the bus to send its own writes to the store writer.
    pub store_tx: Sender<Op>,
}

/// Creates the tables, replays the log, loads the counters and the dedup
/// window, and builds both writers.
pub(super) fn open_writers(db: Arc<Database>, config: EmbeddedConfig) -> Result<Writers> {
    let dir = config.dir.clone();
    let err = |e: &dyn std::fmt::Display| Error::store(&dir, e);
    create_tables(&db, &dir)?;
    wal::replay(&db, &dir)?;

    let read = db.begin_read().map_err(|e| err(&e))?;
    let messages = read.open_table(MESSAGES).map_err(|e| err(&e))?;
    let first = messages.first().map_err(|e| err(&e))?.map(|(k, _)| k.value());
    let last = messages.last().map_err(|e| err(&e))?.map(|(k, _)| k.value());
    let meta = read.open_table(META).map_err(|e| err(&e))?;
    let kv_revision = meta.get(KV_REVISION).map_err(|e| err(&e))?.map_or(0, |v| v.value());
    let recorded_last = meta.get(LAST_SEQ).map_err(|e| err(&e))?.map_or(0, |v| v.value());
    let last_seq = last.unwrap_or(0).max(recorded_last);
    let first_seq = first.unwrap_or(last_seq + 1);

    // Rebuild the dedup window from the events it covers.
    let mut dedup = HashMap::new();
    let mut dedup_order = VecDeque::new();
    let horizon = now_ms().saturating_sub(config.dedup_window.as_millis() as u64);
    for row in messages.range(first_seq..).map_err(|e| err(&e))?.rev() {
        let (k, v) = row.map_err(|e| err(&e))?;
        let Some(msg) = StoredMessage::decode(v.value()) else {
            continue;
        };
        if msg.time_ms < horizon {
            break;
        }
        dedup.insert(msg.id.clone(), k.value());
        dedup_order.push_front((msg.time_ms, msg.id));
    }
    drop(messages);
    drop(meta);
    drop(read);

    let bounds = Arc::new(Bounds {
        first_seq: AtomicU64::new(first_seq),
        last_seq: watch::Sender::new(last_seq),
        recent: RwLock::new(VecDeque::new()),
    });
    let durable = Arc::new(AtomicU64::new(last_seq));
    let (store_tx, store_rx) = std::sync::mpsc::channel();
    let log = LogWriter::new(
        config.clone(),
        bounds.clone(),
        durable.clone(),
        store_tx.clone(),
        last_seq,
        (dedup, dedup_order),
    )?;
    let store = StoreWriter {
        db,
        dir,
        config,
        bounds: bounds.clone(),
        durable,
        stored_seq: last_seq,
        first_seq,
        kv_revision,
    };
    Ok(Writers {
        log,
        store,
        store_rx,
        bounds,
        store_tx,
    })
}

/// The store writer: the only one that writes to redb.
pub(super) struct StoreWriter {
    db: Arc<Database>,
    dir: PathBuf,
    config: EmbeddedConfig,
    bounds: Arc<Bounds>,
    /// Shared with the log writer: every event up to it is in redb.
    durable: Arc<AtomicU64>,
    /// Last event in redb.
    stored_seq: u64,
    first_seq: u64,
    kv_revision: u64,
}

impl StoreWriter {
    /// Runs until every sender is gone (the log writer's last checkpoint
    /// request comes before that), committing what is queued each time.
    pub(super) fn run(mut self, rx: Receiver<Op>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: still age events out, and retry a failed checkpoint.
                    if !read(&self.bounds.recent).is_empty() || self.oldest_expired(now_ms()) {
                        self.commit_batch(Vec::new());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    /// Commits the batch durably, with the events held in memory.
    fn commit_batch(&mut self, batch: Vec<Op>) {
        let saved = (self.first_seq, self.kv_revision);
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let now = now_ms();
        // Every commit moves all events in memory (a checkpoint is just a
        // commit), so retention and readers of redb see the whole stream as
        // of this commit. Taken without holding the lock
        // while redb works: the log writer adds to it meanwhile.
        let moving: Vec<(u64, Arc<StoredMessage>)> = read(&self.bounds.recent)
            .iter()
            .filter(|(seq, _)| *seq > self.stored_seq)
            .cloned()
            .collect();
        let stored_to = moving.last().map_or(self.stored_seq, |(seq, _)| *seq);

        let result = self.db.begin_write().map_err(|e| self.err(e)).and_then(|txn| {
            {
                let mut messages = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
                for (seq, m) in &moving {
                    let record = StoredMessage::encode(m.time_ms, &m.id, &m.subject, &m.payload);
                    messages.insert(*seq, record.as_slice()).map_err(|e| self.err(e))?;
                }
            }
            self.apply(&txn, batch, &mut replies)?;
            self.enforce_retention(&txn, stored_to, now)?;
            txn.open_table(META)
                .map_err(|e| self.err(e))?
                .insert(LAST_SEQ, stored_to)
                .map_err(|e| self.err(e))?;
            txn.commit().map_err(|e| self.err(e))
        });

        match result {
            Ok(()) => {
                if stored_to > self.stored_seq {
                    self.stored_seq = stored_to;
                    let mut recent = write(&self.bounds.recent);
                    while recent.front().is_some_and(|(seq, _)| *seq <= stored_to) {
                        recent.pop_front();
                    }
                    drop(recent);
                    self.durable.store(stored_to, Ordering::Release);
                }
                if self.bounds.first_seq.load(Ordering::Relaxed) != self.first_seq {
                    self.bounds.first_seq.store(self.first_seq, Ordering::Release);
                }
                for reply in replies {
                    reply.send_ok();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded bus commit failed");
                (self.first_seq, self.kv_revision) = saved;
                for reply in replies {
                    reply.send_err(&e);
                }
            }
        }
    }

    fn apply(&mut self, txn: &WriteTransaction, batch: Vec<Op>, replies: &mut Vec<Reply>) -> Result<()> {
        for op in batch {
            match op {
                Op::Checkpoint => {}
                Op::Delivered {
                    consumer,
                    deliveries,
                    pos,
                } => {
                    let mut pending = txn.open_table(CONSUMER_PENDING).map_err(|e| self.err(e))?;
                    for (seq, count) in deliveries {
                        pending
                            .insert((consumer.as_str(), seq), count)
                            .map_err(|e| self.err(e))?;
                    }
                    let mut positions = txn.open_table(CONSUMER_POS).map_err(|e| self.err(e))?;
                    positions.insert(consumer.as_str(), pos).map_err(|e| self.err(e))?;
                }
                Op::Settled {
                    consumer,
                    seq,
                    pos,
                    reply,
                } => {
                    let mut pending = txn.open_table(CONSUMER_PENDING).map_err(|e| self.err(e))?;
                    pending.remove((consumer.as_str(), seq)).map_err(|e| self.err(e))?;
                    let mut positions = txn.open_table(CONSUMER_POS).map_err(|e| self.err(e))?;
                    positions.insert(consumer.as_str(), pos).map_err(|e| self.err(e))?;
                    if let Some(reply) = reply {
                        replies.push(Reply::Unit(reply));
                    }
                }
                Op::CreateConsumer { consumer, pos, reply } => {
                    let mut positions = txn.open_table(CONSUMER_POS).map_err(|e| self.err(e))?;
                    if positions.get(consumer.as_str()).map_err(|e| self.err(e))?.is_none() {
                        positions.insert(consumer.as_str(), pos).map_err(|e| self.err(e))?;
                    }
                    replies.push(Reply::Unit(reply));
                }
                Op::Kv {
                    bucket,
                    key,
                    value,
                    expect,
                    reply,
                } => {
                    let mut kv = txn.open_table(KV).map_err(|e| self.err(e))?;
                    let current = kv
                        .get((bucket.as_str(), key.as_str()))
                        .map_err(|e| self.err(e))?
                        .map(|v| u64::from_le_bytes(v.value()[..8].try_into().unwrap_or_default()));
                    let allowed = match expect {
                        Expect::Anything => true,
                        Expect::Absent => current.is_none(),
                        Expect::Revision(r) => current == Some(r),
                    };
                    if !allowed {
                        let expected = match expect {
                            Expect::Revision(r) => Some(r),
                            _ => None,
                        };
                        replies.push(Reply::Kv(reply, Err(Error::Conflict { key, expected })));
                        continue;
                    }
                    self.kv_revision += 1;
                    match value {
                        Some(value) => {
                            let mut record = self.kv_revision.to_le_bytes().to_vec();
                            record.extend_from_slice(&value);
                            kv.insert((bucket.as_str(), key.as_str()), record.as_slice())
                                .map_err(|e| self.err(e))?;
                        }
                        None => {
                            kv.remove((bucket.as_str(), key.as_str())).map_err(|e| self.err(e))?;
                        }
                    }
                    let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                    meta.insert(KV_REVISION, self.kv_revision).map_err(|e| self.err(e))?;
                    replies.push(Reply::Kv(reply, Ok(self.kv_revision)));
                }
            }
        }
        Ok(())
    }

    /// Whether the oldest stored event has outlived `max_age`. Only then has
    /// an idle commit anything to remove: committing every idle second
    /// regardless would cost a sync each time, for nothing.
    fn oldest_expired(&self, now: u64) -> bool {
        let Some(max_age) = self.config.max_age else {
            return false;
        };
        if self.first_seq > self.stored_seq {
            return false;
        }
        let horizon = now.saturating_sub(max_age.as_millis() as u64);
        let oldest = self
            .db
            .begin_read()
            .ok()
            .and_then(|txn| txn.open_table(MESSAGES).ok())
            .and_then(|table| table.get(self.first_seq).ok().flatten())
            .and_then(|v| StoredMessage::decode(v.value()))
            .map(|m| m.time_ms);
        // A record that cannot be read is left to the commit, which removes
        // it as retention does.
        oldest.is_none_or(|time| time < horizon)
    }

    /// Removes events beyond `max_msgs` and older than `max_age` (bounded work
    /// per commit so a large backlog does not stall publishers).
    fn enforce_retention(&mut self, txn: &WriteTransaction, last_seq: u64, now: u64) -> Result<()> {
        const MAX_REMOVALS: u64 = 10_000;
        let mut messages = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let mut removed = 0;
        if let Some(max) = self.config.max_msgs {
            while last_seq + 1 - self.first_seq > max && removed < MAX_REMOVALS {
                messages.remove(self.first_seq).map_err(|e| self.err(e))?;
                self.first_seq += 1;
                removed += 1;
            }
        }
        if let Some(max_age) = self.config.max_age {
            let horizon = now.saturating_sub(max_age.as_millis() as u64);
            while self.first_seq <= last_seq && removed < MAX_REMOVALS {
                let old = messages
                    .get(self.first_seq)
                    .map_err(|e| self.err(e))?
                    .and_then(|v| StoredMessage::decode(v.value()))
                    .is_none_or(|m| m.time_ms < horizon);
                if !old {
                    break;
                }
                messages.remove(self.first_seq).map_err(|e| self.err(e))?;
                self.first_seq += 1;
                removed += 1;
            }
        }
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.dir, e)
    }
}

/// An answer owed to a caller once the batch commits.
enum Reply {
    Unit(oneshot::Sender<Result<()>>),
    Kv(oneshot::Sender<Result<u64>>, Result<u64>),
}

impl Reply {
    fn send_ok(self) {
        // A caller that went away (cancelled) no longer needs its answer.
        match self {
            Reply::Unit(tx) => drop(tx.send(Ok(()))),
            Reply::Kv(tx, result) => drop(tx.send(result)),
        }
    }

    fn send_err(self, e: &Error) {
        let err = || match e {
            Error::Store { path, reason } => Error::Store {
                path: path.clone(),
                reason: reason.clone(),
            },
            other => Error::Store {
                path: String::new(),
                reason: other.to_string(),
            },
        };
        match self {
            Reply::Unit(tx) => drop(tx.send(Err(err()))),
            Reply::Kv(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

pub(super) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Readers and the writer leave the queue consistent at every step.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
