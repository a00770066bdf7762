//! The cache's index: one file of hints that make a run fast and its report precise.
//!
//! It holds the stat records of input files (so a no-op run reads no file), a record per module
//! of what its fingerprint was made of last time (to say *why* a module runs: which input, which
//! dependency), and the size and last use of each entry (to drop the least recently used when
//! the cache is over its size).
//!
//! Nothing in it decides whether an output is re-used: that is the fingerprint alone, computed
//! afresh, and the entry stored under it. So losing the index, or part of it, costs time and
//! precision, never correctness. That is what makes it safe to share between processes without
//! a lock: a run loads it once, works on its copy in memory, and writes it back at the end with
//! a rename; if another process wrote it meanwhile, the two are merged first (for each file,
//! module and entry, the newer record wins). Two runs that end at the same moment may still
//! lose one's records: the next run re-hashes those files, once.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::files::StatRecord;
use super::sealed::{seal, unseal, write_atomically, Corrupt};

/// The magic of an index file, with its format's version.
const MAGIC: &[u8; 8] = b"JPINDEX1";

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

/// An entry's size and last use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryUse {
    pub(crate) size: u64,
    /// Nanoseconds since the Unix epoch.
    pub(crate) last_used: i128,
}

/// The index's content, as stored.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct IndexData {
    pub(crate) files: HashMap<PathBuf, StatRecord>,
    pub(crate) modules: HashMap<String, ModuleRecord>,
    pub(crate) entries: HashMap<Digest, EntryUse>,
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
            let mine = self.entries.entry(digest).or_insert(theirs);
            mine.last_used = mine.last_used.max(theirs.last_used);
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
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(err) => Index {
                damaged: Some(err.to_string()),
                loaded,
                ..Index::default()
            },
        }
    }

    /// The stat record of the file at `path` (absolute).
    pub(crate) fn file(&self, path: &Path) -> Option<StatRecord> {
        self.data.lock().files.get(path).cloned()
    }

    pub(crate) fn record_file(&self, path: PathBuf, record: StatRecord) {
        self.data.lock().files.insert(path, record);
    }

    /// The record of module `name`'s last fingerprint.
    pub(crate) fn module(&self, name: &str) -> Option<ModuleRecord> {
        self.data.lock().modules.get(name).cloned()
    }

    pub(crate) fn record_module(&self, name: &str, record: ModuleRecord) {
        self.data.lock().modules.insert(name.to_owned(), record);
    }

    /// Notes that the entry under `fingerprint`, of `size` bytes, was written or used now.
    pub(crate) fn used(&self, fingerprint: Digest, size: u64) {
        let last_used = super::files::now();
        self.data
            .lock()
            .entries
            .insert(fingerprint, EntryUse { size, last_used });
    }

    /// Notes that the entry under `fingerprint` is gone.
    pub(crate) fn forget(&self, fingerprint: &Digest) {
        self.data.lock().entries.remove(fingerprint);
    }

    /// The sum of the sizes of the entries it knows.
    pub(crate) fn entries_size(&self) -> u64 {
        self.data.lock().entries.values().map(|e| e.size).sum()
    }

    /// Runs `f` on the content.
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
        ours.record_module("a", record(1));
        ours.record_module("b", record(5));
        let theirs = Index::load(&path);
        theirs.record_module("b", record(9));
        theirs.record_module("c", record(1));
        theirs.save(&path, dir.path()).unwrap();
        ours.save(&path, dir.path()).unwrap();
        let merged = Index::load(&path);
        assert_eq!(merged.module("a"), Some(record(1)));
        assert_eq!(merged.module("b"), Some(record(9)));
        assert_eq!(merged.module("c"), Some(record(1)));
        assert!(merged.damaged.is_none());
    }

    #[test]
    fn a_damaged_index_is_replaced_by_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let index = Index::load(&path);
        index.record_module("a", record(1));
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
