//! The log's on-disk format: segment files named after their first
//! sequence, holding framed, checksummed records. Shared by the log and the
//! one-shot migration of the older layout (`legacy`).

use std::path::{Path, PathBuf};

/// Length and CRC-32 of a record, before its sequence and body.
pub(super) const HEADER: usize = 8;

/// The segment file whose first record has sequence `first_seq`.
pub(super) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
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

/// The record at the start of `bytes`: `(seq, record, bytes it takes)`;
/// `None` when it is torn, corrupt, or zeros.
pub(super) fn decode_one(bytes: &[u8]) -> Option<(u64, &[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(HEADER..HEADER + len)?;
    if len < 8 || crc32fast::hash(body) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(body[..8].try_into().ok()?);
    Some((seq, &body[8..], HEADER + len))
}

/// Splits bytes into `(seq, record)` pairs, stopping at the first torn or
/// corrupt record (or the zeros past the last one).
pub(super) fn decode(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((seq, record, size)) = decode_one(rest) {
        out.push((seq, record));
        rest = &rest[size..];
    }
    out
}
