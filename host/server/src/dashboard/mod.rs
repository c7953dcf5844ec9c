//! The web dashboard at `/` (the API stays under `/v1`). Every page is the
//! same HTML shell: its scripts read the API with the bearer token the
//! person signed in with (kept in the tab's session storage, never in a
//! URL or a cookie) and follow changes over the API's Server-Sent Events,
//! so the server renders nothing per person. The assets are compiled into
//! the binary; no page fetches anything from another origin, and the
//! Content Security Policy forbids inline scripts and styles.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What a dashboard page may load and where it may connect: its own
/// origin only, no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The pages; each answers with the shell, whose scripts draw the page
/// its path names.
const PAGES: &[&str] = &[
    "/",
    "/runs/{id}",
    "/jobs/{id}",
    "/waiting",
    "/stories",
    "/stories/{story}",
    "/plugins",
    "/plugins/{name}",
    "/templates",
    "/templates/{name}",
];

struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

const SHELL: &str = include_str!("assets/index.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// A script of the dashboard, compiled in.
macro_rules! script {
    ($name:literal) => {
        Asset {
            name: $name,
            media_type: JAVASCRIPT,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("assets/app.css"),
    },
    script!("app.js"),
    script!("ui.js"),
    script!("graph.js"),
    script!("runs.js"),
    script!("people.js"),
    script!("stories.js"),
    script!("catalogue.js"),
];

/// One tag for every asset: they change together, with the binary.
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    SHELL.hash(&mut hasher);
    for asset in ASSETS {
        asset.body.hash(&mut hasher);
    }
    HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
        .unwrap_or(HeaderValue::from_static("\"0\""))
});

/// The dashboard's routes, to merge beside `/v1`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/assets/{file}", get(asset));
    for page in PAGES {
        router = router.route(page, get(shell));
    }
    router
}

async fn shell(headers: HeaderMap) -> Response {
    respond(&headers, "text/html; charset=utf-8", SHELL)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => respond(&headers, asset.media_type, asset.body),
        None => crate::api::ApiError::not_found("dashboard asset").into_response(),
    }
}

/// An asset with the headers every dashboard answer carries; `304` when
/// the browser holds this build's copy.
fn respond(request: &HeaderMap, media_type: &'static str, body: &'static str) -> Response {
    let etag = ETAG.clone();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, media_type)], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    // Checked again each time: a new build's assets show at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
