//! The answer page: no login (the signed link is the credential), no JavaScript, tiny.

use super::render;
use crate::client_ip::{guard_answer, ClientIp};
use crate::error::WebResult;
use crate::i18n::Tr;
use crate::AppState;
use anpi_core::survey::{Answers, Question};
use anpi_core::Lang;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "answer.html")]
struct AnswerPage {
    t: Tr,
    token: String,
    tenant: String,
    name: String,
    title: String,
    message: String,
    drill: bool,
    closed: bool,
    saved: bool,
    error: Option<String>,
    /// The first choice question: one tap answers it.
    primary: Option<Question>,
    others: Vec<Question>,
    answers: Answers,
    answered: bool,
    other_lang: &'static str,
}

impl AnswerPage {
    fn chosen(&self, q: &str, c: &str) -> bool {
        self.answers.get(q).is_some_and(|v| v == c)
    }
    fn text(&self, q: &str) -> String {
        self.answers.get(q).cloned().unwrap_or_default()
    }
    fn summary(&self) -> Vec<(String, String)> {
        let all = self.primary.iter().chain(self.others.iter());
        all.filter_map(|q| {
            let v = self.answers.get(&q.id)?;
            let shown = if q.choices.is_empty() { v.clone() } else { q.choice_label(v, self.t.0)?.to_string() };
            Some((q.label(self.t.0).to_string(), shown))
        })
        .collect()
    }
}

#[derive(Deserialize, Default)]
pub struct AnswerQuery {
    lang: Option<String>,
    saved: Option<String>,
}

#[derive(Template)]
#[template(path = "answer_invalid.html")]
struct InvalidPage;

fn invalid() -> WebResult<Response> {
    Ok((StatusCode::NOT_FOUND, render(&InvalidPage)?).into_response())
}

#[derive(Template)]
#[template(path = "answer_expired.html")]
struct ExpiredPage {
    t: Tr,
}

/// Links stop opening a grace period (`AppState::answer_link_grace_ms`) after their incident
/// closed: the page shows names and answers, and a link mailed long ago should not.
fn expired(st: &AppState, ctx: &anpi_store::AnswerContext, lang: Option<&str>) -> Option<WebResult<Response>> {
    let closed_at = ctx.closed_at?;
    if st.clock.now() <= closed_at + st.answer_link_grace_ms {
        return None;
    }
    let t = Tr(lang.and_then(Lang::parse).or_else(|| Lang::parse(&ctx.language)).unwrap_or_default());
    Some(render(&ExpiredPage { t }).map(|page| (StatusCode::GONE, page).into_response()))
}

async fn page_for(st: &AppState, ip: ClientIp, token: &str, lang: Option<&str>, saved: bool, error: Option<String>) -> WebResult<Response> {
    let Some(ctx) = st.store.answer_context(token).await? else { return invalid() };
    if let Some(gone) = expired(st, &ctx, lang) {
        return gone;
    }
    let lang = lang.and_then(Lang::parse).or_else(|| Lang::parse(&ctx.language)).unwrap_or_default();
    if let Err(refused) = guard_answer(st, &ctx, ip, Tr(lang)).await {
        return Ok(refused);
    }
    let mut questions = ctx.survey.questions.clone();
    let primary = questions.iter().position(|q| !q.choices.is_empty()).map(|i| questions.remove(i));
    let page = AnswerPage {
        t: Tr(lang),
        token: token.to_string(),
        tenant: ctx.tenant_name,
        name: ctx.name,
        title: ctx.title,
        message: ctx.message,
        drill: ctx.drill,
        closed: ctx.closed,
        saved,
        error: error.clone(),
        primary,
        others: questions,
        answered: ctx.answered_at.is_some(),
        answers: ctx.answers.unwrap_or_default(),
        other_lang: if lang == Lang::Ja { "en" } else { "ja" },
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, render(&page)?).into_response())
}

pub async fn page(State(st): State<AppState>, ip: ClientIp, Path(token): Path<String>, Query(q): Query<AnswerQuery>) -> WebResult<Response> {
    page_for(&st, ip, &token, q.lang.as_deref(), q.saved.is_some(), None).await
}

pub async fn submit(
    State(st): State<AppState>,
    ip: ClientIp,
    Path(token): Path<String>,
    Query(q): Query<AnswerQuery>,
    Form(fields): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let Some(ctx) = st.store.answer_context(&token).await? else { return invalid() };
    if let Some(gone) = expired(&st, &ctx, q.lang.as_deref()) {
        return gone;
    }
    let lang = q.lang.as_deref().and_then(Lang::parse).or_else(|| Lang::parse(&ctx.language)).unwrap_or_default();
    let t = Tr(lang);
    if let Err(refused) = guard_answer(&st, &ctx, ip, t).await {
        return Ok(refused);
    }
    if ctx.closed {
        return page_for(&st, ip, &token, Some(lang.code()), false, Some(t.p("この配信は終了しました。", "This incident is closed.").into())).await;
    }
    let raw: Answers = fields.into_iter().filter(|(k, _)| k.starts_with('q')).collect();
    let answers = match ctx.survey.clean_answers(&raw) {
        Ok(a) => a,
        Err(_) => return page_for(&st, ip, &token, Some(lang.code()), false, Some(t.p("回答を選んでください。", "Please choose an answer.").into())).await,
    };
    let incident = st.store.save_answer(&ctx.scope, ctx.recipient_id, &answers, st.clock.now()).await?;
    let _ = st.events.send(crate::live::AnswerEvent { tenant: ctx.scope.tenant_id(), incident, remote: false });
    Ok(Redirect::to(&format!("/a/{token}?saved=1&lang={}", lang.code())).into_response())
}
