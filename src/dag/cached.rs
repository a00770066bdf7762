//! The public face of a cached module (feature `cache`): [`Dag::cached_module`], its version
//! and inputs ([`ModuleRef::version`], [`ModuleRef::input_file`] and the others), and
//! [`Dag::explain`]. How a run uses them is in `incremental.rs`.

use super::graph;
use super::incremental::{CacheSpec, Codec, InputDecl, Source};
use super::{run, Context, Dag, DagError, ModuleRef, RunOptions, TaskResult};
use crate::Pool;

impl Dag {
    /// Adds a module whose output is cached, as [`module`](Self::module) adds one: a run with
    /// a cache ([`RunOptions::cache`]) re-uses its stored output instead of running it when
    /// its fingerprint is unchanged. The fingerprint covers the module's name, its
    /// [`version`](ModuleRef::version), its output type and number of tasks, its declared
    /// inputs ([`input_file`](ModuleRef::input_file), [`input_dir`](ModuleRef::input_dir),
    /// [`input_env`](ModuleRef::input_env), [`input_value`](ModuleRef::input_value)) and the
    /// outputs of the modules it depends on. Its tasks' results are stored with serde, so `T`
    /// must be serializable.
    ///
    /// Declare everything a task reads: what is not declared is not in the fingerprint, and a
    /// change to it does not make the module run again. Bump the version when the tasks' code
    /// changes.
    ///
    /// A module that runs again and produces the output it produced before does not make its
    /// dependents run (early cutoff). A module declared with [`module`](Self::module) is not
    /// cached: it always runs, and so do the cached modules that depend on it directly
    /// ([`RunReason::DependencyNotCached`](crate::RunReason::DependencyNotCached)); they are
    /// not stored, but the digests of their outputs still let the modules after them be cut
    /// off.
    ///
    /// Only with the `cache` feature.
    ///
    /// # Errors
    ///
    /// As [`module`](Self::module).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let source = dir.path().join("hello.c");
    /// std::fs::write(&source, "int main() { return 0; }")?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// let mut dag = Dag::new();
    /// let path = source.clone();
    /// dag.cached_module("hello.o", 1, [move |_: &Context| -> TaskResult<usize> {
    ///     Ok(std::fs::read(&path)?.len()) // "compile"
    /// }])?
    /// .version("cc-12")
    /// .input_file(&source)
    /// .input_env("CFLAGS");
    ///
    /// let pool = Pool::new(2);
    /// let options = || RunOptions::new().cache(&cache);
    /// assert!(!dag.run_with(&pool, options())?.module("hello.o").unwrap().cache_status().is_hit());
    /// assert!(dag.run_with(&pool, options())?.module("hello.o").unwrap().cache_status().is_hit());
    /// std::fs::write(&source, "int main() { return 1; }")?;
    /// let report = dag.run_with(&pool, options())?;
    /// let why = report.module("hello.o").unwrap().cache_status().to_string();
    /// assert!(why.starts_with("ran: input `file ") && why.ends_with("hello.c` changed"), "{why}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cached_module<N, I, F, T>(
        &mut self,
        name: N,
        cap: usize,
        tasks: I,
    ) -> Result<ModuleRef<'_>, DagError>
    where
        N: Into<String>,
        I: IntoIterator<Item = F>,
        F: Fn(&Context) -> TaskResult<T> + Send + Sync + 'static,
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let module = self.module(name, cap, tasks)?;
        let index = module.index;
        self.modules[index].cache = Some(CacheSpec::new(Codec::of::<T>()));
        Ok(ModuleRef { dag: self, index })
    }

    /// Tells what a run with `options` would do with each module, and why, without running
    /// any: [`Plan::Cached`](crate::Plan::Cached) if its stored output would be used, or the
    /// reason it would run. Inputs are hashed and the cache is read, on the pool, as a run
    /// would; skip conditions are not asked (they may need outputs that are not there), and a
    /// module after one that would run is told as
    /// [`Plan::RunsIfChanged`](crate::Plan::RunsIfChanged). It stores and removes no entry;
    /// it does write the cache's index of hints (the digests of the files it read), so that
    /// the next run need not read them again.
    ///
    /// Only with the `cache` feature.
    ///
    /// # Errors
    ///
    /// As [`run_with`](Self::run_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Plan, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("fetch", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?.version("1");
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// dag.module("fetch-v2", 1, [|_: &Context| -> TaskResult<u8> { Ok(2) }])?;
    ///
    /// let plan = dag.explain(&pool, RunOptions::new().cache(&cache))?;
    /// assert_eq!(plan.get("fetch"), Some(&Plan::Cached));
    /// assert_eq!(plan.get("fetch-v2"), Some(&Plan::NotCached));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn explain(
        &self,
        pool: &Pool,
        options: RunOptions,
    ) -> Result<crate::Explanation, DagError> {
        let plan = graph::plan(&self.modules, &self.index)?;
        let needed = self.needed(&plan, &options)?;
        Ok(run::explain(plan, pool, options, needed))
    }
}

impl ModuleRef<'_> {
    /// The spec of a cached module, to declare its version and inputs.
    #[track_caller]
    fn cache_spec(&mut self, what: &str) -> &mut CacheSpec {
        let spec = &mut self.dag.modules[self.index];
        match &mut spec.cache {
            Some(cache) => cache,
            None => panic!(
                "ModuleRef::{what}: module `{}` was declared with Dag::module, which does not \
                 cache its output; declare it with Dag::cached_module",
                spec.name
            ),
        }
    }

    /// Adds an input to the module's fingerprint, for `what` (the method, named if the module
    /// has no cache).
    #[track_caller]
    fn declare(mut self, what: &str, label: String, source: Source) -> Self {
        self.cache_spec(what)
            .inputs
            .push(InputDecl { label, source });
        self
    }

    /// Sets the module's version (empty unless set): a string to change whenever its tasks'
    /// code changes, so that a run with a cache does not re-use the output of the old code.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`] (it has no cache), as for every input.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let pool = Pool::new(1);
    /// for version in ["1", "2"] {
    ///     let mut dag = Dag::new();
    ///     dag.cached_module("resize", 1, [|_: &Context| -> TaskResult<u32> { Ok(640) }])?.version(version);
    ///     let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    ///     if version == "2" {
    ///         let why = report.module("resize").unwrap().cache_status().why().cloned();
    ///         assert_eq!(why, Some(RunReason::VersionChanged { from: "1".into(), to: "2".into() }));
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.cache_spec("version").version = version.into();
        self
    }

    /// Declares a file the module reads: its content (not its timestamps) is part of the
    /// module's fingerprint, so the module runs again when the file's content changes, and
    /// not when it is only touched. A file that does not exist is an input too: the module
    /// runs again when it appears. A symbolic link is followed. Reported as `file <path>`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let config = dir.path().join("app.toml");
    /// std::fs::write(&config, "workers = 4")?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("check", 1, [|_: &Context| -> TaskResult<bool> { Ok(true) }])?.input_file(&config);
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// std::fs::write(&config, "workers = 4")?; // written again, same content
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// assert!(report.module("check").unwrap().cache_status().is_hit());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn input_file(self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        let label = format!("file {}", path.display());
        self.declare("input_file", label, Source::File(path.to_owned()))
    }

    /// Declares a directory the module reads: the names, kinds and contents of everything
    /// under it are part of the module's fingerprint (symbolic links by their targets, not
    /// followed). Reported as `dir <path>`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let src = dir.path().join("src");
    /// std::fs::create_dir(&src)?;
    /// std::fs::write(src.join("a.rs"), "fn a() {}")?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("lint", 1, [|_: &Context| -> TaskResult<u32> { Ok(0) }])?.input_dir(&src);
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// std::fs::write(src.join("b.rs"), "fn b() {}")?; // a new file
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// let why = report.module("lint").unwrap().cache_status().why().cloned();
    /// assert!(matches!(why, Some(RunReason::InputChanged { input }) if input.starts_with("dir ")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn input_dir(self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        let label = format!("dir {}", path.display());
        self.declare("input_dir", label, Source::Dir(path.to_owned()))
    }

    /// Declares an environment variable the module reads: its value, or that it is not set,
    /// is part of the module's fingerprint, read when the run looks the module up. Reported as
    /// `env <name>`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("cc", 1, [|_: &Context| -> TaskResult<String> {
    ///     Ok(std::env::var("MY_CFLAGS").unwrap_or_default())
    /// }])?
    /// .input_env("MY_CFLAGS");
    /// let pool = Pool::new(1);
    /// std::env::set_var("MY_CFLAGS", "-O2");
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// std::env::set_var("MY_CFLAGS", "-O3");
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// assert_eq!(report.output::<String>("cc")?, ["-O3"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn input_env(self, name: impl Into<String>) -> Self {
        let name = name.into();
        let label = format!("env {name}");
        self.declare("input_env", label, Source::Env(name.into()))
    }

    /// Declares a value the module's tasks use (a setting, a list of hosts), hashed now with
    /// its [`Hash`](std::hash::Hash) into the module's fingerprint. Reported as `label`.
    ///
    /// `Hash` is stable from run to run of one build of a program; a new Rust release may hash
    /// some standard types differently, and then the module runs once more (never the other
    /// way round). For a value that is serializable, [`input_bytes`](Self::input_bytes) of
    /// its serialized form does not depend on the compiler.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let pool = Pool::new(1);
    /// for width in [640, 640, 800] {
    ///     let mut dag = Dag::new();
    ///     dag.cached_module("thumbnail", 1, [move |_: &Context| -> TaskResult<u32> { Ok(width / 2) }])?
    ///         .input_value("width", &width);
    ///     let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    ///     let status = report.module("thumbnail").unwrap().cache_status();
    ///     if width == 800 {
    ///         assert_eq!(status.why(), Some(&RunReason::InputChanged { input: "width".into() }));
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn input_value<V: std::hash::Hash + ?Sized>(self, label: &str, value: &V) -> Self {
        let InputDecl { label, source } = InputDecl::value(label, value);
        self.declare("input_value", label, source)
    }

    /// Declares bytes the module's tasks depend on (a serialized setting, a downloaded
    /// manifest) as an input of its fingerprint. Reported as `label`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, TaskResult};
    ///
    /// let settings = serde_json::json!({ "quality": 85 });
    /// let mut dag = Dag::new();
    /// dag.cached_module("encode", 1, [|_: &Context| -> TaskResult<u8> { Ok(85) }])?
    ///     .input_bytes("settings", serde_json::to_vec(&settings)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn input_bytes(self, label: &str, bytes: impl AsRef<[u8]>) -> Self {
        let InputDecl { label, source } = InputDecl::bytes(label, bytes.as_ref());
        self.declare("input_bytes", label, source)
    }
}
