//! JIS X 0401/0402 area codes: prefecture (2 digits) or municipality (5 digits).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct AreaCode(String);

impl AreaCode {
    /// Accepts a 2-digit prefecture code (01–47), a 5-digit municipality code, or a 7-digit
    /// JMA city code (municipality + 2 digits), which is shortened to the municipality.
    pub fn parse(s: &str) -> Result<AreaCode, String> {
        let s = s.trim();
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("area code must be digits: {s:?}"));
        }
        let code = match s.len() {
            2 | 5 => s,
            7 => &s[..5],
            _ => return Err(format!("area code must have 2, 5 or 7 digits: {s:?}")),
        };
        let pref: u32 = code[..2].parse().map_err(|_| format!("bad area code {s:?}"))?;
        if !(1..=47).contains(&pref) {
            return Err(format!("no such prefecture in area code {s:?}"));
        }
        Ok(AreaCode(code.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn prefecture(&self) -> &str {
        &self.0[..2]
    }
    /// True when `self` (a target area) covers `other` (where a person is): the same code,
    /// or `self` is the prefecture that contains `other`.
    pub fn covers(&self, other: &AreaCode) -> bool {
        self.0 == other.0 || (self.0.len() == 2 && other.prefecture() == self.0)
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_and_covers() {
        let tokyo = AreaCode::parse("13").unwrap();
        let chiyoda = AreaCode::parse("1310100").unwrap();
        assert_eq!(chiyoda.as_str(), "13101");
        assert!(tokyo.covers(&chiyoda));
        assert!(!chiyoda.covers(&tokyo));
        assert!(AreaCode::parse("48").is_err());
        assert!(AreaCode::parse("1a").is_err());
        assert!(AreaCode::parse("123").is_err());
    }
}
