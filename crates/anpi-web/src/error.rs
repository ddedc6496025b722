//! Errors become short, generic pages; details go to the log only.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug)]
pub enum WebError {
    NotFound,
    Forbidden,
    /// A message safe to show (validation problems in the user's input).
    BadRequest(String),
    /// Too many attempts: wait this many milliseconds (429 with `Retry-After`).
    Throttled(i64),
    /// Too much password work queued (a sign-in flood): 503 with `Retry-After`.
    Busy,
    Internal(String),
}

impl From<anpi_store::StoreError> for WebError {
    fn from(e: anpi_store::StoreError) -> Self {
        use anpi_store::StoreError::*;
        match e {
            NotFound => WebError::NotFound,
            OutsideReach => WebError::Forbidden,
            // No page language here: the generic error page shows both.
            Invalid(p) | Conflict(p) => WebError::BadRequest(crate::i18n::problem_both(&p)),
            Throttled(ms) => WebError::Throttled(ms),
            Busy => WebError::Busy,
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            WebError::Throttled(ms) => Some((ms + 999) / 1000),
            WebError::Busy => Some(2),
            _ => None,
        };
        let (status, msg) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "ページが見つかりません / Not found".to_string()),
            WebError::Forbidden => (StatusCode::FORBIDDEN, "この操作の権限がありません / You are not allowed to do this".to_string()),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::Throttled(ms) => {
                let secs = (ms + 999) / 1000;
                (StatusCode::TOO_MANY_REQUESTS, format!("試行が多すぎます。{secs}秒後にもう一度お試しください / Too many attempts: try again in {secs} s"))
            }
            WebError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ただいま混み合っています。数秒後にもう一度お試しください / Busy: please try again in a few seconds".to_string(),
            ),
            WebError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "エラーが発生しました。しばらくしてからもう一度お試しください / Something went wrong, please try again".to_string(),
                )
            }
        };
        let reference = crate::request_id::current()
            .map(|id| format!("<p><small>問い合わせ番号 / Reference: <code>{}</code></small></p>", escape(&id)))
            .unwrap_or_default();
        let body = format!(
            "<!doctype html><html lang=ja><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>anpi</title>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em\"><h1>{}</h1><p class=error>{}</p>{reference}<p><a href=\"/\">← anpi</a></p></body></html>",
            status.as_u16(),
            escape(&msg)
        );
        let mut response = (status, Html(body)).into_response();
        if let Some(secs) = retry_after.and_then(|s| axum::http::HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs);
        }
        response
    }
}

pub type WebResult<T> = Result<T, WebError>;
