//! `anpi demo`: the service on the embedded database with a demo tenant of about 50 people
//! and a mailbox page instead of SMTP.

use crate::serve::{run as serve, ServeArgs};
use crate::DbArgs;
use anpi_core::directory::PersonFields;
use anpi_core::{AreaCode, Clock, Role, SystemClock};
use anpi_notify::MailCatcher;
use anpi_store::audit::AuditEvent;

pub const TENANT: &str = "demo";
pub const ADMIN_EMAIL: &str = "admin@demo.example";
pub const ADMIN_PASSWORD: &str = "sakura-shelter-check-2026";
pub const DISTRIBUTOR_EMAIL: &str = "haishin@demo.example";

const SITES: &[(&str, &str)] = &[("東京本社", "13101"), ("大阪支社", "27128"), ("仙台営業所", "04101")];
const DEPARTMENTS: &[(&str, &str)] =
    &[("本社/総務部", "東京本社"), ("本社/営業部", "東京本社"), ("本社/開発部", "東京本社"), ("大阪支社/営業課", "大阪支社"), ("仙台営業所", "仙台営業所")];
const FAMILY: &[(&str, &str)] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
];
const GIVEN: &[(&str, &str)] = &[("陽子", "ヨウコ"), ("大輔", "ダイスケ"), ("美咲", "ミサキ"), ("健太", "ケンタ"), ("直美", "ナオミ")];
/// Home areas near each site (municipality codes).
const HOMES: &[&str] = &["13104", "13113", "14131", "27102", "27212", "04102", "11101", "13201"];

pub async fn run(db: &DbArgs, args: ServeArgs) -> anyhow::Result<()> {
    // The demo makes its own master key on first start (DATA_DIR/master.key, mode 0600).
    if db.master_keys()?.is_none() {
        std::fs::create_dir_all(&db.data_dir)?;
        let path = db.data_dir.join(crate::MASTER_KEY_FILE_NAME);
        let key = crate::write_new_master_key(&path)?;
        println!("generated master key {} in {} (encryption at rest; keep it, and keep it out of backups of the database)", key.id(), path.display());
    }
    let store = db.store().await?;
    let now = SystemClock.now();
    if !store.tenant_summaries().await?.iter().any(|t| t.code == TENANT) {
        seed(&store, now).await?;
    }
    let base = args.base_url();
    println!();
    println!("anpi demo is running (embedded SQLite under {}).", db.data_dir.display());
    println!("  Console:       {base}/login");
    println!("    組織コード / organisation code: {TENANT}");
    println!("    admin:       {ADMIN_EMAIL} / {ADMIN_PASSWORD}");
    println!("    distributor: {DISTRIBUTOR_EMAIL} / {ADMIN_PASSWORD}");
    println!("  Mailbox (messages the demo sends): {base}/mail");
    println!("  Operator console: {}://{}/login", if args.tls_cert.is_some() { "https" } else { "http" }, args.operator_listen);
    println!("Try: sign in, 新規配信 (start an incident) to 全員, open a link in the mailbox, answer, watch the dashboard.");
    println!("Or replay a JMA telegram as a drill (the demo rule sends 震度5弱以上 to Sendai and Tokyo):");
    println!("  cargo run --release -p anpi -- jma replay --drill ../shared/jma/samples/32-39_11_01_120615_VXSE51.xml");
    println!();
    serve(db, args, Some(MailCatcher::default())).await
}

async fn seed(store: &anpi_store::Store, now: i64) -> anyhow::Result<()> {
    let scope = store.create_tenant(TENANT, "デモ株式会社", now).await?;
    store.create_account(&scope, ADMIN_EMAIL, "管理 太郎", Role::Admin, Some(ADMIN_PASSWORD), &AuditEvent::system("account_created"), now).await?;
    store.create_account(&scope, DISTRIBUTOR_EMAIL, "配信 花子", Role::Distributor, Some(ADMIN_PASSWORD), &AuditEvent::system("account_created"), now).await?;
    for (name, area) in SITES {
        store.create_site(&scope, name, &AreaCode::parse(area).map_err(anyhow::Error::msg)?).await?;
    }
    for i in 0..50usize {
        let (family, family_kana) = FAMILY[i % FAMILY.len()];
        let (given, given_kana) = GIVEN[(i / FAMILY.len()) % GIVEN.len()];
        let (dept, site) = DEPARTMENTS[i % DEPARTMENTS.len()];
        let mut groups = Vec::new();
        if i % 7 == 0 {
            groups.push("災害対策本部");
        }
        if i % 5 == 1 {
            groups.push("安全衛生委員会");
        }
        let fields = PersonFields {
            employee_no: format!("E{:04}", i + 1),
            name: format!("{family} {given}"),
            furigana: format!("{family_kana} {given_kana}"),
            emails: format!("person{:02}@demo.example", i + 1),
            phone: format!("090-0000-{:04}", i + 1),
            department: dept.into(),
            position: if i % 10 == 0 { "課長".into() } else { String::new() },
            site: site.into(),
            home_area: HOMES[i % HOMES.len()].into(),
            language: if i % 12 == 11 { "en".into() } else { "ja".into() },
            groups: groups.join(";"),
        };
        let person = fields.validate().map_err(|e| anyhow::anyhow!(e.join("; ")))?;
        store.save_person(&scope, None, &person, &AuditEvent::system("person_created"), now).await?;
    }
    // The starting labels (公開 / 社外秘 / 機密) come with the tenant; the demo rule's incidents are 社外秘.
    let confidential = store.labels(&scope).await?.into_iter().find(|l| l.label.name == "社外秘").map(|l| l.label.id);
    let rule = anpi_intake::Rule::from_row(&anpi_store::RuleRow {
        name: "震度5弱以上（自宅・勤務地）".into(),
        enabled: 1,
        kind: "earthquake".into(),
        threshold: "intensity:5-".into(),
        basis: "both".into(),
        survey: serde_json::to_string(&anpi_core::survey::Survey::default_safety())?,
        message: "地震が発生しました。安否を回答してください。".into(),
        suppress_min: 60,
        label_id: confidential,
        ..Default::default()
    })
    .map_err(anyhow::Error::msg)?;
    store.save_rule(&scope, &rule.to_row(), &AuditEvent::system("rule_created"), now).await?;
    Ok(())
}
