//! Who may use the dashboard. A random token kept in `BGRUN_HOME` (mode 0600) is the key: the URL
//! `bgrun dashboard` prints carries it once, and the page trades it for an HttpOnly, SameSite=
//! Strict cookie; API clients send `Authorization: Bearer TOKEN`. A request whose Host is a name
//! not allowed is refused (DNS rebinding), and so is a change asked from another origin (CSRF).

use super::App;
use crate::error::{Error, Result};
use crate::home::Home;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::io::{Read, Write};
use std::sync::Arc;

pub const COOKIE: &str = "bgrun_token";

pub struct Token(String);

impl Token {
    /// The token in `BGRUN_HOME/dashboard.token`, made (32 random bytes, hex) if there is none.
    pub fn load_or_create(home: &Home) -> Result<Token> {
        let path = token_file(home);
        if let Ok(text) = std::fs::read_to_string(&path)
            && text.trim().len() >= 32
        {
            return Ok(Token(text.trim().to_string()));
        }
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| Error::context("cannot read random bytes for the dashboard's token", e))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Home::open_private(&path)
            .and_then(|mut f| f.set_len(0).and_then(|()| f.write_all(token.as_bytes())))
            .map_err(|e| Error::context(format!("cannot write {}", path.display()), e))?;
        Ok(Token(token))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

pub fn token_file(home: &Home) -> std::path::PathBuf {
    home.root().join("dashboard.token")
}

/// The names the dashboard answers to: any IP address (a rebinding attack needs a name),
/// `localhost`, and those given with `--allow-host`.
pub struct Hosts(Vec<String>);

impl Hosts {
    pub fn new(mut names: Vec<String>) -> Hosts {
        names.push("localhost".into());
        Hosts(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
    }

    fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        name.parse::<std::net::IpAddr>().is_ok() || self.0.contains(&name)
    }
}

/// `example.com:3000` → `example.com`; `[::1]:3000` → `::1`.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host.clone(), |(h, _)| h.to_string())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Checks every request: Host, then origin for changes, then the token. `/?token=T` with the
/// right token sets the cookie and sends the browser to `/` (so the token leaves the address bar).
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !app.allowed.allows(host) {
        return refuse(StatusCode::FORBIDDEN, "this host name is not allowed (start the dashboard with --allow-host)");
    }
    if changes(request.method()) && !same_origin(headers, host) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    if request.uri().path() == "/"
        && let Some(given) = query_token(request.uri().query())
    {
        if !app.token.matches(&given) {
            return refuse(StatusCode::UNAUTHORIZED, "wrong token");
        }
        let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", app.token.as_str());
        return ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response();
    }
    if !presented(headers).is_some_and(|t| app.token.matches(&t)) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "not signed in: open the URL `bgrun dashboard` prints, or send Authorization: Bearer <token>",
        );
    }
    next.run(request).await
}

fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A change may come from the page itself or from a program (which sends no Origin); a browser
/// on another site's page sends that site as Origin, or says so in Sec-Fetch-Site.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site" || s == "same-site")
    {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
    }
}

/// The token a request presents: a bearer token, or the page's cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')).map(str::to_string))
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| pair.strip_prefix("token=")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_without_their_port() {
        assert_eq!(host_name("Example.com:3000"), "example.com");
        assert_eq!(host_name("[::1]:3000"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        let hosts = Hosts::new(vec!["bgrun.example.org".into()]);
        assert!(hosts.allows("127.0.0.1:3000"));
        assert!(hosts.allows("[::1]:3000"));
        assert!(hosts.allows("localhost:3000"));
        assert!(hosts.allows("bgrun.example.org"));
        assert!(!hosts.allows("evil.example:3000"));
        assert!(!hosts.allows(""));
    }

    #[test]
    fn the_token_is_found_in_a_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=b; bgrun_token=abc; c=d".parse().unwrap());
        assert_eq!(presented(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented(&headers).as_deref(), Some("xyz"));
        let token = Token("abc".into());
        assert!(token.matches("abc") && !token.matches("abd") && !token.matches("ab"));
    }

    #[test]
    fn changes_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers, "127.0.0.1:3000"));
        headers.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert!(same_origin(&headers, "127.0.0.1:3000"));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers, "127.0.0.1:3000"));
    }
}
