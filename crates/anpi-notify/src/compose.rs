//! What a message says. Japanese first; English for people whose language is English.

use anpi_core::Lang;
use anpi_store::{Claimed, OutboxKind};

#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub subject: String,
    pub body: String,
}

/// Composes a claimed message. `base_url` has no trailing slash.
pub fn compose(m: &Claimed, base_url: &str) -> Composed {
    let Some(s) = &m.survey else {
        return Composed { subject: m.subject.clone(), body: m.body.clone() };
    };
    let lang = Lang::parse(&s.language).unwrap_or_default();
    let drill = if s.drill { lang.pick("【訓練】", "[DRILL] ") } else { "" };
    let again = match m.kind {
        OutboxKind::Reminder | OutboxKind::Resend => lang.pick("【再送】", "[Reminder] "),
        _ => "",
    };
    let link = format!("{base_url}/a/{}", s.answer_token);
    // The classification label heads the body (never the subject or the link).
    let classification = match &s.label {
        Some(name) => format!("{}\n\n", anpi_core::label::mail_line(name, s.label_en.as_deref().unwrap_or(""))),
        None => String::new(),
    };
    let subject = format!("{drill}{again}{}", s.title);
    let body = match lang {
        Lang::Ja => format!(
            "{classification}{name} 様\n\n{drill}{message}\n\n下のリンクから安否を回答してください（ログイン不要、回答は後から変更できます）。\n{link}\n\n{tenant} 安否確認システム anpi\n",
            name = s.name,
            message = s.message,
            tenant = s.tenant_name,
        ),
        Lang::En => format!(
            "{classification}Dear {name},\n\n{drill}{message}\n\nPlease tell us you are safe using the link below (no sign-in needed; you can change your answer later).\n{link}\n\n{tenant} safety confirmation (anpi)\n",
            name = s.name,
            message = s.message,
            tenant = s.tenant_name,
        ),
    };
    Composed { subject, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_store::SurveyMail;

    fn claimed(language: &str, label: Option<(&str, &str)>) -> Claimed {
        Claimed {
            id: 1,
            tenant_id: 1,
            kind: OutboxKind::Survey,
            idempotency_key: "survey:1".into(),
            attempts: 1,
            to: vec!["a@example.jp".into()],
            subject: String::new(),
            body: String::new(),
            survey: Some(SurveyMail {
                recipient_id: 1,
                answer_token: "TOKEN".into(),
                name: "山田".into(),
                language: language.into(),
                tenant_name: "ACME".into(),
                title: "地震".into(),
                message: "回答してください".into(),
                drill: false,
                label: label.map(|(ja, _)| ja.to_string()),
                label_en: label.map(|(_, en)| en.to_string()),
            }),
            undeliverable: None,
        }
    }

    #[test]
    fn a_labelled_message_starts_with_its_classification() {
        for lang in ["ja", "en"] {
            let m = compose(&claimed(lang, Some(("社外秘", "Confidential"))), "https://anpi.example");
            assert_eq!(m.body.lines().next(), Some("区分: 社外秘 / Classification: Confidential"), "{lang}");
            assert_eq!(m.subject, "地震", "not in the subject");
            assert!(m.body.contains("https://anpi.example/a/TOKEN\n"), "the link is unchanged");
        }
        let plain = compose(&claimed("ja", None), "https://anpi.example");
        assert!(plain.body.starts_with("山田 様") && !plain.body.contains("区分"));
    }
}
