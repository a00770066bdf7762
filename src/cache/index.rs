//! The cache's index: one file of hints that make a run fast and its report precise.
//!
//! It holds the stat records of input files (so a no-op run reads no file), a record per module
//! of what its fingerprint was made of last time (to say *why* a module runs: which input, which
//! dependency), the size and last use of each entry (to drop the least recently used when the
//! cache is over its size), and the small entries themselves.
//!
//! **Small entries** (outputs of at most [`INLINE_MAX`] bytes once encoded: a number, a digest,
//! a path) are kept in the index rather than in a file each. A file per entry costs a file
//! creation and a rename when it is stored and an open and a read when it is used, which for a
//! graph of many small modules is most of the cost of caching; in the index, they cost a few
//! bytes of its one read and one write per run. They are covered by the index's checksum, and
//! written with it at the end of the run: a process killed before then loses them, and the
//! modules run again next time.
//!
//! Nothing else in it decides whether an output is re-used: that is the fingerprint alone,
//! computed afresh, and the entry stored under it. So losing the index, or part of it, costs
//! time and precision, never correctness. That is what makes it safe to share between processes without
//! a lock: a run loads it once, works on its copy in memory, and writes it back at the end with
//! a rename, if it changed anything; if another process wrote it meanwhile, the two are merged
//! first (for each file, module and entry, the newer record wins). Two runs that end at the
//! same moment may still lose one's records: the next run re-hashes those files, or runs those
//! modules, once. An entry's last use is written back at most once every [`USE_RESOLUTION`],
//! so that a run that changes nothing writes nothing.

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::files::StatRecord;
use super::sealed::{seal, unseal, write_atomically, Corrupt};

/// The magic of an index file, with its format's version.
const MAGIC: &[u8; 8] = b"JPINDEX2";

/// The largest entry kept in the index rather than in a file of its own; see the module docs.
pub(crate) const INLINE_MAX: usize = 256;

/// How stale an entry's recorded last use may be before a use writes it anew.
pub(crate) const USE_RESOLUTION: Duration = Duration::from_secs(3600);

/// What a module's fingerprint was made of when it was last computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ModuleRecord {
    pub(crate) fingerprint: Digest,
    pub(crate) version: String,
    /// The output type's name and the number of tasks.
    pub(crate) shape: (String, u64),
    /// Each declared input: its label (`file hello.c`) and digest.
    pub(crate) inputs: Vec<(String, Digest)>,
    /// Each dependency: its name and output digest.
    pub(crate) dependencies: Vec<(String, Digest)>,
    /// When this record was made, in nanoseconds since the Unix epoch (the newer wins a merge).
    pub(crate) at: i128,
}

/// An entry's size and last use, and its payload if it is small.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryUse {
    pub(crate) size: u64,
    /// Nanoseconds since the Unix epoch.
    pub(crate) last_used: i128,
    /// The payload of a small entry, kept here rather than in a file.
    pub(crate) inline: Option<Vec<u8>>,
}

/// A module's [`ModuleRecord`] as the index keeps it: the record itself is encoded, and
/// decoded only to explain a miss, so that loading the index costs one allocation per module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    fingerprint: Digest,
    /// `ModuleRecord::at`.
    at: i128,
    /// The `ModuleRecord`, encoded.
    record: Vec<u8>,
}

/// The index's content, as stored. Keys are digests (of a file's absolute path, of a module's
/// name, an entry's fingerprint), so that loading allocates no key.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct IndexData {
    pub(crate) files: HashMap<Digest, StatRecord, ByDigest>,
    pub(crate) modules: HashMap<Digest, StoredRecord, ByDigest>,
    pub(crate) entries: HashMap<Digest, EntryUse, ByDigest>,
}

/// Hashes a [`Digest`] key by its first bytes: they are random already.
pub(crate) type ByDigest = BuildHasherDefault<DigestKeyHasher>;

/// The [`Hasher`] of [`ByDigest`].
#[derive(Default)]
pub(crate) struct DigestKeyHasher(u64);

impl Hasher for DigestKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A digest is written whole (after its length, a constant); anything shorter is mixed
        // in, so that the hasher stays correct for any key.
        match bytes.get(..8) {
            Some(first) => {
                let mut word = [0; 8];
                word.copy_from_slice(first);
                self.0 ^= u64::from_le_bytes(word);
            }
            None => {
                for &byte in bytes {
                    self.0 = (self.0.rotate_left(8) ^ u64::from(byte))
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
                }
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The key of a module's record.
fn module_key(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

/// The key of a file's stat record.
fn file_key(path: &Path) -> Digest {
    Digest::of(path.as_os_str().as_encoded_bytes())
}

impl IndexData {
    /// Takes into `self` every record of `other` newer than its own.
    fn merge(&mut self, other: IndexData) {
        for (path, record) in other.files {
            match self.files.get(&path) {
                Some(mine) if mine.hashed_at >= record.hashed_at => {}
                _ => {
                    self.files.insert(path, record);
                }
            }
        }
        for (name, record) in other.modules {
            match self.modules.get(&name) {
                Some(mine) if mine.at >= record.at => {}
                _ => {
                    self.modules.insert(name, record);
                }
            }
        }
        for (digest, theirs) in other.entries {
            match self.entries.get_mut(&digest) {
                Some(mine) => {
                    mine.last_used = mine.last_used.max(theirs.last_used);
                    if mine.inline.is_none() {
                        mine.inline = theirs.inline;
                    }
                }
                None => {
                    self.entries.insert(digest, theirs);
                }
            }
        }
    }
}

/// What identifies one version of the index file on disk, to tell whether another process
/// wrote it since it was loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileVersion {
    len: u64,
    modified: i128,
    #[cfg(unix)]
    inode: u64,
}

fn file_version(path: &Path) -> Option<FileVersion> {
    let meta = fs::metadata(path).ok()?;
    Some(FileVersion {
        len: meta.len(),
        modified: meta.modified().map_or(0, super::files::nanos),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// A run's copy of the index, shared by the lookups on the pool's workers.
#[derive(Default)]
pub(crate) struct Index {
    data: Mutex<IndexData>,
    /// The file as loaded (`None`: there was none, or it was unreadable).
    loaded: Option<FileVersion>,
    /// Why the stored index could not be used, if it could not.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) damaged: Option<String>,
    /// It changed since it was loaded.
    dirty: AtomicBool,
}

impl Index {
    /// Loads the index at `path`; an empty one if there is none. A corrupt or unreadable index
    /// is replaced by an empty one (it holds only hints), and `damaged` says why.
    pub(crate) fn load(path: &Path) -> Index {
        let loaded = file_version(path);
        match read(path) {
            Ok(data) => Index {
                data: Mutex::new(data),
                loaded,
                damaged: None,
                dirty: AtomicBool::new(false),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => Index::default(),
            // Written anew at the end of the run, whatever it does.
            Err(err) => Index {
                damaged: Some(err.to_string()),
                loaded,
                dirty: AtomicBool::new(true),
                ..Index::default()
            },
        }
    }

    /// The stat record of the file at `path` (absolute).
    pub(crate) fn file(&self, path: &Path) -> Option<StatRecord> {
        let key = file_key(path);
        self.data.lock().files.get(&key).cloned()
    }

    pub(crate) fn record_file(&self, path: &Path, record: StatRecord) {
        let key = file_key(path);
        self.data.lock().files.insert(key, record);
        self.dirty.store(true, Relaxed);
    }

    /// The record of module `name`'s last fingerprint (`None` also if it cannot be decoded).
    pub(crate) fn module(&self, name: &str) -> Option<ModuleRecord> {
        let stored = self
            .data
            .lock()
            .modules
            .get(&module_key(name))?
            .record
            .clone();
        postcard::from_bytes(&stored).ok()
    }

    /// Records what module `name`'s fingerprint, `fingerprint`, is made of (`record`, called
    /// only if it is not the one recorded already).
    pub(crate) fn record_module(
        &self,
        name: &str,
        fingerprint: Digest,
        record: impl FnOnce() -> ModuleRecord,
    ) {
        let key = module_key(name);
        let data = self.data.lock();
        if data
            .modules
            .get(&key)
            .is_some_and(|known| known.fingerprint == fingerprint)
        {
            return;
        }
        drop(data);
        let record = record();
        let stored = StoredRecord {
            fingerprint,
            at: record.at,
            record: postcard::to_stdvec(&record).unwrap_or_default(),
        };
        self.data.lock().modules.insert(key, stored);
        self.dirty.store(true, Relaxed);
    }

    /// The payload of the small entry under `fingerprint`, if the index holds it; notes its
    /// use.
    pub(crate) fn inline(&self, fingerprint: &Digest) -> Option<Vec<u8>> {
        let mut data = self.data.lock();
        let entry = data.entries.get_mut(fingerprint)?;
        let payload = entry.inline.clone()?;
        self.touch(entry);
        Some(payload)
    }

    /// Keeps a small entry's payload under `fingerprint`.
    pub(crate) fn store_inline(&self, fingerprint: Digest, payload: Vec<u8>) {
        let entry = EntryUse {
            size: payload.len() as u64,
            last_used: super::files::now(),
            inline: Some(payload),
        };
        self.data.lock().entries.insert(fingerprint, entry);
        self.dirty.store(true, Relaxed);
    }

    /// Notes that the entry file under `fingerprint`, of `size` bytes, was written or used now.
    pub(crate) fn used(&self, fingerprint: Digest, size: u64) {
        let mut data = self.data.lock();
        match data.entries.get_mut(&fingerprint) {
            Some(entry) if entry.size == size => self.touch(entry),
            _ => {
                let last_used = super::files::now();
                let entry = EntryUse {
                    size,
                    last_used,
                    inline: None,
                };
                data.entries.insert(fingerprint, entry);
                self.dirty.store(true, Relaxed);
            }
        }
    }

    /// Notes a use of `entry` now, if its recorded last use is older than [`USE_RESOLUTION`].
    fn touch(&self, entry: &mut EntryUse) {
        let now = super::files::now();
        if now - entry.last_used > USE_RESOLUTION.as_nanos() as i128 {
            entry.last_used = now;
            self.dirty.store(true, Relaxed);
        }
    }

    /// Notes that the entry under `fingerprint` is gone.
    pub(crate) fn forget(&self, fingerprint: &Digest) {
        if self.data.lock().entries.remove(fingerprint).is_some() {
            self.dirty.store(true, Relaxed);
        }
    }

    /// The sum of the sizes of the entries it knows.
    pub(crate) fn entries_size(&self) -> u64 {
        self.data.lock().entries.values().map(|e| e.size).sum()
    }

    /// Runs `f` on the content (for reading: it does not make the index dirty).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut IndexData) -> R) -> R {
        f(&mut self.data.lock())
    }

    /// Writes the index to `path` (through `tmp`), merged first with whatever another process
    /// wrote there since it was loaded; see the module docs.
    ///
    /// # Errors
    ///
    /// An I/O error writing it.
    pub(crate) fn save(&self, path: &Path, tmp: &Path) -> io::Result<()> {
        if !self.dirty.load(Relaxed) {
            return Ok(());
        }
        let mut data = self.data.lock();
        if file_version(path) != self.loaded {
            if let Ok(theirs) = read(path) {
                data.merge(theirs);
            }
        }
        let payload = postcard::to_stdvec(&*data)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        drop(data);
        let (bytes, _) = seal(MAGIC, &payload);
        write_atomically(tmp, path, &bytes)
    }
}

/// Reads and checks the index file at `path`.
fn read(path: &Path) -> io::Result<IndexData> {
    let bytes = fs::read(path)?;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let (payload, _) = unseal(MAGIC, &bytes).map_err(|why: Corrupt| invalid(why.to_string()))?;
    postcard::from_bytes(payload).map_err(|err| invalid(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: i128) -> ModuleRecord {
        ModuleRecord {
            fingerprint: Digest::of(&at.to_le_bytes()),
            version: String::new(),
            shape: (String::new(), 1),
            inputs: Vec::new(),
            dependencies: Vec::new(),
            at,
        }
    }

    #[test]
    fn saves_load_and_a_concurrent_write_is_merged_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let ours = Index::load(&path);
        let put = |index: &Index, name, at| {
            index.record_module(name, record(at).fingerprint, || record(at))
        };
        put(&ours, "a", 1);
        put(&ours, "b", 5);
        let theirs = Index::load(&path);
        put(&theirs, "b", 9);
        put(&theirs, "c", 1);
        theirs.save(&path, dir.path()).unwrap();
        ours.save(&path, dir.path()).unwrap();
        let merged = Index::load(&path);
        assert_eq!(merged.module("a"), Some(record(1)));
        assert_eq!(merged.module("b"), Some(record(9)));
        assert_eq!(merged.module("c"), Some(record(1)));
        assert_eq!(merged.data.lock().modules.len(), 3);
        assert!(merged.damaged.is_none());
    }

    #[test]
    fn small_entries_are_kept_and_a_run_that_changes_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let index = Index::load(&path);
        let fingerprint = Digest::of(b"module");
        index.store_inline(fingerprint, b"output".to_vec());
        index.record_module("a", record(1).fingerprint, || record(1));
        index.save(&path, dir.path()).unwrap();

        let again = Index::load(&path);
        assert_eq!(again.inline(&fingerprint), Some(b"output".to_vec()));
        assert_eq!(again.inline(&Digest::of(b"other")), None);
        again.record_module("a", record(1).fingerprint, || {
            unreachable!("recorded already")
        });
        assert!(!again.dirty.load(Relaxed));
        fs::remove_file(&path).unwrap();
        again.save(&path, dir.path()).unwrap();
        assert!(!path.exists(), "an index that did not change was written");
    }

    #[test]
    fn a_damaged_index_is_replaced_by_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let index = Index::load(&path);
        index.record_module("a", record(1).fingerprint, || record(1));
        index.save(&path, dir.path()).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let reloaded = Index::load(&path);
        assert_eq!(reloaded.module("a"), None);
        assert!(reloaded.damaged.unwrap().contains("checksum"));
    }
}
