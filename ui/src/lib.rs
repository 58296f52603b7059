//! Argon's web UI: one page of plain HTML, CSS and JavaScript (no build
//! step), embedded in the binary and served at `/` next to the API by
//! `argon server` and `argon run`. The assets hold no data and need no
//! token; the page asks for the API's token and sends it as a Bearer token
//! with every API call, so a read-only token sees and a read-write token acts.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
const INDEX: &str = include_str!("../assets/index.html");
/// Its script.
const APP_JS: &str = include_str!("../assets/app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("../assets/app.css");
/// Its icon.
const ICON: &str = include_str!("../assets/icon.svg");

/// What the browser may load and run: the page's own files only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The UI's routes: `/` and `/ui/*`. Merge them with the API's router,
/// outside its token check.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route(
            "/ui/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/ui/icon.svg", get(|| async { asset(ICON, "image/svg+xml") }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The binary is the version: revalidate rather than run an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn serves_the_page_and_its_assets() {
        let (status, content_type, body) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"));
        assert!(body.contains("/ui/app.js") && body.contains("/ui/app.css"));
        let (status, content_type, body) = get("/ui/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/javascript"));
        assert!(body.contains("/api/v1/workflows"));
        assert_eq!(get("/ui/app.css").await.0, StatusCode::OK);
        assert_eq!(get("/ui/nothing").await.0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in [INDEX, APP_JS, APP_CSS] {
            // The SVG namespace is a name, not something loaded.
            let asset = asset.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !asset.contains("http://") && !asset.contains("https://"),
                "an absolute URL in an asset"
            );
        }
    }
}
