//! The gateway: the host as a server. One HTTP server on `[api] listen`,
//! every route under `/v1`, JSON in and out, errors `{"error", "field"}`
//! with a 4xx status (see [`error`]), bearer tokens with scopes (see
//! [`auth`]). The reference with a curl example per route is
//! `docs/api.md`.
//!
//! | method | path | scope | does |
//! |---|---|---|---|
//! | POST | `/v1/channels/{channel}/messages` | `publish:<channel>` | publish one message (`{"topic","kind","payload",…}`) or a batch (`{"messages":[…]}`) → 201 |
//! | GET | `/v1/channels/{channel}/stream?pattern=P` | `read` | live envelopes as Server-Sent Events or a WebSocket |
//! | POST | `/v1/alerts/{alert_id}/ack` | `publish:alerts` | publish an `AlertAck` |
//! | POST | `/v1/stores/{store}/streams/{stream}` | `append:<store>` | append events atomically (idempotent by event id) → 201; 409 on a version conflict |
//! | GET | `/v1/stores/{store}/streams/{stream}` | `read` | read a stream, `$all`, `$et-<type>`, `$pattern-<glob>` |
//! | GET | `/v1/stores/{store}/streams` | `read` | stream names and versions |
//! | GET | `/v1/stores/{store}/streams/{stream}/subscribe?from=` | `read` | catch-up then live, SSE (resumable with `Last-Event-ID`) or WebSocket |
//! | GET | `/v1/emitters` | `read` | emitter workers: position, lag, paused |
//! | GET | `/v1/alerts` | `read` | recent alerts with escalation level and acknowledgement |
//! | GET | `/v1/node` | `read` | node figures and component health |
//! | GET | `/v1/session` | any token | the token's name and scopes |
//! | GET | `/`, `/dashboard/…` | none | the Health Dashboard (see `dashboard.rs`, `docs/dashboard.md`) |
//! | GET | `/v1/plugins`, `/v1/plugins/{name}`, `/v1/health` | `read` | plugin list and status, subscription health |
//! | POST, DELETE | `/v1/plugins…` | `admin` | load, reload, unload plugins |
//! | GET | `/metrics` | `read` | the host's metrics in the OpenMetrics text format (see [`metrics`]) |
//!
//! Layers: [`auth`] (who) → the handlers (what) → [`report`] (what the
//! operator learns about refusals, rate-limited per client).

pub mod alerts;
pub mod auth;
mod channels;
mod dashboard;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod node;
pub mod plugins;
pub mod report;
mod session;
mod settings;
mod stores;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::bus::Bus;
use crate::runtime::Plugins;

pub use auth::{Auth, Need, Principal, Scope};
pub use error::ApiError;
pub use settings::{ApiConfig, TokenConfig};

/// Everything the handlers use.
#[derive(Debug)]
pub struct ApiState {
    pub(crate) bus: Bus,
    pub(crate) plugins: Arc<Plugins>,
    pub(crate) stores: Arc<crate::emitter::Stores>,
    pub(crate) emitters: Arc<crate::emitter::Emitters>,
    pub(crate) config: ApiConfig,
    pub(crate) auth: Auth,
    pub(crate) reports: report::ClientReports,
    /// One permit per connected stream client.
    pub(crate) stream_slots: Arc<tokio::sync::Semaphore>,
    /// Requests answered, for `GET /metrics`.
    pub(crate) requests: metrics::Requests,
    /// Recent alerts, for `GET /v1/alerts`.
    pub(crate) alerts: Arc<alerts::AlertBook>,
    /// When the node started, and its CPU sampler, for `GET /v1/node`.
    pub(crate) clock: node::NodeClock,
    /// What `GET /v1/node` reports the components' health with: the bus,
    /// the runtime and the stores, as the periodic health report does.
    pub(crate) reporter: crate::health::Reporter,
}

impl ApiState {
    /// The state of a gateway over `bus` and `plugins`.
    ///
    /// # Errors
    /// Text naming the `[api]` key at fault: a bad token entry, or a
    /// non-loopback `listen` without tokens.
    pub fn new(
        bus: Bus,
        plugins: Arc<Plugins>,
        emitters: Arc<crate::emitter::Emitters>,
        config: ApiConfig,
    ) -> Result<ApiState, String> {
        let auth = Auth::new(&config.tokens)?;
        if let Ok(addr) = config.listen.parse::<SocketAddr>() {
            if !addr.ip().is_loopback() && !auth.enabled() {
                return Err(format!(
                    "api.listen = \"{}\" is not a loopback address and no [[api.tokens]] are configured: \
                     anyone who can reach it could publish, append and load plugins. Add a token — \
                     `exesdb-host token new NAME --scope admin` prints one and its [[api.tokens]] entry — \
                     or listen on 127.0.0.1",
                    config.listen
                ));
            }
        }
        let alerts = alerts::AlertBook::new(&bus).map_err(|e| format!("the alert book: {e}"))?;
        let stores = Arc::clone(emitters.stores());
        Ok(ApiState {
            reports: report::ClientReports::new(bus.clone()),
            alerts,
            clock: node::NodeClock::new(),
            reporter: node::reporter(&bus, &plugins, &stores),
            stream_slots: Arc::new(tokio::sync::Semaphore::new(config.max_stream_clients)),
            bus,
            plugins,
            stores,
            emitters,
            config,
            auth,
            requests: metrics::Requests::default(),
        })
    }

    /// `Ok` when `who` may do `need`; otherwise a 403 naming the scope,
    /// reported (rate-limited) as an `AccessViolation` and a failed
    /// `AccessLog`.
    ///
    /// # Errors
    /// The 403 answer.
    pub fn require(&self, who: &Principal, need: &Need, resource: &str) -> Result<(), ApiError> {
        if who.allows(need) {
            return Ok(());
        }
        let scope = need.scope();
        self.reports.refused(
            &who.name,
            who.client.ip(),
            report::SCOPE_MISSING,
            &scope,
            resource,
        );
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "token `{}` lacks the scope `{scope}` for {resource}",
                who.name
            ),
        )
        .at("authorization"))
    }
}

impl ApiState {
    /// A slot for one more stream client, or a 503 naming the limit.
    ///
    /// # Errors
    /// The 503 answer when `[api] max_stream_clients` are connected.
    pub(crate) fn stream_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.stream_slots)
            .try_acquire_owned()
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{} stream clients are connected, the most [api] max_stream_clients allows",
                        self.config.max_stream_clients
                    ),
                )
            })
    }
}

/// Whether a stream request can be served: a WebSocket upgrade (`upgrade`)
/// or `Accept: text/event-stream`; otherwise a 406 saying how to ask.
///
/// # Errors
/// The 406 answer.
pub(crate) fn stream_wanted(
    headers: &axum::http::HeaderMap,
    upgrade: bool,
    what: &str,
) -> Result<(), ApiError> {
    let sse = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if upgrade || sse {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_ACCEPTABLE,
        format!("{what} is a WebSocket (send an upgrade) or Server-Sent Events (send `Accept: text/event-stream`)"),
    )
    .at("accept"))
}

/// The gateway's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let plugins = plugins::router(Arc::clone(&state.plugins)).layer(
        axum::middleware::from_fn_with_state(Arc::clone(&state), plugin_scopes),
    );
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/channels/{channel}/messages", post(channels::publish))
        .route("/v1/channels/{channel}/stream", get(channels::stream))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/{alert_id}/ack", post(alerts::ack))
        .route("/v1/session", get(session::session))
        .route("/v1/node", get(node::node))
        .route("/v1/stores/{store}/streams", get(stores::streams))
        .route(
            "/v1/stores/{store}/streams/{stream}",
            get(stores::read).post(stores::append),
        )
        .route(
            "/v1/stores/{store}/streams/{stream}/subscribe",
            get(stores::subscribe),
        )
        .route("/v1/emitters", get(stores::emitters))
        .route("/metrics", get(metrics::scrape))
        .with_state(Arc::clone(&state))
        .nest("/v1", plugins)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::count,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        // The page's files carry no data (that comes from /v1 with the
        // token the page is given), so they are served without one.
        .merge(dashboard::router())
}

async fn not_found(req: Request) -> Response {
    let answer = ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!(
            "no route {} {} (routes are under /v1; see docs/api.md)",
            req.method(),
            req.uri().path()
        ),
    );
    error::refuse(req, answer).await
}

/// A route without that method: 405 in the gateway's error shape (axum's
/// own 405 has no body).
async fn method_not_allowed(req: Request) -> Response {
    let answer = ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not a method of {} (see docs/api.md)",
            req.method(),
            req.uri().path()
        ),
    );
    error::refuse(req, answer).await
}

/// Authenticates every request; the [`Principal`] goes into the request's
/// extensions. A refusal is a 401, reported (rate-limited) on `security`
/// and `audit`.
async fn authenticate(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        .or_else(|| query_token(&req));
    match state.auth.authenticate(header.as_deref(), client) {
        Ok(principal) => {
            if state.auth.enabled() {
                state.reports.accepted(&principal.name, client.ip());
            }
            req.extensions_mut().insert(principal);
            let mut response = next.run(req).await;
            if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                // An oversized body may be left partly unread; the
                // connection then closes, and the client must know not to
                // reuse it.
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            response
        }
        Err(failure) => {
            state.reports.refused(
                "unauthenticated",
                client.ip(),
                report::AUTH_FAILED,
                "authenticate",
                &format!("{} {}", req.method(), req.uri().path()),
            );
            let mut answer = ApiError::new(axum::http::StatusCode::UNAUTHORIZED, failure.text())
                .at("authorization")
                .into_response();
            answer.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            error::refuse(req, answer).await
        }
    }
}

/// The name of the query parameter that may carry the token of a `GET`
/// (RFC 6750 §2.3): a browser's `WebSocket` and `EventSource` cannot send
/// an `Authorization` header, so the dashboard's streams send it this way.
/// Only read requests accept it; the header wins when both are sent.
pub const TOKEN_PARAMETER: &str = "access_token";

/// `Bearer <token>` from the `access_token` query parameter of a `GET`.
fn query_token(req: &Request) -> Option<String> {
    if req.method() != axum::http::Method::GET {
        return None;
    }
    form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == TOKEN_PARAMETER)
        .map(|(_, v)| format!("Bearer {v}"))
}

/// Plugin routes: reading needs `read`, changes need `admin`.
async fn plugin_scopes(
    State(state): State<Arc<ApiState>>,
    axum::Extension(who): axum::Extension<Principal>,
    req: Request,
    next: Next,
) -> Response {
    let need = if req.method() == axum::http::Method::GET {
        Need::Read
    } else {
        Need::Admin
    };
    let resource = format!("{} {}", req.method(), req.uri().path());
    match state.require(&who, &need, &resource) {
        Ok(()) => next.run(req).await,
        Err(e) => error::refuse(req, e).await,
    }
}

/// Binds `addr` and serves the gateway until the task is aborted; returns
/// the bound address (useful with port 0) and the serving task. Refusals
/// counted for their aggregated report are flushed every second.
///
/// # Errors
/// The bind error, naming the address.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<ApiState>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("the API cannot listen on {addr}: {e} ([api] listen)"))?;
    let local = listener.local_addr()?;
    let app = router(Arc::clone(&state));
    let task = tokio::spawn(async move {
        let flusher = async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                state.reports.flush();
            }
        };
        let book = async {
            Arc::clone(&state.alerts).run().await;
            std::future::pending::<()>().await;
        };
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        );
        tokio::select! {
            r = server => if let Err(e) = r {
                tracing::error!(class = "failure", "the API stopped: {e}");
            },
            () = flusher => {}
            () = book => {}
        }
    });
    Ok((local, task))
}
