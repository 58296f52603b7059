//! What the parts of the embedded bus share: the redb tables and keys, the
//! file and folder names under the state dir, the writes handed to the
//! store writer, the lock helpers and the clock. It depends on no other
//! module of the bus; `log`, `store`, `legacy` and `mod` build on it.

use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::TableDefinition;
use tokio::sync::oneshot;

use crate::error::Result;

/// Consumer position: (ack floor, next sequence to consider).
pub(super) const CONSUMER_POS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("consumer_pos");
/// Delivered, unsettled events of a consumer: (consumer, sequence) -> deliveries so far.
pub(super) const CONSUMER_PENDING: TableDefinition<(&str, u64), u32> = TableDefinition::new("consumer_pending");
/// Key-value buckets: (bucket, key) -> revision (8 bytes LE) ++ value.
pub(super) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// Counters.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const KV_REVISION: &str = "kv_revision";
/// The first sequence the log keeps, as of the last commit that carried it.
pub(super) const FIRST_SEQ: &str = "first_seq";
/// The last sequence of the layout before the log (see [`super::legacy`]).
pub(super) const LAST_SEQ: &str = "last_seq";

/// The database file inside the state dir.
pub(super) const FILE_NAME: &str = "eventbus.redb";

/// What a key-value write expects to find.
#[derive(Clone, Copy, Debug)]
pub(super) enum Expect {
    Anything,
    Absent,
    Revision(u64),
}

/// A write handed to the store writer.
pub(super) enum Op {
    /// The log's first kept sequence moved (retention); nobody waits.
    FirstSeq(u64),
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

/// The folder of the segments inside the state dir.
pub(super) const EVENTS_DIR: &str = "events";

/// Reads `lock`, past a poisoning.
pub(super) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Readers and the writer leave the queue consistent at every step.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `lock`, past a poisoning.
pub(super) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Locks `m`, past a poisoning: a panic while holding one of the bus's
/// locks leaves consistent data behind.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
