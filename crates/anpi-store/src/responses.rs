//! Answers through the signed per-recipient link. No login: the token is the credential.

use crate::crypto::{sign_id, verify_signed_id};
use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::survey::{Answers, Survey};
use anpi_core::Millis;

/// What the answer page shows.
#[derive(Debug, Clone)]
pub struct AnswerContext {
    pub scope: TenantScope,
    pub recipient_id: i64,
    pub name: String,
    pub language: String,
    pub tenant_name: String,
    pub title: String,
    pub message: String,
    pub drill: bool,
    pub closed: bool,
    pub survey: Survey,
    pub answers: Option<Answers>,
    pub answered_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AnswerDb {
    tenant_id: i64,
    name: String,
    language: String,
    tenant_name: String,
    title: String,
    message: String,
    drill: i64,
    closed_at: Option<i64>,
    survey: String,
    answers: Option<String>,
    answered_at: Option<i64>,
}

impl Store {
    pub(crate) async fn answer_key(&self) -> Result<Vec<u8>> {
        self.answer_key.get_or_try_init(|| self.secret("answer-link")).await.cloned()
    }

    /// The answer-link token of a recipient.
    pub async fn answer_token(&self, recipient_id: i64) -> Result<String> {
        Ok(sign_id(&self.answer_key().await?, "answer", recipient_id))
    }

    /// Resolves an answer-link token; `None` for anything forged, malformed or unknown.
    pub async fn answer_context(&self, token: &str) -> Result<Option<AnswerContext>> {
        let key = self.answer_key().await?;
        let Some(rid) = verify_signed_id(&key, "answer", token) else { return Ok(None) };
        let row: Option<AnswerDb> = sqlx::query_as(
            "SELECT r.tenant_id, r.name, r.language, t.name AS tenant_name, i.title, i.message, i.drill, i.closed_at, i.survey, r.answers, r.answered_at \
             FROM recipients r JOIN incidents i ON i.id = r.incident_id AND i.tenant_id = r.tenant_id JOIN tenants t ON t.id = r.tenant_id WHERE r.id = $1",
        )
        .bind(rid)
        .fetch_optional(&mut *self.system().await?)
        .await?;
        Ok(row.map(|r| AnswerContext {
            scope: TenantScope::new(r.tenant_id),
            recipient_id: rid,
            name: r.name,
            language: r.language,
            tenant_name: r.tenant_name,
            title: r.title,
            message: r.message,
            drill: r.drill != 0,
            closed: r.closed_at.is_some(),
            survey: serde_json::from_str(&r.survey).unwrap_or_else(|_| Survey::default_safety()),
            answers: r.answers.and_then(|a| serde_json::from_str(&a).ok()),
            answered_at: r.answered_at,
        }))
    }

    /// Records (or replaces) a recipient's answer. Returns the incident id.
    pub async fn save_answer(&self, scope: &TenantScope, recipient_id: i64, answers: &Answers, now: Millis) -> Result<i64> {
        let json = serde_json::to_string(answers).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let incident: Option<i64> = sqlx::query_scalar(
            "UPDATE recipients SET answers = $1, answered_at = $2 WHERE tenant_id = $3 AND id = $4 \
             AND incident_id IN (SELECT id FROM incidents WHERE tenant_id = $3 AND closed_at IS NULL) RETURNING incident_id",
        )
        .bind(json)
        .bind(now)
        .bind(scope.tenant_id())
        .bind(recipient_id)
        .fetch_optional(&mut *self.scoped(scope).await?)
        .await?;
        incident.ok_or(StoreError::NotFound)
    }
}
