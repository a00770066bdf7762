//! Jobs across many worker processes, on a NATS JetStream server (feature `cluster`).
//!
//! The same model as in one process, across processes that may die at any moment: a job is a
//! batch of tasks with a cap k, and **at no moment do more than k of its tasks run across the
//! whole cluster**.
//!
//! - [`TaskTypes`]: named functions from a serializable argument to a serializable output,
//!   registered alike in every process.
//! - [`Worker`]: a process's worker: it connects, runs a local [`Pool`](crate::Pool) of N
//!   threads, and runs the tasks of the task types it knows as the broker hands them out.
//! - [`Submitter`]: submits jobs ([`Submitter::submit`]) and hands back a [`RemoteJob`] to wait
//!   for the results in order, see progress, cancel, or change the cap; or attaches to a job
//!   by its id ([`Submitter::attach`]), from another process or after a restart.
//!
//! Delivery is **at least once**: a task whose worker dies (or stalls past the ack wait) runs
//! again on another worker, so tasks should be idempotent; each task's result is counted
//! once. How, and why the guarantees hold, is in the protocol's description, `README.md`
//! beside this file.
//!
//! The client is the official `async-nats`, on a runtime of its own on an internal thread: the
//! API here is synchronous.

mod dag;
mod future;
mod protocol;
mod registry;
mod submitter;
mod worker;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;

pub use future::RemoteJobFuture;
pub use registry::{RemoteTaskError, TaskType, TaskTypes};
pub use submitter::{RemoteCompletions, RemoteFailure, RemoteJob, Submitter};
pub use worker::Worker;

/// Where the broker is and how to log in to it; the ack wait of the jobs submitted through it.
///
/// Credentials are never shown: `Debug` says which kind of login is set, not its secret.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::cluster::Broker;
///
/// let broker = Broker::new("nats://127.0.0.1:4222")
///     .token("s3cret")
///     .ack_wait(Duration::from_secs(10));
/// assert!(!format!("{broker:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Broker {
    url: String,
    login: Login,
    require_tls: bool,
    root_certificates: Vec<PathBuf>,
    ack_wait: Duration,
}

/// How a process logs in to the broker.
#[derive(Clone)]
enum Login {
    None,
    Token(String),
    UserPassword(String, String),
    CredentialsFile(PathBuf),
}

impl Broker {
    /// The broker at `url` (`nats://host:port`), with no login, an ack wait of 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::Broker;
    ///
    /// let broker = Broker::new("nats://127.0.0.1:4222");
    /// let shown = format!("{broker:?}");
    /// assert!(shown.contains(r#"login: "none""#) && shown.contains("ack_wait: 30s"));
    /// ```
    pub fn new(url: impl Into<String>) -> Broker {
        Broker {
            url: url.into(),
            login: Login::None,
            require_tls: false,
            root_certificates: Vec::new(),
            ack_wait: Duration::from_secs(30),
        }
    }

    /// Logs in with a token.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::Broker;
    ///
    /// let broker = Broker::new("nats://127.0.0.1:4222").token("s3cret");
    /// let shown = format!("{broker:?}");
    /// assert!(shown.contains(r#"login: "token""#));
    /// assert!(!shown.contains("s3cret")); // Debug names the kind of login, not the token
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Broker {
        self.login = Login::Token(token.into());
        self
    }

    /// Logs in with a user name and a password.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::Broker;
    ///
    /// let broker = Broker::new("nats://127.0.0.1:4222").user_password("worker", "s3cret");
    /// let shown = format!("{broker:?}");
    /// assert!(shown.contains(r#"login: "user and password""#));
    /// assert!(!shown.contains("worker") && !shown.contains("s3cret"));
    /// ```
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Broker {
        self.login = Login::UserPassword(user.into(), password.into());
        self
    }

    /// Logs in with a NATS credentials file (a JWT and an NKey seed). The file is read when
    /// connecting, not here.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::Broker;
    ///
    /// let broker = Broker::new("nats://127.0.0.1:4222")
    ///     .credentials_file("/etc/nats/worker.creds"); // not read yet: read when connecting
    /// assert!(format!("{broker:?}").contains(r#"login: "credentials file""#));
    /// ```
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Broker {
        self.login = Login::CredentialsFile(path.into());
        self
    }

    /// Requires TLS to the broker (the client supports it through rustls). The broker's
    /// certificate is checked against the system's roots and those added with
    /// [`root_certificate`](Self::root_certificate).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::Broker;
    ///
    /// let broker = Broker::new("tls://nats.example.com:4222")
    ///     .require_tls(true)
    ///     .root_certificate("/etc/nats/ca.pem")
    ///     .user_password("worker", "s3cret");
    /// # let _ = broker;
    /// ```
    pub fn require_tls(mut self, yes: bool) -> Broker {
        self.require_tls = yes;
        self
    }

    /// Trusts the certificates in the PEM file at `path` as roots, for a broker whose
    /// certificate a private authority signed. Read when connecting: a file that cannot be
    /// read is a [`ClusterError::Connect`] then.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::Broker;
    ///
    /// let broker = Broker::new("tls://nats.internal:4222")
    ///     .require_tls(true)
    ///     .root_certificate("/etc/nats/ca.pem"); // not read yet: read when connecting
    /// assert!(format!("{broker:?}").contains("/etc/nats/ca.pem"));
    /// ```
    pub fn root_certificate(mut self, path: impl Into<PathBuf>) -> Broker {
        self.root_certificates.push(path.into());
        self
    }

    /// How long a task may go unacknowledged before the broker hands it to another worker
    /// (30 s unless set). A worker running a longer task tells the broker it is still at it
    /// every third of this, so only a worker that died or stalled loses its tasks; a short
    /// ack wait makes the cluster notice such a worker sooner.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool::cluster::Broker;
    ///
    /// // A worker that dies loses its tasks to another after 5 s, not 30 s.
    /// let broker = Broker::new("nats://127.0.0.1:4222").ack_wait(Duration::from_secs(5));
    /// assert!(format!("{broker:?}").contains("ack_wait: 5s"));
    /// ```
    pub fn ack_wait(mut self, wait: Duration) -> Broker {
        self.ack_wait = wait;
        self
    }

    /// Connects, and creates the cluster's streams if they do not exist.
    async fn connect(&self) -> Result<jetstream::Context, ClusterError> {
        // The first connection must succeed (a wrong login or address is an error now); once
        // connected, the client reconnects for ever (a broker restarting).
        let mut options = async_nats::ConnectOptions::new()
            .require_tls(self.require_tls)
            .max_reconnects(None);
        for path in &self.root_certificates {
            options = options.add_root_certificates(path.clone());
        }
        options = match &self.login {
            Login::None => options,
            Login::Token(token) => options.token(token.clone()),
            Login::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Login::CredentialsFile(path) => options
                .credentials_file(path)
                .await
                .map_err(|err| ClusterError::Connect(format!("the credentials file: {err}")))?,
        };
        let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(self.url.as_str()))
            .await
            .map_err(|_| {
                ClusterError::Connect(format!(
                    "no answer from {} in {CONNECT_TIMEOUT:?}",
                    self.url
                ))
            })?
            .map_err(|err| ClusterError::Connect(format!("{}: {err}", self.url)))?;
        let js = jetstream::new(client);
        protocol::ensure_streams(&js).await?;
        Ok(js)
    }
}

/// How long a first connection may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let login = match &self.login {
            Login::None => "none",
            Login::Token(_) => "token",
            Login::UserPassword(..) => "user and password",
            Login::CredentialsFile(_) => "credentials file",
        };
        f.debug_struct("Broker")
            .field("url", &self.url)
            .field("login", &login)
            .field("require_tls", &self.require_tls)
            .field("root_certificates", &self.root_certificates)
            .field("ack_wait", &self.ack_wait)
            .finish()
    }
}

/// What went wrong between a process and the broker.
///
/// # Examples
///
/// ```
/// use jobpool::cluster::ClusterError;
///
/// let err = ClusterError::UnknownJob("1f2e".into());
/// assert_eq!(err.to_string(), "no job has the id 1f2e");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// The broker could not be reached or refused the login.
    Connect(String),
    /// The broker answered a request with an error, or did not answer.
    Broker(String),
    /// A message could not be encoded or decoded.
    Encoding(String),
    /// No job has this id (on [`Submitter::attach`]).
    UnknownJob(String),
    /// The task type is not registered in this process's [`TaskTypes`].
    UnknownTaskType(String),
    /// A cap of 0: no task could ever run.
    ZeroCap,
    /// The system would not start a thread (to wait for a remote job in the background).
    Thread(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Connect(why) => write!(f, "cannot connect to the broker: {why}"),
            ClusterError::Broker(why) => write!(f, "the broker: {why}"),
            ClusterError::Encoding(why) => write!(f, "a message could not be encoded: {why}"),
            ClusterError::UnknownJob(id) => write!(f, "no job has the id {id}"),
            ClusterError::UnknownTaskType(name) => {
                write!(f, "no task type `{name}` is registered")
            }
            ClusterError::ZeroCap => f.write_str("a job's cap must be at least 1"),
            ClusterError::Thread(why) => write!(f, "cannot start a thread: {why}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A runtime of its own for one submitter or worker: one thread, on which the client's
/// futures run; the public API blocks on them.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("jobpool-cluster")
        .enable_all()
        .build()
        .map_err(|err| ClusterError::Connect(format!("cannot start the client's runtime: {err}")))
}
