//! A request id on every request (issue #20): the tracing span of everything the request logs
//! carries it, the response says it in `x-request-id`, and error pages show it, so a person can
//! quote it and an operator can find the log lines. The span names the route, never the path:
//! answer-link tokens are credentials and stay out of the logs.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// This process's prefix (random), then a counter: unique across nodes and restarts in practice.
fn next_id() -> String {
    static NODE: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let node = NODE.get_or_init(|| anpi_store::random_token().chars().filter(char::is_ascii_alphanumeric).take(6).collect());
    format!("{node}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The middleware: gives the request its id, span and response header.
pub async fn tag(req: Request, next: Next) -> Response {
    let id = next_id();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "(no route)".into());
    let span = tracing::info_span!("request", id = %id, method = %req.method(), route = %route);
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req)).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::WebError;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn broken() -> Result<&'static str, WebError> {
        Err(WebError::Internal("disk on fire".into()))
    }

    #[tokio::test]
    async fn an_error_page_shows_the_id_the_response_header_carries() {
        let app = Router::new().route("/broken", get(broken)).route("/fine", get(|| async { "ok" })).layer(axum::middleware::from_fn(tag));
        let res = app.clone().oneshot(Request::get("/broken").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 500);
        let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap().to_string();
        let body = String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
        assert!(body.contains(&id), "the page shows {id}: {body}");
        assert!(!body.contains("disk on fire"), "no internal detail on the page");
        let other = app.oneshot(Request::get("/fine").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        let id2 = other.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap();
        assert_ne!(id, id2, "each request its own id");
        assert!(current().is_none(), "no id outside a request");
    }
}
