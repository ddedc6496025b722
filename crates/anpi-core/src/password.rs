//! Password rules (NIST SP 800-63B): length only, no composition rules, plus a blocklist.

/// Minimum length in characters (Unicode scalar values) for accounts with a second factor.
pub const MIN_LEN: usize = 8;
/// Minimum length for accounts without one (and operators).
pub const MIN_LEN_WITHOUT_MFA: usize = 15;
pub const MAX_LEN: usize = 128;

/// A small list of the most common passwords; extended by issue 4.
const BLOCKLIST: &[&str] = &[
    "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyui",
    "qwerty123", "iloveyou", "11111111", "00000000", "abcd1234", "passw0rd", "letmein1",
    "admin123", "administrator", "welcome1", "sunshine", "princess", "football", "baseball",
    "trustno1", "p@ssw0rd", "zaq12wsx", "1qaz2wsx", "asdfghjk", "changeme",
];

#[derive(Debug, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort(usize),
    TooLong,
    Common,
}

impl PasswordProblem {
    pub fn message(&self, lang: crate::Lang) -> String {
        match self {
            PasswordProblem::TooShort(min) => lang
                .pick(&format!("パスワードは{min}文字以上にしてください。"), &format!("Use at least {min} characters."))
                .to_string(),
            PasswordProblem::TooLong => lang
                .pick(&format!("パスワードは{MAX_LEN}文字以内にしてください。"), &format!("Use at most {MAX_LEN} characters."))
                .to_string(),
            PasswordProblem::Common => lang
                .pick("よく使われるパスワードのため使えません。", "This password is too common.")
                .to_string(),
        }
    }
}

impl PasswordProblem {
    /// Japanese, then English in parentheses.
    pub fn both(&self) -> String {
        format!("{} ({})", self.message(crate::Lang::Ja), self.message(crate::Lang::En))
    }
}

/// The minimum length that applies.
pub fn min_len(with_mfa: bool) -> usize {
    if with_mfa {
        MIN_LEN
    } else {
        MIN_LEN_WITHOUT_MFA
    }
}

/// Checks a new password: length (any Unicode, no composition rules) and the blocklist.
pub fn check(password: &str, with_mfa: bool) -> Result<(), PasswordProblem> {
    let n = password.chars().count();
    let min = min_len(with_mfa);
    if n < min {
        return Err(PasswordProblem::TooShort(min));
    }
    if n > MAX_LEN {
        return Err(PasswordProblem::TooLong);
    }
    if BLOCKLIST.contains(&password.to_lowercase().as_str()) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rules() {
        assert_eq!(check("short", true), Err(PasswordProblem::TooShort(8)));
        assert_eq!(check("Password123", true), Err(PasswordProblem::Common));
        assert_eq!(check("ninechars", false), Err(PasswordProblem::TooShort(15)), "15 without MFA");
        assert!(check("安否確認のためのながいパスワードです", false).is_ok());
        assert_eq!(check(&"x".repeat(129), true), Err(PasswordProblem::TooLong));
    }
}
