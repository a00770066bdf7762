//! A real `nats-server` for the cluster's tests: started on a free loopback port with a store
//! of its own, stopped when dropped.
//!
//! Without `nats-server` on the PATH a test prints a note and passes, unless
//! `JOBPOOL_REQUIRE_NATS` is set (CI sets it), where a missing server is a failure.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js`.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    /// Options beyond the harness's own (a login, TLS).
    options: Vec<String>,
}

impl NatsServer {
    /// Starts a server; `None` (after a printed note) if there is no `nats-server` here.
    pub fn start() -> Option<NatsServer> {
        NatsServer::start_with(&[])
    }

    /// [`start`](Self::start), with more of `nats-server`'s options (`--auth TOKEN`, ...).
    pub fn start_with(options: &[&str]) -> Option<NatsServer> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            let note = "skipped: no nats-server on the PATH (apt-get install nats-server)";
            assert!(
                std::env::var_os("JOBPOOL_REQUIRE_NATS").is_none(),
                "{note}, and JOBPOOL_REQUIRE_NATS is set"
            );
            println!("{note}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = NatsServer {
            child: None,
            port,
            store: tempfile::tempdir().expect("a store directory"),
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        server.launch();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store(&self) -> PathBuf {
        self.store.path().to_owned()
    }

    fn launch(&mut self) {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path())
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen in 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
