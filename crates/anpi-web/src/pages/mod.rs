//! Page handlers, one module per area of the console.

mod account;
mod accounts;
mod answer;
mod audit;
mod auth;
mod client_cert;
mod export;
mod hazards;
mod incidents;
mod labels;
mod mail;
mod mfa;
mod network;
pub mod operator;
mod org;
mod passkeys;
mod people;

use crate::i18n::Tr;
use crate::session::Console;
use crate::AppState;
use anpi_core::Permission;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

/// What the base template needs.
pub struct Layout {
    pub t: Tr,
    pub title: String,
    pub nav: Option<Nav>,
    pub flash: Option<String>,
}

pub struct Nav {
    pub user: String,
    pub tenant: String,
    pub role: String,
    pub csrf: String,
    pub incidents: bool,
    pub people: bool,
    pub org: bool,
    pub accounts: bool,
    pub hazards: bool,
    pub rules: bool,
    pub security: bool,
}

impl Layout {
    pub fn public(t: Tr, title: &str) -> Layout {
        Layout { t, title: title.to_string(), nav: None, flash: None }
    }
    pub fn console(c: &Console, title: &str) -> Layout {
        Layout {
            t: c.t,
            title: title.to_string(),
            nav: Some(Nav {
                user: c.account.name.clone(),
                tenant: c.tenant_code.clone(),
                role: c.t.p(c.role().label_ja(), c.role().as_str()).to_string(),
                csrf: c.csrf.clone(),
                incidents: c.can(Permission::ViewIncidents),
                people: c.can(Permission::ViewDirectory),
                org: c.can(Permission::ManageDirectory),
                accounts: c.can(Permission::ManageAccounts),
                hazards: c.can(Permission::ViewHazards),
                rules: c.can(Permission::ManageRules),
                security: c.can(Permission::ManageSecurity),
            }),
            flash: None,
        }
    }
    pub fn with_flash(mut self, flash: Option<String>) -> Layout {
        self.flash = flash;
        self
    }
}

/// Renders a template into an HTML response.
pub fn render<T: askama::Template>(t: &T) -> crate::error::WebResult<axum::response::Response> {
    Ok(axum::response::Html(t.render()?).into_response())
}

/// A form whose only field is the CSRF token (buttons that post an action).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `?done=…` messages shown after a redirect.
#[derive(serde::Deserialize, Default)]
pub struct Flash {
    pub done: Option<String>,
}

impl Flash {
    pub fn message(&self, t: Tr) -> Option<String> {
        let m = match self.done.as_deref()? {
            "saved" => t.p("保存しました。", "Saved."),
            "deleted" => t.p("削除しました。", "Deleted."),
            "imported" => t.p("取り込みました。", "Imported."),
            "resent" => t.p("未回答者に再送しました。", "Sent again to everyone who has not answered."),
            "closed" => t.p("配信を終了しました。", "The incident is closed."),
            "started" => t.p("配信を開始しました。", "The incident has started; messages are being sent."),
            "password" => t.p("パスワードを変更しました。", "Your password has been changed."),
            "invited" => t.p("アカウントを作成し、パスワード設定メールを送りました。", "Account created; a link to set the password was mailed."),
            _ => return None,
        };
        Some(m.to_string())
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Health with details: the database answers, and whether the system clock is synchronised
/// (times in answers, audit entries and mail depend on it). 503 when the database does not.
async fn health(axum::extract::State(st): axum::extract::State<AppState>) -> axum::response::Response {
    let db = st.store.ping().await.is_ok();
    let clock = st.clock_check.status().await;
    let status = if db { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({"status": if db { "ok" } else { "degraded" }, "database": db, "clock": clock}))).into_response()
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], include_str!("../../static/app.css"))
}

async fn live_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], include_str!("../../static/live.js"))
}

async fn passkey_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], include_str!("../../static/passkey.js"))
}

pub fn tenant_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/health", get(health))
        .route("/static/app.css", get(css))
        .route("/static/live.js", get(live_js))
        .route("/static/passkey.js", get(passkey_js))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/login/mfa", get(mfa::second_factor_page).post(mfa::second_factor))
        .route("/login/passkey/options", post(passkeys::login_options))
        .route("/login/passkey", post(passkeys::login))
        .route("/account", get(account::page))
        .route("/account/mfa", get(mfa::enrol_form).post(mfa::enrol))
        .route("/account/mfa/disable", post(mfa::disable))
        .route("/account/passkeys/options", post(passkeys::register_options))
        .route("/account/passkeys", post(passkeys::register))
        .route("/account/passkeys/{id}/delete", post(passkeys::delete))
        .route("/account/sessions/end-others", post(account::end_others))
        .route("/account/sessions/{id}/end", post(account::end_session))
        .route("/accounts/{id}/unlock", post(account::unlock))
        .route("/accounts/{id}/reach", post(accounts::set_reach))
        .route("/accounts/{id}/sessions/end", post(account::admin_end_sessions))
        .route("/accounts/{id}/mfa/reset", post(accounts::reset_mfa))
        .route("/security", get(mfa::policy).post(mfa::save_policy))
        .route("/audit", get(audit::page))
        .route("/audit.csv", get(audit::csv))
        .route("/audit.json", get(audit::json))
        .route("/audit/retention", post(audit::save_retention))
        .route("/security/network", get(network::page).post(network::save))
        .route("/labels", get(labels::page).post(labels::create))
        .route("/labels/default", post(labels::set_default))
        .route("/labels/{id}", post(labels::update))
        .route("/labels/{id}/delete", post(labels::delete))
        .route("/security/client-cert", get(client_cert::page))
        .route("/security/client-cert/ca", post(client_cert::save_ca))
        .route("/security/client-cert/ca/remove", post(client_cert::remove_ca))
        .route("/security/client-cert/require", post(client_cert::save_required))
        .route("/password", get(auth::password_page).post(auth::change_password))
        .route("/password/reset", get(auth::reset_request_page).post(auth::reset_request))
        .route("/password/reset/{token}", get(auth::reset_page).post(auth::reset))
        .route("/a/{token}", get(answer::page).post(answer::submit))
        .route("/", get(incidents::list))
        .route("/incidents/new", get(incidents::new_page))
        .route("/incidents", post(incidents::start))
        .route("/incidents/{id}", get(incidents::dashboard))
        .route("/incidents/{id}/events", get(incidents::events))
        .route("/incidents/{id}/answers.csv", get(incidents::answers_csv))
        .route("/incidents/{id}/resend", post(incidents::resend))
        .route("/incidents/{id}/close", post(incidents::close))
        .route("/people", get(people::list).post(people::create))
        .route("/people/new", get(people::new_page))
        .route("/people/export.csv", get(people::export))
        .route("/people/import", get(people::import_page).post(people::import_preview))
        .route("/people/import/{id}", post(people::import_confirm))
        .route("/people/{id}", get(people::edit_page).post(people::update))
        .route("/people/{id}/disable", post(people::disable))
        .route("/people/{id}/enable", post(people::enable))
        .route("/people/{id}/undeliverable/clear", post(people::clear_undeliverable))
        .route("/people/{id}/delete", post(people::delete))
        .route("/org", get(org::page))
        .route("/org/departments", post(org::add_department))
        .route("/org/sites", post(org::add_site))
        .route("/org/groups", post(org::add_group))
        .route("/org/time-zone", post(org::set_time_zone))
        .route("/accounts", get(accounts::list).post(accounts::create))
        .route("/accounts/{id}/disable", post(accounts::disable))
        .route("/accounts/{id}/enable", post(accounts::enable))
        .route("/mail", get(mail::page))
        .route("/hazards", get(hazards::list))
        .route("/hazards/{id}", get(hazards::detail))
        .route("/hazards/{id}/xml", get(hazards::xml))
        .route("/rules", get(hazards::rules).post(hazards::create_rule))
        .route("/rules/new", get(hazards::new_rule))
        .route("/rules/{id}", get(hazards::edit_rule).post(hazards::update_rule))
        .route("/rules/{id}/delete", post(hazards::delete_rule))
        .route("/api/jma/telegrams", post(hazards::push))
}
