//! A graph run with a cache (feature `cache`): a module's fingerprint, its look-up, and the
//! storing of its output. The cache itself, and the reasons for its design, are in
//! `src/cache/`.
//!
//! # How a cached module goes through a run
//!
//! 1. **Look-up**, a job of its own on the pool (one task), once its dependencies have ended
//!    and its skip condition, if any, said "run": the task hashes the module's declared inputs
//!    (files through their stat records), makes the fingerprint from them and from its
//!    dependencies' output digests, and reads the entry stored under it.
//! 2. A **hit** ends the module as done, with the stored output, whose digest its dependents'
//!    fingerprints take. Its tasks never run.
//! 3. A **miss** says why (by comparing with the index's record of the module's last
//!    fingerprint), and the module starts as any module does.
//! 4. When its job ends with every task done, its output is encoded, stored under the
//!    fingerprint, and its digest handed to its dependents; this is done by the worker that
//!    ends the job, before the dependents are readied. A failed, cancelled or skipped module is
//!    never stored.
//!
//! A module declared with [`Dag::module`](crate::Dag::module) has no fingerprint: it always
//! runs, and since nothing tells whether its output changed, every cached module that depends
//! on it directly runs too ([`RunReason::DependencyNotCached`]). Such a module has no
//! fingerprint either, so it is not stored; but its output's digest is taken all the same, so
//! the modules after it are looked up as usual, and cut off if its output did not change. A
//! module skipped by its condition counts as one fixed "skipped" output in its dependents'
//! fingerprints.

use std::collections::HashSet;
use std::ffi::OsString;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::ErasedOutput;
use crate::cache::{
    dir_digest, file_digest, now, Cache, Digest, DigestWriter, HashInto, Index, ModuleRecord,
    RunReason, INLINE_MAX,
};

/// Turns a module's output into bytes and back: `Vec<T>` through postcard.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    encode: fn(&ErasedOutput) -> Result<Vec<u8>, String>,
    decode: fn(&[u8]) -> Result<ErasedOutput, String>,
}

impl Codec {
    /// The codec of modules whose tasks return `T`.
    pub(crate) fn of<T>() -> Codec
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Codec {
            encode: |output| {
                let output = output
                    .downcast_ref::<Vec<T>>()
                    .ok_or("the output is not of the module's type")?;
                postcard::to_stdvec(output).map_err(|err| err.to_string())
            },
            decode: |bytes| {
                let output: Vec<T> = postcard::from_bytes(bytes).map_err(|err| err.to_string())?;
                Ok(Arc::new(output))
            },
        }
    }
}

/// Where a declared input comes from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    File(PathBuf),
    Dir(PathBuf),
    Env(OsString),
    /// A value, hashed when it was declared.
    Value(Digest),
}

/// One declared input: its label in reports, and its source.
#[derive(Clone, Debug)]
pub(crate) struct InputDecl {
    pub(crate) label: String,
    pub(crate) source: Source,
}

impl InputDecl {
    pub(crate) fn value<V: Hash + ?Sized>(label: &str, value: &V) -> InputDecl {
        let mut hasher = HashInto(blake3::Hasher::new_derive_key("jobpool cache: value"));
        value.hash(&mut hasher);
        InputDecl {
            label: label.to_owned(),
            source: Source::Value(Digest(*hasher.0.finalize().as_bytes())),
        }
    }

    pub(crate) fn bytes(label: &str, bytes: &[u8]) -> InputDecl {
        InputDecl {
            label: label.to_owned(),
            source: Source::Value(
                DigestWriter::new("jobpool cache: bytes")
                    .field(bytes)
                    .finish(),
            ),
        }
    }

    /// The input's digest now.
    fn digest(&self, index: &Index) -> std::io::Result<Digest> {
        match &self.source {
            Source::File(path) => file_digest(path, index),
            Source::Dir(path) => dir_digest(path, index),
            Source::Env(var) => {
                let mut writer = DigestWriter::new("jobpool cache: environment variable");
                match std::env::var_os(var) {
                    Some(value) => writer.field(b"set").field(value.as_encoded_bytes()),
                    None => writer.field(b"unset"),
                };
                Ok(writer.finish())
            }
            Source::Value(digest) => Ok(*digest),
        }
    }
}

/// What a cached module declares: how its output is stored, its version and its inputs.
#[derive(Clone)]
pub(crate) struct CacheSpec {
    pub(crate) codec: Codec,
    pub(crate) version: String,
    pub(crate) inputs: Vec<InputDecl>,
}

impl CacheSpec {
    pub(crate) fn new(codec: Codec) -> CacheSpec {
        CacheSpec {
            codec,
            version: String::new(),
            inputs: Vec::new(),
        }
    }
}

/// Which modules a run is told to run whatever the cache holds.
#[derive(Clone, Debug, Default)]
pub(crate) enum Force {
    #[default]
    None,
    All,
    Modules(Vec<String>),
}

/// What a dependency gives its dependent's fingerprint.
pub(crate) enum DependencyDigest {
    /// The digest of its output.
    Output(Digest),
    /// Skipped by its condition.
    Skipped,
    /// Not cached: no digest.
    NotCached,
}

/// What storing a module's output did.
pub(crate) struct Stored {
    /// The output's digest, for its dependents (`None` if it could not be encoded).
    pub(crate) digest: Option<Digest>,
    /// Why it could not be stored, if it could not.
    pub(crate) error: Option<String>,
    /// It is kept in the index, written at the end of the run.
    pub(crate) in_index: bool,
}

/// What a look-up found.
pub(crate) enum LookUp {
    /// The stored output, and its digest.
    Hit(ErasedOutput, Digest),
    /// Nothing usable stored: why, and the fingerprint to store the output under (`None` if an
    /// input could not be read: then it is not stored).
    Miss(RunReason, Option<Box<ModuleRecord>>),
}

/// A run's use of a cache: the cache, its index loaded for the run, what to force.
pub(crate) struct RunCache {
    pub(crate) cache: Cache,
    pub(crate) index: Index,
    forced: HashSet<String>,
    force_all: bool,
}

impl RunCache {
    pub(crate) fn new(cache: Cache, force: Force) -> RunCache {
        let index = Index::load(&cache.index_path());
        let (forced, force_all) = match force {
            Force::None => (HashSet::new(), false),
            Force::All => (HashSet::new(), true),
            Force::Modules(names) => (names.into_iter().collect(), false),
        };
        RunCache {
            cache,
            index,
            forced,
            force_all,
        }
    }

    /// Looks module `name` up: see the module docs. Runs on a worker.
    pub(crate) fn look_up(
        &self,
        name: &str,
        shape: (&'static str, usize),
        spec: &CacheSpec,
        dependencies: &[(Arc<str>, DependencyDigest)],
    ) -> LookUp {
        let mut inputs = Vec::with_capacity(spec.inputs.len());
        for input in &spec.inputs {
            match input.digest(&self.index) {
                Ok(digest) => inputs.push((input.label.as_str(), digest)),
                Err(err) => {
                    let why = RunReason::InputUnreadable {
                        input: input.label.clone(),
                        error: err.to_string(),
                    };
                    return LookUp::Miss(why, None);
                }
            }
        }
        let mut deps = Vec::with_capacity(dependencies.len());
        for (dep, digest) in dependencies {
            let digest = match digest {
                DependencyDigest::Output(digest) => *digest,
                DependencyDigest::Skipped => skipped(),
                DependencyDigest::NotCached => {
                    let why = RunReason::DependencyNotCached {
                        dependency: dep.to_string(),
                    };
                    return LookUp::Miss(why, None);
                }
            };
            deps.push((&**dep, digest));
        }
        let parts = Parts {
            name,
            shape,
            version: &spec.version,
            inputs: &inputs,
            dependencies: &deps,
        };
        let fingerprint = parts.fingerprint();
        let why = if self.force_all || self.forced.contains(name) {
            RunReason::Forced
        } else {
            let stored = match self.index.inline(&fingerprint) {
                Some(payload) => {
                    let digest = Digest::of(&payload);
                    Ok(Some((payload, digest)))
                }
                None => self.cache.read_entry(&fingerprint),
            };
            match stored {
                Ok(Some((payload, digest))) => match (spec.codec.decode)(&payload) {
                    Ok(output) => {
                        self.index
                            .record_module(name, fingerprint, || parts.record(fingerprint));
                        return LookUp::Hit(output, digest);
                    }
                    Err(err) => RunReason::EntryCorrupt {
                        detail: format!("cannot decode it: {err}"),
                    },
                },
                Ok(None) => why_miss(self.index.module(name).as_ref(), &parts.record(fingerprint)),
                Err(corrupt) => RunReason::EntryCorrupt {
                    detail: corrupt.to_string(),
                },
            }
        };
        LookUp::Miss(why, Some(Box::new(parts.record(fingerprint))))
    }

    /// Stores a module's output under its fingerprint (`record`; with none, only its digest is
    /// taken, for its dependents); returns the output's digest, and the error if it could not
    /// be stored. Runs on the worker that ended the module's job.
    pub(crate) fn store(
        &self,
        name: &str,
        record: Option<Box<ModuleRecord>>,
        codec: &Codec,
        output: &ErasedOutput,
    ) -> Stored {
        let payload = match (codec.encode)(output) {
            Ok(payload) => payload,
            Err(err) => {
                return Stored {
                    digest: None,
                    error: Some(format!("cannot encode the output: {err}")),
                    in_index: false,
                }
            }
        };
        let mut stored = Stored {
            digest: Some(Digest::of(&payload)),
            error: None,
            in_index: false,
        };
        let Some(record) = record else {
            return stored;
        };
        let fingerprint = record.fingerprint;
        if payload.len() <= INLINE_MAX {
            self.index.store_inline(fingerprint, payload);
            stored.in_index = true;
        } else {
            match self.cache.write_entry(&fingerprint, &payload) {
                Ok(size) => self.index.used(fingerprint, size),
                Err(err) => {
                    stored.error = Some(err.to_string());
                    return stored;
                }
            }
        }
        self.index.record_module(name, fingerprint, || *record);
        stored
    }

    /// At the end of a run: writes the index back, and prunes the cache if it grew past its
    /// bound (not after a dry run, which removes nothing). Errors are not the run's: the
    /// outputs are used, and the index holds hints and small entries.
    ///
    /// # Errors
    ///
    /// If the index could not be written: then the small entries stored in it during the run
    /// are lost, and their modules must say so.
    pub(crate) fn finish(&self, dry_run: bool) -> Result<(), String> {
        if !dry_run && self.index.entries_size() > self.cache.max_size() {
            let _ = self.cache.prune_with(&self.index);
        }
        self.index
            .save(&self.cache.index_path(), &self.cache.tmp_dir())
            .map_err(|err| format!("cannot write the cache's index: {err}"))
    }
}

/// The digest a module skipped by its condition gives its dependents' fingerprints.
fn skipped() -> Digest {
    static SKIPPED: OnceLock<Digest> = OnceLock::new();
    *SKIPPED.get_or_init(|| DigestWriter::new("jobpool cache: skipped module").finish())
}

/// What a module's fingerprint is made of.
struct Parts<'a> {
    name: &'a str,
    /// The output type's name and the number of tasks.
    shape: (&'static str, usize),
    version: &'a str,
    /// Each input's label and digest.
    inputs: &'a [(&'a str, Digest)],
    /// Each dependency's name and output digest.
    dependencies: &'a [(&'a str, Digest)],
}

impl Parts<'_> {
    fn fingerprint(&self) -> Digest {
        let (output_type, tasks) = self.shape;
        let mut writer = DigestWriter::new("jobpool cache: module fingerprint");
        writer
            .field(self.name.as_bytes())
            .field(self.version.as_bytes())
            .field(output_type.as_bytes())
            .field(&(tasks as u64).to_le_bytes());
        writer.field(&(self.inputs.len() as u64).to_le_bytes());
        for (label, digest) in self.inputs {
            writer.field(label.as_bytes()).digest(digest);
        }
        writer.field(&(self.dependencies.len() as u64).to_le_bytes());
        for (dep, digest) in self.dependencies {
            writer.field(dep.as_bytes()).digest(digest);
        }
        writer.finish()
    }

    /// The index's record of these parts, whose fingerprint is `fingerprint`.
    fn record(&self, fingerprint: Digest) -> ModuleRecord {
        let owned = |parts: &[(&str, Digest)]| -> Vec<(String, Digest)> {
            parts.iter().map(|(l, d)| ((*l).to_owned(), *d)).collect()
        };
        ModuleRecord {
            fingerprint,
            version: self.version.to_owned(),
            shape: (self.shape.0.to_owned(), self.shape.1 as u64),
            inputs: owned(self.inputs),
            dependencies: owned(self.dependencies),
            at: now(),
        }
    }
}

/// Why a module whose fingerprint has no entry runs: the first difference from the record of
/// its last fingerprint.
fn why_miss(previous: Option<&ModuleRecord>, now: &ModuleRecord) -> RunReason {
    let Some(previous) = previous else {
        return RunReason::NoEntry;
    };
    if previous.fingerprint == now.fingerprint {
        return RunReason::EntryMissing;
    }
    if previous.version != now.version {
        return RunReason::VersionChanged {
            from: previous.version.clone(),
            to: now.version.clone(),
        };
    }
    if previous.shape.0 != now.shape.0 {
        return RunReason::ModuleChanged {
            what: format!(
                "its output type changed from `{}` to `{}`",
                previous.shape.0, now.shape.0
            ),
        };
    }
    if previous.shape.1 != now.shape.1 {
        return RunReason::ModuleChanged {
            what: format!(
                "its number of tasks changed from {} to {}",
                previous.shape.1, now.shape.1
            ),
        };
    }
    for (label, digest) in &now.inputs {
        match previous.inputs.iter().find(|(l, _)| l == label) {
            None => {
                return RunReason::InputAdded {
                    input: label.clone(),
                }
            }
            Some((_, old)) if old != digest => {
                return RunReason::InputChanged {
                    input: label.clone(),
                }
            }
            Some(_) => {}
        }
    }
    if let Some((label, _)) = previous
        .inputs
        .iter()
        .find(|(l, _)| !now.inputs.iter().any(|(n, _)| n == l))
    {
        return RunReason::InputRemoved {
            input: label.clone(),
        };
    }
    for (dep, digest) in &now.dependencies {
        let same = previous
            .dependencies
            .iter()
            .any(|(d, old)| d == dep && old == digest);
        if !same {
            return RunReason::DependencyChanged {
                dependency: dep.clone(),
            };
        }
    }
    match previous.dependencies.first() {
        // A dependency was removed, or the inputs were reordered.
        Some((dep, _)) if previous.dependencies.len() != now.dependencies.len() => {
            RunReason::DependencyChanged {
                dependency: dep.clone(),
            }
        }
        _ => RunReason::ModuleChanged {
            what: "the order of its inputs or dependencies changed".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: &str, inputs: &[(&str, u8)], deps: &[(&str, u8)]) -> ModuleRecord {
        let d = |b: u8| Digest([b; 32]);
        let inputs: Vec<(&str, Digest)> = inputs.iter().map(|(l, b)| (*l, d(*b))).collect();
        let deps: Vec<(&str, Digest)> = deps.iter().map(|(l, b)| (*l, d(*b))).collect();
        let parts = Parts {
            name: "m",
            shape: ("u8", 1),
            version,
            inputs: &inputs,
            dependencies: &deps,
        };
        parts.record(parts.fingerprint())
    }

    #[test]
    fn a_miss_names_the_first_difference() {
        let base = record("1", &[("file a", 1), ("env CC", 2)], &[("dep", 3)]);
        let why = |now: &ModuleRecord| why_miss(Some(&base), now);
        assert_eq!(why_miss(None, &base), RunReason::NoEntry);
        assert_eq!(why(&base), RunReason::EntryMissing);
        assert!(matches!(
            why(&record("2", &[("file a", 1), ("env CC", 2)], &[("dep", 3)])),
            RunReason::VersionChanged { .. }
        ));
        assert_eq!(
            why(&record("1", &[("file a", 1), ("env CC", 9)], &[("dep", 3)])),
            RunReason::InputChanged {
                input: "env CC".into()
            }
        );
        assert_eq!(
            why(&record("1", &[("file a", 1)], &[("dep", 3)])),
            RunReason::InputRemoved {
                input: "env CC".into()
            }
        );
        assert_eq!(
            why(&record(
                "1",
                &[("file a", 1), ("env CC", 2), ("file b", 4)],
                &[("dep", 3)]
            )),
            RunReason::InputAdded {
                input: "file b".into()
            }
        );
        assert_eq!(
            why(&record("1", &[("file a", 1), ("env CC", 2)], &[("dep", 4)])),
            RunReason::DependencyChanged {
                dependency: "dep".into()
            }
        );
        assert_eq!(
            why(&record("1", &[("file a", 1), ("env CC", 2)], &[])),
            RunReason::DependencyChanged {
                dependency: "dep".into()
            }
        );
    }

    #[test]
    fn the_fingerprint_covers_every_part() {
        let base = record("1", &[("file a", 1)], &[("dep", 3)]).fingerprint;
        assert_eq!(
            base,
            record("1", &[("file a", 1)], &[("dep", 3)]).fingerprint
        );
        for other in [
            record("2", &[("file a", 1)], &[("dep", 3)]),
            record("1", &[("file b", 1)], &[("dep", 3)]),
            record("1", &[("file a", 2)], &[("dep", 3)]),
            record("1", &[("file a", 1)], &[("dep", 4)]),
            record("1", &[("file a", 1)], &[("dep2", 3)]),
            record("1", &[], &[("file a", 1), ("dep", 3)]),
        ] {
            assert_ne!(base, other.fingerprint);
        }
    }
}
