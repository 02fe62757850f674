//! A small HTTP/1.0 client for tests of the dashboard: any method, any headers (a wrong Host or a
//! foreign Origin are what some tests send), and Server-Sent Events read as they come.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut text = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body.unwrap_or_default());
    stream.write_all(text.as_bytes()).unwrap();
    stream
}

fn head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status =
        line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    (status, headers)
}

/// One request; the whole answer.
pub fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let mut reader = BufReader::new(send(port, method, path, headers, body));
    let (status, headers) = head(&mut reader);
    let mut body = String::new();
    reader.read_to_string(&mut body).unwrap();
    Answer { status, headers, body }
}

/// A stream of Server-Sent Events.
pub struct Events {
    pub status: u16,
    reader: BufReader<TcpStream>,
}

impl Events {
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Events {
        let mut reader = BufReader::new(send(port, "GET", path, headers, None));
        let (status, _) = head(&mut reader);
        Events { status, reader }
    }

    /// The next event: its name and data (keep-alive comments skipped).
    pub fn next(&mut self) -> (String, String) {
        let (mut name, mut data) = (String::from("message"), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "the event stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() && !data.is_empty() {
                return (name, data);
            }
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }

    /// Events until one named `name` whose data satisfies `check`.
    pub fn until(&mut self, name: &str, mut check: impl FnMut(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let (event, data) = self.next();
            if event == name {
                let value: serde_json::Value = serde_json::from_str(&data).unwrap();
                if check(&value) {
                    return value;
                }
            }
        }
    }
}
