//! The docs cite code and tests as proof of their claims (docs/*.md, e.g. security.md's
//! `e2e/access.rs::mfa_lockout_throttling_and_sessions`). A cited test that was renamed, moved
//! or lost in a merge would leave a claim without proof: every citation must still resolve.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Crates whose items the docs name without citing our code.
const EXTERNAL: [&str; 8] = ["axum", "tokio", "sqlx", "std", "rustls", "lettre", "webpki", "serde"];

fn rust_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            let rel = p.strip_prefix(root()).unwrap_or(&p).to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&p).unwrap()));
        }
    }
}

/// Does `src` define an item called `name` (a function, type, module, constant or variant)?
fn defines(src: &str, name: &str) -> bool {
    if name == "*" {
        return true;
    }
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    ["fn ", "struct ", "enum ", "mod ", "trait ", "const ", "static ", "type ", "macro_rules! "]
        .iter()
        .any(|kw| src.match_indices(&format!("{kw}{name}")).any(|(i, m)| !src[i + m.len()..].starts_with(ident) && (i == 0 || !src[..i].ends_with(ident))))
        || src.lines().map(str::trim_start).any(|l| {
            // An enum variant or a struct field.
            let l = l.strip_prefix("pub ").unwrap_or(l);
            [",", " {", "(", ":"].iter().any(|end| l.starts_with(&format!("{name}{end}")))
        })
}

/// Citations like `path/file.rs::name`, `module::tests::name`, `Type::method` or, after one of
/// these in the same line, `::name` (same file).
fn citations(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in doc.lines() {
        let mut file = String::new();
        for (i, chunk) in line.split('`').enumerate() {
            if i % 2 == 0 || !chunk.contains("::") || chunk.contains(' ') || chunk.contains('<') {
                continue;
            }
            // `Console::require(Permission)` cites `require`.
            let chunk = chunk.split('(').next().unwrap_or_default();
            let (path, name) = chunk.rsplit_once("::").unwrap_or(("", chunk));
            let identifier =
                name == "*" || (name.starts_with(|c: char| c.is_alphabetic() || c == '_') && name.chars().all(|c| c.is_alphanumeric() || c == '_'));
            // Other crates' items (`tokio::sync::broadcast`) and text that only looks like a path.
            if !identifier || EXTERNAL.iter().any(|c| chunk.starts_with(&format!("{c}::"))) {
                continue;
            }
            let path = if path.is_empty() { file.clone() } else { path.to_string() };
            if path.contains(".rs") {
                file = path.split("::").next().unwrap_or_default().to_string();
            }
            out.push((path, name.to_string()));
        }
    }
    out
}

#[test]
fn every_test_and_item_the_docs_cite_exists() {
    let mut sources = Vec::new();
    rust_files(&root().join("crates"), &mut sources);
    let mut docs: Vec<PathBuf> =
        std::fs::read_dir(root().join("docs")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "md")).collect();
    docs.push(root().join("README.md"));
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (path, name) in citations(&text) {
            let found = match path.split("::").next().filter(|f| f.ends_with(".rs")) {
                // A file is named: the item must be in that file (or, for `a/b.rs`, in `a/b/…`).
                Some(file) => {
                    let files: Vec<&(String, String)> =
                        sources.iter().filter(|(p, _)| p.ends_with(file) || p.contains(&format!("{}/", file.trim_end_matches(".rs")))).collect();
                    !files.is_empty() && files.iter().any(|(_, src)| defines(src, &name))
                }
                None => sources.iter().any(|(_, src)| defines(src, &name)),
            };
            checked += 1;
            if !found {
                missing.push(format!("{}: `{path}::{name}`", doc.file_name().unwrap_or_default().to_string_lossy()));
            }
        }
    }
    assert!(checked > 100, "only {checked} citations found: is the parser still reading the docs?");
    assert!(missing.is_empty(), "the docs cite what no longer exists:\n{}", missing.join("\n"));
}

#[test]
fn the_citation_check_can_fail() {
    let doc = "| row | `e2e/access.rs::mfa_lockout_throttling_and_sessions`, `::no_such_test_anywhere` |";
    let c = citations(doc);
    assert_eq!(c, vec![("e2e/access.rs".into(), "mfa_lockout_throttling_and_sessions".into()), ("e2e/access.rs".into(), "no_such_test_anywhere".into())]);
    assert!(defines("async fn row_level_security_is_a_second_wall_on_postgres() {", "row_level_security_is_a_second_wall_on_postgres"));
    assert!(!defines("async fn row_level_security_is_a_second_wall_on_postgres_too() {", "row_level_security_is_a_second_wall_on_postgres"));
}
