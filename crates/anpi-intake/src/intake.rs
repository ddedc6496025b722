//! Accepting one telegram: store it, normalise it, let the tenants' rules decide, and carry out
//! the decisions whose hold time is over.
//!
//! Every step is idempotent, so a crash anywhere is repaired by running it again: a telegram is
//! stored once (by a key over its content), rules record one decision per (rule, telegram), and
//! a held decision turns into an incident in the same transaction that marks it sent.

use crate::rules::{decide, evaluate, severity_label, threshold_label, Decision, Evaluation, Prior, Reason, Rule, RuleKind};
use anpi_core::survey::Survey;
use anpi_core::target::Target;
use anpi_core::{Clock, Lang, Millis};
use anpi_jma::{InfoType, Severity, Status, Telegram};
use anpi_store::audit::AuditEvent;
use anpi_store::{DispatchRow, NewDispatch, NewIncident, NewTelegram, Problem, Store, StoreError, TenantScope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Where a telegram came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Feed,
    Push,
    Replay,
    /// A replay for a drill: every incident it starts is a drill (【訓練】).
    DrillReplay,
}

impl Source {
    pub fn code(self) -> &'static str {
        match self {
            Source::Feed => "feed",
            Source::Push => "push",
            Source::Replay => "replay",
            Source::DrillReplay => "drill",
        }
    }
}

/// The outcome of [`Intake::accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored for the first time; `decisions` rule decisions were recorded.
    New { telegram_id: i64, decisions: usize },
    /// The same telegram was received before; nothing changed.
    Duplicate { telegram_id: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Not a telegram we can read (malformed or not JMA XML). It is stored with the reason.
    #[error("rejected telegram: {0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An affected area as stored with the telegram (severity as its `Display` string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredArea {
    pub code: String,
    pub name: String,
    pub severity: String,
}

/// The single entrance for telegrams. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Woken when messages were queued, so the outbox worker sends at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Telegrams from the feed or a relay reported longer ago than this are recorded but never
    /// dispatched (a fresh database reads days of telegrams from the long feeds). `None`: no limit.
    pub max_age_ms: Option<Millis>,
}

/// Default for [`Intake::max_age_ms`]: an hour.
pub const DEFAULT_MAX_AGE_MS: Millis = 60 * 60_000;

impl Intake {
    pub fn new(store: Store, clock: Arc<dyn Clock>, wake: Arc<tokio::sync::Notify>) -> Intake {
        Intake { store, clock, wake, max_age_ms: Some(DEFAULT_MAX_AGE_MS) }
    }

    /// True when a telegram from `source` reported at `reported` is too old to act on.
    /// Replays are never too old: replaying old telegrams is their purpose.
    fn stale(&self, source: &str, reported: Millis, now: Millis) -> bool {
        let replay = source == Source::Replay.code() || source == Source::DrillReplay.code();
        !replay && self.max_age_ms.is_some_and(|max| now - reported > max)
    }

    /// Stores the telegram (once), lets every tenant's rules decide, and sends what is due.
    pub async fn accept(&self, xml: &[u8], source: Source) -> Result<Accepted, IntakeError> {
        let now = self.clock.now();
        let telegram = match anpi_jma::parse_telegram(xml) {
            Ok(t) => t,
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(source = source.code(), %reason, bytes = xml.len(), "telegram rejected");
                let row = NewTelegram {
                    dedupe_key: format!("rejected:{}", hex(&Sha256::digest(xml))),
                    source: source.code().into(),
                    error: Some(reason.clone()),
                    xml: String::from_utf8_lossy(xml).into_owned(),
                    ..Default::default()
                };
                self.store.insert_telegram(&row, now).await?;
                return Err(IntakeError::Rejected(reason));
            }
        };
        let row = telegram_row(&telegram, source, xml);
        let (id, new) = self.store.insert_telegram(&row, now).await?;
        if !new {
            // Received before; finish its processing in case a crash interrupted it.
            self.process(id).await?;
            return Ok(Accepted::Duplicate { telegram_id: id });
        }
        tracing::info!(id, source = source.code(), type_code = %telegram.type_code, event = %telegram.head.event_id,
            serial = ?telegram.head.serial, severity = %telegram.hazard.severity, "telegram accepted");
        let decisions = self.apply_rules(id, &telegram, source.code(), now).await?;
        self.store.mark_telegram_processed(id, now).await?;
        self.run_due().await?;
        Ok(Accepted::New { telegram_id: id, decisions })
    }

    /// Applies the rules to a stored telegram whose processing was interrupted. A telegram
    /// already processed is left alone: applying its rules again later could undo newer
    /// decisions (a correction replaces the event's held decisions).
    async fn process(&self, id: i64) -> Result<(), IntakeError> {
        let row = self.store.telegram(id).await?;
        if row.error.is_some() || row.processed_at.is_some() {
            return Ok(());
        }
        let xml = self.store.telegram_xml(id).await?;
        let now = self.clock.now();
        if let Ok(t) = anpi_jma::parse_telegram(xml.as_bytes()) {
            self.apply_rules(id, &t, &row.source, now).await?;
        }
        self.store.mark_telegram_processed(id, now).await?;
        Ok(())
    }

    /// One pass of the background duties: interrupted telegrams, then due decisions.
    pub async fn tick(&self) -> Result<usize, IntakeError> {
        for id in self.store.unprocessed_telegrams(20).await? {
            self.process(id).await?;
        }
        self.run_due().await
    }

    /// Runs [`Intake::tick`] every `every` until `stop` turns true.
    pub async fn run(self, every: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "intake tick failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Records every tenant rule's decision about a telegram; returns how many were recorded.
    async fn apply_rules(&self, id: i64, t: &Telegram, source: &str, now: Millis) -> Result<usize, IntakeError> {
        let Some(kind) = RuleKind::of(&t.hazard.kind) else { return Ok(0) };
        let drill = source == Source::DrillReplay.code();
        let reported = t.head.report_datetime.timestamp_millis();
        let stale = self.stale(source, reported, now);
        if t.head.info_type == InfoType::Cancellation {
            return self.apply_cancellation(id, t, kind, drill, now).await;
        }
        let mut replaced = Vec::new();
        if t.head.info_type == InfoType::Correction && (drill || t.control.status.is_live()) {
            replaced = self.replace_held(t, kind, id, drill).await?;
        }
        let mut recorded = 0;
        for (scope, rows) in self.store.rules_of_kind(kind.code()).await? {
            let people = self.store.people_areas(&scope).await?;
            for row in rows {
                let rule = match Rule::from_row(&row) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(tenant = scope.tenant_id(), rule = row.id, error = %e, "invalid rule skipped");
                        continue;
                    }
                };
                let new = match evaluate(&rule, &t.hazard, &people) {
                    Evaluation::Elsewhere => continue,
                    Evaluation::Below { strongest } => not_matched(&rule, id, t, kind, strongest),
                    Evaluation::Match { severity, areas } => {
                        let since = now - rule.suppress_min * 60_000;
                        let priors: Vec<Prior> = self
                            .store
                            .prior_dispatches(&scope, rule.id, &t.head.event_id, since, drill)
                            .await?
                            .into_iter()
                            .filter_map(|p| {
                                Some(Prior {
                                    severity: p.severity.parse().ok()?,
                                    same_event: !p.event_id.is_empty() && p.event_id == t.head.event_id,
                                    at: p.created_at,
                                })
                            })
                            .collect();
                        // A drill replay is sent, as a drill; otherwise only live telegrams are.
                        let live = drill || t.control.status.is_live();
                        let decision =
                            if stale { Decision::Stale { age_min: (now - reported) / 60_000 } } else { decide(&rule, &severity, live, &priors, now) };
                        matched(&rule, id, t, kind, severity, areas, decision, now)
                    }
                };
                if self.store.record_dispatch(&scope, &new, now).await?.is_some() {
                    recorded += 1;
                }
            }
        }
        for scope in replaced {
            self.notify(
                &scope,
                id,
                t,
                "訂正",
                "correction",
                "先に保留中だった配信はこの訂正報で置き換えました。",
                "Held dispatches were replaced by this correction.",
                now,
            )
            .await?;
        }
        Ok(recorded)
    }

    /// A correction replaces the event's held decisions; returns the tenants concerned.
    async fn replace_held(&self, t: &Telegram, kind: RuleKind, id: i64, drill: bool) -> Result<Vec<TenantScope>, IntakeError> {
        let mut tenants: Vec<TenantScope> = Vec::new();
        for (scope, d) in self.store.event_dispatches(kind.code(), &t.head.event_id, drill).await? {
            if d.telegram_id == id {
                continue;
            }
            if d.status == "held" {
                let reason = Reason::new("訂正報により置き換え", "replaced by a correction");
                self.store.settle_dispatch(&scope, d.id, "cancelled", &reason.encode()).await?;
            }
            if !tenants.contains(&scope) {
                tenants.push(scope);
            }
        }
        Ok(tenants)
    }

    /// A cancellation (取消) withdraws held decisions and tells the tenants that were sent to.
    async fn apply_cancellation(&self, id: i64, t: &Telegram, kind: RuleKind, drill: bool, now: Millis) -> Result<usize, IntakeError> {
        if !(drill || t.control.status.is_live()) {
            return Ok(0);
        }
        let mut recorded = 0;
        let mut told: Vec<TenantScope> = Vec::new();
        for (scope, d) in self.store.event_dispatches(kind.code(), &t.head.event_id, drill).await? {
            let reason = if d.status == "held" {
                self.store.settle_dispatch(&scope, d.id, "cancelled", &Reason::new("取消報により中止", "withdrawn by a cancellation").encode()).await?;
                Reason::new("取消報: 保留中の配信を中止しました", "Cancellation: the held dispatch was withdrawn")
            } else {
                self.store.withdraw_sent(&scope, d.id).await?;
                let n = d.incident_id.unwrap_or_default();
                Reason::new(
                    format!("取消報: 配信済みの案件 #{n} の情報が取り消されました"),
                    format!("Cancellation: the information behind incident #{n} was withdrawn"),
                )
            };
            let notice = NewDispatch {
                rule_id: d.rule_id,
                telegram_id: id,
                kind: kind.code().into(),
                event_id: t.head.event_id.clone(),
                severity: Severity::Info.to_string(),
                status: "notice".into(),
                reason: reason.encode(),
                areas: String::new(),
                due_at: now,
            };
            if self.store.record_dispatch(&scope, &notice, now).await?.is_some() {
                recorded += 1;
            }
            if !told.contains(&scope) {
                told.push(scope);
            }
        }
        for scope in told {
            self.notify(
                &scope,
                id,
                t,
                "取消",
                "cancellation",
                "先の情報は取り消されました。案件の扱いをご確認ください。",
                "The earlier information was withdrawn. Please review the incident.",
                now,
            )
            .await?;
        }
        Ok(recorded)
    }

    /// Mails the tenant's administrators about a correction or cancellation, once per telegram.
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        scope: &TenantScope,
        id: i64,
        t: &Telegram,
        what_ja: &str,
        what_en: &str,
        ja: &str,
        en: &str,
        now: Millis,
    ) -> Result<(), IntakeError> {
        let subject = format!("【{what_ja}】{} / JMA {what_en}", t.head.title);
        let body = format!("{ja}\n{}\n\n{en}\n\n{} (event {})", t.head.headline, t.control.title, t.head.event_id);
        self.store.notify_admins(scope, &format!("notice:{id}:{}", scope.tenant_id()), &subject, &body, now).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Turns due held decisions into incidents. Returns how many incidents started.
    pub async fn run_due(&self) -> Result<usize, IntakeError> {
        let now = self.clock.now();
        let mut started = 0;
        for (scope, d) in self.store.due_dispatches(now, 50).await? {
            match self.start(&scope, &d, now).await {
                Ok(n) => {
                    started += 1;
                    tracing::info!(tenant = scope.tenant_id(), dispatch = d.id, recipients = n, "rule dispatched");
                    self.wake.notify_one();
                }
                Err(StoreError::NoLongerHeld) => {} // another node took it, or it was withdrawn
                Err(StoreError::Invalid(_)) => {
                    let reason = Reason::new("該当する人がいません（無効化・削除済み）", "nobody to send to (people disabled or removed)");
                    self.store.settle_dispatch(&scope, d.id, "no_people", &reason.encode()).await?;
                }
                Err(StoreError::NotFound) => {
                    self.store.settle_dispatch(&scope, d.id, "failed", &Reason::new("ルールがありません", "the rule is gone").encode()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(started)
    }

    async fn start(&self, scope: &TenantScope, d: &DispatchRow, now: Millis) -> Result<usize, StoreError> {
        let rule = Rule::from_row(&self.store.rule(scope, d.rule_id).await?).map_err(|e| StoreError::Invalid(Problem::Other(e)))?;
        let telegram = self.store.telegram(d.telegram_id).await?;
        let areas = d.areas.split_whitespace().filter_map(|a| anpi_core::AreaCode::parse(a).ok()).collect();
        let severity: Severity = d.severity.parse().unwrap_or(Severity::Info);
        let new = NewIncident {
            title: incident_title(rule.kind, &severity, &telegram.headline),
            message: incident_message(&rule, &telegram),
            survey: if rule.survey.questions.is_empty() { Survey::default_safety() } else { rule.survey.clone() },
            target: Target { areas, basis: rule.basis, ..Default::default() },
            drill: telegram.source == Source::DrillReplay.code() || telegram.status != "normal",
            reminder_interval_min: rule.reminder_interval_min,
            reminder_count: rule.reminder_count,
            started_by: None,
            within: None,
            dispatch_id: Some(d.id),
            label_id: rule.label_id,
        };
        let audit = AuditEvent { detail: format!("rule:{} telegram:{}", d.rule_id, d.telegram_id), ..AuditEvent::system("incident_started") };
        let (_, n) = self.store.start_incident(scope, &new, &audit, now).await?;
        Ok(n)
    }
}

fn not_matched(rule: &Rule, id: i64, t: &Telegram, kind: RuleKind, strongest: Severity) -> NewDispatch {
    let reason = Reason::new(
        format!("最大 {} (基準 {})", severity_label(&strongest, Lang::Ja), threshold_label(&rule.threshold, Lang::Ja)),
        format!("at most {} (threshold {})", severity_label(&strongest, Lang::En), threshold_label(&rule.threshold, Lang::En)),
    );
    NewDispatch {
        rule_id: rule.id,
        telegram_id: id,
        kind: kind.code().into(),
        event_id: t.head.event_id.clone(),
        severity: strongest.to_string(),
        status: "not_matched".into(),
        reason: reason.encode(),
        areas: String::new(),
        due_at: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn matched(rule: &Rule, id: i64, t: &Telegram, kind: RuleKind, severity: Severity, areas: Vec<String>, decision: Decision, now: Millis) -> NewDispatch {
    let (sj, se) = (severity_label(&severity, Lang::Ja), severity_label(&severity, Lang::En));
    let n = areas.len();
    let (status, reason, due_at) = match decision {
        Decision::Drill => {
            let what = if t.control.status == Status::Test { ("試験", "test") } else { ("訓練", "drill") };
            ("drill", Reason::new(format!("{}電文のため配信しません ({sj})", what.0), format!("{} telegram: not sent ({se})", what.1)), now)
        }
        Decision::Stale { age_min } => {
            ("stale", Reason::new(format!("{age_min}分前の発表のため配信しません ({sj})"), format!("reported {age_min} min ago: too old to send ({se})")), now)
        }
        Decision::Suppressed { by } => (
            "suppressed",
            Reason::new(
                format!("{} を配信済みのため抑止 (今回 {sj})", severity_label(&by, Lang::Ja)),
                format!("suppressed: {} already sent (now {se})", severity_label(&by, Lang::En)),
            ),
            now,
        ),
        Decision::Dispatch { due_at } if due_at > now => (
            "held",
            Reason::new(format!("{sj}、{n}地域。{}秒保留後に配信", rule.hold_secs), format!("{se} in {n} area(s); held {} s before sending", rule.hold_secs)),
            due_at,
        ),
        Decision::Dispatch { due_at } => {
            ("held", Reason::new(format!("{sj}、{n}地域で基準に該当"), format!("{se} in {n} area(s) meets the threshold")), due_at)
        }
    };
    NewDispatch {
        rule_id: rule.id,
        telegram_id: id,
        kind: kind.code().into(),
        event_id: t.head.event_id.clone(),
        severity: severity.to_string(),
        status: status.into(),
        reason: reason.encode(),
        areas: areas.join(" "),
        due_at,
    }
}

fn incident_title(kind: RuleKind, severity: &Severity, headline: &str) -> String {
    let head: String = headline.chars().take(60).collect();
    let label = match kind {
        RuleKind::Earthquake | RuleKind::EarlyWarning => format!("{} {}", kind.label(Lang::Ja), severity_label(severity, Lang::Ja)),
        _ => severity_label(severity, Lang::Ja),
    };
    if head.is_empty() {
        label
    } else {
        format!("【{label}】{head}")
    }
}

fn incident_message(rule: &Rule, t: &anpi_store::TelegramRow) -> String {
    let mut m = String::new();
    if !rule.message.is_empty() {
        m.push_str(&rule.message);
        m.push_str("\n\n");
    }
    m.push_str(&t.headline);
    m.push_str(&format!("\n（気象庁 {}）", t.title));
    m
}

/// The row to store for a parsed telegram. Its dedupe key covers what identifies a telegram
/// and what we read from it, so the same telegram from two routes is one.
fn telegram_row(t: &Telegram, source: Source, xml: &[u8]) -> NewTelegram {
    let areas: Vec<StoredArea> =
        t.hazard.areas.iter().map(|a| StoredArea { code: a.code.as_str().into(), name: a.name.clone(), severity: a.severity.to_string() }).collect();
    let areas = serde_json::to_string(&areas).unwrap_or_else(|_| "[]".into());
    let kind = RuleKind::of(&t.hazard.kind).map(|k| k.code()).unwrap_or("other");
    let status = match &t.control.status {
        Status::Normal => "normal",
        Status::Drill => "drill",
        Status::Test => "test",
        Status::Other(_) => "other",
    };
    let info_type = match t.head.info_type {
        InfoType::Issue => "issue",
        InfoType::Correction => "correction",
        InfoType::Delay => "delay",
        InfoType::Cancellation => "cancellation",
    };
    let identity = format!(
        "{}|{}|{}|{}|{}|{:?}|{}|{}|{}|{}|{}",
        t.type_code,
        t.control.title,
        status,
        t.control.editorial_office,
        info_type,
        t.head.serial,
        t.head.event_id,
        t.head.report_datetime.timestamp_millis(),
        t.hazard.severity,
        t.head.headline,
        areas
    );
    NewTelegram {
        dedupe_key: format!("jma:{}", hex(&Sha256::digest(identity.as_bytes()))),
        source: source.code().into(),
        type_code: t.type_code.clone(),
        title: t.control.title.clone(),
        status: status.into(),
        info_type: info_type.into(),
        event_id: t.head.event_id.clone(),
        serial: t.head.serial.map(i64::from),
        reported_at: Some(t.head.report_datetime.timestamp_millis()),
        kind: kind.into(),
        severity: t.hazard.severity.to_string(),
        headline: t.head.headline.clone(),
        areas,
        error: None,
        xml: String::from_utf8_lossy(xml).into_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_core::directory::PersonFields;
    use anpi_core::ManualClock;
    use anpi_core::Role;

    /// A JMA sample telegram, or `None` with a note when ../shared is absent.
    fn sample(name: &str) -> Option<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/jma/samples").join(name);
        let b = std::fs::read(&path).ok();
        if b.is_none() {
            eprintln!("SKIPPED: {} not found (the JMA samples live in ../shared/jma/samples)", path.display());
        }
        b
    }

    fn reported(xml: &[u8]) -> Millis {
        anpi_jma::parse_telegram(xml).unwrap().head.report_datetime.timestamp_millis()
    }

    async fn statuses(store: &Store, scope: &TenantScope) -> Vec<String> {
        let mut v: Vec<(i64, String)> = store.dispatches(scope, &[]).await.unwrap().into_iter().map(|d| (d.id, d.status)).collect();
        v.sort();
        v.into_iter().map(|(_, s)| s).collect()
    }

    #[tokio::test]
    async fn hold_cancellation_staleness_and_repeats() {
        let (Some(suruga), Some(iwate), Some(cancel), Some(tohoku)) = (
            sample("32-35_07_01_100915_VXSE51.xml"),
            sample("32-35_06_03_240613_VXSE53.xml"),
            sample("32-35_06_06_100915_VXSE53.xml"),
            sample("32-39_11_01_120615_VXSE51.xml"),
        ) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.sqlite").display())).await.unwrap();
        store.migrate().await.unwrap();
        store.set_master_keys(anpi_store::MasterKeys::new(anpi_store::MasterKey::generate()));
        let clock = Arc::new(ManualClock::new(reported(&suruga) + 60_000));
        let intake = Intake::new(store.clone(), clock.clone(), Arc::default());
        let now = || clock.now();
        let scope = store.create_tenant("t1", "T1", now()).await.unwrap();
        store
            .create_account(&scope, "admin@t1.example", "管理者", Role::Admin, Some("a long enough password"), &AuditEvent::system("test"), now())
            .await
            .unwrap();
        for (no, home) in [("S1", "22203"), ("I1", "03215"), ("M1", "04101")] {
            let p = PersonFields { employee_no: no.into(), name: no.into(), emails: format!("{no}@t1.example"), home_area: home.into(), ..Default::default() };
            store.save_person(&scope, None, &p.validate().unwrap(), &AuditEvent::system("test"), now()).await.unwrap();
        }
        let rule = Rule::from_row(&anpi_store::RuleRow {
            name: "震度5弱以上".into(),
            enabled: 1,
            kind: "earthquake".into(),
            threshold: "intensity:5-".into(),
            basis: "home".into(),
            survey: serde_json::to_string(&Survey::default_safety()).unwrap(),
            hold_secs: 120,
            suppress_min: 0,
            ..Default::default()
        })
        .unwrap();
        // The rule's classification label goes to the incidents it starts.
        let kimitsu = store.labels(&scope).await.unwrap().into_iter().find(|l| l.label.name == "機密").unwrap().label;
        let rule = Rule { label_id: Some(kimitsu.id), ..rule };
        store.save_rule(&scope, &rule.to_row(), &AuditEvent::system("test"), now()).await.unwrap();

        // Held for two minutes, then sent by the background tick.
        assert!(matches!(intake.accept(&suruga, Source::Feed).await.unwrap(), Accepted::New { decisions: 1, .. }));
        assert_eq!(statuses(&store, &scope).await, ["held"]);
        assert!(store.incidents(&anpi_store::IncidentAccess::everything(&scope)).await.unwrap().is_empty(), "nothing sent during the hold");
        clock.advance(121_000);
        assert_eq!(intake.tick().await.unwrap(), 1);
        assert_eq!(statuses(&store, &scope).await, ["sent"]);
        let incidents = store.incidents(&anpi_store::IncidentAccess::everything(&scope)).await.unwrap();
        assert_eq!((incidents.len(), incidents[0].recipients), (1, 1), "only the person in 静岡");
        assert_eq!(incidents[0].label.as_ref(), Some(&kimitsu), "the rule's label");
        assert!(matches!(intake.accept(&suruga, Source::Push).await.unwrap(), Accepted::Duplicate { .. }));

        // A cancellation during the hold withdraws it and tells the administrators.
        clock.set(reported(&iwate) + 60_000);
        intake.accept(&iwate, Source::Push).await.unwrap();
        assert_eq!(statuses(&store, &scope).await, ["sent", "held"]);
        intake.accept(&cancel, Source::Push).await.unwrap();
        assert_eq!(statuses(&store, &scope).await, ["sent", "cancelled", "notice"]);
        clock.advance(600_000);
        assert_eq!(intake.tick().await.unwrap(), 0, "a withdrawn dispatch is never sent");
        let mail = store.claim_outbox(&now(), 100, 60_000).await.unwrap();
        assert!(mail.iter().any(|m| m.subject.contains("取消") && m.to == ["admin@t1.example"]), "admin notice");

        // Two hours late (a long feed read on first start): recorded, never sent.
        clock.set(reported(&tohoku) + 2 * 3_600_000);
        intake.accept(&tohoku, Source::Feed).await.unwrap();
        assert_eq!(statuses(&store, &scope).await.last().map(String::as_str), Some("stale"));
        clock.advance(600_000);
        assert_eq!(intake.tick().await.unwrap(), 0);
        assert_eq!(store.incidents(&anpi_store::IncidentAccess::everything(&scope)).await.unwrap().len(), 1);
    }
}
