//! The pool: a fixed set of worker threads, and how jobs are submitted to it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BuildError, SubmitError, SubmitErrorKind};
use crate::job::{self, JobHandle};
use crate::scheduler::{worker, Registry};
use crate::scope::Scope;
use crate::sync::{thread, Mutex};

/// The time slice used when the builder is not given one; see [`PoolBuilder::time_slice`].
const DEFAULT_TIME_SLICE: Duration = Duration::from_micros(100);

/// The aging limit used when the builder is not given one; see [`PoolBuilder::aging`].
const DEFAULT_AGING_TURNS: usize = 16;

/// A fixed pool of worker threads that runs many jobs at once, each with its own cap.
///
/// `Pool` is a cheap handle: clone it to share the pool, move a clone into a task so the task
/// can submit sub-jobs. When the last handle is dropped, the pool shuts down as
/// [`shutdown`](Pool::shutdown) does: it takes no more jobs, finishes every task it accepted,
/// and joins its threads (unless the last handle is dropped by one of the pool's own tasks,
/// which cannot join the thread it runs on: the threads then exit on their own once the work is
/// done).
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(8);
/// // At most 2 of these tasks run at once; the other 6 workers stay free for other jobs.
/// let gentle = pool.submit((0..10).map(|i| move || i + 1), 2);
/// let eager = pool.submit((0..10).map(|i| move || i * 2), 8);
/// assert_eq!(gentle.wait().unwrap().iter().sum::<i32>(), 55);
/// assert_eq!(eager.wait().unwrap().iter().sum::<i32>(), 90);
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// Owns the threads; dropped with the last `Pool` handle.
struct PoolInner {
    registry: Arc<Registry>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Pool {
    /// A pool of `threads` worker threads.
    ///
    /// # Panics
    ///
    /// If `threads` is 0, or a thread cannot be started. [`Pool::builder`] returns these as
    /// errors instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(4);
    /// assert_eq!(pool.threads(), 4);
    /// ```
    pub fn new(threads: usize) -> Pool {
        match Pool::builder().threads(threads).build() {
            Ok(pool) => pool,
            Err(err) => panic!("Pool::new({threads}): {err}"),
        }
    }

    /// A builder, to set the number of threads, their names and the time slice.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::builder()
    ///     .threads(2)
    ///     .thread_name(|i| format!("prober-{i}"))
    ///     .build()
    ///     .unwrap();
    /// let name = pool.submit(vec![|| std::thread::current().name().map(str::to_owned)], 1).wait().unwrap();
    /// assert!(name[0].as_deref().unwrap().starts_with("prober-"));
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(jobpool::Pool::new(3).threads(), 3);
    /// ```
    pub fn threads(&self) -> usize {
        self.inner.registry.threads()
    }

    /// The pool's registry, for job builders.
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The rank of a dependency graph's run that started at `started`: older runs rank
    /// lower (they go first).
    pub(crate) fn run_rank(&self, started: std::time::Instant) -> u64 {
        self.inner.registry.rank_of(crate::sync::from_std(started))
    }

    /// Whether the current thread is one of this pool's workers.
    pub(crate) fn is_worker_thread(&self) -> bool {
        self.inner.registry.is_current_worker()
    }

    /// Submits a job: `tasks`, of which at most `cap` run at once. Returns its handle.
    ///
    /// `cap` may exceed the number of threads; the pool then simply never runs more than
    /// its threads at once. Tasks may submit jobs to the same pool and wait for them.
    ///
    /// # Panics
    ///
    /// If `cap` is 0, or the pool was shut down. [`try_submit`](Pool::try_submit) returns
    /// these as errors instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(4);
    /// let job = pool.submit((0..4).map(|i| move || format!("task {i}")), 2);
    /// assert_eq!(job.wait().unwrap()[3], "task 3");
    /// ```
    pub fn submit<I, F, T>(&self, tasks: I, cap: usize) -> JobHandle<T>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.try_submit(tasks, cap) {
            Ok(handle) => handle,
            Err(err) => panic!("Pool::submit: {err}"),
        }
    }

    /// Submits a job, or says why it cannot and hands the tasks back.
    ///
    /// After [`shutdown`](Pool::shutdown), jobs submitted by the pool's own tasks are still
    /// accepted (they are part of work accepted earlier); jobs from any other thread are not.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with [`SubmitErrorKind::ZeroCap`] if `cap` is 0, or
    /// [`SubmitErrorKind::ShutDown`] if the pool was shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, SubmitErrorKind};
    ///
    /// let pool = Pool::new(2);
    /// assert_eq!(pool.try_submit(vec![|| 1], 0).unwrap_err().kind(), SubmitErrorKind::ZeroCap);
    /// assert_eq!(pool.try_submit(vec![|| 1], 1).unwrap().wait().unwrap(), vec![1]);
    /// ```
    pub fn try_submit<I, F, T>(&self, tasks: I, cap: usize) -> Result<JobHandle<T>, SubmitError<F>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let tasks: VecDeque<F> = tasks.into_iter().collect();
        if cap == 0 {
            return Err(SubmitError::new(SubmitErrorKind::ZeroCap, tasks.into()));
        }
        match job::spawn(
            &self.inner.registry,
            tasks,
            cap,
            Default::default(),
            usize::MAX,
        ) {
            Ok(handle) => Ok(handle),
            Err((kind, tasks)) => Err(SubmitError::new(kind, tasks.into())),
        }
    }

    /// Opens a scope in which jobs may borrow from the caller's stack, as `std::thread::scope`
    /// and rayon's `scope` allow: [`Scope::submit`] takes tasks that need not be `'static`.
    /// Returns what `body` returns, once every job submitted in the scope has finished and every
    /// one of its tasks has run or been dropped, also when a task or `body` panics (then the
    /// panic of `body` is resumed here; a task's panic reaches its job's handle as usual).
    ///
    /// Caps, nesting and waits work inside a scope as they do outside: a task may open a scope
    /// of its own, even in a pool of one thread (the waiting worker runs the scope's tasks). The
    /// results of a scoped job must be `'static`: they outlive the scope in the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(4);
    /// let files: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 1000]).collect();
    /// let sums = pool.scope(|s| {
    ///     // No `Arc`, no clones: the tasks borrow `files`, two at a time.
    ///     s.submit(files.iter().map(|f| move || f.iter().map(|&b| b as u64).sum::<u64>()), 2)
    ///         .wait()
    ///         .unwrap()
    /// });
    /// assert_eq!(sums[3], 3000);
    /// ```
    ///
    /// A task cannot borrow what the scope may outlive:
    ///
    /// ```compile_fail
    /// let pool = jobpool::Pool::new(1);
    /// pool.scope(|s| {
    ///     let local = vec![1, 2, 3];
    ///     s.submit(vec![|| local.len()], 1); // `local` is dropped while the scope may still run it
    /// });
    /// ```
    ///
    /// The scope cannot be smuggled out of its body:
    ///
    /// ```compile_fail
    /// let pool = jobpool::Pool::new(1);
    /// let mut outside = None;
    /// pool.scope(|s| outside = Some(s));
    /// ```
    ///
    /// A result cannot carry a borrow out of the scope:
    ///
    /// ```compile_fail
    /// let pool = jobpool::Pool::new(1);
    /// let data = vec![1, 2, 3];
    /// let job = pool.scope(|s| s.submit(vec![|| &data[..]], 1));
    /// ```
    pub fn scope<'env, B, R>(&self, body: B) -> R
    where
        B: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        crate::scope::scope(self, body)
    }

    /// How long the runnable jobs of `priority` have waited for a worker: the time since that
    /// priority last got a turn while it had jobs waiting, or since its first job became
    /// runnable. `None` when none of its jobs waits. A figure that keeps growing means that
    /// priority is starved (see [`PoolBuilder::aging`] for the share it is guaranteed). A job
    /// submitted while every worker was busy and a job at least as urgent waited is counted
    /// from the next time a worker looked for work (or from this call), not from its
    /// submission: it skipped the run queue's lock until then.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Priority};
    /// let pool = Pool::new(1);
    /// assert_eq!(pool.waited(Priority::Low), None); // nothing waits
    /// ```
    pub fn waited(&self, priority: crate::Priority) -> Option<Duration> {
        self.inner.registry.waited(priority)
    }

    /// Listens to the pool's events from now on: jobs submitted, started, held and finished,
    /// tasks started and ended (with how), and dependency-graph modules started and ended.
    ///
    /// The listener keeps up to `capacity` events not yet received (at least 1); while it is
    /// full, new events are dropped and counted ([`Events::dropped`](crate::Events::dropped)),
    /// so a slow listener never slows the pool. Several listeners may listen at once; dropping
    /// one unsubscribes it. With no listener, the pool builds no event at all; what listening
    /// costs is on [`Events`](crate::Events).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{EventKind, Pool, TaskOutcome};
    ///
    /// let pool = Pool::new(2);
    /// let events = pool.events(1024);
    /// let job = pool.job().name("probe").cap(2).submit((0..4).map(|i| move || i));
    /// job.wait()?;
    /// for event in events.try_iter() {
    ///     if let EventKind::TaskEnded { index, outcome, .. } = event.kind {
    ///         assert_eq!(outcome, TaskOutcome::Done);
    ///         println!("{:?} ran task {index} of {:?}", event.worker, event.name);
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn events(&self, capacity: usize) -> crate::Events {
        self.inner.registry.subscribe(capacity)
    }

    /// What the pool is doing now (busy, idle and sleeping workers; live, queued and running
    /// jobs), what it has done since it started (tasks done, failed, not run; retries), and how
    /// long the longest-waiting job has waited. Cheap enough for a UI loop: one short hold of
    /// the run queue's lock and a read of one cache line per worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(2);
    /// let job = pool.submit((0..100).map(|i| move || i), 2);
    /// let during = pool.stats();
    /// assert!(during.tasks_done <= 100);
    /// job.wait()?;
    /// assert_eq!(pool.stats().tasks_done, 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> crate::Stats {
        self.inner.registry.stats()
    }

    /// Stops taking jobs, lets every accepted task run, and joins the worker threads.
    ///
    /// Applies to every clone of this handle. Called from one of the pool's own tasks, it
    /// starts the shutdown and returns at once (a thread cannot join itself).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = Pool::new(2);
    /// let ran = Arc::new(AtomicUsize::new(0));
    /// let tasks = (0..100).map(|_| { let ran = ran.clone(); move || { ran.fetch_add(1, Ordering::Relaxed); } });
    /// let _detached = pool.submit(tasks, 1);
    /// pool.shutdown();
    /// assert_eq!(ran.load(Ordering::Relaxed), 100); // every accepted task ran
    /// assert!(pool.try_submit(vec![|| ()], 1).is_err());
    /// ```
    pub fn shutdown(&self) {
        self.inner.shutdown(false);
    }

    /// Stops taking jobs, cancels every task that has not started, waits for the running ones,
    /// and joins the worker threads. The cancelled tasks are reported to their jobs' handles as
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let stopper = pool.clone();
    /// // The first task stops the pool (from a task, the call returns at once): it finishes,
    /// // and the second task, pending, never starts.
    /// let first = move || stopper.shutdown_now();
    /// let tasks: Vec<Box<dyn FnOnce() + Send>> = vec![Box::new(first), Box::new(|| ())];
    /// let job = pool.submit(tasks, 1);
    /// let err = job.wait().unwrap_err();
    /// assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![1]);
    /// pool.shutdown_now(); // joins the worker
    /// ```
    pub fn shutdown_now(&self) {
        self.inner.shutdown(true);
    }
}

impl PoolInner {
    fn shutdown(&self, cancel: bool) {
        self.registry.shutdown(cancel);
        if self.registry.is_current_worker() {
            return;
        }
        // The lock is held while joining, so that a second, concurrent `shutdown` returns only
        // once the threads are gone too.
        let mut threads = self.threads.lock();
        for thread in threads.drain(..) {
            // Workers never panic: every task, callback and drop of a cancelled task runs
            // under `catch_unwind`.
            let _ = thread.join();
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

impl Default for Pool {
    /// A pool with one thread per logical CPU (`num_cpus::get()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::default();
    /// assert_eq!(pool.threads(), num_cpus::get());
    /// ```
    fn default() -> Pool {
        Pool::new(num_cpus::get())
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .field("shut_down", &self.inner.registry.is_shut_down())
            .finish()
    }
}

/// Configures and builds a [`Pool`]; from [`Pool::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let pool = jobpool::Pool::builder()
///     .threads(4)
///     .thread_name(|i| format!("worker-{i}"))
///     .time_slice(Duration::from_millis(1))
///     .build()?;
/// # Ok::<(), jobpool::BuildError>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder {
    threads: Option<usize>,
    thread_name: Option<Box<dyn FnMut(usize) -> String>>,
    stack_size: Option<usize>,
    time_slice: Duration,
    aging_turns: usize,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            threads: None,
            thread_name: None,
            stack_size: None,
            time_slice: DEFAULT_TIME_SLICE,
            aging_turns: DEFAULT_AGING_TURNS,
        }
    }
}

impl PoolBuilder {
    /// The number of worker threads. Without it, one per logical CPU.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(jobpool::Pool::builder().threads(2).build().unwrap().threads(), 2);
    /// ```
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Names worker thread `i` (from 0) `name(i)`. Without it, threads are named
    /// `jobpool-worker-{i}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::builder().threads(1).thread_name(|i| format!("io-{i}")).build().unwrap();
    /// let name = pool.submit(vec![|| std::thread::current().name().unwrap().to_owned()], 1).wait().unwrap();
    /// assert_eq!(name, vec!["io-0".to_owned()]);
    /// ```
    pub fn thread_name<N>(mut self, name: N) -> Self
    where
        N: FnMut(usize) -> String + 'static,
    {
        self.thread_name = Some(Box::new(name));
        self
    }

    /// The stack size of each worker thread, in bytes. Without it, the platform's default
    /// for spawned threads. Deeply nested jobs (tasks that wait on sub-jobs whose tasks wait
    /// on sub-jobs ...) use stack on the waiting worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::builder().threads(1).stack_size(8 << 20).build().unwrap();
    /// assert_eq!(pool.submit(vec![|| 1], 1).wait().unwrap(), vec![1]);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// How long a worker keeps serving one job while a less served job waits for a worker
    /// (default 100 µs). A worker checks at the end of each task, so a job whose tasks run
    /// longer than the slice gives way after every task. Shorter slices give newly submitted
    /// jobs workers sooner; longer ones switch jobs less often.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = jobpool::Pool::builder().threads(2).time_slice(Duration::from_millis(2)).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn time_slice(mut self, slice: Duration) -> Self {
        self.time_slice = slice;
        self
    }

    /// How long a lower [`Priority`](crate::Priority) waits at most while higher ones keep the
    /// workers busy, in *turns*: a priority passed over `turns` times in a row (16 unless set)
    /// gets the next free worker, for one time slice or one task. So every priority with a
    /// runnable job gets at least one turn in every `turns + 1`, whatever runs above it: the
    /// minimum share that keeps low-priority work from starving. [`Pool::waited`] tells how
    /// long each priority has waited.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::builder().threads(2).aging(4).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn aging(mut self, turns: usize) -> Self {
        self.aging_turns = turns.max(1);
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] for `threads(0)`; [`BuildError::Spawn`] if the operating
    /// system refuses a thread (the threads already started are stopped again).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{BuildError, Pool};
    /// assert_eq!(Pool::builder().threads(0).build().unwrap_err(), BuildError::ZeroThreads);
    /// ```
    pub fn build(mut self) -> Result<Pool, BuildError> {
        let threads = self.threads.unwrap_or_else(num_cpus::get);
        if threads == 0 {
            return Err(BuildError::ZeroThreads);
        }
        let registry = Arc::new(Registry::new(threads, self.time_slice, self.aging_turns));
        let inner = PoolInner {
            registry: registry.clone(),
            threads: Mutex::new(Vec::with_capacity(threads)),
        };
        for i in 0..threads {
            let name = match &mut self.thread_name {
                Some(name) => name(i),
                None => format!("jobpool-worker-{i}"),
            };
            let mut builder = thread::Builder::new().name(name);
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let registry = registry.clone();
            match builder.spawn(move || worker::worker_main(registry, i)) {
                Ok(handle) => inner.threads.lock().push(handle),
                // Dropping `inner` shuts the started threads down again.
                Err(err) => return Err(BuildError::Spawn(err.to_string())),
            }
        }
        Ok(Pool {
            inner: Arc::new(inner),
        })
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("threads", &self.threads)
            .field("stack_size", &self.stack_size)
            .field("time_slice", &self.time_slice)
            .field("aging_turns", &self.aging_turns)
            .finish_non_exhaustive()
    }
}
