//! Password rules (NIST SP 800-63B, OWASP ASVS 5.0 V6.2): length only, no composition rules,
//! a blocklist of common passwords, and context-specific words.
//!
//! A new password is refused when
//!
//! 1. it is shorter than [`MIN_LEN`] characters (Unicode scalar values) for an account with a
//!    second factor, or [`MIN_LEN_WITHOUT_MFA`] without one (operators always), or longer than
//!    [`MAX_LEN`];
//! 2. it is a **common password** ([`is_common`]): compared case-insensitively with the 11,611
//!    passwords of 8 or more characters in `data/common-passwords.txt` (the zxcvbn 4.5.0
//!    frequency list, MIT; see `data/README.md`), also after two simple undoings of the usual
//!    variations:
//!    - trailing digits, ASCII punctuation and spaces removed (`password123!` → `password`),
//!    - common leetspeak undone: `0→o 1→i 3→e 4→a 5→s @→a $→s` and, as a second try,
//!      `1→l` (`p@ssw0rd` → `password`),
//!
//!    and both together (`p@ssw0rd1` → `password`). Only whole-password matches count: a
//!    passphrase that merely contains a common word is fine. The list holds only entries of 8+
//!    characters, so a short common word with digits appended (`dragon2024`) is not caught
//!    unless that exact form is in the list;
//! 3. it **contains a context-specific word** ([`context_words`]), case-insensitively, as is
//!    or with the leetspeak above undone. The documented list of context-specific words:
//!    - the service name: `anpi`, `安否` ([`SERVICE_WORDS`], always checked);
//!    - the tenant (組織) code and the tenant name;
//!    - the account's email address, its local part and the labels of its domain;
//!
//!    each taken whole and split at every character that is not a letter or digit
//!    (`Acme Corp.` → `acme corp.`, `acme`, `corp`; `taro.yamada@acme.example` → also `taro`,
//!    `yamada`, `acme`, `example`). A word counts when it has at least 4 characters, or at least
//!    2 when it contains a kana/kanji (or other character from U+3000 up), since such words are
//!    short (`安否`, `山田`). Callers pass the tenant and email strings; the store does this for
//!    operators (email), account creation and every password change or reset.
//!
//! Breached-password services (e.g. an online k-anonymity lookup) are not used: anpi runs
//! without outbound internet access; the embedded list is itself drawn from leaked passwords.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Minimum length in characters (Unicode scalar values) for accounts with a second factor.
pub const MIN_LEN: usize = 8;
/// Minimum length for accounts without one (and operators).
pub const MIN_LEN_WITHOUT_MFA: usize = 15;
pub const MAX_LEN: usize = 128;

/// The service's own names: never allowed inside a password.
pub const SERVICE_WORDS: &[&str] = &["anpi", "安否"];

/// Common passwords of 8+ characters, lowercased, one a line (`#` lines are comments).
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn common_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect())
}

/// How many passwords the embedded blocklist holds.
pub fn common_count() -> usize {
    common_set().len()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort(usize),
    TooLong,
    Common,
    /// Contains the service name, the tenant's code or name, or the account's email.
    ContainsContext,
}

impl PasswordProblem {
    pub fn message(&self, lang: crate::Lang) -> String {
        match self {
            PasswordProblem::TooShort(min) => {
                lang.pick(&format!("パスワードは{min}文字以上にしてください。"), &format!("Use at least {min} characters.")).to_string()
            }
            PasswordProblem::TooLong => {
                lang.pick(&format!("パスワードは{MAX_LEN}文字以内にしてください。"), &format!("Use at most {MAX_LEN} characters.")).to_string()
            }
            PasswordProblem::Common => lang
                .pick("よく使われるパスワード（またはその簡単な変形）のため使えません。", "This password (or a simple variation of it) is too common.")
                .to_string(),
            PasswordProblem::ContainsContext => lang
                .pick(
                    "サービス名・組織名やメールアドレスを含むパスワードは使えません。",
                    "Do not use the service name, your organisation's code or name, or your email address in the password.",
                )
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

/// Leetspeak undone, with `1` read as `i` (`one_as_i`) or as `l`.
fn unleet(s: &str, one_as_i: bool) -> String {
    s.chars()
        .map(|c| match c {
            '0' => 'o',
            '1' if one_as_i => 'i',
            '1' => 'l',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            c => c,
        })
        .collect()
}

/// The lowercased password and its leetspeak readings.
fn readings(lower: &str) -> Vec<String> {
    let mut v = vec![lower.to_string(), unleet(lower, true), unleet(lower, false)];
    v.dedup();
    v
}

/// Whether the password, or a simple variation of it, is in the common-password list.
pub fn is_common(password: &str) -> bool {
    let set = common_set();
    let lower = password.to_lowercase();
    let stripped = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace());
    readings(&lower).iter().chain(readings(stripped).iter()).any(|r| set.contains(r.as_str()))
}

/// Whether a context word is long enough to count (see the module docs).
fn counts(word: &str) -> bool {
    let n = word.chars().count();
    n >= 4 || (n >= 2 && word.chars().any(|c| c as u32 >= 0x3000))
}

/// The context-specific words for `context` (tenant code, tenant name, email …): the
/// service's names, then each item lowercased, whole and split at non-alphanumerics, keeping
/// the words that count.
pub fn context_words(context: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = SERVICE_WORDS.iter().map(|w| w.to_string()).collect();
    for item in context {
        let item = item.trim().to_lowercase();
        let parts = std::iter::once(item.as_str()).chain(item.split(|c: char| !c.is_alphanumeric()));
        for w in parts {
            if counts(w) && !words.iter().any(|x| x == w) {
                words.push(w.to_string());
            }
        }
    }
    words
}

/// The first context word (see [`context_words`]) that the password contains, if any.
pub fn context_match(password: &str, context: &[&str]) -> Option<String> {
    let readings = readings(&password.to_lowercase());
    context_words(context).into_iter().find(|w| readings.iter().any(|r| r.contains(w.as_str())))
}

/// Checks a new password: length (any Unicode, no composition rules), the common-password
/// list, and the context-specific words (the service's names always; `context` adds the
/// tenant code and name and the account's email).
pub fn check(password: &str, with_mfa: bool, context: &[&str]) -> Result<(), PasswordProblem> {
    let n = password.chars().count();
    let min = min_len(with_mfa);
    if n < min {
        return Err(PasswordProblem::TooShort(min));
    }
    if n > MAX_LEN {
        return Err(PasswordProblem::TooLong);
    }
    if is_common(password) {
        return Err(PasswordProblem::Common);
    }
    if context_match(password, context).is_some() {
        return Err(PasswordProblem::ContainsContext);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(check("short", true, &[]), Err(PasswordProblem::TooShort(8)));
        assert_eq!(check("Password123", true, &[]), Err(PasswordProblem::Common));
        assert_eq!(check("ninechars", false, &[]), Err(PasswordProblem::TooShort(15)), "15 without MFA");
        assert!(check("防災訓練のためのながいパスワードです", false, &[]).is_ok());
        assert_eq!(check(&"x".repeat(129), true, &[]), Err(PasswordProblem::TooLong));
        // 64 characters and more are allowed (ASVS V6.2.9), up to 128; spaces and any Unicode too.
        let long = "correct horse battery staple, ".repeat(5);
        assert_eq!(check(&long[..64], false, &[]), Ok(()));
        assert_eq!(check(&format!("{}{}", long, "zz").chars().take(128).collect::<String>(), false, &[]), Ok(()));
        assert_eq!(check("🌸🌸🌸 桜 の 季節 🌸🌸🌸 sakura", false, &[]), Ok(()));
    }

    #[test]
    fn the_list_is_real() {
        // ASVS V6.2.4 asks for at least the top 3000 that fit the policy; the list has 11,611.
        assert!(common_count() >= 10_000, "{}", common_count());
        assert!(common_set().iter().all(|p| p.chars().count() >= MIN_LEN && *p == p.to_lowercase()));
    }

    #[test]
    fn common_passwords_refused() {
        for pw in ["password123", "iloveyou1", "qwertyuiop", "PASSWORD1", "Sunshine", "1qaz2wsx", "12345678", "trustno1"] {
            assert_eq!(check(pw, true, &[]), Err(PasswordProblem::Common), "{pw}");
        }
        // Trailing digits and punctuation.
        for pw in ["baseball!!", "football2024", "iloveyou.", "superman 99"] {
            assert_eq!(check(pw, true, &[]), Err(PasswordProblem::Common), "{pw}");
        }
        // Leetspeak, and leetspeak with a suffix.
        for pw in ["p@ssw0rd1", "P@$$W0RD", "5un5h1n3", "f00tb@ll", "pr1nc3ss!"] {
            assert!(is_common(pw), "{pw}");
        }
        assert_eq!(check("p@ssw0rd1", true, &[]), Err(PasswordProblem::Common));
    }

    #[test]
    fn passphrases_accepted() {
        for pw in ["correct horse battery staple", "long enough pass", "sakura-shelter-check-2026", "a brand new passphrase", "password manager generated 7fQ2"]
        {
            assert_eq!(check(pw, false, &[]), Ok(()), "{pw}");
        }
        assert_eq!(check("tsunami evacuation route B", false, &["acme", "Acme Corp", "admin@acme.example"]), Ok(()));
    }

    #[test]
    fn context_words_documented() {
        let w = context_words(&["acme", "ACME 株式会社", "taro.yamada@acme.example", "ab"]);
        for x in ["anpi", "安否", "acme", "acme 株式会社", "株式会社", "taro.yamada@acme.example", "taro", "yamada", "example"] {
            assert!(w.iter().any(|y| y == x), "{x} missing from {w:?}");
        }
        // Too short to count: two ASCII letters; a one-character kanji.
        assert!(!w.iter().any(|y| y == "ab"));
        assert!(!context_words(&["株"]).iter().any(|y| y == "株"));
    }

    #[test]
    fn context_words_refused() {
        let ctx = ["demo", "デモ株式会社", "admin@demo.example"];
        // The service's names, always, also in leetspeak.
        assert_eq!(check("anpi-demo-password", true, &[]), Err(PasswordProblem::ContainsContext));
        assert_eq!(check("my ANPI account is safe", false, &[]), Err(PasswordProblem::ContainsContext));
        assert_eq!(check("4npi is where we check in", false, &[]), Err(PasswordProblem::ContainsContext));
        assert_eq!(check("安否確認のためのながいパスワードです", false, &[]), Err(PasswordProblem::ContainsContext));
        // Tenant code, tenant name, email and its local part, case-insensitively.
        assert_eq!(check("DemoDemoDemoDemo", false, &ctx), Err(PasswordProblem::ContainsContext));
        assert_eq!(check("デモ株式会社のパスワードですよね", false, &ctx), Err(PasswordProblem::ContainsContext));
        assert_eq!(check("i am the Admin of everything", false, &ctx), Err(PasswordProblem::ContainsContext));
        assert_eq!(check("x admin@demo.example x", false, &ctx), Err(PasswordProblem::ContainsContext));
        assert_eq!(context_match("Admin of everything", &ctx).as_deref(), Some("admin"));
        // Without that context the same passphrase is fine; the demo password passes.
        assert_eq!(check("i am the Admin of everything", false, &[]), Ok(()));
        assert_eq!(check("sakura-shelter-check-2026", true, &ctx), Ok(()));
    }

    #[test]
    fn messages_are_bilingual() {
        let m = PasswordProblem::ContainsContext.both();
        assert!(m.contains("組織名") && m.contains("email"), "{m}");
    }
}
