//! The embedded bus: durable, in one process, on disk under the state dir.
//!
//! Events are written once, to an append-only log of segment files
//! ([`log`]): a publish returns once its event is synced there (one write
//! and one `fdatasync` for every batch of publishes queued meanwhile).
//! Everything that changes per consumer or per sensor is in one
//! [redb](https://docs.rs/redb) file ([`store`]): each durable consumer's
//! cursor and unsettled deliveries, the key-value buckets. redb is a
//! pure-Rust, copy-on-write B-tree with atomic, checksummed commits: a
//! commit that returned is on disk, a commit torn by `kill -9` or power loss
//! is rolled back on open. Acks and key-value writes are answered after their
//! commit (group commit too).
//!
//! Guarantees: `publish` returns after the event is on disk; each consumer
//! resumes after a restart from its persisted cursor, and deliveries that were
//! unsettled when the process died are delivered again (with their delivery
//! count, so `max_deliver` still bounds a poison event); a publish repeating an
//! id seen within `dedup_window` is dropped, also across a restart (the window
//! is rebuilt from the log); events are removed beyond `max_msgs` and after
//! `max_age`.

mod file;
mod format;
mod legacy;
mod log;
mod store;
mod tables;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableDatabase as _};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use self::log::{Append, Log, StoredMessage};
use self::tables::{CONSUMER_PENDING, CONSUMER_POS, Expect, KV, Op, lock};
use crate::config::EmbeddedConfig;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::history::{self, HistoryPage, HistoryQuery, StoredEvent};
use crate::subject::{self, validate_key, validate_name};
use crate::{
    Acker, ConsumerSpec, DeliverPolicy, Delivery, EventBus, KeyValue, KvEntry, PublishAck, Settle, Subscription,
};

/// Most events read from disk per scan of a consumer.
const SCAN_BATCH: u64 = 256;
/// Most events one history page looks at.
const HISTORY_SCAN: u64 = 100_000;

/// The embedded durable bus. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmbeddedConfig,
    db: Arc<Database>,
    /// Publishes, to the log writer.
    log: Mutex<Option<std::sync::mpsc::Sender<Append>>>,
    /// Everything else, to the store writer.
    store: Mutex<Option<std::sync::mpsc::Sender<Op>>>,
    /// Log writer first: its last word to the store (the first kept
    /// sequence) must reach the store writer before that one stops.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    log_state: Arc<Log>,
    consumers: Mutex<HashMap<String, Arc<Consumer>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channels stops the writers after their last writes
        // (the log writer first); wait for them so the store can be reopened
        // right away.
        lock(&self.log).take();
        lock(&self.store).take();
        for thread in std::mem::take(&mut *lock(&self.threads)) {
            let _ = thread.join();
        }
    }
}

impl EmbeddedBus {
    /// Opens (creating) the store under `config.dir`.
    pub async fn open(config: EmbeddedConfig) -> Result<Self> {
        validate_name("bus name", &config.name)?;
        let config2 = config.clone();
        let (db, writers) = tokio::task::spawn_blocking(move || {
            let db = Arc::new(store::open_database(&config2.dir)?);
            let writers = store::open_writers(db.clone(), config2)?;
            Ok::<_, Error>((db, writers))
        })
        .await
        .map_err(|e| Error::store(&config.dir, e))??;
        let store::Writers {
            log,
            log_writer,
            store,
            store_rx,
            store_tx,
        } = writers;
        let (log_tx, log_rx) = std::sync::mpsc::channel();
        let spawn_error = |e| Error::store(&config.dir, e);
        let log_thread = std::thread::Builder::new()
            .name("argon-bus-log".into())
            .spawn(move || log_writer.run(log_rx))
            .map_err(spawn_error)?;
        let store_thread = std::thread::Builder::new()
            .name("argon-bus-store".into())
            .spawn(move || store.run(store_rx))
            .map_err(spawn_error)?;
        Ok(EmbeddedBus {
            inner: Arc::new(Inner {
                config,
                db,
                log: Mutex::new(Some(log_tx)),
                store: Mutex::new(Some(store_tx)),
                threads: Mutex::new(vec![log_thread, store_thread]),
                log_state: log,
                consumers: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Inner {
    fn send(&self, op: Op) -> Result<()> {
        lock(&self.store)
            .as_ref()
            .ok_or(Error::Closed)?
            .send(op)
            .map_err(|_| Error::Closed)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.config.dir, e)
    }

    /// Stored events `from..=to`, at most `SCAN_BATCH`.
    fn read_range(&self, from: u64, to: u64) -> Result<Vec<(u64, StoredMessage)>> {
        self.log_state.read(from, to, SCAN_BATCH as usize)
    }

    /// Every stored event of `from..=to`, in order (several reads when the
    /// range spans segments or is longer than a scan).
    fn read_all(&self, from: u64, to: u64) -> Result<Vec<(u64, StoredMessage)>> {
        let mut out = Vec::new();
        let mut at = from;
        while at <= to {
            let found = self.read_range(at, to)?;
            let Some(&(last, _)) = found.last() else {
                break;
            };
            out.extend(found);
            at = last + 1;
        }
        Ok(out)
    }

    /// A page of the history: scans back from the newest event (or the
    /// query's `before`) a batch at a time, at most `HISTORY_SCAN` events
    /// per page, so that a filter matching little answers in bounded time
    /// (with a `next` to go on from).
    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        let log = &self.log_state;
        let limit = query.page_size();
        let first = log.first_seq.load(Ordering::Acquire).max(1);
        let last = *log.last_seq.borrow();
        let lower = match query.since {
            Some(since) => first.max(log.seq_at_time(u64::try_from(since.timestamp_millis()).unwrap_or(0))),
            None => first,
        };
        let mut upper = query.before.map_or(last, |b| b.saturating_sub(1)).min(last);
        let mut page = HistoryPage::default();
        let mut scanned = 0;
        while upper >= lower {
            let from = upper.saturating_sub(SCAN_BATCH - 1).max(lower);
            for (seq, message) in self.read_all(from, upper)?.into_iter().rev() {
                if !query.matches(&self.config.name, message.subject()) {
                    continue;
                }
                let Some(stored) = stored_event(seq, &message) else {
                    continue;
                };
                page.events.push(stored);
                if page.events.len() == limit {
                    page.next = (seq > lower).then_some(seq);
                    return Ok(page);
                }
            }
            scanned += upper - from + 1;
            if from == lower {
                break;
            }
            if scanned >= HISTORY_SCAN {
                page.next = Some(from);
                break;
            }
            upper = from - 1;
        }
        Ok(page)
    }

    /// The stored event with `id`. A time-ordered (UUID v7) id is looked for
    /// from a minute before its time on; any other, from the newest back.
    fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>> {
        let log = &self.log_state;
        let first = log.first_seq.load(Ordering::Acquire).max(1);
        let last = *log.last_seq.borrow();
        // Batches of `from..=to`, the newest first when `backwards`.
        let find = |from: u64, to: u64, backwards: bool| -> Result<Option<StoredEvent>> {
            if from > to {
                return Ok(None);
            }
            let batches = (to - from) / SCAN_BATCH + 1;
            for b in 0..batches {
                let b = if backwards { batches - 1 - b } else { b };
                let batch_from = from + b * SCAN_BATCH;
                let batch_to = (batch_from + SCAN_BATCH - 1).min(to);
                for (seq, message) in self.read_all(batch_from, batch_to)? {
                    if message.id() == id {
                        return Ok(stored_event(seq, &message));
                    }
                }
            }
            Ok(None)
        };
        if last < first {
            return Ok(None);
        }
        match history::id_time_ms(id) {
            Some(ms) => {
                let start = log.seq_at_time(ms.saturating_sub(60_000)).max(first);
                if let Some(found) = find(start, last, false)? {
                    return Ok(Some(found));
                }
                // Stored more than a minute after its id was made.
                find(first, start.saturating_sub(1), true)
            }
            None => find(first, last, true),
        }
    }

    /// Finds or loads the consumer, applying the spec's current settings.
    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Arc<Consumer>> {
        let patterns = subject::patterns(&self.config.name, &spec.filters);
        if let Some(existing) = lock(&self.consumers).get(&spec.durable_name).cloned() {
            existing.state().configure(spec, patterns);
            return Ok(existing);
        }
        // Load the persisted position, or create it.
        let name = spec.durable_name.clone();
        let (pos, pending) = {
            let txn = self.db.begin_read().map_err(|e| self.err(e))?;
            let positions = txn.open_table(CONSUMER_POS).map_err(|e| self.err(e))?;
            let pos = positions
                .get(name.as_str())
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            let table = txn.open_table(CONSUMER_PENDING).map_err(|e| self.err(e))?;
            let mut pending = Vec::new();
            for row in table
                .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))
                .map_err(|e| self.err(e))?
            {
                let (k, v) = row.map_err(|e| self.err(e))?;
                pending.push((k.value().1, v.value()));
            }
            (pos, pending)
        };
        let next_seq = match pos {
            Some((_, next)) => next,
            None => {
                let next = match spec.deliver_policy {
                    DeliverPolicy::All => 1,
                    DeliverPolicy::New => *self.log_state.last_seq.borrow() + 1,
                };
                let (tx, rx) = oneshot::channel();
                self.send(Op::CreateConsumer {
                    consumer: name.clone(),
                    pos: (next - 1, next),
                    reply: tx,
                })?;
                rx.await.map_err(|_| Error::Closed)??;
                next
            }
        };
        let now = Instant::now();
        let mut state = ConsumerState {
            patterns: Vec::new(),
            ack_wait: spec.ack_wait,
            max_deliver: spec.max_deliver,
            max_ack_pending: spec.max_ack_pending.max(1),
            next_seq,
            pending: BTreeMap::new(),
            timers: BinaryHeap::new(),
        };
        state.configure(spec, patterns);
        // Deliveries unsettled when the store was last closed go out again now.
        for (seq, count) in pending {
            state.pending.insert(
                seq,
                Pending {
                    count,
                    due: now,
                    held: false,
                },
            );
            state.timers.push(Reverse((now, seq)));
        }
        let consumer = Arc::new(Consumer {
            name,
            state: Mutex::new(state),
            notify: Notify::new(),
        });
        let mut consumers = lock(&self.consumers);
        Ok(consumers.entry(spec.durable_name.clone()).or_insert(consumer).clone())
    }
}

/// A stored record as a history entry; `None` when it is not an event.
fn stored_event(seq: u64, message: &StoredMessage) -> Option<StoredEvent> {
    Some(StoredEvent {
        sequence: seq,
        subject: message.subject().to_owned(),
        stored_at: history::from_millis(message.time_ms()),
        event: Event::from_json(message.payload()).ok()?,
    })
}

/// A durable consumer held in memory while the bus is open.
struct Consumer {
    name: String,
    state: Mutex<ConsumerState>,
    /// Woken when a delivery is settled or naked.
    notify: Notify,
}

impl Consumer {
    fn state(&self) -> MutexGuard<'_, ConsumerState> {
        lock(&self.state)
    }
}

struct ConsumerState {
    patterns: Vec<String>,
    ack_wait: Duration,
    max_deliver: Option<u32>,
    max_ack_pending: u32,
    /// The next sequence not yet considered for a first delivery.
    next_seq: u64,
    /// Delivered and unsettled, by sequence.
    pending: BTreeMap<u64, Pending>,
    /// Redelivery deadlines; an entry is stale unless it matches `pending`.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
}

struct Pending {
    count: u32,
    due: Instant,
    /// Given to a subscription's pump and not taken by the subscriber yet
    /// (read ahead, or in the channel): not redelivered; its ack wait
    /// starts when the subscriber takes it. A pump hands back (naks) what
    /// it holds when its subscription goes away.
    held: bool,
}

/// What a consumer's pump does next.
enum Step {
    Redeliver { seq: u64, count: u32 },
    Scan { from: u64, to: u64 },
    Wait(Option<Instant>),
}

impl ConsumerState {
    fn configure(&mut self, spec: &ConsumerSpec, patterns: Vec<String>) {
        self.patterns = patterns;
        self.ack_wait = spec.ack_wait;
        self.max_deliver = spec.max_deliver;
        self.max_ack_pending = spec.max_ack_pending.max(1);
    }

    /// (ack floor, next sequence): everything at or below the floor is settled.
    fn pos(&self) -> (u64, u64) {
        let floor = self.pending.keys().next().map_or(self.next_seq, |s| *s) - 1;
        (floor, self.next_seq)
    }

    fn matches(&self, subject: &str) -> bool {
        self.patterns.iter().any(|p| subject::matches(p, subject))
    }

    /// Starts the ack wait of a delivery the subscriber has just taken: not
    /// when it was claimed with the rest of its scan, or a subscriber that
    /// takes a while over each event would see the end of every scan come
    /// back as redeliveries it never had the time to ack.
    fn taken(&mut self, seq: u64, now: Instant) {
        let due = now + self.ack_wait;
        if let Some(p) = self.pending.get_mut(&seq).filter(|p| p.held) {
            p.held = false;
            p.due = due;
            self.timers.push(Reverse((due, seq)));
        }
    }

    /// The next due redelivery, dropping stale timers and exhausted events.
    fn due(&mut self, now: Instant, inner: &Inner, name: &str) -> Option<Instant> {
        while let Some(Reverse((due, seq))) = self.timers.peek().copied() {
            let live = self.pending.get(&seq).is_some_and(|p| p.due == due && !p.held);
            if !live {
                self.timers.pop();
                continue;
            }
            if due > now {
                return Some(due);
            }
            let count = self.pending.get(&seq).map_or(0, |p| p.count);
            if self.max_deliver.is_some_and(|max| count >= max) {
                self.timers.pop();
                self.pending.remove(&seq);
                tracing::warn!(consumer = name, seq, count, "event reached max deliveries, dropped");
                let _ = inner.send(Op::Settled {
                    consumer: name.to_owned(),
                    seq,
                    pos: self.pos(),
                    reply: None,
                });
                continue;
            }
            return Some(due);
        }
        None
    }

    fn next_step(&mut self, inner: &Inner, name: &str, last_seq: u64) -> Step {
        let now = Instant::now();
        let first_seq = inner.log_state.first_seq.load(Ordering::Acquire);
        if self.next_seq < first_seq {
            self.next_seq = first_seq;
        }
        let next_due = self.due(now, inner, name);
        if let Some(due) = next_due
            && due <= now
        {
            let Reverse((_, seq)) = self.timers.pop().unwrap_or(Reverse((now, 0)));
            if let Some(p) = self.pending.get_mut(&seq) {
                p.count += 1;
                p.held = true;
                let count = p.count;
                let _ = inner.send(Op::Delivered {
                    consumer: name.to_owned(),
                    deliveries: vec![(seq, count)],
                    pos: self.pos(),
                });
                return Step::Redeliver { seq, count };
            }
        }
        if self.next_seq <= last_seq && (self.pending.len() as u64) < u64::from(self.max_ack_pending) {
            return Step::Scan {
                from: self.next_seq,
                to: last_seq,
            };
        }
        Step::Wait(next_due)
    }

    /// Claims the matching events of a scan that started at `from`.
    fn claim(
        &mut self,
        inner: &Inner,
        name: &str,
        from: u64,
        to: u64,
        batch: Vec<(u64, StoredMessage)>,
    ) -> Vec<(u64, StoredMessage)> {
        if self.next_seq != from {
            return Vec::new(); // another subscription of this consumer got there first
        }
        // No timer until taken (see `Pending::held`).
        let due = Instant::now();
        let mut claimed = Vec::new();
        let mut scanned_to = to.min(from + SCAN_BATCH - 1);
        for (seq, msg) in batch {
            if self.pending.len() as u64 >= u64::from(self.max_ack_pending) {
                scanned_to = seq - 1;
                break;
            }
            if self.matches(msg.subject()) {
                self.pending.insert(
                    seq,
                    Pending {
                        count: 1,
                        due,
                        held: true,
                    },
                );
                claimed.push((seq, msg));
            }
            scanned_to = seq;
        }
        if claimed.len() as u64 >= SCAN_BATCH {
            scanned_to = claimed.last().map_or(scanned_to, |(s, _)| *s);
        }
        self.next_seq = self.next_seq.max(scanned_to + 1);
        if !claimed.is_empty() {
            let _ = inner.send(Op::Delivered {
                consumer: name.to_owned(),
                deliveries: claimed.iter().map(|(s, _)| (*s, 1)).collect(),
                pos: self.pos(),
            });
        }
        claimed
    }
}

/// Feeds one subscription until it is dropped, then hands back (naks) what
/// it had claimed for it and not given out, so the consumer's other
/// subscriptions, or the next one, get it now.
async fn pump(
    inner: Arc<Inner>,
    consumer: Arc<Consumer>,
    tx: mpsc::Sender<Result<Delivery>>,
    handed_back: oneshot::Receiver<Vec<Delivery>>,
) {
    let unsent = feed(&inner, &consumer, tx).await;
    for delivery in handed_back.await.unwrap_or_default() {
        delivery.nak(None).await.ok();
    }
    for seq in unsent {
        settle(&inner, &consumer, seq, Settle::Nak(None), false).await.ok();
    }
}

/// Feeds one subscription until it is dropped; the sequences it had claimed
/// and not sent.
async fn feed(inner: &Arc<Inner>, consumer: &Arc<Consumer>, tx: mpsc::Sender<Result<Delivery>>) -> Vec<u64> {
    let mut last_seq_rx = inner.log_state.last_seq.subscribe();
    loop {
        let notified = consumer.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let last_seq = *last_seq_rx.borrow_and_update();
        let step = consumer.state().next_step(inner, &consumer.name, last_seq);
        let out = match step {
            Step::Redeliver { seq, count } => match inner.read_range(seq, seq) {
                Ok(found) => Ok(match found.into_iter().next() {
                    Some(found) => vec![(found, count)],
                    None => vec![((seq, StoredMessage::removed()), count)],
                }),
                Err(e) => {
                    // Not held by this pump after all: due again shortly.
                    settle(
                        inner,
                        consumer,
                        seq,
                        Settle::Nak(Some(Duration::from_millis(200))),
                        false,
                    )
                    .await
                    .ok();
                    Err(e)
                }
            },
            Step::Scan { from, to } => inner.read_range(from, to).map(|batch| {
                let claimed = consumer.state().claim(inner, &consumer.name, from, to, batch);
                claimed.into_iter().map(|m| (m, 1)).collect()
            }),
            Step::Wait(deadline) => {
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut notified => {}
                    changed = last_seq_rx.changed() => if changed.is_err() { return Vec::new() },
                    () = sleep => {}
                    () = tx.closed() => return Vec::new(),
                }
                continue;
            }
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                // A read error: report it and back off briefly.
                if tx.send(Err(e)).await.is_err() {
                    return Vec::new();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut out = out.into_iter();
        while let Some(((seq, msg), count)) = out.next() {
            let event = match Event::from_json(msg.payload()) {
                Ok(event) => event,
                Err(e) => {
                    // Removed by retention while pending, or not an envelope.
                    tracing::warn!(consumer = %consumer.name, seq, error = %e, "undeliverable event terminated");
                    settle(inner, consumer, seq, Settle::Term, false).await.ok();
                    continue;
                }
            };
            let acker = EmbeddedAcker {
                inner: inner.clone(),
                consumer: consumer.clone(),
                seq,
            };
            let delivery = Delivery::new(event, msg.subject().to_owned(), seq, u64::from(count), Box::new(acker));
            let Ok(room) = tx.reserve().await else {
                return std::iter::once(seq).chain(out.map(|((seq, _), _)| seq)).collect();
            };
            room.send(Ok(delivery));
        }
    }
}

/// Applies a settlement; acks and terms wait for the commit when `wait`.
async fn settle(inner: &Inner, consumer: &Consumer, seq: u64, how: Settle, wait: bool) -> Result<()> {
    let reply = {
        let mut state = consumer.state();
        let now = Instant::now();
        match how {
            Settle::Ack | Settle::Term => {
                if state.pending.remove(&seq).is_none() {
                    return Ok(());
                }
                let (tx, rx) = oneshot::channel();
                inner.send(Op::Settled {
                    consumer: consumer.name.clone(),
                    seq,
                    pos: state.pos(),
                    reply: Some(tx),
                })?;
                Some(rx)
            }
            Settle::Nak(_) | Settle::InProgress if state.pending.contains_key(&seq) => {
                let wait_for = match how {
                    Settle::Nak(delay) => delay.unwrap_or_default(),
                    _ => state.ack_wait,
                };
                let due = now + wait_for;
                if let Some(p) = state.pending.get_mut(&seq) {
                    p.due = due;
                    p.held = false;
                }
                state.timers.push(Reverse((due, seq)));
                None
            }
            Settle::Nak(_) | Settle::InProgress => None,
        }
    };
    consumer.notify.notify_waiters();
    match reply {
        Some(rx) if wait => rx.await.map_err(|_| Error::Closed)?,
        _ => Ok(()),
    }
}

struct EmbeddedAcker {
    inner: Arc<Inner>,
    consumer: Arc<Consumer>,
    seq: u64,
}

#[async_trait::async_trait]
impl Acker for EmbeddedAcker {
    async fn settle(&self, how: Settle) -> Result<()> {
        settle(&self.inner, &self.consumer, self.seq, how, true).await
    }

    fn taken(&self) {
        self.consumer.state().taken(self.seq, Instant::now());
        // A pump waiting with no timer, or a later one, sets its wake-up anew.
        self.consumer.notify.notify_waiters();
    }
}

#[async_trait::async_trait]
impl EventBus for EmbeddedBus {
    fn name(&self) -> &str {
        &self.inner.config.name
    }

    async fn publish(&self, event: &Event) -> Result<PublishAck> {
        let subject = subject::subject(&self.inner.config.name, &event.context.source, &event.context.subject);
        let (tx, rx) = oneshot::channel();
        // The whole record is built here, on the publisher's thread; the
        // log writer only sets its time.
        let mut record = Vec::with_capacity(1024);
        StoredMessage::begin(&mut record, 0, &event.context.id, &subject);
        event.write_json(&mut record);
        let append = Append {
            id: event.context.id.clone(),
            record,
            reply: tx,
        };
        lock(&self.inner.log)
            .as_ref()
            .ok_or(Error::Closed)?
            .send(append)
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn subscribe(&self, spec: &ConsumerSpec) -> Result<Subscription> {
        spec.validate()?;
        let consumer = self.inner.consumer(spec).await?;
        let (tx, rx) = mpsc::channel(1);
        let (hand_back, handed_back) = oneshot::channel();
        tokio::spawn(pump(self.inner.clone(), consumer, tx, handed_back));
        Ok(Subscription::new(rx, hand_back))
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        let inner = self.inner.clone();
        let query = query.clone();
        tokio::task::spawn_blocking(move || inner.history(&query))
            .await
            .map_err(|e| self.inner.err(e))?
    }

    async fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>> {
        let inner = self.inner.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || inner.stored_event(&id))
            .await
            .map_err(|e| self.inner.err(e))?
    }

    async fn kv(&self, bucket: &str) -> Result<Arc<dyn KeyValue>> {
        validate_name("key-value bucket", bucket)?;
        Ok(Arc::new(EmbeddedKv {
            inner: self.inner.clone(),
            bucket: bucket.to_owned(),
        }))
    }
}

/// A key-value bucket inside the embedded store.
struct EmbeddedKv {
    inner: Arc<Inner>,
    bucket: String,
}

impl EmbeddedKv {
    async fn write(&self, key: &str, value: Option<Bytes>, expect: Expect) -> Result<u64> {
        validate_key(key)?;
        let (tx, rx) = oneshot::channel();
        self.inner.send(Op::Kv {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            value: value.map(|v| v.to_vec()),
            expect,
            reply: tx,
        })?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

#[async_trait::async_trait]
impl KeyValue for EmbeddedKv {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        validate_key(key)?;
        let inner = &self.inner;
        let txn = inner.db.begin_read().map_err(|e| inner.err(e))?;
        let table = txn.open_table(KV).map_err(|e| inner.err(e))?;
        let found = table.get((self.bucket.as_str(), key)).map_err(|e| inner.err(e))?;
        Ok(found.and_then(|v| {
            let raw = v.value();
            let revision = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
            Some(KvEntry {
                value: Bytes::copy_from_slice(&raw[8..]),
                revision,
            })
        }))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        self.write(key, Some(value), Expect::Anything).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64> {
        self.write(key, Some(value), Expect::Absent).await
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64> {
        self.write(key, Some(value), Expect::Revision(revision)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write(key, None, Expect::Anything).await.map(drop)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        let inner = &self.inner;
        let txn = inner.db.begin_read().map_err(|e| inner.err(e))?;
        let table = txn.open_table(KV).map_err(|e| inner.err(e))?;
        let mut keys = Vec::new();
        for row in table.range((self.bucket.as_str(), "")..).map_err(|e| inner.err(e))? {
            let (k, _) = row.map_err(|e| inner.err(e))?;
            let (bucket, key) = k.value();
            if bucket != self.bucket {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }
}
