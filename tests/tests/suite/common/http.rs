//! A tiny HTTP/1.1 server on 127.0.0.1 for the tests of plugins' outbound
//! requests: one request per connection, read whole (head and a
//! `content-length` body), recorded, and answered with the [`Reply`] the
//! test's handler gives for it. Plain, or over TLS with a certificate of a
//! [`TestCa`] made for the run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

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
    /// `http` or `https`.
    scheme: &'static str,
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
        Server::listen(port, None, Arc::new(handler)).await
    }

    /// An `https` server on any free port of 127.0.0.1 with `certificate`
    /// (see [`TestCa::certificate`]), answering with `handler`. A client
    /// that refuses the certificate is never read from: it sends nothing.
    pub async fn start_tls(
        certificate: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Request, &[Request]) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let acceptor = tokio_rustls::TlsAcceptor::from(certificate);
        Server::listen(0, Some(acceptor), Arc::new(handler)).await
    }

    async fn listen(
        port: u16,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: Arc<Handler>,
    ) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, handler) = (Arc::clone(&shared), Arc::clone(&handler));
                match tls.clone() {
                    None => drop(tokio::spawn(answer(stream, log, handler))),
                    Some(acceptor) => drop(tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer(stream, log, handler).await;
                        }
                    })),
                }
            }
        });
        Server { port, scheme, log }
    }

    /// The URL of `path` (and query) on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
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
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    log: Arc<Mutex<Vec<Request>>>,
    handler: Arc<Handler>,
) {
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
        let _ = s.flush().await;
    }
    tokio::time::sleep(reply.hold).await;
    let _ = s.shutdown().await;
}

/// A certificate authority made for one test run, and certificates it
/// signs for the test servers.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// The CA's certificate, PEM: what `outbound_ca_files` names.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed
    /// by this CA, with its key, as a server's TLS settings.
    pub fn certificate(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let chain = vec![cert.der().clone(), self.issuer.der().clone()];
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Arc::new(config)
    }
}
