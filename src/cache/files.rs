//! The content digests of input files and directories, with a stat fast path.
//!
//! # When a file is read again
//!
//! Hashing is by content: a file whose content is unchanged has the same digest, whatever its
//! timestamps. Reading every input on every run would make a no-op run cost as much as reading
//! the whole source tree, so each file's digest is recorded with what `stat` said of it: size,
//! modification time, change time, inode and device. A later run trusts the recorded digest
//! when `stat` says exactly the same, and reads the file again when anything differs. A `touch`
//! therefore costs one read of the file, and re-runs nothing; new content with an old
//! modification time (set by `touch -d` or a copy that keeps times) still changes the change
//! time, which no user can set, so it is read again.
//!
//! **Racy timestamps.** A file written in the same tick of the file system's clock as it was
//! hashed, after the hash, keeps the modification and change times that were recorded, and its
//! size may not change either. Git calls such an entry "racily clean"; its guard, followed
//! here: a record whose modification or change time is within [`RACY_WINDOW`] of the moment
//! the file was read is not trusted, and the file is read again on the next run (which records
//! it anew, trusted once the window has passed). The window is two seconds, the coarsest timestamps in common use (FAT);
//! ext4, XFS, btrfs and tmpfs tick every few milliseconds.
//!
//! A missing file has a digest of its own ("absent"), so a module may declare an input that
//! does not exist yet: it runs again when the file appears.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, DigestWriter};
use super::index::Index;

/// How close to the moment it was read a file's modification time makes its record untrusted;
/// see the module docs.
pub(crate) const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What `stat` said of a file, and its content's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatRecord {
    pub(crate) stat: Stat,
    pub(crate) digest: Digest,
    /// When the file was read for `digest`, in nanoseconds since the Unix epoch.
    pub(crate) hashed_at: i128,
}

/// The parts of a file's metadata that change when it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stat {
    size: u64,
    /// Nanoseconds since the Unix epoch.
    modified: i128,
    /// The inode's change time, in nanoseconds (0 where the platform has none).
    changed: i128,
    inode: u64,
    device: u64,
}

impl Stat {
    fn of(meta: &Metadata) -> Stat {
        let modified = meta.modified().map_or(0, nanos);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stat {
                size: meta.len(),
                modified,
                changed: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            Stat {
                size: meta.len(),
                modified,
                changed: 0,
                inode: 0,
                device: 0,
            }
        }
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
pub(crate) fn nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now() -> i128 {
    nanos(SystemTime::now())
}

impl StatRecord {
    /// Whether the record still holds for a file of metadata `stat`: nothing changed, and the
    /// record is not racy (see the module docs).
    fn holds_for(&self, stat: &Stat, window: Duration) -> bool {
        let window = window.as_nanos() as i128;
        self.stat == *stat
            && self.stat.modified + window <= self.hashed_at
            && self.stat.changed + window <= self.hashed_at
    }
}

/// The digest of a missing file or directory.
fn absent() -> Digest {
    DigestWriter::new("jobpool cache: absent input").finish()
}

/// The digest of the file at `path` (following symbolic links): of its content, or "absent" if
/// there is no such file. Uses and updates the records of `index`.
///
/// # Errors
///
/// An I/O error other than "not found" (no permission to read it, say).
pub(crate) fn file_digest(path: &Path, index: &Index) -> io::Result<Digest> {
    file_digest_within(path, index, RACY_WINDOW)
}

/// [`file_digest`], with a racy window of `window`.
fn file_digest_within(path: &Path, index: &Index, window: Duration) -> io::Result<Digest> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(absent()),
        Err(err) => return Err(err),
    };
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory (declare it with `input_dir`)",
        ));
    }
    let key = std::path::absolute(path)?;
    let stat = Stat::of(&meta);
    if let Some(record) = index.file(&key) {
        if record.holds_for(&stat, window) {
            return Ok(record.digest);
        }
    }
    let hashed_at = now();
    let digest = hash_content(path)?;
    // Record it only if the file did not change while it was read.
    if fs::metadata(path).is_ok_and(|after| Stat::of(&after) == stat) {
        index.record_file(
            &key,
            StatRecord {
                stat,
                digest,
                hashed_at,
            },
        );
    }
    Ok(digest)
}

#[cfg(test)]
thread_local! {
    /// How many files this thread read to hash them.
    static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The BLAKE3 digest of everything in the file at `path`, read in large blocks.
pub(crate) fn hash_content(path: &Path) -> io::Result<Digest> {
    #[cfg(test)]
    READS.with(|reads| reads.set(reads.get() + 1));
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Digest(*hasher.finalize().as_bytes()))
}

/// The digest of the directory at `path` and everything under it: each entry's name and kind,
/// in name order, with a file's content digest (through the records of `index`), a
/// subdirectory's digest, and a symbolic link's target (links are not followed). "Absent" if
/// there is no such directory.
///
/// # Errors
///
/// An I/O error while listing or reading (other than `path` not existing).
pub(crate) fn dir_digest(path: &Path, index: &Index) -> io::Result<Digest> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(absent()),
        Err(err) => return Err(err),
    };
    let mut entries: Vec<(PathBuf, fs::FileType)> = entries
        .map(|entry| {
            let entry = entry?;
            Ok((entry.path(), entry.file_type()?))
        })
        .collect::<io::Result<_>>()?;
    entries.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
    let mut writer = DigestWriter::new("jobpool cache: directory");
    for (entry, kind) in entries {
        let name = entry.file_name().unwrap_or_default();
        writer.field(name.as_encoded_bytes());
        if kind.is_symlink() {
            writer
                .field(b"link")
                .field(fs::read_link(&entry)?.as_os_str().as_encoded_bytes());
        } else if kind.is_dir() {
            writer.field(b"dir").digest(&dir_digest(&entry, index)?);
        } else {
            writer.field(b"file").digest(&file_digest(&entry, index)?);
        }
    }
    Ok(writer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_trusted_only_past_the_racy_window() {
        let stat = Stat {
            size: 1,
            modified: 10_000_000_000,
            changed: 10_000_000_000,
            inode: 1,
            device: 1,
        };
        let record = |hashed_at| StatRecord {
            stat,
            digest: absent(),
            hashed_at,
        };
        let holds = |record: &StatRecord, stat: &Stat| record.holds_for(stat, RACY_WINDOW);
        let window = RACY_WINDOW.as_nanos() as i128;
        assert!(!holds(&record(stat.modified), &stat));
        assert!(!holds(&record(stat.modified + window - 1), &stat));
        assert!(holds(&record(stat.modified + window), &stat));
        let changed_late = Stat {
            changed: stat.modified + window,
            ..stat
        };
        let late = StatRecord {
            stat: changed_late,
            ..record(stat.modified + window)
        };
        assert!(!holds(&late, &changed_late));
        let touched = Stat {
            modified: stat.modified + 1,
            ..stat
        };
        assert!(!holds(&record(stat.modified + 10 * window), &touched));
    }

    /// Sets `path`'s modification time to `ago` before now.
    fn age(path: &Path, ago: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_and_any_change_is() {
        // The change time of a file just written is now, and cannot be set back: a window of
        // zero lets this test see records trusted at once.
        let digest = |path: &Path, index: &Index| file_digest_within(path, index, Duration::ZERO);
        let reads = || READS.with(std::cell::Cell::get);
        let dir = tempfile::tempdir().unwrap();
        let index = Index::default();
        let path = dir.path().join("input");
        fs::write(&path, "one").unwrap();
        age(&path, Duration::from_secs(10));
        let first = digest(&path, &index).unwrap();
        let before = reads();
        assert_eq!(digest(&path, &index).unwrap(), first);
        assert_eq!(reads(), before, "an unchanged file was read again");

        // Touched: read once more, same digest, then trusted again.
        age(&path, Duration::from_secs(5));
        assert_eq!(digest(&path, &index).unwrap(), first);
        assert_eq!(reads(), before + 1);
        assert_eq!(digest(&path, &index).unwrap(), first);
        assert_eq!(reads(), before + 1);

        // New content of the same size, and the modification time put back as it was: the
        // change time still differs.
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, "two").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_ne!(digest(&path, &index).unwrap(), first);

        // Changed just now, under the real window: read on every look until it has passed.
        fs::write(&path, "three").unwrap();
        age(&path, Duration::from_secs(10));
        let racy = file_digest(&path, &index).unwrap();
        let before = reads();
        assert_eq!(file_digest(&path, &index).unwrap(), racy);
        assert_eq!(reads(), before + 1);
    }

    #[test]
    fn content_decides_and_missing_files_are_absent() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::default();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, "same").unwrap();
        fs::write(&b, "same").unwrap();
        assert_eq!(
            file_digest(&a, &index).unwrap(),
            file_digest(&b, &index).unwrap()
        );
        let missing = dir.path().join("missing");
        assert_eq!(file_digest(&missing, &index).unwrap(), absent());
        assert_eq!(dir_digest(&missing, &index).unwrap(), absent());
        let before = dir_digest(dir.path(), &index).unwrap();
        fs::write(&b, "other").unwrap();
        assert_ne!(dir_digest(dir.path(), &index).unwrap(), before);
        assert!(file_digest(dir.path(), &index).is_err());
    }
}
