//! CSV import and export of the directory: UTF-8 (with or without BOM) or Shift_JIS.

use crate::directory::{PersonFields, PersonInput};
use crate::spreadsheet::{plain_cell, Sheet};

/// Column names, Japanese first; the English key is accepted too.
pub const COLUMNS: &[(&str, &str)] = &[
    ("社員番号", "employee_no"),
    ("氏名", "name"),
    ("フリガナ", "furigana"),
    ("メールアドレス", "emails"),
    ("電話番号", "phone"),
    ("部署", "department"),
    ("役職", "position"),
    ("事業所", "site"),
    ("自宅地域コード", "home_area"),
    ("言語", "language"),
    ("グループ", "groups"),
];

pub const MAX_ROWS: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    ShiftJis,
}

/// Decodes upload bytes. `None` guesses: UTF-8 when valid, else Shift_JIS.
pub fn decode(bytes: &[u8], encoding: Option<Encoding>) -> Result<String, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let enc = encoding.unwrap_or(if std::str::from_utf8(bytes).is_ok() { Encoding::Utf8 } else { Encoding::ShiftJis });
    match enc {
        Encoding::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|_| "ファイルが UTF-8 ではありません (not valid UTF-8)".to_string()),
        Encoding::ShiftJis => {
            let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(bytes);
            if had_errors {
                Err("ファイルを Shift_JIS として読めません (not valid Shift_JIS)".to_string())
            } else {
                Ok(text.into_owned())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    /// Line number in the file (header is line 1).
    pub line: usize,
    pub result: Result<PersonInput, Vec<String>>,
}

/// Parses the whole file. A header problem is an `Err`; row problems are per row.
pub fn parse(text: &str) -> Result<Vec<RowResult>, String> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("ヘッダー行を読めません (cannot read header): {e}"))?.clone();
    let mut index = Vec::new();
    for h in headers.iter() {
        let key = COLUMNS.iter().find(|(ja, en)| *ja == h || *en == h).map(|(_, en)| *en);
        match key {
            Some(k) => index.push(k),
            None => return Err(format!("不明な列です (unknown column): {h:?}")),
        }
    }
    for required in ["employee_no", "name"] {
        if !index.contains(&required) {
            return Err(format!("必須の列がありません (missing column): {required}"));
        }
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        if rows.len() >= MAX_ROWS {
            return Err(format!("行が多すぎます (too many rows, max {MAX_ROWS})"));
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                rows.push(RowResult { line, result: Err(vec![format!("CSV の形式が正しくありません (malformed row): {e}")]) });
                continue;
            }
        };
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        if rec.len() != index.len() {
            rows.push(RowResult { line, result: Err(vec![format!("列の数が違います (expected {} fields, found {})", index.len(), rec.len())]) });
            continue;
        }
        let mut f = PersonFields::default();
        for (key, value) in index.iter().zip(rec.iter()) {
            let v = plain_cell(value).to_string();
            match *key {
                "employee_no" => f.employee_no = v,
                "name" => f.name = v,
                "furigana" => f.furigana = v,
                "emails" => f.emails = v,
                "phone" => f.phone = v,
                "department" => f.department = v,
                "position" => f.position = v,
                "site" => f.site = v,
                "home_area" => f.home_area = v,
                "language" => f.language = v,
                _ => f.groups = v,
            }
        }
        let mut result = f.validate();
        if let Ok(p) = &result {
            if !seen.insert(p.employee_no.clone()) {
                result = Err(vec![format!("社員番号が重複しています (duplicate employee number): {}", p.employee_no)]);
            }
        }
        rows.push(RowResult { line, result });
    }
    Ok(rows)
}

/// Writes people as CSV with the Japanese header (UTF-8 with BOM, for spreadsheet software;
/// formula-safe cells, which [`parse`] reads back as they were).
pub fn export(people: &[PersonInput]) -> Vec<u8> {
    let mut w = Sheet::new(COLUMNS.iter().map(|(ja, _)| *ja));
    for p in people {
        let home = p.home_area.as_ref().map(|a| a.as_str().to_string()).unwrap_or_default();
        w.row([
            p.employee_no.as_str(),
            &p.name,
            &p.furigana,
            &p.emails.join(";"),
            &p.phone,
            &p.department,
            &p.position,
            &p.site,
            &home,
            p.language.code(),
            &p.groups.join(";"),
        ]);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn shift_jis_round_trip() {
        let text = "社員番号,氏名,部署\n001,山田太郎,本社/総務部\n";
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
        assert_eq!(decode(&sjis, None).unwrap(), text);
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result.as_ref().unwrap().department, "本社/総務部");
    }
    #[test]
    fn per_row_errors() {
        let rows = parse("employee_no,name,emails\n1,A,a@x.jp\n2,,bad\n1,C,\n3,D\n").unwrap();
        assert!(rows[0].result.is_ok());
        assert_eq!(rows[1].result.as_ref().unwrap_err().len(), 2);
        assert!(rows[2].result.as_ref().unwrap_err()[0].contains("duplicate"));
        assert!(rows[3].result.as_ref().unwrap_err()[0].contains("expected 3"));
        assert_eq!(rows[3].line, 5);
        assert!(parse("who,name\n").unwrap_err().contains("unknown column"));
        assert!(parse("name\n").unwrap_err().contains("employee_no"));
    }
    #[test]
    fn export_parses_back() {
        let rows = parse("社員番号,氏名,メールアドレス,電話番号,グループ\n7,=佐藤,a@x.jp;b@y.jp,+81-3-1234-5678,\"A;B\"\n").unwrap();
        let p = rows[0].result.clone().unwrap();
        let out = String::from_utf8(export(std::slice::from_ref(&p))).unwrap();
        assert!(out.contains(",'=佐藤,") && out.contains(",'+81-3-1234-5678,"), "formula-safe cells: {out}");
        let again = parse(out.trim_start_matches('\u{FEFF}')).unwrap();
        assert_eq!(again[0].result.as_ref().unwrap(), &p);
    }
}
