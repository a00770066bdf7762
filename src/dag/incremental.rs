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
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::ErasedOutput;
use crate::cache::{
    dir_digest, file_digest, now, Cache, Digest, DigestWriter, HashInto, Index, ModuleRecord,
    RunReason,
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
                Ok(digest) => inputs.push((input.label.clone(), digest)),
                Err(err) => {
                    let why = RunReason::InputUnreadable {
                        input: input.label.clone(),
                        error: err.to_string(),
                    };
                    return LookUp::Miss(why, None);
                }
            }
        }
        let skipped = DigestWriter::new("jobpool cache: skipped module").finish();
        let mut deps = Vec::with_capacity(dependencies.len());
        for (dep, digest) in dependencies {
            let digest = match digest {
                DependencyDigest::Output(digest) => *digest,
                DependencyDigest::Skipped => skipped,
                DependencyDigest::NotCached => {
                    let why = RunReason::DependencyNotCached {
                        dependency: dep.to_string(),
                    };
                    return LookUp::Miss(why, None);
                }
            };
            deps.push((dep.to_string(), digest));
        }
        let record = fingerprint(name, shape, &spec.version, inputs, deps);
        let previous = self.index.module(name);
        let why = if self.force_all || self.forced.contains(name) {
            RunReason::Forced
        } else {
            match self.cache.read_entry(&record.fingerprint) {
                Ok(Some((payload, digest))) => match (spec.codec.decode)(&payload) {
                    Ok(output) => {
                        self.index
                            .used(record.fingerprint, (payload.len() + 40) as u64);
                        if !previous.is_some_and(|p| p.fingerprint == record.fingerprint) {
                            self.index.record_module(name, record);
                        }
                        return LookUp::Hit(output, digest);
                    }
                    Err(err) => RunReason::EntryCorrupt {
                        detail: format!("cannot decode it: {err}"),
                    },
                },
                Ok(None) => why_miss(previous.as_ref(), &record),
                Err(corrupt) => RunReason::EntryCorrupt {
                    detail: corrupt.to_string(),
                },
            }
        };
        LookUp::Miss(why, Some(Box::new(record)))
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
    ) -> (Option<Digest>, Option<String>) {
        let payload = match (codec.encode)(output) {
            Ok(payload) => payload,
            Err(err) => return (None, Some(format!("cannot encode the output: {err}"))),
        };
        let digest = Digest::of(&payload);
        let Some(record) = record else {
            return (Some(digest), None);
        };
        match self.cache.write_entry(&record.fingerprint, &payload) {
            Ok(size) => {
                self.index.used(record.fingerprint, size);
                self.index.record_module(name, *record);
                (Some(digest), None)
            }
            Err(err) => (Some(digest), Some(err.to_string())),
        }
    }

    /// At the end of a run: writes the index back, and prunes the cache if it grew past its
    /// bound (not after a dry run, which removes nothing). Errors are not the run's: the
    /// outputs are stored, and the index holds hints.
    pub(crate) fn finish(&self, dry_run: bool) {
        if !dry_run && self.index.entries_size() > self.cache.max_size() {
            let _ = self.cache.prune_with(&self.index);
        }
        let _ = self
            .index
            .save(&self.cache.index_path(), &self.cache.tmp_dir());
    }
}

/// The fingerprint of a module and what it is made of.
fn fingerprint(
    name: &str,
    (output_type, tasks): (&'static str, usize),
    version: &str,
    inputs: Vec<(String, Digest)>,
    dependencies: Vec<(String, Digest)>,
) -> ModuleRecord {
    let mut writer = DigestWriter::new("jobpool cache: module fingerprint");
    writer
        .field(name.as_bytes())
        .field(version.as_bytes())
        .field(output_type.as_bytes())
        .field(&(tasks as u64).to_le_bytes());
    writer.field(&(inputs.len() as u64).to_le_bytes());
    for (label, digest) in &inputs {
        writer.field(label.as_bytes()).digest(digest);
    }
    writer.field(&(dependencies.len() as u64).to_le_bytes());
    for (dep, digest) in &dependencies {
        writer.field(dep.as_bytes()).digest(digest);
    }
    ModuleRecord {
        fingerprint: writer.finish(),
        version: version.to_owned(),
        shape: (output_type.to_owned(), tasks as u64),
        inputs,
        dependencies,
        at: now(),
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
        fingerprint(
            "m",
            ("u8", 1),
            version,
            inputs.iter().map(|(l, b)| (l.to_string(), d(*b))).collect(),
            deps.iter().map(|(l, b)| (l.to_string(), d(*b))).collect(),
        )
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
