//! A destination's disk spool: encoded batches the destination could not take (with
//! `spool_mode = "always"`, every batch not yet taken), one file each, kept until it takes
//! them, across outages, restarts and crashes.
//!
//! A file is named `{unix_nanos:020}-{seq:010}[h{half}]-{records}r-{spans}s.{encoding}.batch`,
//! so names sort oldest first and carry what a resend and the counters need; the body is exactly the
//! encoded export the sink sends (compression is the sink's, applied at send time). Files are
//! written under a hidden temporary name and renamed, so a crash or a cancelled worker never
//! leaves a partial batch behind.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::deliver::stats::{Counters, DropReason};
use crate::destinations::Encoding;

const EXTENSION: &str = ".batch";
const TEMP_EXTENSION: &str = ".tmp";
/// Temporary files older than this at start are leftovers of a crash, not writes in progress.
const STALE_TEMP: Duration = Duration::from_secs(60);
/// I/O failures of the same kind are logged at most this often; `last_error` has every one.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Where a destination spools and how much it may keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The destination's own directory, `<spool_dir>/<sanitized name>`.
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl SpoolSettings {
    pub fn new(spool_dir: &Path, destination: &str, max_bytes: u64) -> Self {
        Self {
            dir: spool_dir.join(dir_name(destination)),
            max_bytes,
        }
    }
}

/// A destination name as a directory name: kept when it is already safe, otherwise made
/// safe and suffixed with a short hash of the real name, so two names never share a spool.
pub fn dir_name(destination: &str) -> String {
    let clean: String = destination
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == destination && !clean.starts_with('.') && !clean.is_empty() {
        return clean;
    }
    let digest = Sha256::digest(destination.as_bytes());
    format!(
        "{}-{}",
        clean.trim_start_matches('.'),
        hex::encode(&digest[..4])
    )
}

/// One spooled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub place: Place,
    pub size: u64,
    pub records: u64,
    pub spans: usize,
    /// `None` when the file names an encoding this build does not know.
    pub encoding: Option<Encoding>,
}

fn encoding_tag(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "json",
        Encoding::Protobuf => "protobuf",
    }
}

/// Where a batch stands in the queue: when it was spooled, then which half of a batch that
/// was split. `half` is the path from the whole, `0` for a first half and `1` for a second,
/// so the leaves of one split sort in order between the batches around the whole: no leaf's
/// path is a prefix of another's, and `-` sorts before both digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    nanos: u128,
    seq: u64,
    half: String,
}

impl Place {
    fn half(&self, which: char) -> Self {
        let mut half = self.clone();
        half.half.push(which);
        half
    }

    fn parse(text: &str) -> Option<(Self, &str)> {
        let (nanos, rest) = text.split_once('-')?;
        let (seq, rest) = rest.split_once('-')?;
        let (seq, half) = match seq.split_once('h') {
            Some((seq, half))
                if !half.is_empty() && half.bytes().all(|b| b == b'0' || b == b'1') =>
            {
                (seq, half)
            }
            Some(_) => return None,
            None => (seq, ""),
        };
        let place = Self {
            nanos: nanos.parse().ok()?,
            seq: seq.parse().ok()?,
            half: half.to_owned(),
        };
        Some((place, rest))
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:020}-{:010}", self.nanos, self.seq)?;
        if !self.half.is_empty() {
            write!(f, "h{}", self.half)?;
        }
        Ok(())
    }
}

impl Entry {
    fn file_name(place: &Place, records: u64, spans: usize, encoding: Encoding) -> String {
        format!(
            "{place}-{records}r-{spans}s.{}{EXTENSION}",
            encoding_tag(encoding)
        )
    }

    /// Reads what a file name says; `None` for anything that is not a spooled batch.
    fn parse(name: &str, size: u64) -> Option<Self> {
        if name.starts_with('.') {
            return None;
        }
        let stem = name.strip_suffix(EXTENSION)?;
        let (stem, tag) = stem.rsplit_once('.')?;
        let (place, rest) = Place::parse(stem)?;
        let (records, spans) = rest.split_once('-')?;
        let records: u64 = records.strip_suffix('r')?.parse().ok()?;
        let spans: usize = spans.strip_suffix('s')?.parse().ok()?;
        let encoding = match tag {
            "json" => Some(Encoding::Json),
            "protobuf" => Some(Encoding::Protobuf),
            _ => None,
        };
        Some(Self {
            name: name.to_owned(),
            place,
            size,
            records,
            spans,
            encoding,
        })
    }
}

#[derive(Debug, Default)]
struct Index {
    /// By name, hence oldest first.
    files: BTreeMap<String, Entry>,
    bytes: u64,
}

/// What became of a batch handed to [`Spool::store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// On disk; its records are resolved and counted as spooled.
    Spooled(Entry),
    /// Larger than the whole spool; nothing was written or evicted.
    TooLarge,
    /// Shutdown already counted its records as lost; nothing was written.
    Abandoned,
}

/// One half of a spooled batch that the destination refused as too large.
#[derive(Debug)]
pub(crate) struct Half {
    pub body: Vec<u8>,
    pub records: u64,
    pub spans: usize,
}

/// The worker's and the pipeline handle's shared account of unresolved records. The lock is
/// held while a spooled batch is committed and while shutdown counts what is lost, so a
/// record is counted exactly once even when the worker is cancelled mid-write.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    pub pending: Arc<AtomicU64>,
    /// Set by shutdown once it counted the pending records as lost.
    pub abandoned: Arc<Mutex<bool>>,
}

pub(crate) struct Spool {
    settings: SpoolSettings,
    index: Arc<Mutex<Index>>,
    /// The batch being sent from the spool right now. With `spool_mode = "always"` batches
    /// are written while it is out, and eviction spares it while anything else can go, so a
    /// batch is not counted as dropped and then delivered.
    sending: Arc<Mutex<Option<String>>>,
    seq: AtomicU64,
    counters: Arc<Counters>,
    warned: Mutex<BTreeMap<&'static str, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}

impl Spool {
    pub(crate) fn new(settings: SpoolSettings, counters: Arc<Counters>) -> Self {
        Self {
            settings,
            index: Arc::new(Mutex::new(Index::default())),
            sending: Arc::new(Mutex::new(None)),
            seq: AtomicU64::new(0),
            counters,
            warned: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.index).files.is_empty()
    }

    pub(crate) fn oldest(&self) -> Option<Entry> {
        lock(&self.index).files.values().next().cloned()
    }

    /// Marks the batch being sent (`None` once it is done); see `sending`.
    pub(crate) fn sending(&self, entry: Option<&Entry>) {
        *lock(&self.sending) = entry.map(|e| e.name.clone());
    }

    /// Rebuilds the index from the directory: batches of an earlier run, or of the previous
    /// pipeline of this destination that spooled while this one started. At `start`,
    /// temporary files a crash left behind are removed.
    pub(crate) async fn rescan(&self, start: bool) -> io::Result<()> {
        let dir = self.settings.dir.clone();
        let index = self.index.clone();
        let counters = self.counters.clone();
        blocking(move || {
            let read = match std::fs::read_dir(&dir) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    *lock(&index) = Index::default();
                    counters.spool_size(0, 0);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let mut fresh = Index::default();
            for item in read {
                let item = item?;
                let Ok(name) = item.file_name().into_string() else {
                    continue;
                };
                let Ok(meta) = item.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                if start && name.starts_with('.') && name.ends_with(TEMP_EXTENSION) {
                    let stale = meta
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age >= STALE_TEMP);
                    if stale {
                        let _ = std::fs::remove_file(item.path());
                    }
                    continue;
                }
                if let Some(entry) = Entry::parse(&name, meta.len()) {
                    fresh.bytes += entry.size;
                    fresh.files.insert(name, entry);
                }
            }
            counters.spool_size(fresh.files.len() as u64, fresh.bytes);
            *lock(&index) = fresh;
            Ok(())
        })
        .await
    }

    /// Writes one encoded batch, evicting the oldest batches if the spool would outgrow its
    /// bound. On success the batch's records leave `ledger.pending` in the same critical
    /// section as the rename, unless shutdown already counted them lost; either way each
    /// record is counted once, even if the caller is cancelled while this runs.
    pub(crate) async fn store(
        &self,
        body: bytes::Bytes,
        records: u64,
        spans: usize,
        encoding: Encoding,
        ledger: &Ledger,
    ) -> io::Result<Stored> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let place = Place {
            nanos,
            seq: self.seq.fetch_add(1, Relaxed),
            half: String::new(),
        };
        let name = Entry::file_name(&place, records, spans, encoding);
        let entry = Entry {
            name: name.clone(),
            place,
            size: body.len() as u64,
            records,
            spans,
            encoding: Some(encoding),
        };
        let dir = self.settings.dir.clone();
        let max_bytes = self.settings.max_bytes;
        let index = self.index.clone();
        let counters = self.counters.clone();
        let ledger = ledger.clone();
        let spared = lock(&self.sending).clone();
        blocking(move || {
            if entry.size > max_bytes {
                return Ok(Stored::TooLarge);
            }
            std::fs::create_dir_all(&dir)?;
            let temp = dir.join(format!(".{name}{TEMP_EXTENSION}"));
            let written = std::fs::File::create(&temp).and_then(|mut f| {
                f.write_all(&body)?;
                f.sync_data()
            });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
            let mut index = lock(&index);
            let mut evicted = 0u64;
            while index.bytes + entry.size > max_bytes {
                let victim = index
                    .files
                    .keys()
                    .find(|name| Some(name.as_str()) != spared.as_deref())
                    .or_else(|| index.files.keys().next())
                    .cloned();
                let Some((old_name, old)) = victim.and_then(|v| index.files.remove_entry(&v))
                else {
                    break;
                };
                index.bytes = index.bytes.saturating_sub(old.size);
                match std::fs::remove_file(dir.join(&old_name)) {
                    Ok(()) => evicted += old.records,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %old_name, error = %e, "spool: could not delete the oldest batch");
                    }
                }
            }
            counters.dropped(DropReason::SpoolFull, evicted);
            let abandoned = lock(&ledger.abandoned);
            let outcome = if *abandoned {
                let _ = std::fs::remove_file(&temp);
                Stored::Abandoned
            } else {
                if let Err(e) = std::fs::rename(&temp, dir.join(&name)) {
                    let _ = std::fs::remove_file(&temp);
                    counters.spool_size(index.files.len() as u64, index.bytes);
                    return Err(e);
                }
                index.bytes += entry.size;
                index.files.insert(name, entry.clone());
                ledger.pending.fetch_sub(records, Relaxed);
                counters.spooled(spans as u64);
                Stored::Spooled(entry)
            };
            drop(abandoned);
            counters.spool_size(index.files.len() as u64, index.bytes);
            Ok(outcome)
        })
        .await
    }

    /// Puts the two halves of `entry` in its place, so they are replayed next, the first half
    /// first. Both halves are on disk before the whole goes, so a crash in between
    /// can resend spans but never loses them. The records were resolved when the whole was
    /// spooled, so the ledger is not touched; on failure the whole stays as it was. Returns
    /// the halves' entries, first half first.
    pub(crate) async fn split(&self, entry: &Entry, halves: [Half; 2]) -> io::Result<[Entry; 2]> {
        let dir = self.settings.dir.clone();
        let index = self.index.clone();
        let counters = self.counters.clone();
        let whole = entry.clone();
        let encoding = entry
            .encoding
            .ok_or_else(|| io::Error::other("a batch of unknown encoding cannot be split"))?;
        blocking(move || {
            let mut written: Vec<(PathBuf, Entry)> = Vec::with_capacity(2);
            let discard = |written: &[(PathBuf, Entry)], placed: bool| {
                for (temp, half) in written {
                    let _ = std::fs::remove_file(temp);
                    if placed {
                        let _ = std::fs::remove_file(dir.join(&half.name));
                    }
                }
            };
            for (half, which) in halves.into_iter().zip(['0', '1']) {
                let place = whole.place.half(which);
                let name = Entry::file_name(&place, half.records, half.spans, encoding);
                let temp = dir.join(format!(".{name}{TEMP_EXTENSION}"));
                let entry = Entry {
                    name,
                    place,
                    size: half.body.len() as u64,
                    records: half.records,
                    spans: half.spans,
                    encoding: Some(encoding),
                };
                written.push((temp.clone(), entry));
                let result = std::fs::File::create(&temp).and_then(|mut f| {
                    f.write_all(&half.body)?;
                    f.sync_data()
                });
                if let Err(e) = result {
                    discard(&written, false);
                    return Err(e);
                }
            }
            let mut index = lock(&index);
            for (temp, half) in &written {
                if let Err(e) = std::fs::rename(temp, dir.join(&half.name)) {
                    discard(&written, true);
                    return Err(e);
                }
            }
            match std::fs::remove_file(dir.join(&whole.name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    discard(&written, true);
                    return Err(e);
                }
                _ => {}
            }
            if index.files.remove(&whole.name).is_some() {
                index.bytes = index.bytes.saturating_sub(whole.size);
            }
            for (_, half) in &written {
                index.bytes += half.size;
                index.files.insert(half.name.clone(), half.clone());
            }
            counters.spool_size(index.files.len() as u64, index.bytes);
            let mut entries = written.into_iter().map(|(_, half)| half);
            match (entries.next(), entries.next()) {
                (Some(first), Some(second)) => Ok([first, second]),
                _ => Err(io::Error::other("a split wrote fewer than two halves")),
            }
        })
        .await
    }

    pub(crate) async fn read(&self, entry: &Entry) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.settings.dir.join(&entry.name)).await
    }

    /// Deletes a batch and forgets it, even when the file cannot be deleted (it is then
    /// found again at the next rescan).
    pub(crate) async fn remove(&self, entry: &Entry) -> io::Result<()> {
        let path = self.settings.dir.join(&entry.name);
        let result = match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        self.forget(entry);
        result
    }

    /// Drops a batch from the index without touching the disk.
    pub(crate) fn forget(&self, entry: &Entry) {
        let mut index = lock(&self.index);
        if index.files.remove(&entry.name).is_some() {
            index.bytes = index.bytes.saturating_sub(entry.size);
        }
        self.counters
            .spool_size(index.files.len() as u64, index.bytes);
    }

    /// Records a spool I/O failure as the destination's last error, logging each kind of
    /// failure at most once a minute.
    pub(crate) fn io_error(&self, destination: &str, what: &'static str, error: &io::Error) {
        let message = format!("spool {what} failed: {error}");
        self.counters.set_last_error(message.clone());
        let now = Instant::now();
        let mut warned = lock(&self.warned);
        let due = warned
            .get(what)
            .is_none_or(|at| now.duration_since(*at) >= WARN_EVERY);
        if due {
            warned.insert(what, now);
            tracing::warn!(destination = %destination, dir = %self.settings.dir.display(), error = %message, "disk spool failure");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn place(nanos: u128, seq: u64) -> Place {
        Place {
            nanos,
            seq,
            half: String::new(),
        }
    }

    #[test]
    fn names_sort_by_time_and_parse_back() {
        let a = Entry::file_name(&place(1_700_000_000_000_000_000, 9), 3, 6, Encoding::Json);
        let b = Entry::file_name(
            &place(1_700_000_000_000_000_001, 0),
            1,
            2,
            Encoding::Protobuf,
        );
        assert!(a < b);
        let e = Entry::parse(&a, 42).unwrap();
        assert_eq!(
            (e.records, e.spans, e.size, e.encoding),
            (3, 6, 42, Some(Encoding::Json))
        );
        assert_eq!(
            Entry::parse(&b, 1).unwrap().encoding,
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Entry::parse(&a.replace("json", "avro"), 1)
                .unwrap()
                .encoding,
            None
        );
        assert!(Entry::parse(&format!(".{a}.tmp"), 1).is_none());
        assert!(Entry::parse("notes.txt", 1).is_none());
        assert!(Entry::parse("x-1-2r-3s.json.batch", 1).is_none());
    }

    #[test]
    fn the_halves_of_a_split_batch_sort_in_its_place() {
        let whole = place(1_700_000_000_000_000_000, 7);
        let name = |p: &Place, records, spans| Entry::file_name(p, records, spans, Encoding::Json);
        let before = name(&place(1_700_000_000_000_000_000, 6), 1, 1);
        let after = name(&place(1_700_000_000_000_000_000, 8), 1, 1);
        let later = name(&place(1_700_000_000_000_000_001, 0), 1, 1);
        // The whole split in two, then its first half split again, with counts that would
        // reorder the names if they were compared before the place.
        let first = whole.half('0');
        let leaves = [
            name(&first.half('0'), 9, 90),
            name(&first.half('1'), 0, 1),
            name(&whole.half('1'), 1, 2),
        ];
        let mut sorted = vec![later.clone(), leaves[2].clone(), after.clone()];
        sorted.extend([leaves[1].clone(), before.clone(), leaves[0].clone()]);
        sorted.sort();
        let mut expected = vec![before];
        expected.extend(leaves.iter().cloned());
        expected.extend([after, later]);
        assert_eq!(sorted, expected);
        for leaf in &leaves {
            let entry = Entry::parse(leaf, 1).unwrap();
            assert_eq!(
                &Entry::file_name(&entry.place, entry.records, entry.spans, Encoding::Json),
                leaf
            );
        }
        assert_eq!(Entry::parse(&leaves[0], 1).unwrap().place, first.half('0'));
        let bad_half = leaves[2].replace("h1-", "h2-");
        assert!(Entry::parse(&bad_half, 1).is_none());
        assert!(Entry::parse(&leaves[2].replace("h1-", "h-"), 1).is_none());
    }

    #[test]
    fn destination_names_become_safe_distinct_directories() {
        assert_eq!(dir_name("sentry-prod_1.eu"), "sentry-prod_1.eu");
        let a = dir_name("a/b");
        let b = dir_name("a_b");
        assert!(a.starts_with("a_b-") && a != b, "{a}");
        assert!(!dir_name("..").starts_with('.'));
        assert!(!dir_name("../etc").contains('/'));
    }
}
