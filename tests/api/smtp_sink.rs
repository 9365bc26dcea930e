//! A small SMTP server over a real socket for the e-mail tests: it speaks enough of RFC 5321
//! (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for lettre, keeps what it receives, can be
//! told to refuse mails with a given reply, and can be stopped and started again on its port.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One mail as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    /// When set, `RCPT TO` gets this reply (such as `550 5.1.1 no such user`).
    refuse_with: Option<String>,
}

pub struct SmtpSink {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    task: Option<JoinHandle<()>>,
}

impl SmtpSink {
    /// Starts on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the sink binds");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = Some(tokio::spawn(serve(listener, shared.clone())));
        Self { port, shared, task }
    }

    /// `LOY_SMTP_URL` for this sink (plain SMTP on localhost).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Closes the port and every open connection: clients now get "connection refused".
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port, keeping what was received.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("the sink binds its port again");
        self.task = Some(tokio::spawn(serve(listener, self.shared.clone())));
    }

    /// Refuses every recipient with `reply` (a full reply line like `550 5.1.1 no such user`),
    /// or accepts again with `None`.
    pub fn refuse_with(&self, reply: Option<&str>) {
        self.shared.lock().unwrap().refuse_with = reply.map(str::to_owned);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` mails arrived (at most 10 s), returning them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sink received {} mails, expected {n}", self.received().len());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until aborted; dropping the set closes every open connection too.
async fn serve(listener: TcpListener, shared: Arc<Mutex<Shared>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(session(stream, shared.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn session(stream: TcpStream, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING".into(),
            "HELO" => "250 sink.test".into(),
            "MAIL" => {
                from = address(&command);
                to.clear();
                "250 2.1.0 ok".into()
            }
            "RCPT" => match shared.lock().unwrap().refuse_with.clone() {
                Some(reply) => reply,
                None => {
                    to.push(address(&command));
                    "250 2.1.5 ok".into()
                }
            },
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                shared.lock().unwrap().received.push(Received { from: from.clone(), to: to.clone(), data });
                "250 2.0.0 queued".into()
            }
            "RSET" => {
                to.clear();
                "250 ok".into()
            }
            "NOOP" => "250 ok".into(),
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognised".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address in `MAIL FROM:<a@b> …` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    command.split('<').nth(1).and_then(|rest| rest.split('>').next()).unwrap_or("").to_owned()
}
