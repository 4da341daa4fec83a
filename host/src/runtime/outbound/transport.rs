//! Sending one admitted request: resolve the host, check every address,
//! connect to a checked one (never resolving again), TLS for `https`, one
//! HTTP/1.1 exchange, and a response body that is metered, capped and timed.
//!
//! Timeouts ([`Timeouts`]): **connect** bounds resolving, connecting and the
//! TLS and HTTP handshakes together; **first byte** bounds the wait for the
//! response head; **between bytes** bounds each wait for more of the body.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::addresses::restricted;
use super::exchange::Exchange;
use super::grants::{Destination, Host, Scheme};
use super::trust::Trust;

/// The `violation_type` of a request whose host resolved to a restricted
/// address no grant names literally.
pub(crate) const ADDRESS_BLOCKED: &str = "outbound_address_blocked";

/// The timeouts of one request: the plugin's `limits.http_timeout_ms`, or
/// less where the guest's `request-options` ask for less (never more).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) first_byte: Duration,
    pub(crate) between_bytes: Duration,
}

impl Timeouts {
    pub(crate) fn new(limit: Duration, options: Option<RequestOptions>) -> Timeouts {
        let pick = |asked: Option<Duration>| {
            asked
                .map_or(limit, |a| a.min(limit))
                .max(Duration::from_millis(1))
        };
        let o = options.unwrap_or_default();
        Timeouts {
            connect: pick(o.connect_timeout),
            first_byte: pick(o.first_byte_timeout),
            between_bytes: pick(o.between_bytes_timeout),
        }
    }
}

/// What the gate decided for a request it let through.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) destination: Destination,
    /// The restricted address a covering grant names literally, if any.
    pub(crate) literal: Option<IpAddr>,
    pub(crate) timeouts: Timeouts,
    pub(crate) max_response_bytes: u64,
    /// The certificate authorities an `https` destination must chain to.
    pub(crate) trust: Trust,
}

/// Why a request did not get a response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Refused after resolving: a restricted address (`resource` names it).
    Denied { resource: String },
    /// Failed; the error the guest gets.
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Error(e)
    }
}

/// The future that drives the connection while the body is read.
pub(crate) type Driver = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends `req` as `plan` says. The response's body carries `exchange` and
/// ends it; a failure ends it at once (a refusal reported as one, see
/// [`super::refuse`]).
pub(crate) async fn send(
    req: hyper::Request<WasiBody>,
    plan: Plan,
    mut exchange: Exchange,
) -> Result<(hyper::Response<WasiBody>, Driver), Error> {
    let result = match open(&plan).await {
        Ok(connection) => head(req, connection, &plan, &mut exchange).await,
        Err(failure) => {
            // Nothing was sent: take the body the guest writes, so the
            // failure reaches it as the response's error (see `drain_body`).
            super::drain_body(req.into_body(), plan.timeouts.first_byte).await;
            Err(failure)
        }
    };
    match result {
        Ok((head, driver)) => {
            let between_bytes = plan.timeouts.between_bytes;
            let response = head.map(|incoming| {
                Metered {
                    inner: incoming,
                    idle: Box::pin(tokio::time::sleep(between_bytes)),
                    between_bytes,
                    max: plan.max_response_bytes,
                    exchange,
                    ended: false,
                }
                .boxed_unsync()
            });
            Ok((response, driver))
        }
        Err(Failure::Denied { resource }) => {
            exchange.deny();
            super::refuse(exchange.ctx(), ADDRESS_BLOCKED, &resource);
            Err(Error::HttpRequestDenied)
        }
        Err(Failure::Error(e)) => {
            exchange.fail(&e);
            Err(e)
        }
    }
}

/// An HTTP/1 connection to the destination, not yet used.
type Connection = (
    hyper::client::conn::http1::SendRequest<WasiBody>,
    hyper::client::conn::http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>,
);

/// Connects (within the connect timeout) and makes the HTTP/1 handshake.
async fn open(plan: &Plan) -> Result<Connection, Failure> {
    tokio::time::timeout(plan.timeouts.connect, async {
        let stream = connect(plan).await?;
        hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Error(Error::Hyper(e)))
    })
    .await
    .map_err(|_| Error::ConnectionTimeout)?
}

/// Sends `req` on `connection`; the response head and the connection's driver.
async fn head(
    mut req: hyper::Request<WasiBody>,
    (mut sender, conn): Connection,
    plan: &Plan,
    exchange: &mut Exchange,
) -> Result<(hyper::Response<Incoming>, Driver), Failure> {
    let t = plan.timeouts;
    // Origin form on the wire: the scheme and authority are the connection's.
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *req.uri_mut() = hyper::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let mut conn = Box::pin(conn);
    let mut conn_done = false;
    let head = tokio::time::timeout(t.first_byte, async {
        let send = sender.send_request(req);
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => return r.map_err(Error::Hyper),
                r = &mut conn, if !conn_done => {
                    conn_done = true;
                    r.map_err(Error::Hyper)?;
                }
            }
        }
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;
    exchange.responded(head.status().as_u16());
    let declared = head
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(len) = declared.filter(|&len| len > plan.max_response_bytes) {
        exchange.fail(format!(
            "response of {len} bytes is over limits.http_max_response_bytes ({})",
            plan.max_response_bytes
        ));
        return Err(Error::HttpResponseBodySize(Some(len)).into());
    }
    let driver: Driver = Box::new(async move {
        if conn_done {
            Ok(())
        } else {
            conn.await.map_err(Error::Hyper)
        }
    });
    Ok((head, driver))
}

/// Resolves the destination, checks every address it resolves to, and
/// connects to the first checked one that answers (TLS on top for `https`).
async fn connect(plan: &Plan) -> Result<Box<dyn Stream>, Failure> {
    let dest = &plan.destination;
    let addrs: Vec<SocketAddr> = match &dest.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, dest.port)],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), dest.port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Error::DnsError {
            rcode: Some("no address".into()),
            info_code: None,
        }
        .into());
    }
    // Every address is checked before any is tried: a name that resolves to
    // one restricted address among public ones is refused too.
    for addr in &addrs {
        if let Some(class) = restricted(addr.ip()) {
            if plan.literal != Some(addr.ip()) {
                return Err(Failure::Denied {
                    resource: format!("{dest} ({} is {class})", addr.ip()),
                });
            }
        }
    }
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match (tcp, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(connect_error(e).into()),
        (None, None) => return Err(Error::ConnectionRefused.into()),
    };
    let _ = tcp.set_nodelay(true);
    if dest.scheme == Scheme::Http {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(dest.host_str())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let tls = plan
        .trust
        .connector()
        .connect(name, tcp)
        .await
        .map_err(tls_error)?;
    Ok(Box::new(tls))
}

fn connect_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        std::io::ErrorKind::TimedOut => Error::ConnectionTimeout,
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            Error::DestinationUnavailable
        }
        _ => Error::Connect(e),
    }
}

fn tls_error(e: std::io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => Error::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => Error::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => Error::TlsProtocolError,
    }
}

/// The response body as the guest reads it: counted, cut with
/// `http-response-body-size` past the limit, and failed with
/// `connection-read-timeout` when no data comes for `between_bytes`. It
/// ends the exchange when it ends (or is dropped).
struct Metered {
    inner: Incoming,
    idle: Pin<Box<tokio::time::Sleep>>,
    between_bytes: Duration,
    max: u64,
    exchange: Exchange,
    ended: bool,
}

impl Metered {
    fn end(&mut self, error: Option<Error>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.ended = true;
        if let Some(e) = &error {
            self.exchange.fail(e);
        }
        self.exchange.finish();
        Poll::Ready(error.map(Err))
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.exchange.read(data.len()) > this.max {
                        let max = this.max;
                        this.exchange.fail(format!(
                            "response body over limits.http_max_response_bytes ({max})"
                        ));
                        return this.end(Some(Error::HttpResponseBodySize(Some(max))));
                    }
                }
                let next = tokio::time::Instant::now() + this.between_bytes;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e = if e.is_timeout() {
                    Error::ConnectionReadTimeout
                } else {
                    Error::Hyper(e)
                };
                this.end(Some(e))
            }
            Poll::Ready(None) => this.end(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => this.end(Some(Error::ConnectionReadTimeout)),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_may_ask_for_shorter_timeouts_not_longer() {
        let limit = Duration::from_secs(10);
        let t = Timeouts::new(limit, None);
        assert_eq!(
            (t.connect, t.first_byte, t.between_bytes),
            (limit, limit, limit)
        );
        let t = Timeouts::new(
            limit,
            Some(RequestOptions {
                connect_timeout: Some(Duration::from_secs(1)),
                first_byte_timeout: Some(Duration::from_secs(600)),
                between_bytes_timeout: Some(Duration::ZERO),
            }),
        );
        assert_eq!(t.connect, Duration::from_secs(1));
        assert_eq!(t.first_byte, limit, "600 s never applies");
        assert_eq!(t.between_bytes, Duration::from_millis(1));
    }
}
