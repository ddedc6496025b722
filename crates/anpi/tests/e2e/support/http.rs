//! A small HTTP client for driving the server like a browser without JavaScript: it keeps
//! cookies itself (the server sets `__Host-`/`Secure` cookies but runs plain http on loopback,
//! so reqwest's cookie store would drop them), follows no redirects, and adds the CSRF token
//! scraped from the last HTML page to form posts.

use std::sync::Once;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::Method;

/// Installs the process-wide rustls crypto provider that reqwest needs (it is built with
/// `rustls-tls-*-no-provider`). Idempotent.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// The settings every test client shares: no redirects, 60 s timeout, no proxy, and a
/// user agent (it shows in the sign-in history).
fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(60)).no_proxy().user_agent("anpi-e2e-tests")
}

/// A plain reqwest client for loopback use.
pub fn reqwest_client() -> reqwest::Client {
    builder().build().expect("cannot build reqwest client")
}

/// Like [`reqwest_client`], also trusting the PEM certificate `ca` (for `https://` servers
/// with a test CA).
pub fn reqwest_client_trusting(ca: &[u8]) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca).expect("test CA is not PEM");
    builder().add_root_certificate(ca).build().expect("cannot build reqwest client")
}

/// Like [`reqwest_client_trusting`], also presenting the client certificate in `identity`
/// (PEM: the certificate, then its private key) when the server asks for one.
pub fn reqwest_client_with_identity(ca: &[u8], identity: &[u8]) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca).expect("test CA is not PEM");
    let identity = reqwest::Identity::from_pem(identity).expect("client certificate and key PEM");
    builder().add_root_certificate(ca).identity(identity).build().expect("cannot build reqwest client")
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The URL that was requested.
    pub url: String,
}

impl Resp {
    /// The first value of header `name`, if any (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
    /// All values of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    }
    /// The `Location` header of a redirect.
    pub fn location(&self) -> Option<String> {
        self.header(LOCATION.as_str())
    }
    pub fn content_type(&self) -> Option<String> {
        self.header(CONTENT_TYPE.as_str())
    }
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
    /// Parses the body as JSON; panics with the body on failure.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("response from {} is not JSON ({e}): {}", self.url, self.text))
    }
    /// Panics (showing the body) unless the status is `expected`. Returns self for chaining.
    #[track_caller]
    pub fn expect_status(self, expected: u16) -> Self {
        if self.status != expected {
            panic!("{}: expected HTTP {expected}, got {} (location: {:?}); body:\n{}", self.url, self.status, self.location(), truncate(&self.text, 4000));
        }
        self
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
}

/// An HTTP client with its own cookie jar and CSRF-token memory, bound to a base URL.
pub struct Client {
    base: String,
    http: reqwest::Client,
    cookies: Vec<Cookie>,
    csrf: Option<String>,
    last_html: Option<String>,
    /// Sent on unsafe requests as a browser would (`Origin: <base>`); None to omit.
    pub origin: Option<String>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:PORT`); paths given to its methods are
    /// appended to it, full `http://…` URLs are used as they are.
    pub fn new(base: impl Into<String>) -> Client {
        let base: String = base.into();
        let base = base.trim_end_matches('/').to_string();
        let origin = origin_of(&base);
        Client { base, http: reqwest_client(), cookies: Vec::new(), csrf: None, last_html: None, origin }
    }

    /// A client for `base` sending its requests with `http` (e.g. one trusting a test CA or
    /// presenting a client certificate).
    pub fn with_http(base: impl Into<String>, http: reqwest::Client) -> Client {
        let mut c = Client::new(base);
        c.http = http;
        c
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base + path`, or `path` itself when it is already an absolute URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') || path.is_empty() {
            format!("{}{}", self.base, path)
        } else {
            format!("{}/{}", self.base, path)
        }
    }

    /// The current value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|c| c.name == name).map(|c| c.value.clone())
    }
    /// All cookies as (name, value).
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.cookies.iter().map(|c| (c.name.clone(), c.value.clone())).collect()
    }
    /// Sets (or replaces) a cookie by hand.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|c| c.name != name);
        self.cookies.push(Cookie { name: name.to_string(), value: value.to_string() });
    }
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }
    /// The CSRF token from the last HTML page that had one.
    pub fn csrf(&self) -> Option<String> {
        self.csrf.clone()
    }
    pub fn set_csrf(&mut self, token: Option<String>) {
        self.csrf = token;
    }
    /// The body of the last HTML response.
    pub fn last_html(&self) -> Option<&str> {
        self.last_html.as_deref()
    }

    /// A request with this client's cookies (and `Origin` for unsafe methods) already set.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method.clone(), self.url(path));
        if !self.cookies.is_empty() {
            let header = self.cookies.iter().map(|c| format!("{}={}", c.name, c.value)).collect::<Vec<_>>().join("; ");
            rb = rb.header(COOKIE, HeaderValue::from_str(&header).expect("cookie header value"));
        }
        if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            if let Some(origin) = &self.origin {
                rb = rb.header("Origin", origin.as_str());
            }
        }
        rb
    }

    /// Sends a request built with [`Client::request`], records cookies and the CSRF token.
    pub async fn send(&mut self, rb: reqwest::RequestBuilder) -> Resp {
        let req = rb.build().expect("cannot build request");
        let url = req.url().to_string();
        let method = req.method().clone();
        let resp = self.http.execute(req).await.unwrap_or_else(|e| panic!("{method} {url} failed: {e} (is the server running?)"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_else(|e| panic!("{method} {url}: cannot read body: {e}"));
        for v in headers.get_all(SET_COOKIE) {
            self.store_set_cookie(&String::from_utf8_lossy(v.as_bytes()));
        }
        let is_html = headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase().contains("html")).unwrap_or(false);
        if is_html {
            if let Some(tok) = find_csrf(&text) {
                self.csrf = Some(tok);
            }
            self.last_html = Some(text.clone());
        }
        Resp { status, headers, text, url }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        let rb = self.request(Method::GET, path);
        self.send(rb).await
    }

    /// Follows redirects (at most 10) starting with a GET of `path`; returns the final response.
    pub async fn get_follow(&mut self, path: &str) -> Resp {
        let mut url = self.url(path);
        for _ in 0..10 {
            let r = self.get(&url).await;
            match r.location() {
                Some(loc) if r.is_redirect() => url = resolve(&r.url, &loc),
                _ => return r,
            }
        }
        panic!("too many redirects starting at {path}");
    }

    /// POSTs an urlencoded form; adds `csrf` (from the last HTML page) unless `fields` has it.
    /// A sign-in form is fetched first when the client has not seen one (as a browser has),
    /// so its pre-session CSRF cookie and token are there.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let sign_in = self.url(path).ends_with("/login");
        if sign_in && (self.cookie("__Host-anpi-login").is_none() || !self.last_html.as_deref().is_some_and(|h| h.contains("action=\"/login\""))) {
            self.get(path).await;
        }
        let mut all: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            if let Some(tok) = &self.csrf {
                all.push(("csrf".to_string(), tok.clone()));
            }
        }
        let rb = self.request(Method::POST, path).form(&all);
        self.send(rb).await
    }

    /// POSTs an urlencoded form exactly as given (no CSRF token added).
    pub async fn post_form_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let rb = self.request(Method::POST, path).form(fields);
        self.send(rb).await
    }

    /// POSTs JSON (no CSRF token added).
    pub async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Resp {
        let rb = self.request(Method::POST, path).json(body);
        self.send(rb).await
    }

    fn store_set_cookie(&mut self, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_string(), value.trim().trim_matches('"').to_string());
        if name.is_empty() {
            return;
        }
        let mut delete = false;
        let mut max_age_seen = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "max-age" {
                max_age_seen = true;
                if let Ok(n) = v.parse::<i64>() {
                    delete = n <= 0;
                }
            } else if k == "expires" && !max_age_seen {
                // Max-Age takes precedence over Expires.
                if let Some(t) = parse_http_date(v) {
                    delete = t <= SystemTime::now();
                }
            }
        }
        self.cookies.retain(|c| c.name != name);
        if !delete {
            self.cookies.push(Cookie { name, value });
        }
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let i = url.find("://")? + 3;
    let end = url[i..].find('/').map(|j| i + j).unwrap_or(url.len());
    Some(url[..end].to_string())
}

/// Resolves a `Location` value against the URL of the response.
pub fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{}{}", origin_of(base).unwrap_or_default(), location)
    } else {
        let dir = match base.rfind('/') {
            Some(i) if i > base.find("://").map(|j| j + 2).unwrap_or(0) => &base[..=i],
            _ => base,
        };
        format!("{dir}{location}")
    }
}

/// Parses an IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`; also `01-Jan-1970`).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.split_once(',').map(|(_, r)| r).unwrap_or(s).trim();
    let s = s.replace('-', " ");
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() < 4 {
        return None;
    }
    let day: i64 = f[0].parse().ok()?;
    let month = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        .iter()
        .position(|m| f[1].to_ascii_lowercase().starts_with(m))? as i64
        + 1;
    let mut year: i64 = f[2].parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let hms: Vec<i64> = f[3].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    if secs < 0 {
        return Some(SystemTime::UNIX_EPOCH);
    }
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Minimal HTML entity decoding for attribute values.
pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the first `<input … name="csrf" … value="…">` in `html` (attribute order free).
pub fn find_csrf(html: &str) -> Option<String> {
    let mut rest = html;
    while let Some(i) = rest.find("<input") {
        let tag_end = rest[i..].find('>').map(|j| i + j).unwrap_or(rest.len());
        let tag = &rest[i..tag_end];
        if tag.contains("name=\"csrf\"") || tag.contains("name='csrf'") || tag.contains("name=csrf ") {
            if let Some(v) = attr_value(tag, "value") {
                return Some(html_unescape(&v));
            }
        }
        rest = &rest[tag_end.min(rest.len())..];
        if rest.len() <= 1 {
            break;
        }
    }
    None
}

/// The value of attribute `name` inside one tag's text.
pub fn attr_value(tag: &str, name: &str) -> Option<String> {
    for q in ['"', '\''] {
        let pat = format!(" {name}={q}");
        if let Some(i) = tag.find(&pat) {
            let start = i + pat.len();
            let end = tag[start..].find(q)? + start;
            return Some(tag[start..end].to_string());
        }
    }
    None
}

/// The text between the first `before` and the next `after` in `html`.
pub fn extract(html: &str, before: &str, after: &str) -> Option<String> {
    let i = html.find(before)? + before.len();
    let j = html[i..].find(after)? + i;
    Some(html[i..j].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_found_in_any_attribute_order() {
        assert_eq!(find_csrf(r#"<form><input type="hidden" name="csrf" value="a&amp;b"></form>"#).as_deref(), Some("a&b"));
        assert_eq!(find_csrf(r#"<input value="XYZ" type=hidden name="csrf">"#).as_deref(), Some("XYZ"));
        assert_eq!(find_csrf(r#"<input name="email" value="x"><input name="csrf" value="T1">"#).as_deref(), Some("T1"));
        assert_eq!(find_csrf(r#"<input name="email" value="x">"#), None);
    }

    #[test]
    fn cookies_are_set_and_deleted() {
        let mut c = Client::new("http://127.0.0.1:1");
        c.store_set_cookie("__Host-anpi_session=abc; Path=/; Secure; HttpOnly; SameSite=Lax");
        c.store_set_cookie("other=1; Max-Age=3600");
        assert_eq!(c.cookie("__Host-anpi_session").as_deref(), Some("abc"));
        c.store_set_cookie("__Host-anpi_session=def; Path=/; Secure");
        assert_eq!(c.cookie("__Host-anpi_session").as_deref(), Some("def"));
        c.store_set_cookie("__Host-anpi_session=; Path=/; Max-Age=0");
        assert_eq!(c.cookie("__Host-anpi_session"), None);
        c.store_set_cookie("other=; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(c.cookie("other"), None);
        c.store_set_cookie("future=1; Expires=Fri, 01 Jan 2100 00:00:00 GMT");
        assert_eq!(c.cookie("future").as_deref(), Some("1"));
    }

    #[test]
    fn http_dates_and_urls() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784111777);
        assert_eq!(resolve("http://h:1/a/b", "/c"), "http://h:1/c");
        assert_eq!(resolve("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(resolve("http://h:1/a/b", "http://x/y"), "http://x/y");
        assert_eq!(extract("<b>x</b><i>y</i>", "<i>", "</i>").as_deref(), Some("y"));
        let c = Client::new("http://127.0.0.1:9/");
        assert_eq!(c.url("/p"), "http://127.0.0.1:9/p");
        assert_eq!(c.origin.as_deref(), Some("http://127.0.0.1:9"));
    }
}
