//! Labelled exports (answers, directory, audit log): the label's export restriction is checked
//! and every export, allowed or refused, is audited with its label; the file carries the label
//! in its name (`…_社外秘.csv`, RFC 6266 / RFC 8187) and in `X-Anpi-Classification`.

use crate::error::{WebError, WebResult};
use crate::session::Console;
use crate::AppState;
use anpi_core::Label;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

pub const CLASSIFICATION_HEADER: &str = "x-anpi-classification";

/// `label:社外秘` for audit details (`label:none` without one).
fn label_detail(label: Option<&Label>) -> String {
    format!("label:{}", label.map(|l| l.name.as_str()).unwrap_or("none"))
}

/// Refuses (403, audited as `denied`) a user whose role is below the label's export restriction.
pub async fn authorise(st: &AppState, c: &Console, action: &str, target: &str, label: Option<&Label>) -> WebResult<()> {
    match label {
        Some(l) if !l.may_export(c.role()) => {
            tracing::info!(account = c.account.id, tenant = c.scope.tenant_id(), label = l.id, "export refused by label");
            let detail = format!("{} requires {}", label_detail(label), l.export_min.as_str());
            c.audit_outcome(st, action, "denied", target, detail).await?;
            Err(WebError::Forbidden)
        }
        _ => Ok(()),
    }
}

/// Records an allowed export with its label; the export fails if it cannot be recorded.
pub async fn record(st: &AppState, c: &Console, action: &str, target: &str, label: Option<&Label>, what: String) -> WebResult<()> {
    c.audit(st, action, target, format!("{} {what}", label_detail(label))).await
}

/// RFC 8187 `ext-value`: `UTF-8''` and the percent-encoded bytes outside `attr-char`.
pub fn ext_value(s: &str) -> String {
    let mut out = String::from("UTF-8''");
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `attachment; filename="…"; filename*=UTF-8''…`: the label's name in the UTF-8 file name,
/// its English name (letters and digits only) in the ASCII fallback.
pub fn content_disposition(stem: &str, ext: &str, label: Option<&Label>) -> String {
    let Some(l) = label else {
        return format!("attachment; filename=\"{stem}.{ext}\"");
    };
    let ascii: String = l.name_en.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let ascii = ascii.trim_matches('-');
    let fallback = if ascii.is_empty() { format!("{stem}.{ext}") } else { format!("{stem}_{ascii}.{ext}") };
    format!("attachment; filename=\"{fallback}\"; filename*={}", ext_value(&l.file_name(stem, ext)))
}

/// A CSV download named `{stem}[_{label}].csv` that carries its label.
pub fn csv_download(stem: &str, label: Option<&Label>, body: impl IntoResponse) -> Response {
    download(stem, "csv", "text/csv; charset=utf-8", label, body)
}

/// A download named `{stem}[_{label}].{ext}` that carries its label.
pub fn download(stem: &str, ext: &str, content_type: &'static str, label: Option<&Label>, body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(stem, ext, label)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(v) = label.and_then(|l| HeaderValue::from_str(&ext_value(&l.name)).ok()) {
        h.insert(HeaderName::from_static(CLASSIFICATION_HEADER), v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_core::Role;

    #[test]
    fn cells_never_start_a_formula() {
        // Every export goes through anpi_core::spreadsheet::Sheet, which applies this to each cell.
        use anpi_core::spreadsheet::safe_cell;
        assert_eq!(safe_cell("=1+2"), "'=1+2");
        assert_eq!(safe_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(safe_cell("\t=1+2"), "'\t=1+2");
        assert_eq!(safe_cell("\r=1+2"), "'\r=1+2");
        assert_eq!(safe_cell("a=b"), "a=b");
    }

    #[test]
    fn file_names_carry_the_label() {
        let l = Label { id: 1, name: "社外秘".into(), name_en: "Confidential".into(), rank: 1, export_min: Role::Distributor };
        assert_eq!(ext_value("社外秘"), "UTF-8''%E7%A4%BE%E5%A4%96%E7%A7%98");
        assert_eq!(ext_value("a b\"c;d"), "UTF-8''a%20b%22c%3Bd");
        assert_eq!(
            content_disposition("people", "csv", Some(&l)),
            "attachment; filename=\"people_Confidential.csv\"; filename*=UTF-8''people_%E7%A4%BE%E5%A4%96%E7%A7%98.csv"
        );
        let ja_only = Label { name_en: "極秘 (top)".into(), ..l };
        assert!(content_disposition("people", "csv", Some(&ja_only)).starts_with("attachment; filename=\"people_top.csv\""));
        assert_eq!(content_disposition("audit-log", "json", None), "attachment; filename=\"audit-log.json\"");
        let r = csv_download("people", Some(&ja_only), "x");
        assert_eq!(r.headers()[CLASSIFICATION_HEADER], "UTF-8''%E7%A4%BE%E5%A4%96%E7%A7%98");
    }
}
