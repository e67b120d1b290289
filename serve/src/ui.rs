//! The playground page (`GET /`) and its assets (`/ui/app.js`, `/ui/style.css`, `/ui/icon.svg`).
//!
//! Design choice: the page is plain static files compiled into the binary with `include_str!` —
//! no templating, no bundler, no build step, nothing fetched from a third party. The server does not
//! render anything model-specific into it: the script learns the genres, the request limits and the
//! optional parameters (a `sampler`, when the API has one) from the same public endpoints any client
//! uses (`/genres`, `/openapi.json`), so the page cannot drift from the API and the server keeps no
//! state for it. Every asset carries a Content-Security-Policy that allows scripts, styles and
//! connections from the service's own origin only (no inline script), plus `blob:` for the clips
//! the page has fetched, and `X-Content-Type-Options: nosniff`.
//!
//! Page views are counted in `melfuse_page_loads_total` (one per `GET /`, assets not counted), so
//! people using the playground can be told apart from API traffic; the routes also appear in
//! `melfuse_requests_total` under their own `endpoint` labels like every other route.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use crate::http::{method_not_allowed, AppState};

/// The Content-Security-Policy of the page and its assets: same-origin only, no inline script or
/// style, clips and spectrograms as `blob:` URLs, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One static file of the page.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The route it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, compiled in.
    pub body: &'static str,
}

/// The page itself, served at `/`.
pub const INDEX: Asset =
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("../static/index.html") };

/// The page's script, style sheet and icon.
pub const ASSETS: [Asset; 3] = [
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/app.js"),
    },
    Asset { path: "/ui/style.css", content_type: "text/css; charset=utf-8", body: include_str!("../static/style.css") },
    Asset { path: "/ui/icon.svg", content_type: "image/svg+xml", body: include_str!("../static/icon.svg") },
];

/// Registers the page and its assets: GET only, other methods get the API's JSON 405.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(web::resource(INDEX.path).route(web::get().to(index)).default_service(web::to(method_not_allowed)));
    for asset in ASSETS {
        config.service(
            web::resource(asset.path)
                .route(web::get().to(move || async move { asset_response(&asset) }))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

/// `GET /`: the page, counted as a page load.
async fn index(state: web::Data<AppState>) -> HttpResponse {
    state.generator().metrics().page_loads_total.inc();
    asset_response(&INDEX)
}

/// An asset with the security headers. `no-cache`: browsers revalidate, so a new binary's page is
/// never mixed with an old script.
fn asset_response(asset: &Asset) -> HttpResponse {
    let mut response = HttpResponse::Ok().content_type(asset.content_type).body(asset.body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_no_inline_script() {
        let html = INDEX.body;
        for asset in ASSETS {
            assert!(html.contains(&format!("\"{}\"", asset.path)), "index.html does not use {}", asset.path);
        }
        // Every <script> has a src (CSP forbids inline script) and nothing names another origin.
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap_or(html.len() - i)];
            assert!(tag.contains("src=\"/ui/"), "inline or foreign script: {tag}");
        }
        for text in [html, ASSETS[0].body, ASSETS[1].body] {
            assert!(!text.contains("http://") && !text.contains("https://"), "a third-party URL in an asset");
        }
        // No inline event handler attributes (`onclick=` and the like), which the CSP would block.
        for (i, _) in html.match_indices(" on") {
            let name: String = html[i + 1..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            assert!(!html[i + 1 + name.len()..].starts_with('='), "inline handler {name} in index.html");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline") && !CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
    }
}
