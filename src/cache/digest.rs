//! BLAKE3 digests: of a file's content, of a module's inputs (its fingerprint), of a module's
//! stored output.

use std::fmt;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};

/// A 256-bit BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Digest(pub(crate) [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hexadecimal, 64 characters.
    pub(crate) fn hex(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        for byte in self.0 {
            let _ = write!(s, "{byte:02x}");
        }
        s
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.hex()[..16])
    }
}

/// Builds a digest from a sequence of fields. Each field is written with its length first, so
/// no two different sequences of fields write the same bytes (`"ab", "c"` is not `"a", "bc"`).
pub(crate) struct DigestWriter(blake3::Hasher);

impl DigestWriter {
    /// A writer for digests of one kind: `context` keeps digests of different kinds apart.
    pub(crate) fn new(context: &str) -> DigestWriter {
        DigestWriter(blake3::Hasher::new_derive_key(context))
    }

    /// Writes one field.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Writes one digest (fixed length, so no length is written).
    pub(crate) fn digest(&mut self, digest: &Digest) -> &mut Self {
        self.0.update(&digest.0);
        self
    }

    /// The digest of everything written.
    pub(crate) fn finish(&self) -> Digest {
        Digest(*self.0.finalize().as_bytes())
    }
}

/// A [`Hasher`] that feeds a value's `Hash` into BLAKE3, to fingerprint any hashable value.
///
/// `Hash` implementations write their fields in a fixed order, with lengths before variable-size
/// data (std's `str` writes a `0xff` end marker, slices their length), so equal values write the
/// same bytes and, in practice, different values different bytes.
pub(crate) struct HashInto(pub(crate) blake3::Hasher);

impl Hasher for HashInto {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Not used to fingerprint: only the bytes written count.
    fn finish(&self) -> u64 {
        let digest = self.0.finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    #[test]
    fn fields_are_length_prefixed_and_contexts_apart() {
        let ab_c = DigestWriter::new("t").field(b"ab").field(b"c").finish();
        let a_bc = DigestWriter::new("t").field(b"a").field(b"bc").finish();
        assert_ne!(ab_c, a_bc);
        let other = DigestWriter::new("u").field(b"ab").field(b"c").finish();
        assert_ne!(ab_c, other);
        assert_eq!(
            ab_c,
            DigestWriter::new("t").field(b"ab").field(b"c").finish()
        );
        assert_eq!(Digest::of(b"x").hex().len(), 64);
    }

    #[test]
    fn equal_values_hash_alike() {
        let digest = |v: &dyn Fn(&mut HashInto)| {
            let mut h = HashInto(blake3::Hasher::new());
            v(&mut h);
            Digest(*h.0.finalize().as_bytes())
        };
        let a = digest(&|h| ("cc", 3u32).hash(h));
        let b = digest(&|h| ("cc", 3u32).hash(h));
        let c = digest(&|h| ("c", 3u32).hash(h));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
