//! The on-disk store of the embedded bus (one redb file) and its single writer
//! thread, which commits concurrent writes together (group commit).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The database file inside the state dir.
pub(super) const FILE_NAME: &str = "eventbus.redb";

/// One stored event.
#[derive(Debug)]
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

/// Positions shared with readers: the first and last stored sequence.
pub(super) struct Bounds {
    pub first_seq: AtomicU64,
    pub last_seq: watch::Sender<u64>,
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

        let read = db.begin_read().map_err(|e| err(&e))?;
        let messages = read.open_table(MESSAGES).map_err(|e| err(&e))?;
        let first = messages.first().map_err(|e| err(&e))?.map(|(k, _)| k.value());
        let last = messages.last().map_err(|e| err(&e))?.map(|(k, _)| k.value());
        let meta = read.open_table(META).map_err(|e| err(&e))?;
        let kv_revision = meta.get(KV_REVISION).map_err(|e| err(&e))?.map_or(0, |v| v.value());
        let last_seq = last.unwrap_or(0);
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
        };
        Ok((writer, bounds))
    }

    /// Runs until every sender is gone: takes what is queued, commits it in
    /// one transaction with one fsync, then answers every caller.
    pub(super) fn run(mut self, rx: Receiver<Op>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: still age events out.
                    if self.config.max_age.is_some() && self.first_seq <= self.last_seq {
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

    fn commit_batch(&mut self, batch: Vec<Op>) {
        let saved = (self.last_seq, self.first_seq, self.kv_revision);
        let mut new_ids: Vec<String> = Vec::new();
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let now = now_ms();
        self.expire_dedup(now);

        let result = self.db.begin_write().map_err(|e| self.err(e)).and_then(|txn| {
            self.apply(&txn, batch, now, &mut new_ids, &mut replies)?;
            self.enforce_retention(&txn, now)?;
            txn.commit().map_err(|e| self.err(e))
        });

        match result {
            Ok(()) => {
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
                for reply in replies {
                    reply.send_err(&e);
                }
            }
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

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.dir, e)
    }
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

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
