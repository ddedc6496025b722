//! Japanese-first pages with English available: templates carry both texts inline and
//! `Tr::p` picks one.

use anpi_core::Lang;
use anpi_store::Problem;
use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, Default)]
pub struct Tr(pub Lang);

impl Tr {
    pub fn p<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        self.0.pick(ja, en)
    }
    pub fn lang(&self) -> Lang {
        self.0
    }
    pub fn code(&self) -> &'static str {
        self.0.code()
    }
    pub fn is_en(&self) -> bool {
        self.0 == Lang::En
    }

    /// `?lang=` wins, then the `anpi_lang` cookie, then Japanese.
    pub fn from_request(headers: &HeaderMap, query_lang: Option<&str>) -> Tr {
        if let Some(l) = query_lang.and_then(Lang::parse) {
            return Tr(l);
        }
        let cookie = crate::session::cookie(headers, "anpi_lang");
        Tr(cookie.as_deref().and_then(Lang::parse).unwrap_or_default())
    }
}

/// A problem the store refused, in the page's language (the store keeps codes, no UI text).
pub fn problem(t: Tr, p: &Problem) -> String {
    let (ja, en) = texts(p);
    if t.is_en() {
        en
    } else {
        ja
    }
}

/// A problem in both languages, Japanese first, for pages that have no language (the generic
/// error page of [`crate::error::WebError::BadRequest`]).
pub fn problem_both(p: &Problem) -> String {
    match p {
        // Already in both languages (an anpi_core validator's message).
        Problem::Other(text) => text.clone(),
        _ => {
            let (ja, en) = texts(p);
            format!("{ja} ({en})")
        }
    }
}

/// The Japanese and the English text of a problem.
fn texts(p: &Problem) -> (String, String) {
    let s = |ja: &str, en: &str| (ja.to_string(), en.to_string());
    match p {
        Problem::InvalidEmail => s("メールアドレスが正しくありません", "invalid email"),
        Problem::NameMissing => s("氏名がありません", "name is required"),
        Problem::EmailRegistered => s("このメールアドレスは登録済みです", "email already registered"),
        Problem::Password(p) => (p.message(Lang::Ja), p.message(Lang::En)),
        Problem::WrongCurrentPassword => s("現在のパスワードが違います", "current password is wrong"),
        Problem::LinkInvalid => s("このリンクは無効か期限切れです", "this link is invalid or expired"),
        Problem::CodeMismatch => s("確認コードが違います", "the code does not match"),
        Problem::PasskeyNotVerified => s("パスキーを確認できませんでした", "the passkey could not be verified"),
        Problem::TooManyPasskeys(n) => (format!("パスキーは{n}個までです"), format!("at most {n} passkeys")),
        Problem::SiteNameMissing => s("事業所名がありません", "site name is required"),
        Problem::SiteExists => s("同じ名前の事業所があります", "site exists"),
        Problem::DepartmentNameMissing => s("部署名がありません", "department name is required"),
        Problem::GroupNameMissing => s("グループ名がありません", "group name is required"),
        Problem::UnknownSite(name) => (format!("事業所が登録されていません: {name}"), format!("unknown site: {name}")),
        Problem::EmployeeNoInUse(no) => (format!("社員番号 {no} は使用中です"), format!("employee number {no} in use")),
        Problem::TitleMissing => s("件名がありません", "title is required"),
        Problem::NoTarget => s("配信対象を選んでください", "choose a target"),
        Problem::NobodyMatches => s("配信対象に該当する人がいません", "nobody matches the target"),
        Problem::IncidentClosed => s("終了した配信です", "incident is closed"),
        Problem::LabelRank => s("順位は0〜1000です", "rank: 0–1000"),
        Problem::UnknownLabel => s("区分が見つかりません", "unknown label"),
        Problem::LabelExists(name) => (format!("区分「{name}」は既にあります"), format!("a label named “{name}” exists")),
        Problem::LabelInUse { name, incidents, rules, default } => (
            format!("区分「{name}」は使用中のため削除できません（配信 {incidents} 件、ルール {rules} 件{}）", if *default { "、出力の既定" } else { "" }),
            format!("the label “{name}” is in use: {incidents} incidents, {rules} rules{}", if *default { ", default for exports" } else { "" }),
        ),
        Problem::LabelTaken => s("区分は使用中です", "the label is in use"),
        Problem::RetentionDays => s("保存期間は30〜3650日です", "retention: 30–3650 days"),
        Problem::LockoutThreshold => s("ロックまでの失敗回数は1〜100です", "lockout threshold: 1–100"),
        Problem::IdleTimeout => s("無操作タイムアウトは5〜1440分です", "idle timeout: 5–1440 minutes"),
        Problem::AbsoluteTimeout => {
            s("最長ログイン時間は60〜10080分で、無操作タイムアウト以上です", "absolute timeout: 60–10080 minutes, not below the idle timeout")
        }
        Problem::NeedClientCa => s("先にCA証明書を登録してください", "upload a CA certificate first"),
        Problem::ClientCertStillRequired => s("管理者のクライアント証明書の必須設定を先に解除してください", "turn off the admin certificate requirement first"),
        Problem::UnknownTimeZone(zone) => (
            format!("タイムゾーンが不明です: {zone}（Asia/Tokyo のような IANA 名を使ってください）"),
            format!("unknown time zone: {zone} (use an IANA name such as Asia/Tokyo)"),
        ),
        Problem::TenantCode => s("組織コードは a-z、0-9、- の2〜32文字です", "tenant code: 2–32 of a-z, 0-9, -"),
        Problem::TenantNameMissing => s("組織名がありません", "tenant name is required"),
        Problem::TenantCodeTaken(code) => (format!("組織コード {code} は使用中です"), format!("tenant code {code} is taken")),
        Problem::DkimName => {
            s("DKIM のドメインとセレクタは DNS 名です（英数字、ハイフン、ドット）", "a DKIM domain and selector are DNS names (letters, digits, hyphens, dots)")
        }
        Problem::DkimAlgorithm => s("DKIM のアルゴリズムは rsa か ed25519 です", "a DKIM algorithm is rsa or ed25519"),
        // An anpi_core validator's message, already in both languages.
        Problem::Other(text) => (text.clone(), text.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_core::password::PasswordProblem;
    use std::collections::HashSet;

    /// How many variants `Problem` has: `variant` below names each (no wildcard, so a new
    /// variant does not compile until it is added there, next to this number).
    const VARIANTS: usize = 37;

    fn variant(p: &Problem) -> usize {
        match p {
            Problem::InvalidEmail => 0,
            Problem::NameMissing => 1,
            Problem::EmailRegistered => 2,
            Problem::Password(_) => 3,
            Problem::WrongCurrentPassword => 4,
            Problem::LinkInvalid => 5,
            Problem::CodeMismatch => 6,
            Problem::PasskeyNotVerified => 7,
            Problem::TooManyPasskeys(_) => 8,
            Problem::SiteNameMissing => 9,
            Problem::SiteExists => 10,
            Problem::DepartmentNameMissing => 11,
            Problem::GroupNameMissing => 12,
            Problem::UnknownSite(_) => 13,
            Problem::EmployeeNoInUse(_) => 14,
            Problem::TitleMissing => 15,
            Problem::NoTarget => 16,
            Problem::NobodyMatches => 17,
            Problem::IncidentClosed => 18,
            Problem::LabelRank => 19,
            Problem::UnknownLabel => 20,
            Problem::LabelExists(_) => 21,
            Problem::LabelInUse { .. } => 22,
            Problem::LabelTaken => 23,
            Problem::RetentionDays => 24,
            Problem::LockoutThreshold => 25,
            Problem::IdleTimeout => 26,
            Problem::AbsoluteTimeout => 27,
            Problem::NeedClientCa => 28,
            Problem::ClientCertStillRequired => 29,
            Problem::UnknownTimeZone(_) => 30,
            Problem::TenantCode => 31,
            Problem::TenantNameMissing => 32,
            Problem::TenantCodeTaken(_) => 33,
            Problem::DkimName => 34,
            Problem::DkimAlgorithm => 35,
            Problem::Other(_) => 36,
        }
    }

    /// Every variant at least once (data in ASCII, so any Japanese in an English text is ours).
    fn every_problem() -> Vec<Problem> {
        vec![
            Problem::InvalidEmail,
            Problem::NameMissing,
            Problem::EmailRegistered,
            Problem::Password(PasswordProblem::TooShort(15)),
            Problem::Password(PasswordProblem::TooLong),
            Problem::Password(PasswordProblem::Common),
            Problem::Password(PasswordProblem::ContainsContext),
            Problem::WrongCurrentPassword,
            Problem::LinkInvalid,
            Problem::CodeMismatch,
            Problem::PasskeyNotVerified,
            Problem::TooManyPasskeys(10),
            Problem::SiteNameMissing,
            Problem::SiteExists,
            Problem::DepartmentNameMissing,
            Problem::GroupNameMissing,
            Problem::UnknownSite("Osaka".into()),
            Problem::EmployeeNoInUse("E001".into()),
            Problem::TitleMissing,
            Problem::NoTarget,
            Problem::NobodyMatches,
            Problem::IncidentClosed,
            Problem::LabelRank,
            Problem::UnknownLabel,
            Problem::LabelExists("Secret".into()),
            Problem::LabelInUse { name: "Secret".into(), incidents: 1, rules: 2, default: true },
            Problem::LabelTaken,
            Problem::RetentionDays,
            Problem::LockoutThreshold,
            Problem::IdleTimeout,
            Problem::AbsoluteTimeout,
            Problem::NeedClientCa,
            Problem::ClientCertStillRequired,
            Problem::UnknownTimeZone("Mars/Base".into()),
            Problem::TenantCode,
            Problem::TenantNameMissing,
            Problem::TenantCodeTaken("acme".into()),
            Problem::DkimName,
            Problem::DkimAlgorithm,
            Problem::Other("区分名は1〜40文字です (label name: 1–40 characters)".into()),
        ]
    }

    fn japanese(s: &str) -> bool {
        s.chars().any(|c| matches!(c, '\u{3000}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}' | '\u{ff00}'..='\u{ffef}'))
    }

    #[test]
    fn every_problem_has_distinct_japanese_and_english_texts() {
        let all = every_problem();
        assert_eq!(all.iter().map(variant).collect::<HashSet<_>>().len(), VARIANTS, "every variant has a sample");
        let (mut ja_seen, mut en_seen) = (HashSet::new(), HashSet::new());
        for p in &all {
            let (ja, en) = (problem(Tr(Lang::Ja), p), problem(Tr(Lang::En), p));
            if let Problem::Other(text) = p {
                // An anpi_core validator's message: shown as it is, in both languages.
                assert!(ja == *text && en == *text && problem_both(p) == *text);
                continue;
            }
            assert!(!ja.trim().is_empty() && !en.trim().is_empty(), "{p:?}");
            assert_ne!(ja, en, "{p:?}");
            assert!(japanese(&ja), "{p:?}: the Japanese text is Japanese: {ja}");
            assert!(!japanese(&en), "{p:?}: the English text has no Japanese: {en}");
            assert!(!japanese(&p.to_string()), "{p:?}: Display (logs) is English: {p}");
            assert!(ja_seen.insert(ja.clone()), "two problems read alike in Japanese: {ja}");
            assert!(en_seen.insert(en.clone()), "two problems read alike in English: {en}");
            assert_eq!(problem_both(p), format!("{ja} ({en})"), "the generic page has both");
        }
    }
}
