//! The demo's mail catcher page: messages the demo "sent", with their answer links.

use super::{render, Layout};
use crate::error::{WebError, WebResult};
use crate::i18n::Tr;
use crate::AppState;
use anpi_core::clock::format_local;
use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

#[derive(Template)]
#[template(path = "mail.html")]
struct MailPage {
    l: Layout,
    mails: Vec<(String, String, String, String, Vec<String>)>,
}

pub async fn page(State(st): State<AppState>, headers: HeaderMap) -> WebResult<Response> {
    let Some(catcher) = &st.catcher else { return Err(WebError::NotFound) };
    let t = Tr::from_request(&headers, None);
    let mails = catcher
        .list()
        .into_iter()
        .map(|m| {
            let links = m.body.split_whitespace().filter(|w| w.starts_with("http://") || w.starts_with("https://")).map(String::from).collect();
            (format_local(m.at, "Asia/Tokyo"), m.to.join(", "), m.subject, m.body, links)
        })
        .collect();
    render(&MailPage { l: Layout::public(t, t.p("デモ用メール受信箱", "Demo mailbox")), mails })
}
