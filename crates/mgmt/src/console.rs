//! The web console: a single-page application (plain HTML, CSS and ES
//! modules under `crates/mgmt/console/`, no build step) embedded in the
//! binary and served unauthenticated from `/` on the management listener,
//! as RabbitMQ serves its console beside `/api`. The page itself talks
//! only to `/api` (Basic auth, the user's tags gate the menu), so it works
//! offline and from a fresh checkout.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file: its URL path, media type and bytes.
struct Asset {
    /// Path as requested (`/console/main.js`).
    path: &'static str,
    /// `Content-Type` sent with it.
    mime: &'static str,
    /// The file, embedded at build time.
    body: &'static str,
}

/// `include_str!` of a console file, under its URL path.
macro_rules! asset {
    ($path:literal, $mime:expr) => {
        Asset {
            path: concat!("/console/", $path),
            mime: $mime,
            body: include_str!(concat!("../console/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("chart.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/connections.js", JS),
    asset!("pages/exchanges.js", JS),
    asset!("pages/queues.js", JS),
    asset!("pages/queue.js", JS),
    asset!("pages/admin.js", JS),
    asset!("pages/definitions.js", JS),
];

/// The console's answer to a request outside `/api` (or for the API
/// reference page), or `None` when the path is the API's.
pub(crate) fn serve(method: &Method, path: &str) -> Option<Response> {
    if path == "/api/index.html" {
        return Some(guard(method).unwrap_or_else(|| html(crate::api_doc::page())));
    }
    if path == "/api" || path.starts_with("/api/") {
        return None;
    }
    if let Some(r) = guard(method) {
        return Some(r);
    }
    let path = if path == "/" || path == "/index.html" {
        "/console/index.html"
    } else {
        path
    };
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return Some((StatusCode::NOT_FOUND, "Not Found").into_response());
    };
    let mut r = a.body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    Some(r)
}

/// 405 for anything but GET/HEAD on a static file.
fn guard(method: &Method) -> Option<Response> {
    if *method == Method::GET || *method == Method::HEAD {
        return None;
    }
    let mut r = (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(r)
}

fn html(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}
