//! The web console: plain HTML, CSS and JavaScript modules embedded in the binary and
//! served at `/` on the API's listener (issue 22).
//!
//! Owns the assets and how they are served: the right `Content-Type`, a strict
//! `Content-Security-Policy` (scripts and styles from this origin only, no inline code,
//! network only to this origin), `nosniff`, no referrer, and revalidated caching (an
//! `ETag` per file, so a new binary's assets are never mixed with an old one's).
//!
//! Must not: read a token (the page keeps it in session storage and sends it only as
//! `Authorization` or the WebSocket's `bearer.` subprotocol), call the engine, or need a
//! build step: what is in `assets/` is what the browser runs.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The policy every console response carries. `connect-src 'self'` covers the same-origin
/// WebSocket (CSP Level 3, Chromium and Firefox).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path under `/assets/`, its type, its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console is made of.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/clock.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/i18n.js", JS),
    asset!("js/money.js", JS),
    asset!("js/session.js", JS),
    asset!("js/live.js", JS),
    asset!("js/pages/home.js", JS),
    asset!("js/pages/board.js", JS),
    asset!("js/pages/lot.js", JS),
    asset!("js/pages/account.js", JS),
    asset!("js/pages/seller.js", JS),
    asset!("js/pages/catalogue.js", JS),
    asset!("js/pages/operator.js", JS),
    asset!("js/pages/market.js", JS),
];

const INDEX: &str = include_str!("assets/index.html");

/// A file ready to serve: its bytes and their entity tag.
struct Ready {
    content_type: &'static str,
    body: Vec<u8>,
    etag: HeaderValue,
}

impl Ready {
    fn new(content_type: &'static str, body: Vec<u8>) -> Self {
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", hex::encode(&digest[..12]));
        Self {
            content_type,
            body,
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
        }
    }

    fn respond(&'static self, headers: &HeaderMap) -> Response {
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == self.etag.as_bytes());
        let mut r = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body.as_slice(),
            )
                .into_response()
        };
        let h = r.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        // Revalidate every time: a 304 costs a round trip and no body, and an upgraded
        // server's console is never mixed with a cached older one.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        secure(h);
        r
    }
}

/// The headers every console response carries.
fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

struct Files {
    index: Ready,
    assets: Vec<(&'static str, Ready)>,
}

/// The console's routes. `demo` marks the page as a demo (`serve --demo`), so a visitor
/// knows the bidding dealers are the server's own.
pub fn router<S>(demo: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Built once per server, then shared by reference for the life of the process.
    static FILES: OnceLock<[Files; 2]> = OnceLock::new();
    let files = FILES.get_or_init(|| [build(false), build(true)]);
    let files: &'static Files = &files[usize::from(demo)];
    Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| async move { files.index.respond(&headers) }),
        )
        .route(
            "/assets/{*path}",
            get(
                move |Path(path): Path<String>, headers: HeaderMap| async move {
                    match files.assets.iter().find(|(p, _)| *p == path) {
                        Some((_, ready)) => ready.respond(&headers),
                        None => {
                            let mut r = (StatusCode::NOT_FOUND, "no such file\n").into_response();
                            secure(r.headers_mut());
                            r
                        }
                    }
                },
            ),
        )
}

fn build(demo: bool) -> Files {
    let index = INDEX.replace(
        "<meta name=\"gavel-demo\" content=\"0\">",
        if demo {
            "<meta name=\"gavel-demo\" content=\"1\">"
        } else {
            "<meta name=\"gavel-demo\" content=\"0\">"
        },
    );
    Files {
        index: Ready::new("text/html; charset=utf-8", index.into_bytes()),
        assets: ASSETS
            .iter()
            .map(|a| (a.path, Ready::new(a.content_type, a.body.to_vec())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_referenced_and_every_module_import_is_an_asset() {
        let paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).expect("UTF-8");
            // Static imports, and the pages app.js loads with `import('…')`.
            let specs = text.lines().filter_map(|line| {
                let at = line
                    .strip_prefix("import ")
                    .map(|_| line)
                    .or_else(|| line.split_once("import(").map(|(_, rest)| rest))?;
                at.split(['\'', '"']).nth(1)
            });
            for spec in specs {
                let base = a.path.rsplit_once('/').map_or("", |(d, _)| d);
                let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    paths.contains(&resolved.as_str()),
                    "{} imports {spec}, which is not embedded",
                    a.path
                );
            }
        }
        let app = ASSETS
            .iter()
            .find(|a| a.path == "js/app.js")
            .map(|a| String::from_utf8_lossy(a.body))
            .unwrap_or_default();
        for page in ASSETS.iter().filter(|a| a.path.starts_with("js/pages/")) {
            let name = page.path.trim_start_matches("js/");
            assert!(app.contains(&format!("./{name}")), "{name} is never loaded");
        }
        assert!(INDEX.contains("<meta name=\"gavel-demo\" content=\"0\">"));
        assert!(INDEX.contains("/assets/js/app.js"));
        assert!(!INDEX.contains("<script>"), "no inline script (CSP)");
    }
}
