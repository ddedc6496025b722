//! A real SMTP sink (aiosmtpd writing a Maildir) and a small RFC 5322 / MIME parser.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use tempfile::TempDir;

use super::util::{env_nonempty, free_port, port_open, tail_file};

/// An SMTP server process (`python3 -m aiosmtpd`, Maildir handler) on 127.0.0.1.
/// The process is killed when the sink is dropped.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: TempDir,
    maildir: PathBuf,
    log: PathBuf,
}

/// The python that has aiosmtpd: `$ANPI_TEST_AIOSMTPD_PYTHON`, else `/usr/bin/python3` if it
/// exists, else `python3`.
fn aiosmtpd_python() -> String {
    env_nonempty("ANPI_TEST_AIOSMTPD_PYTHON").unwrap_or_else(|| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".to_string()
        } else {
            "python3".to_string()
        }
    })
}

impl SmtpSink {
    /// Starts aiosmtpd on a free port and waits (at most 30 s) until it accepts connections.
    pub async fn start() -> SmtpSink {
        SmtpSink::start_with(None).await
    }

    /// [`SmtpSink::start`] with the misbehaving handler `support/python/faulty_smtp.py` and its
    /// rules (see that file), e.g. `"reject:bad,tempfail-first:later"`.
    pub async fn start_faulty(spec: &str) -> SmtpSink {
        SmtpSink::start_with(Some(spec)).await
    }

    async fn start_with(faults: Option<&str>) -> SmtpSink {
        let python = aiosmtpd_python();
        let mut dir = tempfile::Builder::new().prefix("anpi-smtp-").tempdir().expect("cannot create temp dir for SMTP sink");
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("aiosmtpd.log");
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let logf = fs::File::create(&log).expect("cannot create aiosmtpd log file");
            let mut cmd = Command::new(&python);
            cmd.args(["-m", "aiosmtpd", "-n", "-l"]).arg(format!("127.0.0.1:{port}"));
            match faults {
                None => cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(&maildir),
                Some(spec) => cmd
                    .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/support/python"))
                    .args(["-c", "faulty_smtp.Faulty"])
                    .arg(&maildir)
                    .arg(spec),
            };
            let child = cmd.stdin(Stdio::null()).stdout(logf.try_clone().expect("clone log file handle")).stderr(logf).spawn().unwrap_or_else(|e| {
                panic!(
                    "cannot start SMTP sink: `{python} -m aiosmtpd` failed to spawn: {e}. \
                         Install Debian's python3-aiosmtpd (scripts/test.sh does) or set ANPI_TEST_AIOSMTPD_PYTHON."
                )
            });
            let mut sink = SmtpSink { child, port, dir, maildir: maildir.clone(), log: log.clone() };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = sink.child.try_wait() {
                    last_err =
                        format!("`{python} -m aiosmtpd` exited with {status} before listening on 127.0.0.1:{port}; its output:\n{}", tail_file(&log, 40));
                    break;
                }
                if port_open(port) {
                    // The Maildir is created by the handler at start-up; make sure it exists.
                    for sub in ["new", "cur", "tmp"] {
                        let _ = fs::create_dir_all(sink.maildir.join(sub));
                    }
                    return sink;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "SMTP sink (`{python} -m aiosmtpd`) did not accept connections on 127.0.0.1:{port} within 30 s; its output:\n{}",
                        tail_file(&log, 40)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Exited early (port taken?): retry with another port.
            dir = std::mem::replace(&mut sink.dir, tempfile::tempdir().expect("temp dir"));
            let _ = sink.child.wait();
        }
        panic!("cannot start SMTP sink: {last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP, no TLS, no auth).
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The Maildir the sink writes to.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Path of aiosmtpd's own log (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// All messages received so far (Maildir `new/` and `cur/`), oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(SystemTime, String, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in rd.flatten() {
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let mtime = entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((mtime, entry.file_name().to_string_lossy().into_owned(), path));
            }
        }
        files.sort();
        files.into_iter().filter_map(|(_, _, path)| fs::read(&path).ok()).map(|bytes| Mail::parse(&bytes)).collect()
    }

    /// Waits until at least `count` messages arrived and returns all of them; panics with a
    /// summary of what did arrive after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages();
            if msgs.len() >= count {
                return msgs;
            }
            if Instant::now() >= deadline {
                let summary: Vec<String> = msgs.iter().map(|m| format!("  to={:?} subject={:?}", m.to, m.subject)).collect();
                panic!(
                    "SMTP sink: expected at least {count} message(s) within {timeout:?}, got {}:\n{}\naiosmtpd log:\n{}",
                    msgs.len(),
                    summary.join("\n"),
                    tail_file(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Removes every received message.
    pub fn clear(&self) {
        for sub in ["new", "cur"] {
            if let Ok(rd) = fs::read_dir(self.maildir.join(sub)) {
                for entry in rd.flatten() {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients (aiosmtpd's `X-RcptTo`), else the addresses of the `To` header.
    pub to: Vec<String>,
    /// Envelope sender (aiosmtpd's `X-MailFrom`), else the address of the `From` header.
    pub from: String,
    /// The `Subject` header with RFC 2047 encoded-words decoded.
    pub subject: String,
    /// The `Message-ID` header as sent (angle brackets included), or "".
    pub message_id: String,
    /// The decoded text/plain body (the text/plain part of a multipart message).
    pub body: String,
    /// The decoded text/html part, if any.
    pub html: Option<String>,
    /// Unfolded headers in order (values not decoded).
    pub headers: Vec<(String, String)>,
    /// The raw message (lossy UTF-8).
    pub raw: String,
}

impl Mail {
    /// Parses a raw RFC 5322 message.
    pub fn parse(raw: &[u8]) -> Mail {
        let part = Part::parse(raw);
        let header = |name: &str| part.header(name).map(str::to_string);
        let to = match header("X-RcptTo") {
            Some(v) => split_addresses(&v),
            None => part.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("To")).flat_map(|(_, v)| split_addresses(v)).collect(),
        };
        let from = header("X-MailFrom").or_else(|| header("From").and_then(|f| split_addresses(&f).into_iter().next())).unwrap_or_default();
        let subject = header("Subject").map(|s| decode_encoded_words(&s)).unwrap_or_default();
        let message_id = header("Message-ID").unwrap_or_default();
        let body = part.find_text("plain").or_else(|| part.find_text("")).unwrap_or_default();
        let html = part.find_text("html");
        Mail { to, from, subject, message_id, body, html, headers: part.headers.clone(), raw: String::from_utf8_lossy(raw).into_owned() }
    }

    /// The first header `name` (case-insensitive), undecoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first header `name` with RFC 2047 encoded-words decoded.
    pub fn header_decoded(&self, name: &str) -> Option<String> {
        self.header(name).map(decode_encoded_words)
    }

    /// URLs in the body (text/plain) that start with `prefix`, in order of appearance.
    pub fn links(&self, prefix: &str) -> Vec<String> {
        extract_links(&self.body, prefix)
    }
}

/// URLs in `text` starting with `prefix`: a URL runs until whitespace, a non-ASCII character or
/// one of `<>"'\``; trailing `.,;:!?` (and an unbalanced `)`) are dropped.
pub fn extract_links(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if prefix.is_empty() {
        return out;
    }
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = tail.char_indices().find(|&(_, c)| !c.is_ascii_graphic() || matches!(c, '<' | '>' | '"' | '\'' | '`')).map(|(j, _)| j).unwrap_or(tail.len());
        let mut url = &tail[..end];
        loop {
            let trimmed = url.trim_end_matches(['.', ',', ';', ':', '!', '?']);
            let trimmed = if trimmed.ends_with(')') && !trimmed.contains('(') { &trimmed[..trimmed.len() - 1] } else { trimmed };
            if trimmed.len() == url.len() {
                break;
            }
            url = trimmed;
        }
        if url.len() >= prefix.len() {
            out.push(url.to_string());
        }
        rest = &tail[end.max(prefix.len())..];
    }
    out
}

/// Addresses in an address-list header: `a@b, "Name" <c@d>` → `["a@b", "c@d"]`.
fn split_addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => depth += 1,
            '>' if !in_quotes => depth = depth.saturating_sub(1),
            ',' if !in_quotes && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .filter_map(|item| {
            let item = item.trim();
            let addr = match (item.rfind('<'), item.rfind('>')) {
                (Some(a), Some(b)) if a < b => item[a + 1..b].trim(),
                _ => item,
            };
            (!addr.is_empty()).then(|| addr.to_string())
        })
        .collect()
}

/// A MIME entity: headers and (transfer-encoded) body.
#[derive(Debug, Clone)]
struct Part {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Part {
    fn parse(raw: &[u8]) -> Part {
        // Normalise line endings to LF.
        let mut data = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            data.push(raw[i]);
            i += 1;
        }
        let (head, body) = if data.starts_with(b"\n") {
            (&data[..0], &data[1..])
        } else {
            match find(&data, b"\n\n") {
                Some(p) => (&data[..p], &data[p + 2..]),
                None => (&data[..], &data[data.len()..]),
            }
        };
        let head = String::from_utf8_lossy(head);
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split('\n') {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Part { headers, body: body.to_vec() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// (lowercased media type, parameters with lowercased names); default text/plain.
    fn content_type(&self) -> (String, Vec<(String, String)>) {
        match self.header("Content-Type") {
            Some(v) => {
                let mut it = split_params(v).into_iter();
                let media = it.next().unwrap_or_default().to_ascii_lowercase();
                let params = it
                    .filter_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        let v = v.trim();
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                        Some((k.trim().to_ascii_lowercase(), v.replace("\\\"", "\"")))
                    })
                    .collect();
                (media, params)
            }
            None => ("text/plain".to_string(), vec![]),
        }
    }

    fn param(&self, name: &str) -> Option<String> {
        self.content_type().1.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The body with its Content-Transfer-Encoding removed.
    fn decoded_body(&self) -> Vec<u8> {
        let cte = self.header("Content-Transfer-Encoding").unwrap_or("7bit").trim().to_ascii_lowercase();
        match cte.as_str() {
            "base64" => decode_base64_lenient(&self.body),
            "quoted-printable" => decode_quoted_printable(&self.body),
            _ => self.body.clone(),
        }
    }

    fn children(&self) -> Vec<Part> {
        let Some(boundary) = self.param("boundary") else {
            return vec![];
        };
        let delim = format!("--{boundary}");
        let text = &self.body;
        let mut parts = Vec::new();
        let mut current: Option<Vec<u8>> = None;
        for line in text.split(|&b| b == b'\n') {
            let trimmed = trim_end_ws(line);
            if trimmed.starts_with(delim.as_bytes()) {
                let rest = &trimmed[delim.len()..];
                if rest.is_empty() || rest.starts_with(b"--") {
                    if let Some(mut p) = current.take() {
                        if p.last() == Some(&b'\n') {
                            p.pop(); // the newline before a delimiter belongs to it
                        }
                        parts.push(Part::parse(&p));
                    }
                    if rest.starts_with(b"--") {
                        break;
                    }
                    current = Some(Vec::new());
                    continue;
                }
            }
            if let Some(p) = current.as_mut() {
                p.extend_from_slice(line);
                p.push(b'\n');
            }
        }
        parts
    }

    /// Depth-first: the decoded text of the first `text/<subtype>` leaf ("" = any non-multipart).
    fn find_text(&self, subtype: &str) -> Option<String> {
        let (media, _) = self.content_type();
        if media.starts_with("multipart/") {
            return self.children().iter().find_map(|c| c.find_text(subtype));
        }
        let disposition = self.header("Content-Disposition").unwrap_or("").to_ascii_lowercase();
        if disposition.starts_with("attachment") {
            return None;
        }
        let wanted = if subtype.is_empty() { true } else { media == format!("text/{subtype}") };
        if !wanted {
            return None;
        }
        let charset = self.param("charset").unwrap_or_else(|| "utf-8".to_string());
        Some(decode_charset(&self.decoded_body(), &charset))
    }
}

/// Splits a header value at `;` outside quotes.
fn split_params(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    for c in v.chars() {
        match c {
            '"' => {
                q = !q;
                cur.push(c)
            }
            ';' if !q => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_end_ws(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b' ' | b'\t' | b'\r') {
        end -= 1;
    }
    &b[..end]
}

/// Base64 that ignores whitespace and anything outside the alphabet, padding optional.
fn decode_base64_lenient(b: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = b.iter().copied().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&clean)
        .or_else(|_| {
            // A stray trailing character (length ≡ 1 mod 4): drop it.
            let n = clean.len() - clean.len() % 4;
            let n = if clean.len() % 4 == 1 { n } else { clean.len() };
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean[..n])
        })
        .unwrap_or_else(|e| panic!("invalid base64 in mail body: {e}"))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes, `=` at line end is a soft line break,
/// trailing whitespace on a line is dropped.
fn decode_quoted_printable(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let line = trim_end_ws(line);
        let (line, soft) = match line.last() {
            Some(b'=') => (&line[..line.len() - 1], true),
            _ => (line, false),
        };
        let mut i = 0;
        while i < line.len() {
            if line[i] == b'=' {
                if let (Some(h), Some(l)) = (line.get(i + 1).copied().and_then(hex_val), line.get(i + 2).copied().and_then(hex_val)) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
            }
            out.push(line[i]);
            i += 1;
        }
        if !soft && n + 1 < lines.len() {
            out.push(b'\n');
        }
    }
    out
}

/// Bytes in `charset` → String (UTF-8 and US-ASCII, ISO-8859-1; anything else as lossy UTF-8).
fn decode_charset(bytes: &[u8], charset: &str) -> String {
    match charset.trim().to_ascii_lowercase().as_str() {
        "iso-8859-1" | "latin1" | "latin-1" => bytes.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// One RFC 2047 encoded-word at the start of `s`: (charset, decoded bytes, length consumed).
fn parse_encoded_word(s: &str) -> Option<(String, Vec<u8>, usize)> {
    let rest = s.strip_prefix("=?")?;
    let q1 = rest.find('?')?;
    let charset = &rest[..q1];
    let rest2 = &rest[q1 + 1..];
    let q2 = rest2.find('?')?;
    let enc = &rest2[..q2];
    let rest3 = &rest2[q2 + 1..];
    let end = rest3.find("?=")?;
    let text = &rest3[..end];
    if text.contains(|c: char| c.is_whitespace()) {
        return None;
    }
    // Drop an RFC 2231 language suffix: charset*lang.
    let charset = charset.split('*').next().unwrap_or(charset).to_string();
    let bytes = match enc {
        "B" | "b" => decode_base64_lenient(text.as_bytes()),
        "Q" | "q" => {
            let mut out = Vec::new();
            let b = text.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => {
                        out.push(b' ');
                        i += 1
                    }
                    b'=' => match (b.get(i + 1).copied().and_then(hex_val), b.get(i + 2).copied().and_then(hex_val)) {
                        (Some(h), Some(l)) => {
                            out.push(h * 16 + l);
                            i += 3
                        }
                        _ => {
                            out.push(b'=');
                            i += 1
                        }
                    },
                    c => {
                        out.push(c);
                        i += 1
                    }
                }
            }
            out
        }
        _ => return None,
    };
    let consumed = 2 + q1 + 1 + q2 + 1 + end + 2;
    Some((charset, bytes, consumed))
}

/// Decodes RFC 2047 encoded-words in a header value. Whitespace between adjacent encoded-words
/// is dropped, and adjacent words in the same charset are joined before charset decoding (a
/// multi-byte character may be split across words).
pub fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Option<(String, Vec<u8>)> = None; // run of encoded-words in one charset
    let mut pending_ws = String::new(); // whitespace after the last encoded-word
    let flush = |out: &mut String, pending: &mut Option<(String, Vec<u8>)>| {
        if let Some((cs, bytes)) = pending.take() {
            out.push_str(&decode_charset(&bytes, &cs));
        }
    };
    let mut i = 0;
    while i < value.len() {
        let rest = &value[i..];
        if rest.starts_with("=?") {
            if let Some((cs, bytes, used)) = parse_encoded_word(rest) {
                match pending.as_mut() {
                    Some((pcs, pbytes)) if pcs.eq_ignore_ascii_case(&cs) => pbytes.extend(bytes),
                    _ => {
                        flush(&mut out, &mut pending);
                        pending = Some((cs, bytes));
                    }
                }
                pending_ws.clear();
                i += used;
                continue;
            }
        }
        let c = rest.chars().next().expect("non-empty");
        if pending.is_some() && (c == ' ' || c == '\t') {
            pending_ws.push(c);
        } else {
            flush(&mut out, &mut pending);
            out.push_str(&pending_ws);
            pending_ws.clear();
            out.push(c);
        }
        i += c.len_utf8();
    }
    flush(&mut out, &mut pending);
    out.push_str(&pending_ws);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_body_and_encoded_word_subject() {
        let body = base64::engine::general_purpose::STANDARD.encode("安否確認のお願い\r\n回答: http://127.0.0.1:8080/r/abcDEF123\r\nよろしく。\r\n");
        let wrapped: Vec<String> = body.as_bytes().chunks(20).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let raw = format!(
            "X-Peer: ('127.0.0.1', 5555)\r\nX-MailFrom: anpi@example.test\r\nX-RcptTo: taro@example.test, hanako@example.test\r\n\
             From: =?utf-8?b?5a6J5ZCm?= <anpi@example.test>\r\nTo: taro@example.test\r\n\
             Subject: =?UTF-8?B?44CQ5a6J5ZCm56K66KqN44CR?=\r\n =?UTF-8?B?5Zyw6ZyH?= test\r\n\
             Message-ID: <abc.123@example.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped.join("\r\n")
        );
        let m = Mail::parse(raw.as_bytes());
        assert_eq!(m.subject, "【安否確認】地震 test");
        assert_eq!(m.to, vec!["taro@example.test", "hanako@example.test"]);
        assert_eq!(m.from, "anpi@example.test");
        assert_eq!(m.message_id, "<abc.123@example.test>");
        assert_eq!(m.body, "安否確認のお願い\r\n回答: http://127.0.0.1:8080/r/abcDEF123\r\nよろしく。\r\n");
        assert_eq!(m.links("http://127.0.0.1:8080/r/"), vec!["http://127.0.0.1:8080/r/abcDEF123"]);
        assert_eq!(m.header_decoded("From").as_deref(), Some("安否 <anpi@example.test>"));
        assert!(m.html.is_none());
    }

    #[test]
    fn quoted_printable_body_and_q_subject() {
        let raw = "To: \"Yamada, Taro\" <taro@example.test>, jiro@example.test\n\
                   Subject: =?utf-8?q?=E5=AE=89=E5=90=A6_check?= plain =?utf-8?Q?=E2=9C=93?=\n\
                   Content-Type: text/plain; charset=UTF-8\n\
                   Content-Transfer-Encoding: quoted-printable\n\n\
                   =E3=81=93=E3=82=93=E3=81=AB=E3=81=A1=E3=81=AF a=3Db   \n\
                   long line con=\n\
                   tinued http://x.test/a?b=3Dc.\n";
        let m = Mail::parse(raw.as_bytes());
        assert_eq!(m.subject, "安否 check plain ✓");
        assert_eq!(m.to, vec!["taro@example.test", "jiro@example.test"]);
        assert_eq!(m.message_id, "");
        assert_eq!(m.body, "こんにちは a=b\nlong line continued http://x.test/a?b=c.\n");
        assert_eq!(m.links("http://x.test/"), vec!["http://x.test/a?b=c"]);
    }

    #[test]
    fn multipart_alternative_takes_text_plain() {
        let raw = "To: a@example.test\r\nSubject: plain ascii\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/alternative;\r\n boundary=\"=_b1\"\r\n\r\n\
                   preamble\r\n--=_b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                   5pys5paHIGh0dHA6Ly9oLnRlc3QvcmVzcG9uZC94eXo=\r\n\
                   --=_b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                   <p>=E6=9C=AC=E6=96=87</p>\r\n--=_b1--\r\nepilogue\r\n";
        let m = Mail::parse(raw.as_bytes());
        assert_eq!(m.subject, "plain ascii");
        assert_eq!(m.body, "本文 http://h.test/respond/xyz");
        assert_eq!(m.html.as_deref(), Some("<p>本文</p>"));
        assert_eq!(m.links("http://h.test/respond/"), vec!["http://h.test/respond/xyz"]);
        assert!(m.links("https://").is_empty());
    }

    #[test]
    fn nested_multipart_mixed() {
        let raw = "Content-Type: multipart/mixed; boundary=outer\n\n--outer\n\
                   Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\
                   Content-Type: text/plain\n\nhello\nworld\n--inner\nContent-Type: text/html\n\n<b>x</b>\n--inner--\n\
                   --outer\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nATTACHED\n--outer--\n";
        let m = Mail::parse(raw.as_bytes());
        assert_eq!(m.body, "hello\nworld");
        assert_eq!(m.html.as_deref(), Some("<b>x</b>"));
    }

    #[test]
    fn encoded_words_edge_cases() {
        // A multi-byte character split across two encoded-words.
        let s = "=?UTF-8?B?5a6J?= =?UTF-8?B?5ZA=?= =?UTF-8?B?pg==?=";
        assert_eq!(decode_encoded_words(s), "安否");
        assert_eq!(decode_encoded_words("no encoding here"), "no encoding here");
        assert_eq!(decode_encoded_words("a =?utf-8?q?b?= c"), "a b c");
        assert_eq!(decode_encoded_words("=?bogus"), "=?bogus");
    }

    #[test]
    fn links_are_trimmed_and_ordered() {
        let body = "1) <http://a.test/x> 2) http://a.test/y, 3) (see http://a.test/z) 4) http://a.test/w。次";
        assert_eq!(extract_links(body, "http://a.test/"), vec!["http://a.test/x", "http://a.test/y", "http://a.test/z", "http://a.test/w"]);
    }
}
