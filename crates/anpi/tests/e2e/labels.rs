//! Classification labels (ISO/IEC 27017 8.2.2) over HTTP on each engine: labels are defined,
//! attached to an incident, head its mail, travel with its exports, restrict who may export
//! (refusals audited), and a label in use cannot be deleted.

use super::common::*;
use crate::support::{engines, Client};

/// RFC 8187 encoding of 関係者外秘 (the label this test uses).
const NEED_TO_KNOW_ENCODED: &str = "%E9%96%A2%E4%BF%82%E8%80%85%E5%A4%96%E7%A7%98";
const CONFIDENTIAL_ENCODED: &str = "%E7%A4%BE%E5%A4%96%E7%A7%98";

async fn distributor(env: &Env, admin: &mut Client, code: &str) -> Client {
    let email = format!("dist@{code}.example");
    admin.get("/accounts").await.expect_status(200);
    admin.post_form("/accounts", &[("name", "配信 花子"), ("email", &email), ("role", "distributor")]).await.expect_status(303);
    let invite = wait_mail(&env.sink, "invite", |m| m.to.contains(&email)).await;
    let link = invite.links(&env.server.url("/password/reset/")).remove(0);
    let mut c = env.server.client();
    c.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
    login(&mut c, code, &email, PASSWORD).await;
    c
}

/// The id of the label named `name` on the labels page.
fn label_id(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"name\" required maxlength=\"30\" value=\"{name}\"")).unwrap_or_else(|| panic!("no label {name}"));
    let row = html[..at].rfind("<tr id=\"label-").expect("label row") + "<tr id=\"label-".len();
    html[row..].split('"').next().unwrap_or_default().to_string()
}

/// The audit log as CSV lines (read by the admin).
async fn audit_lines(admin: &mut Client) -> Vec<String> {
    admin.get("/audit.csv?view=audit").await.expect_status(200).text.lines().map(String::from).collect()
}

#[tokio::test]
async fn labels_mark_mail_and_exports_and_restrict_exports() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let env = env(engine).await;
        let mut admin = tenant(&env, "lbl").await;
        import_csv(&mut admin, people_csv(3, "L").as_bytes(), "auto").await;
        let mut dist = distributor(&env, &mut admin, "lbl").await;

        // A new tenant starts with 公開 / 社外秘 / 機密; admins add, rename and restrict labels.
        let page = admin.get("/labels").await.expect_status(200);
        assert!(["公開", "社外秘", "機密"].iter().all(|l| page.text.contains(l)), "starting labels");
        dist.get("/labels").await.expect_status(403);
        dist.post_form("/labels", &[("name", "x"), ("export_min", "member")]).await.expect_status(403);
        admin.post_form("/labels", &[("name", "部外秘"), ("name_en", "Internal"), ("rank", "5"), ("export_min", "distributor")]).await.expect_status(303);
        let dup = admin.post_form("/labels", &[("name", "部外秘"), ("rank", "1"), ("export_min", "admin")]).await.expect_status(409);
        assert!(dup.text.contains("既にあります"), "{}", dup.text);
        admin.post_form("/labels", &[("name", "a/b"), ("export_min", "admin")]).await.expect_status(400);
        let page = admin.get("/labels").await.expect_status(200);
        let label = label_id(&page.text, "部外秘");
        admin
            .post_form(&format!("/labels/{label}"), &[("name", "関係者外秘"), ("name_en", "Need to know"), ("rank", "5"), ("export_min", "admin")])
            .await
            .expect_status(303);
        let page = admin.get("/labels").await.expect_status(200);
        assert!(page.text.contains("value=\"関係者外秘\"") && !page.text.contains("value=\"部外秘\""), "renamed");

        // An incident with that label: its mail starts with the label; the link does not carry it.
        let id = start_incident(&mut admin, "区分つき訓練", &[("all", "1"), ("drill", "1"), ("label", &label)]).await;
        let mails = wait_mails(&env.sink, 3, |m| m.subject.contains("区分つき訓練")).await;
        for m in &mails {
            assert_eq!(m.body.lines().next(), Some("区分: 関係者外秘 / Classification: Need to know"), "{}", m.body);
            let link = m.links(&env.server.url("/a/")).remove(0);
            assert!(!link.contains("%E9") && !link.contains("関係者外秘") && !link.to_lowercase().contains("need"), "{link}");
        }
        let list = admin.get("/").await.expect_status(200);
        assert!(list.text.contains("<span class=\"classification\">関係者外秘</span>"), "label on the incident list");
        let dash = admin.get(&format!("/incidents/{id}")).await.expect_status(200);
        assert!(dash.text.contains("id=\"label\">関係者外秘</span>") && dash.text.contains("id=\"export\""), "label on the dashboard");
        let en = admin.get(&format!("/incidents/{id}?lang=en")).await.expect_status(200);
        assert!(en.text.contains("id=\"label\">Need to know</span>"));

        // The export carries the label (file name and header); the column layout is unchanged.
        let csv = admin.get(&format!("/incidents/{id}/answers.csv")).await.expect_status(200);
        assert_eq!(csv.header("x-anpi-classification").as_deref(), Some(format!("UTF-8''{NEED_TO_KNOW_ENCODED}").as_str()));
        let disposition = csv.header("content-disposition").unwrap_or_default();
        assert_eq!(
            disposition,
            format!("attachment; filename=\"incident-{id}-answers_Need-to-know.csv\"; filename*=UTF-8''incident-{id}-answers_{NEED_TO_KNOW_ENCODED}.csv")
        );
        assert!(csv.text.trim_start_matches('\u{feff}').starts_with("氏名,部署,事業所,回答日時,配信状況,"), "{}", csv.text);
        assert_eq!(csv.text.lines().count(), 4, "header and three people");

        // A distributor is refused the export of a label restricted to admins, and it is audited.
        let dash = dist.get(&format!("/incidents/{id}")).await.expect_status(200);
        assert!(dash.text.contains("id=\"export-restricted\"") && !dash.text.contains("answers.csv"), "no export button");
        let refused = dist.get(&format!("/incidents/{id}/answers.csv")).await.expect_status(403);
        assert!(refused.text.contains("権限がありません") && !refused.text.contains("関係者外秘"), "generic refusal: {}", refused.text);
        assert!(refused.header("x-anpi-classification").is_none());
        let log = audit_lines(&mut admin).await;
        let exports: Vec<&String> = log.iter().filter(|l| l.contains("answers_exported") && l.contains(&format!("incident:{id}"))).collect();
        assert!(exports.iter().any(|l| l.contains(",ok,") && l.contains("label:関係者外秘")), "{exports:?}");
        assert!(exports.iter().any(|l| l.contains(",denied,") && l.contains("label:関係者外秘 requires admin")), "{exports:?}");
        for action in ["label_created", "label_updated", "audit_exported"] {
            assert!(log.iter().any(|l| l.contains(action)), "{action} missing from the audit log");
        }
        assert!(log.iter().any(|l| l.contains("incident_started") && l.contains("label:関係者外秘")));

        // Exports outside incidents carry the tenant's default label (社外秘 to start with).
        let people = admin.get("/people/export.csv").await.expect_status(200);
        assert_eq!(people.header("x-anpi-classification").as_deref(), Some(format!("UTF-8''{CONFIDENTIAL_ENCODED}").as_str()));
        assert!(people.header("content-disposition").unwrap_or_default().ends_with(&format!("filename*=UTF-8''people_{CONFIDENTIAL_ENCODED}.csv")));
        assert!(people.text.contains("L00000,社員 0"), "directory rows unchanged");
        let audit = admin.get("/audit.csv").await.expect_status(200);
        assert!(audit.header("content-disposition").unwrap_or_default().contains(&format!("audit-log_{CONFIDENTIAL_ENCODED}.csv")));
        assert!(audit_lines(&mut admin).await.iter().any(|l| l.contains("directory_exported") && l.contains("label:社外秘")));
        // An unlabelled incident's answers carry the default too; 社外秘 allows distributors.
        let plain = start_incident(&mut admin, "区分なし訓練", &[("all", "1"), ("drill", "1")]).await;
        let csv = dist.get(&format!("/incidents/{plain}/answers.csv")).await.expect_status(200);
        assert_eq!(csv.header("x-anpi-classification").as_deref(), Some(format!("UTF-8''{CONFIDENTIAL_ENCODED}").as_str()));

        // A label in use cannot be deleted; relaxing its restriction lets the distributor export.
        admin.get("/labels").await.expect_status(200);
        let r = admin.post_form(&format!("/labels/{label}/delete"), &[]).await.expect_status(409);
        assert!(r.text.contains("使用中のため削除できません") && r.text.contains("配信 1 件"), "{}", r.text);
        assert!(admin.get("/labels").await.text.contains("関係者外秘"), "still there");
        admin
            .post_form(&format!("/labels/{label}"), &[("name", "関係者外秘"), ("name_en", "Need to know"), ("rank", "5"), ("export_min", "distributor")])
            .await
            .expect_status(303);
        dist.get(&format!("/incidents/{id}/answers.csv")).await.expect_status(200);
        // The default label is in use too; an unused label is deleted.
        let page = admin.get("/labels").await.expect_status(200);
        let public = label_id(&page.text, "公開");
        let confidential = label_id(&page.text, "社外秘");
        admin.post_form(&format!("/labels/{confidential}/delete"), &[]).await.expect_status(409);
        admin.post_form(&format!("/labels/{public}/delete"), &[]).await.expect_status(303);
        assert!(!admin.get("/labels").await.expect_status(200).text.contains("value=\"公開\""));
        assert!(audit_lines(&mut admin).await.iter().any(|l| l.contains("label_deleted") && l.contains(&format!("label:{public}"))));

        // Rules carry a label for the incidents they start, and a rule's label is in use.
        let form = admin.get("/rules/new").await.expect_status(200);
        let survey = crate::support::http::html_unescape(&crate::support::extract(&form.text, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey"));
        let kimitsu = option_value(&form.text, "機密");
        let fields = [
            ("name", "区分ルール"),
            ("enabled", "1"),
            ("trigger", "earthquake|intensity:5-"),
            ("basis", "both"),
            ("survey", survey.as_str()),
            ("suppress_min", "60"),
            ("label", kimitsu.as_str()),
        ];
        admin.post_form("/rules", &fields).await.expect_status(303);
        let rules = admin.get("/rules").await.expect_status(200);
        assert!(rules.text.contains("<td>機密</td>"), "label on the rule list");
        admin.get("/labels").await.expect_status(200);
        let r = admin.post_form(&format!("/labels/{kimitsu}/delete"), &[]).await.expect_status(409);
        assert!(r.text.contains("ルール 1 件"), "{}", r.text);
    }
}
