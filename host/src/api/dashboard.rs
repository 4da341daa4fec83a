//! The Health Dashboard: one page at `/` and its files under
//! `/dashboard/`, embedded in the binary (no CDN, so it works on a machine
//! without internet). The page holds no data; it reads everything from the
//! `/v1` API with the token the operator gives it, and keeps itself up to
//! date from the gateway's WebSocket streams (see `docs/dashboard.md`).
//!
//! Served without a token (the files are the same for everyone), with a
//! strict `Content-Security-Policy`: scripts, styles and connections only
//! from this origin, nothing inline, no framing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page.
const INDEX: &str = include_str!("dashboard/index.html");
/// Its script.
const SCRIPT: &str = include_str!("dashboard/app.js");
/// Its styles.
const STYLES: &str = include_str!("dashboard/app.css");
/// Its icon.
const ICON: &str = include_str!("dashboard/icon.svg");

/// What the page may load and connect to.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The dashboard's routes.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { file(STYLES, "text/css; charset=utf-8") }),
        )
        .route(
            "/dashboard/icon.svg",
            get(|| async { file(ICON, "image/svg+xml") }),
        )
}

/// One embedded file with its type and the page's security headers.
fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}
