//! Faultline's web UI, embedded in the binary: the files built from `ui/` (by this crate's
//! build script) and an axum [`router`] that serves them on the query listener.
//!
//! The router answers GET and HEAD for the embedded files with their content type, an ETag, a
//! gzip variant when the client accepts it, long-lived caching for Vite's content-hashed
//! `/assets/*` and revalidation for everything else; any other path that looks like a
//! client-side route gets `index.html` so deep links work. Every response carries a strict
//! Content-Security-Policy (no inline script or style, no remote origin), because the UI renders
//! attacker-controlled trace data. This crate must not read the store, call the query API or
//! touch the network: the UI talks to the Jaeger-compatible API from the browser, and paths
//! under `/api/` that reach this router get a JSON 404 rather than a page. It must not fail the
//! cargo build either: without npm it embeds a page that says how to build the UI.

#![deny(missing_docs)]

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    etag: &'static str,
    body: &'static [u8],
    gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The Content-Security-Policy sent with every UI response: scripts, styles, fonts and API
/// calls only from this origin, no inline code, no plugins, no framing, no `<base>` tricks.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
object-src 'none'";

/// Why the real UI is not embedded (npm missing or its build failed), or `None` when it is.
pub fn build_problem() -> Option<&'static str> {
    BUILD_PROBLEM
}

/// The paths of the embedded files (`/index.html`, `/assets/index-….js`, …), sorted.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// The UI router. Mount it as the fallback of the query listener, after the API routes:
/// `faultline_query::router(state).fallback_service(faultline_ui::router())`.
pub fn router() -> Router {
    Router::new().fallback(serve)
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.path.cmp(path))
        .ok()
        .map(|i| &ASSETS[i])
}

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        let body = format!(
            "{{\"data\":null,\"errors\":[{{\"code\":404,\"msg\":\"no API endpoint at {}; see docs/api.md\"}}]}}",
            json_escape(path)
        );
        let mut r = with_security_headers(Response::new(Body::from(body)));
        *r.status_mut() = StatusCode::NOT_FOUND;
        set(&mut r, header::CONTENT_TYPE, "application/json");
        set(&mut r, header::CACHE_CONTROL, "no-store");
        return r;
    }
    let wanted = if path == "/" { "/index.html" } else { path };
    let asset = match find(wanted) {
        Some(a) => a,
        // A missing file (hashed asset of an older build, favicon, …) is a 404, not the page:
        // serving HTML as a script would only produce confusing errors.
        None if wanted.starts_with("/assets/") || last_segment_has_dot(wanted) => {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }
        // A client-side route such as /trace/abc or /search?service=x.
        None => find("/index.html").expect("index.html is always embedded"),
    };
    respond(asset, &headers)
}

fn respond(asset: &'static Asset, req: &HeaderMap) -> Response {
    let immutable = asset.path.starts_with("/assets/");
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let not_modified = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let gzip = asset.gzip.filter(|_| accepts_gzip(req));
    let mut r = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(gzip.unwrap_or(asset.body)))
    };
    r = with_security_headers(r);
    set(&mut r, header::CONTENT_TYPE, asset.content_type);
    set(&mut r, header::CACHE_CONTROL, cache);
    set(&mut r, header::ETAG, asset.etag);
    if asset.gzip.is_some() {
        set(&mut r, header::VARY, "Accept-Encoding");
    }
    if gzip.is_some() && !not_modified {
        set(&mut r, header::CONTENT_ENCODING, "gzip");
    }
    r
}

fn accepts_gzip(req: &HeaderMap) -> bool {
    req.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

fn last_segment_has_dot(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|s| s.contains('.'))
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() || c == '<' || c == '>' => {
                format!("\\u{:04x}", c as u32).chars().collect()
            }
            c => vec![c],
        })
        .collect()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = with_security_headers(Response::new(Body::from(text)));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CACHE_CONTROL, "no-store");
    r
}

fn set(r: &mut Response, name: header::HeaderName, value: &'static str) {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn with_security_headers(mut r: Response) -> Response {
    set(
        &mut r,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(&mut r, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(&mut r, header::REFERRER_POLICY, "no-referrer");
    set(&mut r, header::X_FRAME_OPTIONS, "DENY");
    r
}

#[cfg(test)]
mod tests;
