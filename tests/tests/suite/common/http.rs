//! A tiny HTTP/1.1 server on 127.0.0.1 for the tests of plugins' outbound
//! requests: one request per connection, read whole (head and a
//! `content-length` body), recorded, and answered with the [`Reply`] the
//! test's handler gives for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::WAIT;

/// One request the server got, and the status it answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The header fields, names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status of the reply (0 when it sent no status line).
    pub status: u16,
    /// When it was read.
    pub at: Instant,
}

impl Request {
    /// A header's value, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the server answers to one request: `bytes` (the whole response)
/// after `delay`, then the connection stays open for `hold` before closing.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Recorded as the request's [`status`](Request::status).
    pub status: u16,
    pub bytes: Vec<u8>,
    pub delay: Duration,
    pub hold: Duration,
}

impl Reply {
    /// `status` with `body` and its `content-length`.
    pub fn new(status: u16, body: &str) -> Reply {
        let length = format!("content-length: {}\r\n", body.len());
        Reply::with_head(status, &length, body.as_bytes().to_vec())
    }

    /// `status` with the header lines `fields` (each ending in `\r\n`;
    /// `connection: close` is added) and `body` as it is.
    pub fn with_head(status: u16, fields: &str, body: Vec<u8>) -> Reply {
        let mut bytes =
            format!("HTTP/1.1 {status} X\r\n{fields}connection: close\r\n\r\n").into_bytes();
        bytes.extend(body);
        Reply {
            status,
            bytes,
            delay: Duration::ZERO,
            hold: Duration::ZERO,
        }
    }

    /// No answer at all, the connection held open for a minute.
    pub fn silent() -> Reply {
        Reply {
            status: 0,
            bytes: Vec::new(),
            delay: Duration::ZERO,
            hold: Duration::from_secs(60),
        }
    }

    /// The same reply, sent after `delay`.
    pub fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }

    /// The same reply, the connection held open for `hold` after it.
    pub fn then_hold(self, hold: Duration) -> Reply {
        Reply { hold, ..self }
    }
}

/// The handler: the reply to a request, given the requests before it.
type Handler = dyn Fn(&Request, &[Request]) -> Reply + Send + Sync;

/// The server; it runs until the test's runtime ends.
#[derive(Debug, Clone)]
pub struct Server {
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// A server on any free port answering with `handler`.
    pub async fn start(
        handler: impl Fn(&Request, &[Request]) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::start_on(0, handler).await
    }

    /// A server on `port` of 127.0.0.1 (0: any free one).
    pub async fn start_on(
        port: u16,
        handler: impl Fn(&Request, &[Request]) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, Arc::clone(&shared), Arc::clone(&handler)));
            }
        });
        Server { port, log }
    }

    /// The URL of `path` (and query) on the server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// The requests once `done` holds for them; panics after [`WAIT`].
    pub async fn wait_until(&self, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.requests();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the server got only {} requests: {got:#?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Reads one request from `s`, records it and writes the handler's reply.
async fn answer(mut s: TcpStream, log: Arc<Mutex<Vec<Request>>>, handler: Arc<Handler>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        first.next().unwrap_or_default().to_owned(),
        first.next().unwrap_or_default().to_owned(),
    );
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: buf[head_end..].to_vec(),
        status: 0,
        at: Instant::now(),
    };
    let reply = {
        let mut log = log.lock().unwrap();
        let reply = handler(&request, &log);
        request.status = reply.status;
        log.push(request);
        reply
    };
    tokio::time::sleep(reply.delay).await;
    if !reply.bytes.is_empty() {
        let _ = s.write_all(&reply.bytes).await;
    }
    tokio::time::sleep(reply.hold).await;
}
