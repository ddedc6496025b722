//! Classification labels (情報の区分, ISO/IEC 27017 8.2.2): a tenant's names for how sensitive
//! data is (公開 / 社外秘 / 機密). Incidents and rules carry one; messages and exports carry it on;
//! each label names the lowest role that may export what it marks.

use crate::{Lang, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub id: i64,
    pub name: String,
    /// English name; empty means the Japanese one is shown.
    pub name_en: String,
    /// Sort order: higher is more sensitive.
    pub rank: i64,
    /// The lowest role that may export data carrying this label.
    pub export_min: Role,
}

/// The labels a new tenant starts with: name, English name, rank, export restriction.
pub const STARTING: [(&str, &str, i64, Role); 3] =
    [("公開", "Public", 0, Role::Member), ("社外秘", "Confidential", 1, Role::Distributor), ("機密", "Strictly confidential", 2, Role::Admin)];

/// The starting label of exports that belong to no incident (directory, audit log).
pub const STARTING_DEFAULT: &str = "社外秘";

/// Longest label name, in characters.
pub const MAX_NAME: usize = 30;

impl Label {
    /// The name in `lang` (the Japanese one when there is no English name).
    pub fn shown(&self, lang: Lang) -> &str {
        if lang == Lang::En && !self.name_en.is_empty() {
            &self.name_en
        } else {
            &self.name
        }
    }

    pub fn may_export(&self, role: Role) -> bool {
        role.at_least(self.export_min)
    }

    /// `区分: 社外秘 / Classification: Confidential`, the first line of a labelled message.
    pub fn mail_line(&self) -> String {
        mail_line(&self.name, &self.name_en)
    }

    /// `{stem}_{name}.{ext}`, e.g. `people_社外秘.csv`.
    pub fn file_name(&self, stem: &str, ext: &str) -> String {
        format!("{stem}_{}.{ext}", self.name)
    }
}

/// The classification line of a message, for a label's Japanese and English names.
pub fn mail_line(name: &str, name_en: &str) -> String {
    let en = if name_en.is_empty() { name } else { name_en };
    format!("区分: {name} / Classification: {en}")
}

/// Checks label names as entered; returns them trimmed. They go into file names and mail, so
/// control characters and characters that file names cannot hold are refused.
pub fn check_names(name: &str, name_en: &str) -> Result<(String, String), String> {
    let (name, name_en) = (name.trim(), name_en.trim());
    if name.is_empty() || name.chars().count() > MAX_NAME || name_en.chars().count() > MAX_NAME {
        return Err(format!("区分名は1〜{MAX_NAME}文字です (label name: 1–{MAX_NAME} characters)"));
    }
    let bad = |s: &str| s.chars().any(|c| c.is_control() || "/\\:*?\"<>|".contains(c));
    if bad(name) || bad(name_en) {
        return Err("区分名に使えない文字があります: / \\ : * ? \" < > | (label names cannot contain these characters)".into());
    }
    Ok((name.to_string(), name_en.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str, en: &str, min: Role) -> Label {
        Label { id: 1, name: name.into(), name_en: en.into(), rank: 1, export_min: min }
    }

    #[test]
    fn lines_names_and_restrictions() {
        let l = label("社外秘", "Confidential", Role::Distributor);
        assert_eq!(l.mail_line(), "区分: 社外秘 / Classification: Confidential");
        assert_eq!(mail_line("部外秘", ""), "区分: 部外秘 / Classification: 部外秘");
        assert_eq!(l.file_name("people", "csv"), "people_社外秘.csv");
        assert_eq!(l.shown(Lang::En), "Confidential");
        assert_eq!(label("部外秘", "", Role::Admin).shown(Lang::En), "部外秘");
        assert!(l.may_export(Role::Admin) && l.may_export(Role::Distributor) && !l.may_export(Role::Member));
        assert!(!label("機密", "", Role::Admin).may_export(Role::Distributor));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_names(" 機密 ", " Secret ").unwrap(), ("機密".to_string(), "Secret".to_string()));
        assert!(check_names("", "x").is_err());
        assert!(check_names(&"あ".repeat(31), "").is_err());
        assert!(check_names("機密/A", "").is_err());
        assert!(check_names("機密", "a\"b").is_err());
        assert!(check_names("機密\n", "").is_ok(), "trimmed");
        assert!(check_names("機\u{7}密", "").is_err());
    }
}
