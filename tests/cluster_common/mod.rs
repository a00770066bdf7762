//! A real `nats-server` for the cluster's tests: started on a free loopback port with a store
//! of its own, stopped when dropped.
//!
//! Without `nats-server` on the PATH a test prints a note and passes, unless
//! `JOBPOOL_REQUIRE_NATS` is set (CI sets it), where a missing server is a failure.
#![allow(dead_code)]

use std::io::Read;
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
        // A port found free may be taken again before the server binds it (by another test's
        // connection): the server then exits, and a new port is tried.
        for _ in 0..5 {
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
            if server.launch() {
                return Some(server);
            }
        }
        panic!("nats-server did not start on any of 5 free ports");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store(&self) -> PathBuf {
        self.store.path().to_owned()
    }

    /// Starts the server and waits until it greets a client; false if it exited first.
    fn launch(&mut self) -> bool {
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path())
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !greets(self.port) {
            if child.try_wait().is_ok_and(|status| status.is_some()) {
                return false;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not listen in 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
        true
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.launch(),
            "nats-server did not start again on port {}",
            self.port
        );
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

/// Whether a NATS server listens on `port`: it sends `INFO` first. A bare connect is not
/// enough: a connection to a port in the ephemeral range may be given that same port as its
/// own and connect to itself, with no server there.
fn greets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut greeting = [0; 4];
    stream.local_addr().ok() != stream.peer_addr().ok()
        && stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .is_ok()
        && stream.read_exact(&mut greeting).is_ok()
        && &greeting == b"INFO"
}
