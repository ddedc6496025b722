//! People in a tenant's directory: the validated input for creating or updating one.

use crate::{AreaCode, Lang};

/// A person as entered in the console or a CSV row. Departments are paths (`本社/総務部`),
/// position, site and groups are names; the store resolves them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonInput {
    pub employee_no: String,
    pub name: String,
    pub furigana: String,
    pub emails: Vec<String>,
    pub phone: String,
    pub department: String,
    pub position: String,
    pub site: String,
    pub home_area: Option<AreaCode>,
    pub language: Lang,
    pub groups: Vec<String>,
}

/// The raw text fields, as a form or CSV row gives them.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PersonFields {
    #[serde(default)]
    pub employee_no: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub furigana: String,
    #[serde(default)]
    pub emails: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub position: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub home_area: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub groups: String,
}

fn list(s: &str) -> Vec<String> {
    s.split([';', ',', '\n', '、']).map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

/// A deliberately plain address check: one `@`, a dot in the domain, no spaces or controls.
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','))
}

impl PersonFields {
    /// Validates every field; returns all problems at once.
    pub fn validate(&self) -> Result<PersonInput, Vec<String>> {
        let mut errors = Vec::new();
        let t = |s: &String| s.trim().to_string();
        let employee_no = t(&self.employee_no);
        let name = t(&self.name);
        if employee_no.is_empty() {
            errors.push("社員番号がありません (employee number is required)".to_string());
        } else if employee_no.chars().count() > 64 {
            errors.push("社員番号が長すぎます (employee number too long)".to_string());
        }
        if name.is_empty() {
            errors.push("氏名がありません (name is required)".to_string());
        } else if name.chars().count() > 200 {
            errors.push("氏名が長すぎます (name too long)".to_string());
        }
        let emails = list(&self.emails);
        for e in &emails {
            if !valid_email(e) {
                errors.push(format!("メールアドレスが正しくありません (invalid email): {e}"));
            }
        }
        if emails.len() > 5 {
            errors.push("メールアドレスは5件までです (at most 5 emails)".to_string());
        }
        let phone = t(&self.phone);
        if !phone.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')')) || phone.len() > 32 {
            errors.push(format!("電話番号が正しくありません (invalid phone): {phone}"));
        }
        let home_area = match self.home_area.trim() {
            "" => None,
            s => match AreaCode::parse(s) {
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(format!("地域コードが正しくありません (invalid area code): {e}"));
                    None
                }
            },
        };
        let language = match self.language.trim() {
            "" => Lang::Ja,
            s => Lang::parse(s).unwrap_or_else(|| {
                errors.push(format!("言語は ja か en です (language must be ja or en): {s}"));
                Lang::Ja
            }),
        };
        let department = self.department.split('/').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PersonInput {
            employee_no,
            name,
            furigana: t(&self.furigana),
            emails,
            phone,
            department,
            position: t(&self.position),
            site: t(&self.site),
            home_area,
            language,
            groups: list(&self.groups),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn validates_all_fields() {
        let f = PersonFields {
            employee_no: " 001 ".into(),
            name: "山田 太郎".into(),
            emails: "taro@example.jp; t.yamada@example.com".into(),
            department: " 本社 / 総務部 ".into(),
            home_area: "1310100".into(),
            ..Default::default()
        };
        let p = f.validate().unwrap();
        assert_eq!(p.employee_no, "001");
        assert_eq!(p.emails.len(), 2);
        assert_eq!(p.department, "本社/総務部");
        assert_eq!(p.home_area.unwrap().as_str(), "13101");
        let bad = PersonFields { emails: "nope".into(), home_area: "99".into(), language: "fr".into(), ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().len(), 5);
    }
}
