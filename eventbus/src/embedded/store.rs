//! The redb store of the embedded bus and its writer thread.
//!
//! redb holds what changes per consumer and per sensor: each durable
//! consumer's position and unsettled deliveries, the key-value buckets, and
//! the log's first kept sequence. Events are not here; they are in the log
//! ([`super::log`]). One store writer thread commits every queued write
//! together (group commit), durably, and answers each caller after the
//! commit returned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use redb::{Database, ReadableDatabase as _, ReadableTable as _, WriteTransaction};
use tokio::sync::oneshot;

use super::legacy;
use super::log::{self, Log, LogWriter};
use super::tables::{
    CONSUMER_PENDING, CONSUMER_POS, EVENTS_DIR, Expect, FILE_NAME, FIRST_SEQ, KV, KV_REVISION, META, Op,
};
use crate::config::EmbeddedConfig;
use crate::error::{Error, Result};

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
        txn.open_table(CONSUMER_POS).map_err(|e| err(&e))?;
        txn.open_table(CONSUMER_PENDING).map_err(|e| err(&e))?;
        txn.open_table(KV).map_err(|e| err(&e))?;
        txn.open_table(META).map_err(|e| err(&e))?;
    }
    txn.commit().map_err(|e| err(&e))
}

/// Both writers of an opened store, ready to run on their threads.
pub(super) struct Writers {
    pub log: Arc<Log>,
    pub log_writer: LogWriter,
    pub store: StoreWriter,
    pub store_rx: Receiver<Op>,
    /// For the bus to send its own writes to the store writer.
    pub store_tx: Sender<Op>,
}

/// Creates the tables, opens the log (moving the events of an older layout
/// into it first), and builds both writers.
pub(super) fn open_writers(db: Arc<Database>, config: EmbeddedConfig) -> Result<Writers> {
    let dir = config.dir.clone();
    let err = |e: &dyn std::fmt::Display| Error::store(&dir, e);
    create_tables(&db, &dir)?;
    let legacy_events = legacy::read(&db, &dir)?;
    let (kv_revision, saved_first) = {
        let read = db.begin_read().map_err(|e| err(&e))?;
        let meta = read.open_table(META).map_err(|e| err(&e))?;
        let get = |key: &str| -> Result<u64> { Ok(meta.get(key).map_err(|e| err(&e))?.map_or(0, |v| v.value())) };
        (get(KV_REVISION)?, get(FIRST_SEQ)?)
    };
    let (store_tx, store_rx) = std::sync::mpsc::channel();
    if let Some(events) = legacy_events {
        legacy::write_segment(&dir.join(EVENTS_DIR), events)?;
    }
    let opened = log::open(config.clone(), store_tx.clone(), saved_first)?;
    legacy::finish(&db, &dir)?;
    let store = StoreWriter {
        db,
        dir,
        config,
        kv_revision,
    };
    Ok(Writers {
        log: opened.log,
        log_writer: opened.writer,
        store,
        store_rx,
        store_tx,
    })
}

/// The store writer: the only one that writes to redb.
pub(super) struct StoreWriter {
    db: Arc<Database>,
    dir: PathBuf,
    config: EmbeddedConfig,
    kv_revision: u64,
}

impl StoreWriter {
    /// Runs until every sender is gone, committing what is queued each time.
    pub(super) fn run(mut self, rx: Receiver<Op>) {
        while let Ok(first) = rx.recv() {
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

    /// Commits the batch durably, then answers.
    fn commit_batch(&mut self, batch: Vec<Op>) {
        let saved = self.kv_revision;
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let result = self.db.begin_write().map_err(|e| self.err(e)).and_then(|txn| {
            self.apply(&txn, batch, &mut replies)?;
            txn.commit().map_err(|e| self.err(e))
        });
        match result {
            Ok(()) => {
                for reply in replies {
                    reply.send_ok();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded bus commit failed");
                self.kv_revision = saved;
                for reply in replies {
                    reply.send_err(&e);
                }
            }
        }
    }

    fn apply(&mut self, txn: &WriteTransaction, batch: Vec<Op>, replies: &mut Vec<Reply>) -> Result<()> {
        for op in batch {
            match op {
                Op::FirstSeq(first) => {
                    let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                    meta.insert(FIRST_SEQ, first).map_err(|e| self.err(e))?;
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
        match self {
            Reply::Unit(tx) => drop(tx.send(Err(e.to_store()))),
            Reply::Kv(tx, _) => drop(tx.send(Err(e.to_store()))),
        }
    }
}
