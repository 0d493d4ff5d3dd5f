//! A `live_upload serve` process for the tests that talk to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BIN;

/// A running `live_upload serve`, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Server {
    pub fn start(location: &str, extra: &[&str]) -> Server {
        Self::start_with(Command::new(BIN), location, extra)
    }

    pub fn start_with(mut cmd: Command, location: &str, extra: &[&str]) -> Server {
        let mut child = cmd
            .args(["serve", location, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("LIVE_UPLOAD_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit_once("http://")
            .map(|(_, a)| a.trim_end_matches('/').to_string())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server { child, addr }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn stop(mut self) -> Option<i32> {
        terminate(&self.child);
        let code = wait(&mut self.child, Duration::from_secs(10));
        std::mem::forget(self);
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&self.child);
        let _ = wait(&mut self.child, Duration::from_secs(10));
    }
}

fn terminate(child: &Child) {
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("live_upload serve did not stop within {limit:?}");
}
