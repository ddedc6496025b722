//! The directory: people list, add/edit/disable/delete, CSV import (preview, then all or
//! nothing) and export.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::{WebError, WebResult};
use crate::i18n::problem;
use crate::session::Console;
use crate::AppState;
use anpi_core::csv_import::{self, Encoding, RowResult};
use anpi_core::directory::{PersonFields, PersonInput};
use anpi_core::Permission;
use anpi_store::PersonRow;
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "people.html")]
struct ListPage {
    l: Layout,
    people: Vec<PersonRow>,
    shown: usize,
    total: usize,
    q: String,
    can_manage: bool,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    done: Option<String>,
}

pub async fn list(State(st): State<AppState>, c: Console, Query(q): Query<ListQuery>) -> WebResult<Response> {
    c.require(Permission::ViewDirectory)?;
    let reach = c.reach(&st).await?;
    c.audit(&st, "people_viewed", "", q.q.trim().chars().take(100).collect::<String>()).await?;
    let all: Vec<PersonRow> = st.store.people(&c.scope).await?.into_iter().filter(|p| reach.as_ref().is_none_or(|r| r.contains(&p.id))).collect();
    let total = all.len();
    let needle = q.q.trim().to_lowercase();
    let people: Vec<PersonRow> = all
        .into_iter()
        .filter(|p| {
            needle.is_empty()
                || p.input.name.to_lowercase().contains(&needle)
                || p.input.furigana.to_lowercase().contains(&needle)
                || p.input.employee_no.to_lowercase().contains(&needle)
                || p.input.department.to_lowercase().contains(&needle)
        })
        .take(500)
        .collect();
    render(&ListPage {
        l: Layout::console(&c, c.t.p("名簿", "People")).with_flash(Flash { done: q.done }.message(c.t)),
        shown: people.len(),
        people,
        total,
        q: q.q,
        can_manage: c.can(Permission::ManageDirectory),
    })
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonPage {
    l: Layout,
    csrf: String,
    id: Option<i64>,
    disabled: bool,
    /// The DSN status of a bounced address, or empty.
    undeliverable: String,
    f: PersonFields,
    errors: Vec<String>,
    sites: Vec<String>,
    departments: Vec<String>,
}

/// What the person page shows besides the form.
#[derive(Default)]
struct PersonState {
    disabled: bool,
    undeliverable: String,
}

fn fields_of(p: &PersonInput) -> PersonFields {
    PersonFields {
        employee_no: p.employee_no.clone(),
        name: p.name.clone(),
        furigana: p.furigana.clone(),
        emails: p.emails.join("; "),
        phone: p.phone.clone(),
        department: p.department.clone(),
        position: p.position.clone(),
        site: p.site.clone(),
        home_area: p.home_area.as_ref().map(|a| a.to_string()).unwrap_or_default(),
        language: p.language.code().to_string(),
        groups: p.groups.join("; "),
    }
}

async fn person_page(st: &AppState, c: &Console, id: Option<i64>, state: PersonState, f: PersonFields, errors: Vec<String>) -> WebResult<Response> {
    let sites = st.store.sites(&c.scope).await?.into_iter().map(|s| s.name).collect();
    let departments = st.store.departments(&c.scope).await?.into_iter().map(|d| d.path).collect();
    let title = if id.is_some() { c.t.p("名簿の編集", "Edit person") } else { c.t.p("名簿に追加", "Add a person") };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let PersonState { disabled, undeliverable } = state;
    let page = PersonPage { l: Layout::console(c, title), csrf: c.csrf.clone(), id, disabled, undeliverable, f, errors, sites, departments };
    Ok((status, render(&page)?).into_response())
}

pub async fn new_page(State(st): State<AppState>, c: Console) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    person_page(&st, &c, None, PersonState::default(), PersonFields { language: "ja".into(), ..Default::default() }, vec![]).await
}

pub async fn edit_page(State(st): State<AppState>, c: Console, Path(id): Path<i64>) -> WebResult<Response> {
    c.require(Permission::ViewDirectory)?;
    if c.reach(&st).await?.is_some_and(|r| !r.contains(&id)) {
        return Err(crate::WebError::NotFound);
    }
    let p = st.store.person(&c.scope, id).await?;
    c.audit(&st, "person_viewed", format!("person:{id}"), "").await?;
    person_page(&st, &c, Some(id), PersonState { disabled: p.disabled, undeliverable: p.undeliverable.clone() }, fields_of(&p.input), vec![]).await
}

#[derive(Deserialize)]
pub struct PersonForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: PersonFields,
}

async fn save(st: &AppState, c: &Console, id: Option<i64>, form: PersonForm) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&form.csrf)?;
    let input = match form.fields.validate() {
        Ok(i) => i,
        Err(errors) => return person_page(st, c, id, PersonState::default(), form.fields, errors).await,
    };
    let e = c.event(if id.is_some() { "person_updated" } else { "person_created" }, "");
    match st.store.save_person(&c.scope, id, &input, &e, st.clock.now()).await {
        Ok(_) => Ok(Redirect::to("/people?done=saved").into_response()),
        Err(anpi_store::StoreError::Invalid(p) | anpi_store::StoreError::Conflict(p)) => {
            person_page(st, c, id, PersonState::default(), form.fields, vec![problem(c.t, &p)]).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn create(State(st): State<AppState>, c: Console, Form(form): Form<PersonForm>) -> WebResult<Response> {
    save(&st, &c, None, form).await
}

pub async fn update(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(form): Form<PersonForm>) -> WebResult<Response> {
    st.store.person(&c.scope, id).await?;
    save(&st, &c, Some(id), form).await
}

async fn set_disabled(st: &AppState, c: &Console, id: i64, csrf: &str, disabled: bool) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(csrf)?;
    let e = c.event(if disabled { "person_disabled" } else { "person_enabled" }, format!("person:{id}"));
    st.store.set_person_disabled(&c.scope, id, disabled, &e, st.clock.now()).await?;
    Ok(Redirect::to(&format!("/people/{id}")).into_response())
}

pub async fn disable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    set_disabled(&st, &c, id, &f.csrf, true).await
}

pub async fn enable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    set_disabled(&st, &c, id, &f.csrf, false).await
}

/// Lifts the bounce mark of a person's address (宛先不達の解除).
pub async fn clear_undeliverable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    st.store.clear_undeliverable(&c.scope, id, &c.event("person_mail_restored", format!("person:{id}")), st.clock.now()).await?;
    Ok(Redirect::to(&format!("/people/{id}")).into_response())
}

pub async fn delete(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    st.store.delete_person(&c.scope, id, &c.event("person_deleted", format!("person:{id}")), st.clock.now()).await?;
    Ok(Redirect::to("/people?done=deleted").into_response())
}

/// The directory as CSV, carrying the tenant's default label (the directory belongs to no incident).
pub async fn export(State(st): State<AppState>, c: Console) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    let label = st.store.default_label(&c.scope).await?;
    super::export::authorise(&st, &c, "directory_exported", "", label.as_ref()).await?;
    let people: Vec<PersonInput> = st.store.people(&c.scope).await?.into_iter().map(|p| p.input).collect();
    tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, rows = people.len(), "directory export");
    super::export::record(&st, &c, "directory_exported", "", label.as_ref(), format!("{} people", people.len())).await?;
    Ok(super::export::csv_download("people", label.as_ref(), csv_import::export(&people)))
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    l: Layout,
    csrf: String,
    error: Option<String>,
    rows: Vec<RowResult>,
    valid: usize,
    invalid: usize,
    staged: Option<i64>,
    columns: String,
}

fn import_page_for(c: &Console, error: Option<String>, rows: Vec<RowResult>, staged: Option<i64>) -> WebResult<Response> {
    let invalid = rows.iter().filter(|r| r.result.is_err()).count();
    let status = if error.is_some() || invalid > 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = ImportPage {
        l: Layout::console(c, c.t.p("CSV取り込み", "Import CSV")),
        csrf: c.csrf.clone(),
        error,
        valid: rows.len() - invalid,
        invalid,
        rows,
        staged,
        columns: csv_import::COLUMNS.iter().map(|(ja, en)| format!("{ja} ({en})")).collect::<Vec<_>>().join(", "),
    };
    Ok((status, render(&page)?).into_response())
}

pub async fn import_page(c: Console) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    import_page_for(&c, None, vec![], None)
}

/// Step 1: upload (file or pasted text), decode, validate every row, show the preview.
pub async fn import_preview(State(st): State<AppState>, c: Console, mut mp: Multipart) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    let (mut csrf, mut bytes, mut text, mut encoding) = (String::new(), Vec::new(), String::new(), None);
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(WebError::BadRequest(format!("アップロードを読めません (cannot read upload): {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(|e| WebError::BadRequest(format!("アップロードを読めません (cannot read upload): {e}")))?;
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&data).into_owned(),
            "file" => bytes = data.to_vec(),
            "csv" => text = String::from_utf8_lossy(&data).into_owned(),
            "encoding" => {
                encoding = match &data[..] {
                    b"utf-8" => Some(Encoding::Utf8),
                    b"shift_jis" => Some(Encoding::ShiftJis),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    c.check_csrf(&csrf)?;
    let decoded = if !bytes.is_empty() {
        match csv_import::decode(&bytes, encoding) {
            Ok(t) => t,
            Err(e) => return import_page_for(&c, Some(e), vec![], None),
        }
    } else {
        text
    };
    if decoded.trim().is_empty() {
        return import_page_for(&c, Some(c.t.p("ファイルが空です。", "The file is empty.").into()), vec![], None);
    }
    let rows = match csv_import::parse(&decoded) {
        Ok(r) => r,
        Err(e) => return import_page_for(&c, Some(e), vec![], None),
    };
    if rows.is_empty() {
        return import_page_for(&c, Some(c.t.p("データ行がありません。", "No data rows.").into()), vec![], None);
    }
    let staged =
        if rows.iter().all(|r| r.result.is_ok()) { Some(st.store.stage_import(&c.scope, c.account.id, &decoded, st.clock.now()).await?) } else { None };
    import_page_for(&c, None, rows, staged)
}

/// Step 2: apply a staged, fully valid upload in one transaction.
pub async fn import_confirm(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    let content = st.store.take_staged_import(&c.scope, id).await?;
    let rows = csv_import::parse(&content).map_err(WebError::BadRequest)?;
    let people: Vec<PersonInput> = rows.into_iter().filter_map(|r| r.result.ok()).collect();
    match st.store.import_people(&c.scope, &people, &c.event("directory_imported", ""), st.clock.now()).await {
        Ok(n) => {
            tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, rows = n, "directory import");
            Ok(Redirect::to("/people?done=imported").into_response())
        }
        Err(anpi_store::StoreError::Invalid(p) | anpi_store::StoreError::Conflict(p)) => import_page_for(&c, Some(problem(c.t, &p)), vec![], None),
        Err(anpi_store::StoreError::Partial { done, total }) => {
            let e = format!("{total} 行のうち {done} 行を取り込んだところで中断しました。同じファイルをもう一度取り込んでください (取り込み済みの行は更新されるだけです)。 (stopped after {done} of {total} rows; import the same file again)");
            import_page_for(&c, Some(e), vec![], None)
        }
        Err(e) => Err(e.into()),
    }
}
