//! DKIM: mail signed with the sender domain's key (`anpi dkim generate`), checked by an
//! independent verifier (dkimpy, Debian's python3-dkim) against the DNS record anpi printed;
//! a changed message fails the same check, so the check can fail.

use super::common::*;
use crate::support::server::run_cli_ok;
use crate::support::{engines, Mail};

const DOMAIN: &str = "mail.anpi.example";

/// `anpi dkim generate`: the TXT record's name and value as printed.
fn generate(url: &str, selector: &str, algorithm: &str) -> (String, String) {
    let out = run_cli_ok(&["dkim", "generate", "--database-url", url, "--domain", DOMAIN, "--selector", selector, "--algorithm", algorithm], None);
    let line = out.lines().find(|l| l.contains("._domainkey.")).unwrap_or_else(|| panic!("no record printed: {out}"));
    let (name, value) = line.split_once(" IN TXT ").expect("record line");
    (name.to_string(), value.trim_matches('"').to_string())
}

/// dkimpy's verdict on a raw message, with `record` as the only DNS answer.
fn dkimpy_verifies(raw: &[u8], record: &(String, String)) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, raw).unwrap();
    let python = std::env::var("ANPI_TEST_DKIM_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let script = "import dkim, os, sys\n\
        name, value = os.environ['DKIM_NAME'].encode(), os.environ['DKIM_VALUE'].encode()\n\
        dns = lambda n, timeout=5: value if n.rstrip(b'.') == name else None\n\
        print('PASS' if dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=dns) else 'FAIL')\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .env("DKIM_NAME", &record.0)
        .env("DKIM_VALUE", &record.1)
        .output()
        .expect("python3 with dkim (python3-dkim)");
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(verdict == "PASS" || verdict == "FAIL", "dkimpy failed: {}", String::from_utf8_lossy(&out.stderr));
    verdict == "PASS"
}

fn signature(m: &Mail) -> String {
    m.header("DKIM-Signature").unwrap_or_default().to_string()
}

#[tokio::test]
async fn mail_is_dkim_signed_and_verified_by_dkimpy() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let mut env = env_with(engine, |b| b.mail_from(format!("anpi@{DOMAIN}"))).await;
        let url = env.server.database_url().to_string();

        // RSA (2048): the invitation of a new tenant's admin is signed and verifies.
        let rsa = generate(&url, "rsa2026", "rsa");
        assert!(rsa.1.starts_with("v=DKIM1; k=rsa; p="), "{rsa:?}");
        env.server.restart().await;
        let mut admin = tenant(&env, "dkim").await;
        let invite = wait_mail(&env.sink, "invite", |m| m.subject.contains("招待") || m.to.contains(&admin_email("dkim"))).await;
        let sig = signature(&invite);
        assert!(sig.contains("a=rsa-sha256") && sig.contains(&format!("d={DOMAIN}")) && sig.contains("s=rsa2026"), "{sig}");
        assert!(dkimpy_verifies(invite.raw.as_bytes(), &rsa), "dkimpy rejects the RSA signature:\n{}", invite.raw);
        // The same check fails on a changed body or a changed subject, or with another key.
        let changed = invite.raw.replacen("\n\n", "\n\nX", 1);
        assert!(!dkimpy_verifies(changed.as_bytes(), &rsa), "a changed body still verifies");
        let other = generate(&url, "other", "rsa");
        assert!(!dkimpy_verifies(invite.raw.as_bytes(), &(rsa.0.clone(), other.1.clone())), "another key's record verifies");
        run_cli_ok(&["dkim", "remove", "--database-url", &url, "--domain", DOMAIN, "--selector", "other"], None);

        // Ed25519 (RFC 8463): the newest key of the domain signs the safety mail.
        let ed = generate(&url, "ed2026", "ed25519");
        env.server.restart().await;
        login(&mut admin, "dkim", &admin_email("dkim"), PASSWORD).await;
        import_csv(&mut admin, people_csv(2, "D").as_bytes(), "auto").await;
        start_incident(&mut admin, "地震 DKIM", &[("all", "1")]).await;
        let mails = wait_mails(&env.sink, 2, |m| m.subject.contains("地震 DKIM")).await;
        for m in &mails {
            let sig = signature(m);
            assert!(sig.contains("a=ed25519-sha256") && sig.contains("s=ed2026"), "{sig}");
            assert!(dkimpy_verifies(m.raw.as_bytes(), &ed), "dkimpy rejects the Ed25519 signature:\n{}", m.raw);
        }
        let listed = run_cli_ok(&["dkim", "list", "--database-url", &url], None);
        assert!(listed.contains("rsa2026._domainkey.mail.anpi.example") && listed.contains("ed2026._domainkey."), "{listed}");
    }
}
