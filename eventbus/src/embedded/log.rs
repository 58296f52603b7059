//! The event log of the embedded bus: every event is written once, to
//! append-only segment files, and read back from them.
//!
//! The log writer thread owns the sequence counter and the dedup window. It
//! takes every publish queued while its previous sync ran, gives each new
//! event the next sequence (or answers a duplicate id from the window),
//! appends the batch's records with one `write` and one `fdatasync`, then
//! makes the events visible to readers and answers the publishers. Nothing
//! else is written per event: consumer positions and key-value data live in
//! redb ([`super::store`]), which never sees the events.
//!
//! Segments are `events/<first sequence>.log`. The newest one takes appends;
//! past `segment_bytes` a new one is started and the old one is sealed
//! (cut to its records). Appends go into space that is already allocated
//! and written (zeros, or old records), so a sync never has a file length or
//! an extent to persist: a helper thread prepares the next segment ahead of
//! time (`next.spare`, zero-filled, or a segment retention retired, reused
//! as is), and starting it is a rename. A new log starts with an empty
//! file, which grows with its first appends only until the helper has made
//! a first spare of a few megabytes; each next one is twice the last, up to
//! `segment_bytes`, so a bus that holds a few events writes a few
//! megabytes, not a segment of zeros. Old records in a reused file end a
//! scan like a torn record does: each record carries its sequence, and one
//! out of sequence is the end.
//!
//! Readers find a record through an in-memory index (offset and time of each
//! record, 12 bytes an event, built by scanning the segments on open) and
//! keep the newest events in a small cache. Retention moves the first
//! sequence forward and retires sealed segments that hold nothing at or
//! after it.
//!
//! The log is ours rather than a crate's because it shares its sequence
//! numbers with the consumers and the dedup window and must hand events to
//! readers as soon as they are durable; it is plain checksummed records.
//!
//! Longer than most files: the writer's batching, retention, recovery scan
//! and the readers' cache share the log's state and its invariants, which
//! read best in one place.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::file::{self, ActiveFile, Spare, ZERO_CHUNK};
use super::format::{HEADER, decode, decode_one, encode_record, segment_path};
use super::tables::{EVENTS_DIR, Op, now_ms, read, write};
use crate::PublishAck;
use crate::config::EmbeddedConfig;
use crate::error::{Error, Result};

/// The first segment of a new log is prepared to hold this much; each next
/// one twice the last, up to `segment_bytes`.
const FIRST_SEGMENT: u64 = 4 << 20;
/// A batch stops taking publishes once its records are this long.
const BATCH_BYTES: usize = 8 << 20;
/// Each event in the cache counts at least this much against `cache_bytes`
/// (its bookkeeping), so tiny events cannot make it long.
const CACHE_ENTRY_BYTES: usize = 256;
/// An idle writer still applies retention this often.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Retention by age is checked at most this often while publishing.
const AGE_CHECK: Duration = Duration::from_millis(100);
/// A moved first sequence is handed to the store for safekeeping at most
/// this often (it rides on a redb commit).
const FIRST_SEQ_SAVE: Duration = Duration::from_secs(1);
/// Segments are read this much at a time when the log is opened.
const SCAN_CHUNK: usize = 8 << 20;

/// One stored event, as the record the log holds:
/// `time_ms u64 LE | id_len u16 LE | id | subject_len u16 LE | subject | payload`.
#[derive(Clone, Debug)]
pub(super) struct StoredMessage {
    record: Bytes,
    /// Where the subject's length and the payload start in `record`.
    subject_at: usize,
    payload_at: usize,
}

impl StoredMessage {
    /// Starts a record: its time, id and subject; the payload is appended by
    /// the caller.
    pub(super) fn begin(out: &mut Vec<u8>, time_ms: u64, id: &str, subject: &str) {
        out.extend_from_slice(&time_ms.to_le_bytes());
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
        out.extend_from_slice(subject.as_bytes());
    }

    /// A whole record.
    #[cfg(test)]
    pub(super) fn encode(time_ms: u64, id: &str, subject: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + id.len() + subject.len() + payload.len());
        Self::begin(&mut out, time_ms, id, subject);
        out.extend_from_slice(payload);
        out
    }

    /// Reads a record; `None` when it is not one.
    pub(super) fn parse(record: Bytes) -> Option<Self> {
        let str_at = |at: usize| -> Option<usize> {
            let len = usize::from(u16::from_le_bytes(record.get(at..at + 2)?.try_into().ok()?));
            std::str::from_utf8(record.get(at + 2..at + 2 + len)?).ok()?;
            Some(at + 2 + len)
        };
        let subject_at = str_at(8)?;
        let payload_at = str_at(subject_at)?;
        Some(StoredMessage {
            record,
            subject_at,
            payload_at,
        })
    }

    /// Stands in for an event removed by retention before it was redelivered.
    pub(super) fn removed() -> Self {
        StoredMessage {
            record: Bytes::from_static(&[0; 12]),
            subject_at: 10,
            payload_at: 12,
        }
    }

    pub(super) fn time_ms(&self) -> u64 {
        u64::from_le_bytes(self.record[..8].try_into().unwrap_or_default())
    }

    pub(super) fn id(&self) -> &str {
        std::str::from_utf8(&self.record[10..self.subject_at]).unwrap_or_default()
    }

    pub(super) fn subject(&self) -> &str {
        std::str::from_utf8(&self.record[self.subject_at + 2..self.payload_at]).unwrap_or_default()
    }

    pub(super) fn payload(&self) -> &[u8] {
        &self.record[self.payload_at..]
    }

    fn size(&self) -> usize {
        self.record.len()
    }
}

/// A publish handed to the log writer: the event's id and its record, whose
/// time the writer sets.
pub(super) struct Append {
    pub id: String,
    pub record: Vec<u8>,
    pub reply: oneshot::Sender<Result<PublishAck>>,
}

/// One segment file and where its records are.
struct Segment {
    first_seq: u64,
    file: Arc<File>,
    path: PathBuf,
    /// Start of each record (of `first_seq + i`), then the end of the last.
    offsets: Vec<u32>,
    /// Time of each record, ms since the epoch.
    times: Vec<u64>,
}

impl Segment {
    fn count(&self) -> u64 {
        self.times.len() as u64
    }

    /// Sequence after the last record.
    fn end_seq(&self) -> u64 {
        self.first_seq + self.count()
    }

    fn len(&self) -> u64 {
        u64::from(self.offsets.last().copied().unwrap_or(0))
    }
}

/// What the writer and the readers share.
pub(super) struct Log {
    dir: PathBuf,
    /// The first sequence kept; everything before it is removed.
    pub first_seq: AtomicU64,
    /// The last durable sequence.
    pub last_seq: watch::Sender<u64>,
    segments: RwLock<VecDeque<Segment>>,
    /// The newest durable events, oldest first, consecutive.
    cache: RwLock<VecDeque<(u64, StoredMessage)>>,
}

impl Log {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.dir, e)
    }

    /// Events `from..=to` in order, at most `max`; sequences that were
    /// removed are skipped. Empty only when none of `from..=to` is stored.
    pub(super) fn read(&self, from: u64, to: u64, max: usize) -> Result<Vec<(u64, StoredMessage)>> {
        let mut from = from.max(self.first_seq.load(Ordering::Acquire));
        loop {
            if from > to || max == 0 {
                return Ok(Vec::new());
            }
            // The cache first: an event leaves it only after it is in the
            // index, so what is older than its front is found on disk.
            let cache_front = {
                let cache = read(&self.cache);
                match cache.front() {
                    Some(&(front, _)) if from >= front => {
                        let skip = usize::try_from(from - front).unwrap_or(usize::MAX);
                        return Ok(cache
                            .iter()
                            .skip(skip)
                            .take_while(|(seq, _)| *seq <= to)
                            .take(max)
                            .cloned()
                            .collect());
                    }
                    Some(&(front, _)) => front,
                    None => u64::MAX,
                }
            };
            let disk_to = to.min(cache_front - 1);
            let found = self.read_disk(from, disk_to, max)?;
            if !found.is_empty() || disk_to >= to {
                return Ok(found);
            }
            from = disk_to + 1;
        }
    }

    /// The first kept sequence stored at or after `ms` (ms since the
    /// epoch); the next sequence to be written when there is none.
    pub(super) fn seq_at_time(&self, ms: u64) -> u64 {
        let first = self.first_seq.load(Ordering::Acquire);
        let segments = read(&self.segments);
        for segment in segments.iter().filter(|s| s.end_seq() > first) {
            if segment.times.last().is_some_and(|t| *t >= ms) {
                let i = segment.times.partition_point(|t| *t < ms);
                return (segment.first_seq + i as u64).max(first);
            }
        }
        *self.last_seq.borrow() + 1
    }

    /// Reads the first stored events at or after `from`, up to `to`, from
    /// one segment.
    fn read_disk(&self, from: u64, to: u64, max: usize) -> Result<Vec<(u64, StoredMessage)>> {
        let (file, first, start, end) = {
            let segments = read(&self.segments);
            // The first segment that has anything at or after `from`.
            let i = segments.partition_point(|s| s.end_seq() <= from);
            let Some(segment) = segments.get(i) else {
                return Ok(Vec::new());
            };
            let first = from.max(segment.first_seq);
            if first > to {
                return Ok(Vec::new());
            }
            let last = to.min(segment.end_seq() - 1).min(first + max as u64 - 1);
            let at = |seq: u64| segment.offsets[usize::try_from(seq - segment.first_seq).unwrap_or(usize::MAX)];
            // Bounded reads: past the first record, at most BATCH_BYTES.
            let start = u64::from(at(first));
            let mut last = last;
            while last > first && u64::from(at(last + 1)) - start > BATCH_BYTES as u64 {
                last = first + (last - first) / 2;
            }
            (segment.file.clone(), first, start, u64::from(at(last + 1)))
        };
        let mut buf = vec![0; usize::try_from(end - start).map_err(|e| self.err(e))?];
        file.read_exact_at(&mut buf, start).map_err(|e| self.err(e))?;
        let bytes = Bytes::from(buf);
        let mut out = Vec::new();
        let mut at = 0;
        let mut broken = None;
        for (i, (seq, body)) in decode(&bytes).into_iter().enumerate() {
            let body_at = at + HEADER + 8;
            at = body_at + body.len();
            let message = StoredMessage::parse(bytes.slice(body_at..at));
            match message {
                Some(message) if seq == first + i as u64 => out.push((seq, message)),
                _ => {
                    broken = Some(first + i as u64);
                    break;
                }
            }
        }
        if out.is_empty() {
            broken = Some(first);
        }
        match broken {
            // Retention retired the segment while it was read (its file
            // may already hold other records): all of it is removed now.
            Some(_) if self.first_seq.load(Ordering::Acquire) > first => Ok(Vec::new()),
            Some(seq) if out.is_empty() => Err(self.err(format!("record {seq} could not be read back"))),
            _ => Ok(out),
        }
    }
}

/// The log writer: owns the sequence counter, the dedup window and the
/// active segment.
pub(super) struct LogWriter {
    log: Arc<Log>,
    config: EmbeddedConfig,
    store: Sender<Op>,
    last_seq: u64,
    dedup: HashMap<String, u64>,
    dedup_order: VecDeque<(u64, String)>,
    active: ActiveFile,
    buf: Vec<u8>,
    /// What the events in the log's cache count against `cache_bytes`.
    cache_bytes: usize,
    last_sync: Instant,
    next_age_check: Instant,
    first_seq_saved: (u64, Instant),
    spare: Spare,
}

/// The log and its writer, as opened.
pub(super) struct Opened {
    pub log: Arc<Log>,
    pub writer: LogWriter,
}

/// Opens the log under `config.dir`: scans the segments, rebuilds the index
/// and the dedup window, zeroes what follows the last whole record, and
/// creates the first segment when there is none. `saved_first` is the first
/// sequence the store last recorded.
pub(super) fn open(config: EmbeddedConfig, store: Sender<Op>, saved_first: u64) -> Result<Opened> {
    let dir = config.dir.join(EVENTS_DIR);
    let err = |e: &dyn std::fmt::Display| Error::store(&dir, e);
    std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
    let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .map_err(|e| err(&e))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let first = path.file_name()?.to_str()?.strip_suffix(".log")?.parse().ok()?;
            Some((first, path))
        })
        .collect();
    names.sort();

    let horizon = now_ms().saturating_sub(config.dedup_window.as_millis() as u64);
    let mut dedup = HashMap::new();
    let mut dedup_order = VecDeque::new();
    let mut segments = VecDeque::new();
    let mut expected: Option<u64> = None;
    for (first, path) in names {
        let file = File::open(&path).map_err(|e| err(&e))?;
        let segment = scan(file, first, &path, horizon, &mut dedup, &mut dedup_order)?;
        if let Some(expected) = expected
            && first != expected
        {
            tracing::warn!(
                expected,
                found = first,
                "embedded bus: events missing between two segments"
            );
        }
        expected = Some(segment.end_seq());
        segments.push_back(segment);
    }

    let last_seq = segments.back().map_or(0, |s| s.end_seq() - 1);
    if segments.is_empty() {
        let path = segment_path(&dir, last_seq + 1);
        file::create(&path)?;
        segments.push_back(Segment {
            first_seq: last_seq + 1,
            file: Arc::new(File::open(&path).map_err(|e| err(&e))?),
            path,
            offsets: vec![0],
            times: Vec::new(),
        });
    }
    // What follows the last whole record is zeros, a torn write, old records
    // of a reused file, or records of a batch that was never acknowledged;
    // appends go over it.
    let active = match segments.back() {
        Some(last) => ActiveFile::open(&last.path, last.len()).map_err(|e| err(&e))?,
        None => unreachable!("a segment was made above"),
    };
    let stored_from = segments.front().map_or(last_seq + 1, |s| s.first_seq);
    let first_seq = saved_first.max(stored_from).min(last_seq + 1);
    let log = Arc::new(Log {
        dir: dir.clone(),
        first_seq: AtomicU64::new(first_seq),
        last_seq: watch::Sender::new(last_seq),
        segments: RwLock::new(segments),
        cache: RwLock::new(VecDeque::new()),
    });
    let mut writer = LogWriter {
        log: log.clone(),
        config,
        store,
        last_seq,
        dedup,
        dedup_order,
        active,
        buf: Vec::new(),
        cache_bytes: 0,
        last_sync: Instant::now(),
        next_age_check: Instant::now(),
        first_seq_saved: (saved_first, Instant::now()),
        spare: Spare::start(&dir)?,
    };
    writer.enforce_retention(now_ms());
    Ok(Opened { log, writer })
}

/// Reads one segment's records: their offsets and times, and the ids still
/// in the dedup window. Stops at the first record that is torn, corrupt or
/// out of sequence.
fn scan(
    file: File,
    first_seq: u64,
    path: &Path,
    horizon: u64,
    dedup: &mut HashMap<String, u64>,
    dedup_order: &mut VecDeque<(u64, String)>,
) -> Result<Segment> {
    let err = |e: &dyn std::fmt::Display| Error::store(path, e);
    let file_len = file.metadata().map_err(|e| err(&e))?.len();
    let mut offsets = vec![0u32];
    let mut times = Vec::new();
    // Records of `chunk` start at `consumed`, which is `offset` in the file.
    let mut chunk = Vec::new();
    let mut consumed = 0usize;
    let mut offset = 0u64;
    let mut read_to = 0u64;
    loop {
        let pending = &chunk[consumed..];
        let need = match pending.get(..4) {
            Some(len) => HEADER + u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize,
            None => HEADER,
        };
        if offset + need as u64 > file_len {
            break; // a torn record, or the end
        }
        if pending.len() < need {
            // Keep at least one whole record in `chunk`.
            chunk.drain(..consumed);
            consumed = 0;
            let want = need
                .max(SCAN_CHUNK)
                .min(usize::try_from(file_len - read_to).unwrap_or(usize::MAX));
            let before = chunk.len();
            chunk.resize(before + want, 0);
            file.read_exact_at(&mut chunk[before..], read_to).map_err(|e| err(&e))?;
            read_to += want as u64;
            continue;
        }
        let Some((seq, body, size)) = decode_one(pending) else {
            break;
        };
        let expected = first_seq + times.len() as u64;
        if seq != expected {
            tracing::warn!(path = %path.display(), expected, found = seq, "embedded bus: segment ends at a record out of sequence");
            break;
        }
        let Some(message) = StoredMessage::parse(Bytes::copy_from_slice(body)) else {
            tracing::warn!(path = %path.display(), seq, "embedded bus: segment ends at a record that is not an event");
            break;
        };
        let time = message.time_ms();
        if time >= horizon {
            dedup.insert(message.id().to_owned(), seq);
            dedup_order.push_back((time, message.id().to_owned()));
        }
        times.push(time);
        consumed += size;
        offset += size as u64;
        offsets.push(u32::try_from(offset).map_err(|e| err(&e))?);
    }
    Ok(Segment {
        first_seq,
        file: Arc::new(file),
        path: path.to_owned(),
        offsets,
        times,
    })
}

impl LogWriter {
    /// Runs until every sender is gone.
    pub(super) fn run(mut self, rx: Receiver<Append>) {
        loop {
            let first = match rx.recv_timeout(IDLE_TICK) {
                Ok(append) => append,
                Err(RecvTimeoutError::Timeout) => {
                    self.enforce_retention(now_ms());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Group commit: a sync no sooner than `sync_interval` after the
            // previous one, so that under load each sync carries more events.
            let due = self.last_sync + self.config.sync_interval;
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
            }
            let mut bytes = first.record.len();
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch && bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(append) => {
                        bytes += append.record.len();
                        batch.push(append);
                    }
                    Err(_) => break,
                }
            }
            self.last_sync = Instant::now();
            self.log_batch(batch);
        }
    }

    /// Makes the batch's events durable, then visible, then answers.
    fn log_batch(&mut self, batch: Vec<Append>) {
        let now = now_ms();
        self.expire_dedup(now);
        let mut replies = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        let mut new_ids = Vec::new();
        let mut seq = self.last_seq;
        for Append { id, mut record, reply } in batch {
            if let Some(&stored) = self.dedup.get(&id) {
                replies.push((
                    reply,
                    PublishAck {
                        sequence: stored,
                        duplicate: true,
                    },
                ));
                continue;
            }
            if record.len() < 8 || record.len() > u32::MAX as usize - 1024 {
                let _ = reply.send(Err(self
                    .log
                    .err("event too large for the embedded bus (4 GiB at most)")));
                continue;
            }
            seq += 1;
            record[..8].copy_from_slice(&now.to_le_bytes());
            self.dedup.insert(id.clone(), seq);
            new_ids.push(id);
            replies.push((
                reply,
                PublishAck {
                    sequence: seq,
                    duplicate: false,
                },
            ));
            records.push((seq, Bytes::from(record)));
        }
        if records.is_empty() {
            for (reply, ack) in replies {
                let _ = reply.send(Ok(ack));
            }
            return;
        }
        let batch_bytes: usize = records.iter().map(|(_, r)| HEADER + 8 + r.len()).sum();
        // A new segment past `segment_bytes`, and also before the active
        // one would have to grow when a prepared one is waiting.
        let end = self.active.len + batch_bytes as u64;
        let rolled = if self.active.poisoned
            || (self.active.len > 0
                && (end > self.config.segment_bytes || (end > self.active.size && self.spare.is_ready())))
        {
            self.roll()
        } else {
            Ok(())
        };
        let written = rolled.and_then(|()| {
            self.buf.clear();
            let mut offsets = Vec::with_capacity(records.len());
            for (seq, record) in &records {
                encode_record(&mut self.buf, *seq, record);
                offsets.push(u32::try_from(self.active.len + self.buf.len() as u64).map_err(|e| self.log.err(e))?);
            }
            self.active.append(&self.buf).map_err(|e| self.log.err(e))?;
            Ok(offsets)
        });
        match written {
            Ok(offsets) => {
                self.last_seq = seq;
                for id in new_ids {
                    self.dedup_order.push_back((now, id));
                }
                let messages: Vec<(u64, StoredMessage)> = records
                    .into_iter()
                    .filter_map(|(seq, record)| Some((seq, StoredMessage::parse(record)?)))
                    .collect();
                {
                    let mut segments = write(&self.log.segments);
                    if let Some(active) = segments.back_mut() {
                        active.offsets.extend(offsets);
                        active.times.extend(std::iter::repeat_n(now, messages.len()));
                    }
                }
                {
                    let mut cache = write(&self.log.cache);
                    for (seq, message) in messages {
                        self.cache_bytes += message.size().max(CACHE_ENTRY_BYTES);
                        cache.push_back((seq, message));
                    }
                    while self.cache_bytes > self.config.cache_bytes && cache.len() > 1 {
                        if let Some((_, m)) = cache.pop_front() {
                            self.cache_bytes -= m.size().max(CACHE_ENTRY_BYTES);
                        }
                    }
                }
                self.log.last_seq.send_replace(seq);
                for (reply, ack) in replies {
                    // A publisher that went away no longer needs its answer.
                    let _ = reply.send(Ok(ack));
                }
                let now = now_ms();
                let over_count = self
                    .config
                    .max_msgs
                    .is_some_and(|max| self.last_seq + 1 - self.log.first_seq.load(Ordering::Relaxed) > max);
                if over_count || Instant::now() >= self.next_age_check {
                    self.enforce_retention(now);
                }
                // A spare once the active segment is half full: time enough
                // to make it, and for retention to offer one to reuse first.
                // A segment that was not prepared (the first of a new log)
                // grows with every append, and each of its syncs also
                // commits the file's new length, which costs about twice a
                // plain write: it gets a first-size spare at once, and the
                // log moves into it as soon as it is ready.
                let unprepared = self.active.size < FIRST_SEGMENT && self.config.segment_bytes >= FIRST_SEGMENT;
                if unprepared {
                    self.spare.prepare(None, FIRST_SEGMENT);
                } else if self.active.len >= self.active.size.max(FIRST_SEGMENT) / 2 {
                    let size = (2 * self.active.size).clamp(FIRST_SEGMENT, self.config.segment_bytes) + self.headroom();
                    self.spare.prepare(None, size.next_multiple_of(ZERO_CHUNK));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded bus: writing events failed");
                if self.active.poisoned {
                    tracing::error!(
                        "embedded bus: a failed write could not be erased; the next batch starts a new segment"
                    );
                }
                for id in new_ids {
                    self.dedup.remove(&id);
                }
                for (reply, ack) in replies {
                    // A duplicate of an event stored before is still stored;
                    // one of an event of this batch is not.
                    let result = if ack.duplicate && ack.sequence <= self.last_seq {
                        Ok(ack)
                    } else {
                        Err(e.to_store())
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Seals the active segment (cut to its records) and starts the next:
    /// the prepared spare when there is one, else an empty file.
    fn roll(&mut self) -> Result<()> {
        let first_seq = self.last_seq + 1;
        let path = segment_path(&self.log.dir, first_seq);
        if self.spare.take(&path).is_none() {
            file::create(&path)?;
        }
        let reader = Arc::new(File::open(&path).map_err(|e| self.log.err(e))?);
        let active = ActiveFile::open(&path, 0).map_err(|e| self.log.err(e))?;
        if let Err(e) = self.active.seal() {
            // What lies past its records reads as the end anyway.
            tracing::warn!(error = %e, "embedded bus: could not cut a sealed segment");
        }
        write(&self.log.segments).push_back(Segment {
            first_seq,
            file: reader,
            path,
            offsets: vec![0],
            times: Vec::new(),
        });
        self.active = active;
        Ok(())
    }

    /// Room past `segment_bytes` for the batch that crosses it.
    fn headroom(&self) -> u64 {
        (BATCH_BYTES as u64).min(self.config.segment_bytes)
    }

    /// Moves the first sequence past events beyond `max_msgs` and older than
    /// `max_age`, then deletes sealed segments that hold nothing after it.
    fn enforce_retention(&mut self, now: u64) {
        self.next_age_check = Instant::now() + AGE_CHECK;
        let log = self.log.clone();
        let mut first = log.first_seq.load(Ordering::Acquire);
        if let Some(max) = self.config.max_msgs {
            first = first.max((self.last_seq + 1).saturating_sub(max));
        }
        if let Some(max_age) = self.config.max_age {
            let horizon = now.saturating_sub(max_age.as_millis() as u64);
            let segments = read(&log.segments);
            for segment in segments.iter() {
                if segment.end_seq() <= first {
                    continue;
                }
                first = first.max(segment.first_seq);
                let skip = usize::try_from(first.saturating_sub(segment.first_seq)).unwrap_or(usize::MAX);
                let old = segment.times.iter().skip(skip).take_while(|t| **t < horizon).count();
                first += old as u64;
                if first < segment.end_seq() {
                    break;
                }
            }
        }
        if let Some(max_bytes) = self.config.max_bytes {
            first = first.max(first_within_bytes(&read(&log.segments), first, max_bytes));
        }
        let first = first.min(self.last_seq + 1);
        if first == log.first_seq.load(Ordering::Acquire) {
            return;
        }
        log.first_seq.store(first, Ordering::Release);
        let mut removed = Vec::new();
        {
            let mut segments = write(&log.segments);
            while segments.len() > 1 && segments.front().is_some_and(|s| s.end_seq() <= first) {
                removed.extend(segments.pop_front());
            }
        }
        {
            let mut cache = write(&log.cache);
            while cache.front().is_some_and(|(seq, _)| *seq < first) {
                if let Some((_, m)) = cache.pop_front() {
                    self.cache_bytes -= m.size().max(CACHE_ENTRY_BYTES);
                }
            }
        }
        for segment in removed {
            // The helper reuses one as the next spare, if it needs one; the
            // others are deleted.
            let size = (self.config.segment_bytes + self.headroom()).next_multiple_of(ZERO_CHUNK);
            self.spare.prepare(Some(segment.path), size);
        }
        // Recorded so a restart does not bring back events removed from a
        // segment that is still there.
        if self.first_seq_saved.1.elapsed() >= FIRST_SEQ_SAVE && self.store.send(Op::FirstSeq(first)).is_ok() {
            self.first_seq_saved = (first, Instant::now());
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

/// The first sequence, at or after `first`, from which the records of
/// `segments` take at most `max_bytes`.
fn first_within_bytes(segments: &VecDeque<Segment>, mut first: u64, max_bytes: u64) -> u64 {
    let offset = |s: &Segment, seq: u64| u64::from(s.offsets[usize::try_from(seq - s.first_seq).unwrap_or(usize::MAX)]);
    let kept: u64 = segments
        .iter()
        .filter(|s| s.end_seq() > first)
        .map(|s| s.len() - offset(s, first.max(s.first_seq)))
        .sum();
    let mut excess = kept.saturating_sub(max_bytes);
    for segment in segments {
        if excess == 0 {
            break;
        }
        if segment.end_seq() <= first {
            continue;
        }
        let start = first.max(segment.first_seq);
        let start_at = offset(segment, start);
        let rest = segment.len() - start_at;
        if excess >= rest {
            first = segment.end_seq();
            excess -= rest;
            continue;
        }
        let from = usize::try_from(start - segment.first_seq).unwrap_or(usize::MAX);
        let past = segment.offsets[from..].partition_point(|o| u64::from(*o) - start_at < excess);
        first = start + past as u64;
        excess = 0;
    }
    first
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // The first sequence as of now, whatever the rate limit held back.
        let first = self.log.first_seq.load(Ordering::Acquire);
        if first != self.first_seq_saved.0 {
            let _ = self.store.send(Op::FirstSeq(first));
        }
    }
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

    fn segment(first_seq: u64, sizes: &[u32]) -> Segment {
        let file = tempfile::tempfile().unwrap();
        let mut offsets = vec![0];
        for size in sizes {
            offsets.push(offsets.last().unwrap() + size);
        }
        Segment {
            first_seq,
            file: Arc::new(file),
            path: PathBuf::new(),
            offsets,
            times: vec![0; sizes.len()],
        }
    }

    #[test]
    fn retention_by_bytes_keeps_the_newest_that_fit() {
        // Sequences 1..=3 of 100 bytes each, then 4..=5 of 50.
        let segments: VecDeque<Segment> = [segment(1, &[100, 100, 100]), segment(4, &[50, 50])].into();
        assert_eq!(first_within_bytes(&segments, 1, 1000), 1);
        assert_eq!(first_within_bytes(&segments, 1, 400), 1);
        assert_eq!(first_within_bytes(&segments, 1, 399), 2);
        assert_eq!(first_within_bytes(&segments, 1, 200), 3);
        assert_eq!(first_within_bytes(&segments, 1, 100), 4);
        assert_eq!(first_within_bytes(&segments, 1, 60), 5);
        assert_eq!(first_within_bytes(&segments, 3, 100), 4);
        assert_eq!(first_within_bytes(&segments, 1, 0), 6);
    }

    #[test]
    fn stored_message_parts() {
        let record = StoredMessage::encode(42, "id-1", "argon.s.e", b"{\"n\":1}");
        let message = StoredMessage::parse(Bytes::from(record)).unwrap();
        assert_eq!(
            (message.time_ms(), message.id(), message.subject(), message.payload()),
            (42, "id-1", "argon.s.e", &b"{\"n\":1}"[..])
        );
        assert!(StoredMessage::parse(Bytes::from_static(b"short")).is_none());
        let removed = StoredMessage::removed();
        assert_eq!((removed.id(), removed.subject(), removed.payload()), ("", "", &b""[..]));
    }
}
