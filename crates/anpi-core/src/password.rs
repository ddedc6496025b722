//! Password rules (NIST SP 800-63B): length only, no composition rules, plus a blocklist.

/// Minimum and maximum length in characters (Unicode scalar values).
pub const MIN_LEN: usize = 8;
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
    TooShort,
    TooLong,
    Common,
}

impl PasswordProblem {
    pub fn message(&self, lang: crate::Lang) -> String {
        match self {
            PasswordProblem::TooShort => lang
                .pick(&format!("パスワードは{MIN_LEN}文字以上にしてください。"), &format!("Use at least {MIN_LEN} characters."))
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

pub fn check(password: &str) -> Result<(), PasswordProblem> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(PasswordProblem::TooShort);
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
        assert_eq!(check("short"), Err(PasswordProblem::TooShort));
        assert_eq!(check("Password123"), Err(PasswordProblem::Common));
        assert!(check("安否確認のためのながいパス").is_ok());
        assert_eq!(check(&"x".repeat(129)), Err(PasswordProblem::TooLong));
    }
}
