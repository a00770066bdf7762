//! The cache's files on disk: checked by a digest, written whole or not at all.
//!
//! Every file the cache writes (an entry, the index) is *sealed*: an 8-byte magic naming its
//! kind and format version, the BLAKE3 digest of the payload, then the payload. A file that
//! does not begin with the right magic, is shorter than its header, or whose payload does not
//! match its digest is *corrupt*, and never used.
//!
//! A file is written to a temporary file in the cache's `tmp/` directory, then renamed over its
//! final name. `rename` within one file system is atomic: a reader sees the old file or the new
//! one, never a mix, and a process killed in the middle of a write leaves only a temporary file,
//! which no reader looks at ([`Cache::prune`](crate::Cache::prune) removes the old ones). The
//! files are not `fsync`ed: after a crash of the whole machine, a renamed file may come back
//! empty or torn, and its digest finds that. For the same reason an error that a file system
//! reports only when the file is closed (NFS, out of quota) goes unseen, and the entry is
//! short: its digest finds that too, and the module runs again.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::digest::Digest;

/// The size of a sealed file's header: magic and digest.
pub(crate) const HEADER: usize = 8 + 32;

/// Why a sealed file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Corrupt {
    /// Shorter than its header.
    Truncated,
    /// Not the magic of its kind and version.
    WrongMagic,
    /// The payload's digest is not the one in the header.
    WrongDigest,
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Corrupt::Truncated => "the file is truncated",
            Corrupt::WrongMagic => "the file is not a cache file of this version",
            Corrupt::WrongDigest => "the file's checksum does not match its content",
        })
    }
}

/// `payload`, sealed with `magic`; its digest is the payload's.
pub(crate) fn seal(magic: &[u8; 8], payload: &[u8]) -> (Vec<u8>, Digest) {
    let digest = Digest::of(payload);
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&digest.0);
    bytes.extend_from_slice(payload);
    (bytes, digest)
}

/// The payload of a sealed file, and its digest, once checked.
pub(crate) fn unseal<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<(&'a [u8], Digest), Corrupt> {
    if bytes.len() < HEADER {
        return Err(Corrupt::Truncated);
    }
    if &bytes[..8] != magic {
        return Err(Corrupt::WrongMagic);
    }
    let mut stored = [0; 32];
    stored.copy_from_slice(&bytes[8..HEADER]);
    let payload = &bytes[HEADER..];
    let digest = Digest::of(payload);
    if digest.0 != stored {
        return Err(Corrupt::WrongDigest);
    }
    Ok((payload, digest))
}

/// A temporary file's name: unique among this process's writes and other processes'.
pub(crate) fn temporary_name(tmp: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    let nanos = super::files::now() as u64;
    tmp.join(format!("{}-{n}-{nanos:x}.tmp", std::process::id()))
}

/// Writes `bytes` to `dest` through a temporary file in `tmp` and a rename; see the module
/// docs. Creates `dest`'s directory if needed.
///
/// # Errors
///
/// Any I/O error (a full disk, a read-only directory); the temporary file is then removed.
pub(crate) fn write_atomically(tmp: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary_name(tmp);
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        drop(file);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&temporary, dest)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_file_opens_and_any_damage_is_found() {
        let (bytes, digest) = seal(b"TESTMAG1", b"payload");
        assert_eq!(unseal(b"TESTMAG1", &bytes), Ok((&b"payload"[..], digest)));
        assert_eq!(unseal(b"OTHERMAG", &bytes), Err(Corrupt::WrongMagic));
        assert_eq!(
            unseal(b"TESTMAG1", &bytes[..HEADER - 1]),
            Err(Corrupt::Truncated)
        );
        for at in 8..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert_eq!(unseal(b"TESTMAG1", &flipped), Err(Corrupt::WrongDigest));
        }
        let mut torn = bytes.clone();
        torn.truncate(bytes.len() - 1);
        assert_eq!(unseal(b"TESTMAG1", &torn), Err(Corrupt::WrongDigest));
    }
}
