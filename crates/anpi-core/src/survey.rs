//! Surveys: the questions a safety message asks, and validation of answers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    pub questions: Vec<Question>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub label_ja: String,
    pub label_en: String,
    /// Empty for a free-text question.
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub label_ja: String,
    pub label_en: String,
}

/// Answers by question id: a choice id, or the text of a free-text question.
pub type Answers = BTreeMap<String, String>;

fn choice(id: &str, ja: &str, en: &str) -> Choice {
    Choice { id: id.into(), label_ja: ja.into(), label_en: en.into() }
}

impl Survey {
    /// 本人の状況, 出社可否, free comment.
    pub fn default_safety() -> Survey {
        Survey {
            questions: vec![
                Question {
                    id: "q1".into(),
                    label_ja: "本人の状況".into(),
                    label_en: "Your condition".into(),
                    choices: vec![
                        choice("c1", "無事", "Safe"),
                        choice("c2", "軽傷", "Minor injury"),
                        choice("c3", "重傷", "Serious injury"),
                        choice("c4", "救助が必要", "Need rescue"),
                    ],
                },
                Question {
                    id: "q2".into(),
                    label_ja: "出社可否".into(),
                    label_en: "Can you come to work?".into(),
                    choices: vec![choice("c1", "可", "Yes"), choice("c2", "不可", "No"), choice("c3", "出社済み", "Already at work")],
                },
                Question { id: "q3".into(), label_ja: "コメント".into(), label_en: "Comment".into(), choices: vec![] },
            ],
        }
    }

    /// Editor format, one question a line: `質問 | Question: 選択肢 | Choice / 選択肢 | Choice`.
    /// The English part after `|` is optional; a line without `:` is a free-text question.
    pub fn to_editor_text(&self) -> String {
        let both = |ja: &str, en: &str| if en.is_empty() || en == ja { ja.to_string() } else { format!("{ja} | {en}") };
        self.questions
            .iter()
            .map(|q| {
                let mut line = both(&q.label_ja, &q.label_en);
                if !q.choices.is_empty() {
                    let cs: Vec<String> = q.choices.iter().map(|c| both(&c.label_ja, &c.label_en)).collect();
                    line.push_str(": ");
                    line.push_str(&cs.join(" / "));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn parse_editor_text(text: &str) -> Result<Survey, String> {
        fn split(s: &str) -> (String, String) {
            match s.split_once('|') {
                Some((ja, en)) => (ja.trim().to_string(), en.trim().to_string()),
                None => (s.trim().to_string(), s.trim().to_string()),
            }
        }
        let mut questions = Vec::new();
        for (n, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            let (label, choices) = match line.split_once([':', '：']) {
                Some((l, c)) => (l, Some(c)),
                None => (line, None),
            };
            let (label_ja, label_en) = split(label);
            if label_ja.is_empty() {
                return Err(format!("line {}: the question has no text", n + 1));
            }
            let choices: Vec<Choice> = match choices {
                None => vec![],
                Some(c) => c
                    .split(['/', '／'])
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .enumerate()
                    .map(|(i, c)| {
                        let (ja, en) = split(c);
                        Choice { id: format!("c{}", i + 1), label_ja: ja, label_en: en }
                    })
                    .collect(),
            };
            if choices.len() == 1 {
                return Err(format!("line {}: a choice question needs at least two choices", n + 1));
            }
            questions.push(Question { id: format!("q{}", n + 1), label_ja, label_en, choices });
        }
        if questions.is_empty() {
            return Err("the survey has no questions".into());
        }
        if questions.len() > 20 {
            return Err("a survey has at most 20 questions".into());
        }
        Ok(Survey { questions })
    }

    /// Keeps only answers to known questions with known choices; text is trimmed and capped.
    pub fn clean_answers(&self, raw: &Answers) -> Result<Answers, String> {
        let mut out = Answers::new();
        for q in &self.questions {
            let Some(v) = raw.get(&q.id).map(|v| v.trim()) else { continue };
            if v.is_empty() {
                continue;
            }
            if q.choices.is_empty() {
                out.insert(q.id.clone(), v.chars().take(1000).collect());
            } else if q.choices.iter().any(|c| c.id == v) {
                out.insert(q.id.clone(), v.to_string());
            } else {
                return Err(format!("unknown choice for {}", q.id));
            }
        }
        if out.is_empty() {
            return Err("no answer given".into());
        }
        Ok(out)
    }

    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }
}

impl Question {
    pub fn label(&self, lang: crate::Lang) -> &str {
        lang.pick(&self.label_ja, &self.label_en)
    }
    pub fn choice_label(&self, id: &str, lang: crate::Lang) -> Option<&str> {
        self.choices.iter().find(|c| c.id == id).map(|c| c.label(lang))
    }
}

impl Choice {
    pub fn label(&self, lang: crate::Lang) -> &str {
        lang.pick(&self.label_ja, &self.label_en)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn editor_round_trip() {
        let s = Survey::default_safety();
        let text = s.to_editor_text();
        assert!(text.starts_with("本人の状況 | Your condition: 無事 | Safe / 軽傷"));
        assert_eq!(Survey::parse_editor_text(&text).unwrap(), s);
    }
    #[test]
    fn editor_errors() {
        assert!(Survey::parse_editor_text("  \n").is_err());
        assert!(Survey::parse_editor_text("Q: only").is_err());
        let s = Survey::parse_editor_text("出社：可／不可\n備考").unwrap();
        assert_eq!(s.questions[0].choices.len(), 2);
        assert!(s.questions[1].choices.is_empty());
    }
    #[test]
    fn answers_are_checked() {
        let s = Survey::default_safety();
        let mut a = Answers::new();
        a.insert("q1".into(), "c9".into());
        assert!(s.clean_answers(&a).is_err());
        a.insert("q1".into(), "c1".into());
        a.insert("zz".into(), "x".into());
        let clean = s.clean_answers(&a).unwrap();
        assert_eq!(clean.len(), 1);
        assert!(s.clean_answers(&Answers::new()).is_err());
    }
}
