//! The cache of a graph's module outputs, for incremental runs (feature `cache`).
//!
//! A module that opts in ([`Dag::cached_module`](crate::Dag::cached_module)) has a
//! *fingerprint*: the BLAKE3 digest of its name, its version string, its output type and number
//! of tasks, its declared inputs (values, environment variables, files and directories by
//! content) and the digests of its dependencies' outputs. A run with a cache
//! ([`RunOptions::cache`](crate::RunOptions::cache)) looks the fingerprint up; if an entry is
//! stored under it, the module's output is read from it and its tasks do not run. Otherwise
//! the module runs, and its output is stored under the fingerprint. The digest of a module's
//! output is what its dependents' fingerprints contain, so a module that runs again and
//! produces the same output does not make them run (*early cutoff*).
//!
//! # Choices, and why
//!
//! - **Content, not time.** Timestamps say when a file was written, not whether it changed:
//!   clocks differ between machines, a checkout or a copy touches files without changing them,
//!   and a clock that steps back hides a change. A fingerprint is the same exactly when its
//!   inputs are. Reading every input on every run would cost as much as reading the tree, so a
//!   file's digest is re-used while `stat` says the file is unchanged, with git's guard
//!   against racy timestamps (`files.rs`).
//! - **BLAKE3**, for inputs, fingerprints and checksums. A fingerprint that two different
//!   inputs shared would re-use a wrong output, silently; a cryptographic hash rules that out
//!   even for inputs made to collide, which a fast non-cryptographic hash (xxHash) does not. It
//!   costs little: BLAKE3 hashes faster than 1 GB/s on one core (BENCHMARKS.md), and a no-op
//!   run reads no file.
//! - **A directory of files written by rename, not SQLite.** Each entry (but the small ones,
//!   below) is one file named by its fingerprint (`entries/ab/ab12…`), written to `tmp/` and renamed into place (as the
//!   `cacache` crate and git's object store do), and sealed by a checksum (`sealed.rs`). Two
//!   processes may run graphs on one cache at once with no lock: they write entries under
//!   names that say what is in them, and a rename is atomic. A process killed during a write
//!   leaves a temporary file, never a half-written entry; a damaged entry fails its checksum
//!   and the module runs again. SQLite in WAL mode would give the same guarantees through a
//!   C library and a schema, for data that is a map from digest to bytes.
//! - **postcard** for outputs: serde's compact binary format (no field names, varint
//!   integers), so an output of a few numbers takes a few bytes.
//! - **One index file** (`index.rs`): stat records, what each module's fingerprint was made of
//!   last time (to say why it runs), when each entry was last used (to drop the least recently
//!   used first), and the small entries (at most 256 bytes: a number, a digest, a path), which
//!   would cost more as files of their own than they hold. It is loaded once per run, and
//!   written once at its end if anything changed, merged with what other processes wrote
//!   meanwhile. Losing it costs time (files are hashed again, small outputs computed again),
//!   never correctness.
//!
//! # Failures
//!
//! - A directory that cannot be created or written is an error of [`Cache::open`]: a run never
//!   starts with a cache it cannot use.
//! - An entry that cannot be written during a run (a full disk) does not fail the run: the
//!   module ran, its output is used, and its [`CacheStatus`] says it was not stored. If the
//!   index cannot be written at the end of the run, the modules whose small outputs it was to
//!   keep say so the same way.
//! - An entry that fails its checksum or cannot be decoded is not used: the module runs again
//!   (its status says why) and the entry is replaced.
//! - An unreadable index is replaced by an empty one.

mod digest;
mod files;
mod index;
mod sealed;
mod status;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use digest::{Digest, DigestWriter, HashInto};
pub(crate) use files::{dir_digest, file_digest, now};
pub(crate) use index::{Index, ModuleRecord, INLINE_MAX};
pub(crate) use sealed::Corrupt;
pub use status::{CacheStatus, Explanation, Plan, RunReason};

/// The magic of an entry file, with its format's version.
const ENTRY_MAGIC: &[u8; 8] = b"JPENTRY1";

/// The environment variable that names the default cache directory.
pub const CACHE_DIR_VAR: &str = "JOBPOOL_CACHE_DIR";

/// The default bound on a cache's size: 1 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// How old a temporary file must be for [`Cache::prune`] to take it for abandoned (by a process
/// killed while writing) and remove it.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// A cache directory of module outputs, for incremental runs of a [`Dag`](crate::Dag); see
/// [`RunOptions::cache`](crate::RunOptions::cache).
///
/// It is bounded in size ([`DEFAULT_MAX_SIZE`] unless set): after a run that leaves it larger,
/// the least recently used entries are removed until it fits. Any number of threads and
/// processes may use one cache directory at once.
///
/// # Examples
///
/// ```
/// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
///
/// # let dir = tempfile::tempdir()?;
/// let cache = Cache::open(dir.path().join("cache"))?.with_max_size(64 << 20);
/// let mut dag = Dag::new();
/// dag.cached_module("answer", 1, [|_: &Context| -> TaskResult<u32> { Ok(42) }])?.version("1");
///
/// let pool = Pool::new(2);
/// let first = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
/// let second = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
/// assert!(!first.module("answer").unwrap().cache_status().is_hit());
/// assert!(second.module("answer").unwrap().cache_status().is_hit()); // read, not run
/// assert_eq!(second.output::<u32>("answer")?, [42]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    shared: Arc<CacheDir>,
}

/// The paths and bound of a cache.
struct CacheDir {
    root: PathBuf,
    max_size: u64,
}

/// What [`Cache::prune`] removed.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let cache = jobpool::Cache::open(dir.path())?;
/// let pruned = cache.prune()?;
/// assert_eq!((pruned.entries_removed, pruned.bytes_freed), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Pruned {
    /// Entries removed, least recently used first.
    pub entries_removed: usize,
    /// Their size in bytes.
    pub bytes_freed: u64,
    /// Abandoned temporary files removed (left by processes killed while writing).
    pub temporary_files_removed: usize,
    /// The size of the entries left.
    pub bytes_kept: u64,
}

/// An operation on a cache directory failed.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let file = dir.path().join("a-file");
/// std::fs::write(&file, "not a directory")?;
/// let err = jobpool::Cache::open(&file).err().unwrap();
/// assert!(err.to_string().starts_with("cannot open the cache directory"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CacheError {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl CacheError {
    fn new(action: &'static str, path: &Path, source: io::Error) -> CacheError {
        CacheError {
            action,
            path: path.to_owned(),
            source,
        }
    }

    /// The path the operation failed on.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let file = dir.path().join("f");
    /// # std::fs::write(&file, "")?;
    /// let err = jobpool::Cache::open(&file).err().unwrap();
    /// assert!(err.path().starts_with(&file));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the I/O error behind it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let file = dir.path().join("f");
    /// # std::fs::write(&file, "")?;
    /// let err = jobpool::Cache::open(&file).err().unwrap();
    /// assert_ne!(err.kind(), std::io::ErrorKind::NotFound);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} the cache directory {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for CacheError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Cache {
    /// Opens the cache in directory `dir`, creating it if needed, and checks that it can be
    /// written.
    ///
    /// # Errors
    ///
    /// If the directory cannot be created, or a file cannot be written in it (a read-only file
    /// system, no permission, a full disk): then no run uses it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let cache = jobpool::Cache::open(dir.path().join("build-cache"))?;
    /// assert!(cache.dir().ends_with("build-cache"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Cache, CacheError> {
        let root = dir.as_ref().to_owned();
        let cache = Cache {
            shared: Arc::new(CacheDir {
                root,
                max_size: DEFAULT_MAX_SIZE,
            }),
        };
        for dir in [cache.tmp_dir(), cache.entries_dir()] {
            fs::create_dir_all(&dir).map_err(|err| CacheError::new("open", &dir, err))?;
        }
        // Prove it can be written, as every run will, under a name of its own, so that threads
        // and processes opening the cache at once do not meet.
        let probe = sealed::temporary_name(&cache.tmp_dir()).with_extension("probe");
        sealed::write_atomically(&cache.tmp_dir(), &probe, b"probe")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|err| CacheError::new("open", &cache.tmp_dir(), err))?;
        Ok(cache)
    }

    /// Opens the cache in [`default_dir`](Self::default_dir).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// std::env::set_var(jobpool::CACHE_DIR_VAR, dir.path());
    /// assert_eq!(jobpool::Cache::open_default()?.dir(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_default() -> Result<Cache, CacheError> {
        Cache::open(Cache::default_dir())
    }

    /// The default cache directory: the one named by the environment variable
    /// [`CACHE_DIR_VAR`] (`JOBPOOL_CACHE_DIR`) if it is set, or else `.jobpool-cache` in the
    /// current directory, next to the project, as `target/` is for Cargo.
    ///
    /// # Examples
    ///
    /// ```
    /// std::env::remove_var(jobpool::CACHE_DIR_VAR);
    /// assert_eq!(jobpool::Cache::default_dir(), std::path::Path::new(".jobpool-cache"));
    /// ```
    pub fn default_dir() -> PathBuf {
        std::env::var_os(CACHE_DIR_VAR)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(".jobpool-cache"), PathBuf::from)
    }

    /// Bounds the cache to `bytes` of entries: a run that leaves it larger removes the least
    /// recently used entries, as [`prune`](Self::prune) does.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let cache = jobpool::Cache::open(dir.path())?.with_max_size(10 << 20);
    /// assert_eq!(cache.max_size(), 10 << 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_max_size(self, bytes: u64) -> Cache {
        Cache {
            shared: Arc::new(CacheDir {
                root: self.shared.root.clone(),
                max_size: bytes,
            }),
        }
    }

    /// The bound on the size of the cache's entries, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// assert_eq!(jobpool::Cache::open(dir.path())?.max_size(), jobpool::DEFAULT_MAX_SIZE);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_size(&self) -> u64 {
        self.shared.max_size
    }

    /// The cache's directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// assert_eq!(jobpool::Cache::open(dir.path())?.dir(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.shared.root
    }

    /// The total size of the stored entries, in bytes (small ones are kept in the cache's index
    /// rather than in files of their own, and count too).
    ///
    /// # Errors
    ///
    /// If the cache's directory cannot be listed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// assert_eq!(jobpool::Cache::open(dir.path())?.size()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn size(&self) -> Result<u64, CacheError> {
        let files: u64 = self.list_entries()?.iter().map(|e| e.size).sum();
        let index = Index::load(&self.index_path());
        let small: u64 = self.inline_entries(&index).iter().map(|e| e.size).sum();
        Ok(files + small)
    }

    /// Removes the least recently used entries until the rest fit in
    /// [`max_size`](Self::max_size), and temporary files abandoned by processes killed while
    /// writing (older than an hour). A run with this cache does it at its end if the cache is
    /// over its size.
    ///
    /// # Errors
    ///
    /// If the cache's directory cannot be listed, or an entry cannot be removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("big", 1, [|_: &Context| -> TaskResult<Vec<u8>> { Ok(vec![7; 4096]) }])?;
    /// dag.run_with(&Pool::new(1), RunOptions::new().cache(&Cache::open(dir.path())?))?;
    ///
    /// let tiny = Cache::open(dir.path())?.with_max_size(100);
    /// let pruned = tiny.prune()?;
    /// assert_eq!(pruned.entries_removed, 1);
    /// assert_eq!(tiny.size()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prune(&self) -> Result<Pruned, CacheError> {
        let index = Index::load(&self.index_path());
        let pruned = self.prune_with(&index)?;
        index
            .save(&self.index_path(), &self.tmp_dir())
            .map_err(|err| CacheError::new("write", &self.index_path(), err))?;
        Ok(pruned)
    }

    /// Removes every entry and the index.
    ///
    /// # Errors
    ///
    /// If something in the directory cannot be removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("a", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?;
    /// dag.run_with(&Pool::new(1), RunOptions::new().cache(&cache))?;
    /// assert!(cache.size()? > 0);
    /// cache.clear()?;
    /// assert_eq!(cache.size()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), CacheError> {
        let entries = self.entries_dir();
        match fs::remove_dir_all(&entries) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(CacheError::new("clear", &entries, err));
            }
            _ => {}
        }
        match fs::remove_file(self.index_path()) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(CacheError::new("clear", &self.index_path(), err));
            }
            _ => {}
        }
        fs::create_dir_all(&entries).map_err(|err| CacheError::new("clear", &entries, err))
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.shared.root.join("index")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.shared.root.join("tmp")
    }

    fn entries_dir(&self) -> PathBuf {
        self.shared.root.join("entries")
    }

    /// Where the entry of `fingerprint` is stored.
    fn entry_path(&self, fingerprint: &Digest) -> PathBuf {
        let hex = fingerprint.hex();
        self.entries_dir().join(&hex[..2]).join(hex)
    }

    /// The payload stored under `fingerprint` and its digest: `Ok(None)` if there is none,
    /// `Err` if it is corrupt.
    pub(crate) fn read_entry(
        &self,
        fingerprint: &Digest,
    ) -> Result<Option<(Vec<u8>, Digest)>, Corrupt> {
        let Ok(mut bytes) = fs::read(self.entry_path(fingerprint)) else {
            // Missing, or removed by another process's prune meanwhile, or unreadable: the
            // module runs, and its entry is written anew.
            return Ok(None);
        };
        let (_, digest) = sealed::unseal(ENTRY_MAGIC, &bytes)?;
        bytes.drain(..sealed::HEADER);
        Ok(Some((bytes, digest)))
    }

    /// Stores `payload` under `fingerprint`; returns the entry's size.
    ///
    /// # Errors
    ///
    /// Any I/O error (a full disk); nothing is stored then.
    pub(crate) fn write_entry(&self, fingerprint: &Digest, payload: &[u8]) -> io::Result<u64> {
        let (bytes, _) = sealed::seal(ENTRY_MAGIC, payload);
        sealed::write_atomically(&self.tmp_dir(), &self.entry_path(fingerprint), &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Every entry on disk, with its size and last use (from `index`, or its file's
    /// modification time if the index does not know it).
    fn list_entries(&self) -> Result<Vec<StoredEntry>, CacheError> {
        let root = self.entries_dir();
        let list = |dir: &Path| {
            fs::read_dir(dir)
                .and_then(|entries| entries.collect::<io::Result<Vec<fs::DirEntry>>>())
                .map_err(|err| CacheError::new("list", dir, err))
        };
        let mut found = Vec::new();
        for shard in list(&root)? {
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for entry in list(&shard.path())? {
                let Ok(meta) = entry.metadata() else { continue };
                found.push(StoredEntry {
                    path: entry.path(),
                    inline: false,
                    fingerprint: None,
                    size: meta.len(),
                    modified: meta.modified().map_or(0, files::nanos),
                });
            }
        }
        Ok(found)
    }

    /// The small entries that `index` keeps (see `index.rs`).
    fn inline_entries(&self, index: &Index) -> Vec<StoredEntry> {
        index.with(|data| {
            data.entries
                .iter()
                .filter(|(_, e)| e.inline.is_some())
                .map(|(fingerprint, e)| StoredEntry {
                    path: PathBuf::new(),
                    inline: true,
                    fingerprint: Some(*fingerprint),
                    size: e.size,
                    modified: e.last_used,
                })
                .collect()
        })
    }

    /// [`prune`](Self::prune), with the index given.
    pub(crate) fn prune_with(&self, index: &Index) -> Result<Pruned, CacheError> {
        let mut pruned = Pruned::default();
        let tmp = self.tmp_dir();
        if let Ok(temporaries) = fs::read_dir(&tmp) {
            let abandoned = now() - ABANDONED_AFTER.as_nanos() as i128;
            for file in temporaries.flatten() {
                let old = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| files::nanos(t) < abandoned);
                if old && fs::remove_file(file.path()).is_ok() {
                    pruned.temporary_files_removed += 1;
                }
            }
        }
        let mut entries = self.list_entries()?;
        let fingerprint_of = |path: &Path| -> Option<Digest> {
            let hex = path.file_name()?.to_str()?;
            let mut digest = [0u8; 32];
            for (i, byte) in digest.iter_mut().enumerate() {
                *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(Digest(digest))
        };
        index.with(|data| {
            for entry in &mut entries {
                entry.fingerprint = fingerprint_of(&entry.path);
                if let Some(known) = entry.fingerprint.and_then(|f| data.entries.get(&f)) {
                    entry.modified = entry.modified.max(known.last_used);
                }
            }
        });
        entries.extend(self.inline_entries(index));
        entries.sort_by_key(|e| e.modified);
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        for entry in entries {
            if total <= self.shared.max_size {
                break;
            }
            if !entry.inline {
                match fs::remove_file(&entry.path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(CacheError::new("prune", &entry.path, err)),
                }
            }
            if let Some(fingerprint) = entry.fingerprint {
                index.forget(&fingerprint);
            }
            total -= entry.size;
            pruned.entries_removed += 1;
            pruned.bytes_freed += entry.size;
        }
        pruned.bytes_kept = total;
        Ok(pruned)
    }
}

/// An entry found on disk, or kept in the index.
struct StoredEntry {
    /// Its file (none if it is kept in the index).
    path: PathBuf,
    /// Kept in the index, not in a file.
    inline: bool,
    fingerprint: Option<Digest>,
    size: u64,
    /// Its last use, in nanoseconds since the Unix epoch.
    modified: i128,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.shared.root)
            .field("max_size", &self.shared.max_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn pruning_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::default();
        let cache = Cache::open(dir.path()).unwrap();
        let payload = [7u8; 300];
        let entry = |name: &str| Digest::of(name.as_bytes());
        let mut size = 0;
        for name in ["a", "b", "c"] {
            size = cache.write_entry(&entry(name), &payload).unwrap();
            index.used(entry(name), size);
        }
        let small = entry("small");
        index.store_inline(small, vec![1; 10]);
        // Last used: a, then small, then c, then b (seconds after the epoch), by the index and
        // by the files' times alike.
        let order = [("a", 1), ("small", 2), ("c", 3), ("b", 4)];
        index.with(|data| {
            for (name, at) in order {
                data.entries.get_mut(&entry(name)).unwrap().last_used = at * 1_000_000_000;
            }
        });
        for (name, at) in order.into_iter().filter(|(name, _)| *name != "small") {
            let time = std::time::UNIX_EPOCH + Duration::from_secs(at as u64);
            let file = fs::File::options()
                .write(true)
                .open(cache.entry_path(&entry(name)));
            file.unwrap().set_modified(time).unwrap();
        }
        let exists = |name: &str| cache.entry_path(&entry(name)).exists();
        let bounded = |bytes: u64| cache.clone().with_max_size(bytes);

        let pruned = bounded(2 * size + 10).prune_with(&index).unwrap();
        assert_eq!((pruned.entries_removed, pruned.bytes_freed), (1, size));
        assert!(!exists("a") && exists("b") && exists("c"));
        let pruned = bounded(size).prune_with(&index).unwrap();
        assert_eq!(pruned.entries_removed, 2, "the small entry, then c");
        assert!(index.inline(&small).is_none());
        assert!(!exists("c") && exists("b"));
        assert_eq!(pruned.bytes_kept, size);
    }

    #[test]
    fn threads_may_open_one_cache_at_the_same_moment() {
        let dir = tempfile::tempdir().unwrap();
        let threads = 4;
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    // Every thread waits at every round, whatever its opens gave.
                    let failures: Vec<String> = (0..200)
                        .filter_map(|_| {
                            barrier.wait();
                            Cache::open(dir.path()).err().map(|err| err.to_string())
                        })
                        .collect();
                    assert!(failures.is_empty(), "{failures:?}");
                });
            }
        });
    }
}
