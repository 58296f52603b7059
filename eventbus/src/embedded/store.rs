//! The on-disk store of the embedded bus and its single writer thread, which
//! commits concurrent writes together (group commit).
//!
//! The store is one redb file plus a write-ahead log of events. A batch of
//! publishes is made durable by writing its events to the log with one
//! `write` and one `fdatasync`; they are then served to consumers from
//! memory ([`Bounds::recent`]). Consumer bookkeeping that nobody waits for
//! (deliveries, naks) is held back until the next redb commit. redb's own
//! durable commit (two syncs and every dirty B-tree page) runs only as a
//! checkpoint, which moves the events in memory into redb: when the log
//! passes [`CHECKPOINT_BYTES`], every [`CHECKPOINT_EVERY`], when the writer
//! is idle, on close, and for any batch with a write somebody waits for
//! (acks, key-value writes). On open, events in the log past redb's last
//! durable sequence are put back. The log is ours rather than a crate's because it must share
//! redb's sequence numbers and dedup window; it is a plain file of
//! checksummed records, and a torn tail (a crash mid-write) fails its
//! checksum and is dropped: its publishers had not been answered.
//!
//! The log file is never truncated: it grows by zero-filled chunks and is
//! written over from the start after each checkpoint, so a sync rarely has a
//! new file length (an inode write) to persist. What lies past the current
//! records is either zeros, a torn record, or records older than the
//! checkpoint, whose sequences redb already has; replay skips those.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, WriteTransaction};
use tokio::sync::{oneshot, watch};

use crate::PublishAck;
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
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const KV_REVISION: &str = "kv_revision";
/// The last sequence handed out, as of the last durable commit (the messages
/// table alone forgets it once retention removed every event).
const LAST_SEQ: &str = "last_seq";

/// The database file inside the state dir.
pub(super) const FILE_NAME: &str = "eventbus.redb";
/// The write-ahead log of events inside the state dir.
pub(super) const WAL_FILE_NAME: &str = "eventbus.wal";
/// A checkpoint runs once the log is this long...
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// ... or this old.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// An idle writer with a non-empty log checkpoints after this long.
const IDLE_CHECKPOINT: Duration = Duration::from_millis(200);
/// Length and CRC-32 of a log record, before its body.
const WAL_HEADER: usize = 8;
/// The log file grows by this much at a time.
const WAL_GROWTH: u64 = 1 << 20;

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
    fn encode(time_ms: u64, id: &str, subject: &str, payload: &[u8]) -> Vec<u8> {
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

/// A write handed to the writer thread.
pub(super) enum Op {
    /// Store an event (unless its id is within the dedup window).
    Append {
        id: String,
        subject: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<PublishAck>>,
    },
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
    /// Consecutive events after redb's last one, oldest first. The writer
    /// empties it only after a commit put them in redb, so a reader that
    /// looks here first and then in redb misses none.
    pub recent: RwLock<VecDeque<(u64, StoredMessage)>>,
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

/// The single writer: owns the dedup window and the sequence counter.
pub(super) struct Writer {
    db: Arc<Database>,
    dir: PathBuf,
    config: EmbeddedConfig,
    bounds: Arc<Bounds>,
    last_seq: u64,
    first_seq: u64,
    kv_revision: u64,
    dedup: HashMap<String, u64>,
    dedup_order: VecDeque<(u64, String)>,
    /// The write-ahead log.
    wal: File,
    /// Bytes of records in the log since the last checkpoint.
    wal_len: u64,
    /// Allocated (zero-filled or written) length of the log file.
    wal_size: u64,
    /// Log records of the batch being committed.
    wal_buf: Vec<u8>,
    last_checkpoint: Instant,
    /// Consumer bookkeeping nobody waits for, applied with the next commit.
    deferred: Vec<Op>,
}

impl Writer {
    /// Creates the tables and loads the counters and the dedup window.
    pub(super) fn open(db: Arc<Database>, config: EmbeddedConfig) -> Result<(Self, Arc<Bounds>)> {
        let dir = config.dir.clone();
        let err = |e: &dyn std::fmt::Display| Error::store(&dir, e);
        let txn = db.begin_write().map_err(|e| err(&e))?;
        {
            txn.open_table(MESSAGES).map_err(|e| err(&e))?;
            txn.open_table(CONSUMER_POS).map_err(|e| err(&e))?;
            txn.open_table(CONSUMER_PENDING).map_err(|e| err(&e))?;
            txn.open_table(KV).map_err(|e| err(&e))?;
            txn.open_table(META).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        let (wal, wal_size) = replay_wal(&db, &dir)?;

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
        let writer = Writer {
            db,
            dir: config.dir.clone(),
            config,
            bounds: bounds.clone(),
            last_seq,
            first_seq,
            kv_revision,
            dedup,
            dedup_order,
            wal,
            wal_len: 0,
            wal_size,
            wal_buf: Vec::new(),
            last_checkpoint: Instant::now(),
            deferred: Vec::new(),
        };
        Ok((writer, bounds))
    }

    /// Runs until every sender is gone: takes what is queued, commits it in
    /// one transaction with one fsync, then answers every caller.
    pub(super) fn run(mut self, rx: Receiver<Op>) {
        loop {
            let idle = if self.wal_len > 0 || !self.deferred.is_empty() {
                IDLE_CHECKPOINT
            } else {
                Duration::from_secs(1)
            };
            let first = match rx.recv_timeout(idle) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: move the log's events into redb, and still age
                    // events out.
                    if self.wal_len > 0
                        || !self.deferred.is_empty()
                        || (self.config.max_age.is_some() && self.first_seq <= self.last_seq)
                    {
                        self.commit_batch(Vec::new());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if self.wal_len > 0 || !self.deferred.is_empty() {
                        self.commit_batch(Vec::new());
                    }
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
            self.commit_batch(batch);
        }
    }

    /// Commits `batch` (an empty batch is a checkpoint): through the log when
    /// nothing in it needs a redb commit, else in redb with the events held in
    /// memory.
    fn commit_batch(&mut self, batch: Vec<Op>) {
        let now = now_ms();
        self.expire_dedup(now);
        let logged = !batch.is_empty()
            && batch.iter().all(|op| {
                matches!(
                    op,
                    Op::Append { .. } | Op::Delivered { .. } | Op::Settled { reply: None, .. }
                )
            })
            && self.wal_len < CHECKPOINT_BYTES
            && self.last_checkpoint.elapsed() < CHECKPOINT_EVERY;
        if logged {
            self.log_batch(batch, now);
        } else {
            self.store_batch(batch, now);
        }
    }

    /// Makes the batch's events durable in the log, then visible in memory.
    fn log_batch(&mut self, batch: Vec<Op>, now: u64) {
        let saved_last = self.last_seq;
        let mut new_ids = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        self.wal_buf.clear();
        for op in batch {
            let Op::Append {
                id,
                subject,
                payload,
                reply,
            } = op
            else {
                self.deferred.push(op);
                continue;
            };
            if let Some(&seq) = self.dedup.get(&id) {
                let ack = PublishAck {
                    sequence: seq,
                    duplicate: true,
                };
                replies.push(Reply::Publish(reply, ack));
                continue;
            }
            self.last_seq += 1;
            let seq = self.last_seq;
            encode_wal_record(
                &mut self.wal_buf,
                seq,
                &StoredMessage::encode(now, &id, &subject, &payload),
            );
            self.dedup.insert(id.clone(), seq);
            self.dedup_order.push_back((now, id.clone()));
            new_ids.push(id.clone());
            let ack = PublishAck {
                sequence: seq,
                duplicate: false,
            };
            replies.push(Reply::Publish(reply, ack));
            events.push((
                seq,
                StoredMessage {
                    time_ms: now,
                    id,
                    subject,
                    payload: Bytes::from(payload),
                },
            ));
        }
        match self.append_wal() {
            Ok(()) => {
                if !events.is_empty() {
                    write(&self.bounds.recent).extend(events);
                    self.bounds.last_seq.send_replace(self.last_seq);
                }
                for reply in replies {
                    reply.send_ok();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded bus: write-ahead log write failed");
                self.last_seq = saved_last;
                self.forget_ids(new_ids);
                for reply in replies {
                    reply.send_err(&e);
                }
            }
        }
    }

    /// Commits durably in redb: the events held in memory, the deferred
    /// bookkeeping, then `batch`; the log starts over.
    fn store_batch(&mut self, batch: Vec<Op>, now: u64) {
        let saved = (self.last_seq, self.first_seq, self.kv_revision);
        let mut new_ids: Vec<String> = Vec::new();
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let deferred = std::mem::take(&mut self.deferred);

        let result = self.db.begin_write().map_err(|e| self.err(e)).and_then(|txn| {
            {
                let recent = read(&self.bounds.recent);
                let mut messages = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
                for (seq, m) in recent.iter() {
                    let record = StoredMessage::encode(m.time_ms, &m.id, &m.subject, &m.payload);
                    messages.insert(*seq, record.as_slice()).map_err(|e| self.err(e))?;
                }
            }
            // Held-back bookkeeping has no replies: its loss on a failed
            // commit means only redeliveries.
            self.apply(&txn, deferred, now, &mut new_ids, &mut replies)?;
            self.apply(&txn, batch, now, &mut new_ids, &mut replies)?;
            self.enforce_retention(&txn, now)?;
            txn.open_table(META)
                .map_err(|e| self.err(e))?
                .insert(LAST_SEQ, self.last_seq)
                .map_err(|e| self.err(e))?;
            txn.commit().map_err(|e| self.err(e))
        });

        match result {
            Ok(()) => {
                write(&self.bounds.recent).clear();
                self.reset_wal();
                if self.bounds.first_seq.load(Ordering::Relaxed) != self.first_seq {
                    self.bounds.first_seq.store(self.first_seq, Ordering::Release);
                }
                if saved.0 != self.last_seq {
                    self.bounds.last_seq.send_replace(self.last_seq);
                }
                for reply in replies {
                    reply.send_ok();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded bus commit failed");
                (self.last_seq, self.first_seq, self.kv_revision) = saved;
                self.forget_ids(new_ids);
                for reply in replies {
                    reply.send_err(&e);
                }
            }
        }
    }

    /// Takes ids of a failed batch out of the dedup window.
    fn forget_ids(&mut self, ids: Vec<String>) {
        for id in ids {
            self.dedup.remove(&id);
        }
        while self
            .dedup_order
            .back()
            .is_some_and(|(_, id)| !self.dedup.contains_key(id))
        {
            self.dedup_order.pop_back();
        }
    }

    fn apply(
        &mut self,
        txn: &WriteTransaction,
        batch: Vec<Op>,
        now: u64,
        new_ids: &mut Vec<String>,
        replies: &mut Vec<Reply>,
    ) -> Result<()> {
        let mut messages = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        for op in batch {
            match op {
                Op::Append {
                    id,
                    subject,
                    payload,
                    reply,
                } => {
                    if let Some(&seq) = self.dedup.get(&id) {
                        replies.push(Reply::Publish(
                            reply,
                            PublishAck {
                                sequence: seq,
                                duplicate: true,
                            },
                        ));
                        continue;
                    }
                    self.last_seq += 1;
                    let seq = self.last_seq;
                    let record = StoredMessage::encode(now, &id, &subject, &payload);
                    messages.insert(seq, record.as_slice()).map_err(|e| self.err(e))?;
                    self.dedup.insert(id.clone(), seq);
                    self.dedup_order.push_back((now, id.clone()));
                    new_ids.push(id);
                    replies.push(Reply::Publish(
                        reply,
                        PublishAck {
                            sequence: seq,
                            duplicate: false,
                        },
                    ));
                }
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

    /// Removes events beyond `max_msgs` and older than `max_age` (bounded work
    /// per commit so a large backlog does not stall publishers).
    fn enforce_retention(&mut self, txn: &WriteTransaction, now: u64) -> Result<()> {
        const MAX_REMOVALS: u64 = 10_000;
        let mut messages = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let mut removed = 0;
        if let Some(max) = self.config.max_msgs {
            while self.last_seq + 1 - self.first_seq > max && removed < MAX_REMOVALS {
                messages.remove(self.first_seq).map_err(|e| self.err(e))?;
                self.first_seq += 1;
                removed += 1;
            }
        }
        if let Some(max_age) = self.config.max_age {
            let horizon = now.saturating_sub(max_age.as_millis() as u64);
            while self.first_seq <= self.last_seq && removed < MAX_REMOVALS {
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

    /// Writes the batch's log records after the current ones and syncs them
    /// (growing the file by a zero-filled chunk when they do not fit).
    fn append_wal(&mut self) -> Result<()> {
        if self.wal_buf.is_empty() {
            return Ok(());
        }
        let end = self.wal_len + self.wal_buf.len() as u64;
        let written = self.wal.write_all_at(&self.wal_buf, self.wal_len).and_then(|()| {
            if end > self.wal_size {
                let size = end.next_multiple_of(WAL_GROWTH);
                let zeros = vec![0; usize::try_from(size - end).unwrap_or(0)];
                self.wal.write_all_at(&zeros, end)?;
                self.wal_size = size;
            }
            self.wal.sync_data()
        });
        match written {
            Ok(()) => {
                self.wal_len = end;
                Ok(())
            }
            Err(e) => {
                // Not acknowledged: make sure a replay cannot find it.
                self.undo_wal(self.wal_len);
                Err(self.err(format!("write-ahead log: {e}")))
            }
        }
    }

    /// Zeroes the log after `len` (its length before a failed batch), so the
    /// records of a batch nobody was told about cannot come back on replay.
    fn undo_wal(&mut self, len: u64) {
        let end = (len + self.wal_buf.len() as u64).min(self.wal_size);
        let zeros = vec![0; usize::try_from(end.saturating_sub(len)).unwrap_or(0)];
        match self.wal.write_all_at(&zeros, len).and_then(|()| self.wal.sync_data()) {
            Ok(()) => self.wal_len = len,
            Err(e) => {
                tracing::error!(error = %e, "embedded bus: could not erase a failed batch from the write-ahead log");
                // Its tail is unknown now: commit durably in redb until a
                // checkpoint has made the log's content stale.
                self.wal_len = self.wal_len.max(CHECKPOINT_BYTES);
            }
        }
    }

    /// Starts the log over after a durable commit: everything in it is in
    /// redb, and replay skips sequences redb has, so nothing is written.
    fn reset_wal(&mut self) {
        self.last_checkpoint = Instant::now();
        self.wal_len = 0;
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.dir, e)
    }
}

/// `len u32 LE | crc32 u32 LE | seq u64 LE | record`, where `len` and the
/// CRC cover `seq | record`.
fn encode_wal_record(out: &mut Vec<u8>, seq: u64, record: &[u8]) {
    let seq = seq.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq);
    crc.update(record);
    out.extend_from_slice(&((seq.len() + record.len()) as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq);
    out.extend_from_slice(record);
}

/// Splits the log into `(seq, record)` pairs, stopping at the first torn or
/// corrupt record.
fn decode_wal(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= WAL_HEADER {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        let Some(body) = rest.get(WAL_HEADER..WAL_HEADER + len) else {
            break;
        };
        if len < 8 || crc32fast::hash(body) != crc {
            break;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
        out.push((seq, &body[8..]));
        rest = &rest[WAL_HEADER + len..];
    }
    out
}

/// Puts the log's events past redb's last durable sequence back into redb
/// and commits durably; returns the log and its length.
fn replay_wal(db: &Database, dir: &Path) -> Result<(File, u64)> {
    let err = |e: &dyn std::fmt::Display| Error::store(dir, e);
    let path = dir.join(WAL_FILE_NAME);
    let mut wal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| err(&e))?;
    let mut bytes = Vec::new();
    wal.read_to_end(&mut bytes).map_err(|e| err(&e))?;
    let size = bytes.len() as u64;
    let records = decode_wal(&bytes);
    if records.is_empty() {
        return Ok((wal, size));
    }
    let txn = db.begin_write().map_err(|e| err(&e))?;
    let mut restored = 0usize;
    {
        let mut messages = txn.open_table(MESSAGES).map_err(|e| err(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
        let stored_last = messages.last().map_err(|e| err(&e))?.map_or(0, |(k, _)| k.value());
        let recorded_last = meta.get(LAST_SEQ).map_err(|e| err(&e))?.map_or(0, |v| v.value());
        let mut last = stored_last.max(recorded_last);
        for (seq, record) in records {
            if seq <= last {
                continue;
            }
            if seq != last + 1 {
                tracing::warn!(
                    expected = last + 1,
                    found = seq,
                    "embedded bus: gap in the write-ahead log; replay stops there"
                );
                break;
            }
            messages.insert(seq, record).map_err(|e| err(&e))?;
            last = seq;
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
    Ok((wal, size))
}

/// An answer owed to a caller once the batch commits.
enum Reply {
    Publish(oneshot::Sender<Result<PublishAck>>, PublishAck),
    Unit(oneshot::Sender<Result<()>>),
    Kv(oneshot::Sender<Result<u64>>, Result<u64>),
}

impl Reply {
    fn send_ok(self) {
        // A caller that went away (cancelled) no longer needs its answer.
        match self {
            Reply::Publish(tx, ack) => drop(tx.send(Ok(ack))),
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
            Reply::Publish(tx, _) => drop(tx.send(Err(err()))),
            Reply::Unit(tx) => drop(tx.send(Err(err()))),
            Reply::Kv(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

pub(super) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Readers and the writer leave the queue consistent at every step.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, record) in records {
            encode_wal_record(&mut out, *seq, record);
        }
        out
    }

    #[test]
    fn wal_round_trip() {
        let bytes = log(&[(1, b"one"), (2, b""), (3, b"three")]);
        assert_eq!(
            decode_wal(&bytes),
            vec![(1, &b"one"[..]), (2, &b""[..]), (3, &b"three"[..])]
        );
    }

    #[test]
    fn wal_torn_tail_is_dropped() {
        let mut bytes = log(&[(1, b"one"), (2, b"two")]);
        let whole = bytes.len();
        encode_wal_record(&mut bytes, 3, b"three");
        for cut in whole..bytes.len() {
            assert_eq!(decode_wal(&bytes[..cut]).len(), 2, "cut at {cut}");
        }
    }

    fn message(n: u64) -> Vec<u8> {
        StoredMessage::encode(
            now_ms(),
            &format!("id-{n}"),
            "argon.s.e",
            format!("{{\"n\":{n}}}").as_bytes(),
        )
    }

    /// Opens the store in `dir` as the bus does; returns its last sequence
    /// and the ids of its events in order.
    fn open_store(dir: &Path) -> (u64, Vec<(u64, String)>) {
        let db = Arc::new(open_database(dir).unwrap());
        let (_writer, bounds) = Writer::open(db.clone(), EmbeddedConfig::new(dir)).unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(MESSAGES).unwrap();
        let events = table
            .iter()
            .unwrap()
            .map(|row| {
                let (k, v) = row.unwrap();
                (k.value(), StoredMessage::decode(v.value()).unwrap().id)
            })
            .collect();
        let last = *bounds.last_seq.borrow();
        (last, events)
    }

    #[test]
    fn replay_restores_logged_events_and_skips_stale_and_torn_ones() {
        let dir = tempfile::tempdir().unwrap();
        // A log as a crash leaves it: events 1-3, then stale records of an
        // older round (sequences already in the store), then a torn record.
        let mut bytes = Vec::new();
        for n in 1..=3 {
            encode_wal_record(&mut bytes, n, &message(n));
        }
        let mut torn = Vec::new();
        encode_wal_record(&mut torn, 4, &message(4));
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(dir.path().join(WAL_FILE_NAME), &bytes).unwrap();
        let (last, events) = open_store(dir.path());
        assert_eq!(last, 3);
        assert_eq!(
            events,
            vec![(1, "id-1".to_owned()), (2, "id-2".to_owned()), (3, "id-3".to_owned())]
        );

        // The next round is written over the start of the log; what follows
        // it (older records, zeros) must not come back or stop the replay.
        let mut bytes = Vec::new();
        for n in 4..=5 {
            encode_wal_record(&mut bytes, n, &message(n));
        }
        for n in 2..=3 {
            encode_wal_record(&mut bytes, n, &message(n + 100));
        }
        bytes.extend_from_slice(&[0; 64]);
        std::fs::write(dir.path().join(WAL_FILE_NAME), &bytes).unwrap();
        let (last, events) = open_store(dir.path());
        assert_eq!(last, 5);
        let ids: Vec<_> = events.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["id-1", "id-2", "id-3", "id-4", "id-5"]);
    }

    #[test]
    fn wal_stops_at_a_corrupt_record() {
        let mut bytes = log(&[(1, b"one"), (2, b"two"), (3, b"three")]);
        // Flip a bit in the second record's body.
        let second = WAL_HEADER + 8 + 3 + WAL_HEADER + 8;
        bytes[second] ^= 1;
        assert_eq!(decode_wal(&bytes), vec![(1, &b"one"[..])]);
    }
}
