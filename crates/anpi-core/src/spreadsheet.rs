//! CSV files meant for spreadsheet software: UTF-8 with a BOM (so Excel reads Japanese), written
//! by the `csv` crate, and every cell safe from formula injection (OWASP "CSV injection",
//! CWE-1236): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
//! `'`, which spreadsheets show as text. [`plain_cell`] undoes it when a file comes back in.

use std::borrow::Cow;

/// The first characters that make a spreadsheet treat a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `f` as a cell a spreadsheet will not run as a formula.
pub fn safe_cell(f: &str) -> Cow<'_, str> {
    if f.starts_with(FORMULA_START) {
        Cow::Owned(format!("'{f}"))
    } else {
        Cow::Borrowed(f)
    }
}

/// The value a [`safe_cell`] came from (a cell read back from an exported file).
pub fn plain_cell(f: &str) -> &str {
    match f.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_START) => rest,
        _ => f,
    }
}

/// A CSV file being written: header first, then rows; [`Sheet::finish`] gives the bytes.
pub struct Sheet {
    w: csv::Writer<Vec<u8>>,
}

impl Sheet {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(header: I) -> Sheet {
        let mut sheet = Sheet { w: csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new()) };
        sheet.row(header);
        sheet
    }

    /// One row; every cell goes through [`safe_cell`]. Writing into memory cannot fail.
    pub fn row<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, cells: I) {
        let _ = self.w.write_record(cells.into_iter().map(|c| safe_cell(c.as_ref()).into_owned()));
    }

    /// The file: a UTF-8 BOM and the rows.
    pub fn finish(self) -> Vec<u8> {
        let mut out = "\u{FEFF}".as_bytes().to_vec();
        out.extend_from_slice(&self.w.into_inner().unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_read_back() {
        for f in ["=1+2", "+81-3-1234", "-5", "@SUM(A1)", "\t=cmd", "\r=cmd"] {
            assert_eq!(safe_cell(f), format!("'{f}"));
            assert_eq!(plain_cell(&safe_cell(f)), f);
        }
        for f in ["a=b", "山田", "", "'quoted", "1-2"] {
            assert_eq!(safe_cell(f), f);
            assert_eq!(plain_cell(f), f);
        }
    }

    #[test]
    fn sheets_quote_with_the_csv_crate() {
        let mut s = Sheet::new(["氏名", "コメント"]);
        s.row(["山田, 太郎", "3階\n\"会議室\""]);
        s.row(["=HYPERLINK(\"http://x\")", "\tok"]);
        let text = String::from_utf8(s.finish()).unwrap();
        assert_eq!(text, "\u{FEFF}氏名,コメント\r\n\"山田, 太郎\",\"3階\n\"\"会議室\"\"\"\r\n\"'=HYPERLINK(\"\"http://x\"\")\",'\tok\r\n");
        let mut r = csv::Reader::from_reader(text.trim_start_matches('\u{FEFF}').as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(plain_cell(&rows[1][0]), "=HYPERLINK(\"http://x\")");
    }
}
