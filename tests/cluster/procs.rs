//! The `loy` processes of the cluster: started with their own settings on their own port,
//! stopped with SIGTERM (graceful) or SIGKILL (a crash), started again on the same port.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `loy serve` with `LOY_WORKERS=0`.
    App,
    /// `loy worker`.
    Worker,
}

pub struct Proc {
    pub name: String,
    pub role: Role,
    pub port: u16,
    vars: HashMap<String, String>,
    log: PathBuf,
    /// The running process; behind a lock so that one task can restart a process while others
    /// send it requests.
    child: Mutex<Option<Child>>,
}

/// A port nothing listens on now (the process binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Proc {
    pub fn new(name: &str, role: Role, vars: &HashMap<String, String>, logs: &std::path::Path) -> Self {
        let port = free_port();
        let mut vars = vars.clone();
        vars.insert("LOY_BIND".into(), format!("127.0.0.1:{port}"));
        if role == Role::App {
            vars.insert("LOY_WORKERS".into(), "0".into());
        }
        Self { name: name.into(), role, port, vars, log: logs.join(format!("{name}.log")), child: Mutex::new(None) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts the process (its output appended to its log file) and waits until it answers.
    pub async fn start(&self) {
        assert!(self.child.lock().unwrap().is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_loy"))
            .arg(match self.role {
                Role::App => "serve",
                Role::Worker => "worker",
            })
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.vars)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.name));
        *self.child.lock().unwrap() = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let path = match self.role {
            Role::App => "/readyz",
            Role::Worker => "/healthz",
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self.try_wait() {
                panic!("{} exited at start ({status}):\n{}", self.name, self.log_tail());
            }
            if let Ok(response) = client.get(self.url(path)).timeout(Duration::from_secs(2)).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not become ready within 60 s:\n{}", self.name, self.log_tail());
    }

    fn pid(&self) -> String {
        self.child.lock().unwrap().as_ref().expect("running").id().to_string()
    }

    /// The exit status once the process has ended (and forgets it then).
    fn try_wait(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap();
        let status = child.as_mut().expect("started").try_wait().unwrap()?;
        *child = None;
        Some(status)
    }

    /// SIGTERM, then waits for the exit; returns its status and how long the stop took.
    pub async fn terminate(&self) -> (ExitStatus, Duration) {
        let began = Instant::now();
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(60)).await;
        (status, began.elapsed())
    }

    /// Sends `SIGNAL` (`KILL`, `TERM`); [`Proc::wait_exit`] then collects the exit.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill").args([&format!("-{signal}"), &self.pid()]).status().unwrap();
        assert!(sent.success(), "kill -{signal} {}", self.name);
    }

    pub async fn wait_exit(&self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(started.elapsed() < limit, "{} did not exit within {limit:?}:\n{}", self.name, self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Lines of its log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = self.child.get_mut().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a `loy` operator command with the cluster's settings; returns (exit code, stdout).
pub fn loy_command(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_loy"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars)
        .output()
        .expect("the loy binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}
