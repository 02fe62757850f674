//! The dashboard's HTTP side against a real daemon and real jobs: `bgrun dashboard` itself, the
//! token and the Host/Origin checks, every API endpoint's answer checked against the OpenAPI
//! document the dashboard serves, the live streams, and `/metrics` read by Prometheus' own parser.

mod common;

use common::http::{Answer, Events, call};
use common::*;
use serde_json::{Value, json};

/// A daemon with a dashboard on a free port, and the token to use it.
struct Dashboard {
    b: Bgrun,
    port: u16,
    token: String,
}

impl Dashboard {
    fn start() -> Dashboard {
        let b = Bgrun::new(SECS(120));
        let port = free_port();
        let started = b.json(&["dashboard", "--port", &port.to_string()]);
        assert_eq!(started["started"], true);
        let url = started["url"].as_str().unwrap().to_string();
        assert!(url.starts_with(&format!("http://127.0.0.1:{port}/?token=")), "{url}");
        let token = std::fs::read_to_string(b.home.join("dashboard.token")).unwrap().trim().to_string();
        assert!(url.ends_with(&token));
        Dashboard { b, port, token }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let auth = self.bearer();
        let body = body.map(|b| b.to_string());
        call(self.port, method, &format!("/api/v1{path}"), &[("Authorization", &auth)], body.as_deref())
    }

    fn events(&self, path: &str) -> Events {
        let auth = self.bearer();
        let events = Events::open(self.port, &format!("/api/v1{path}"), &[("Authorization", &auth)]);
        assert_eq!(events.status, 200);
        events
    }
}

/// A project of two jobs, `db` and `web` after it, in its own directory.
fn project(b: &Bgrun) -> std::path::PathBuf {
    let dir = b.home.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bgrun.toml"),
        r#"[project]
name = "shop"

[jobs.db]
cmd = "echo db up; exec sleep 600"
ready-when = "db up"

[jobs.web]
cmd = "echo web up; exec sleep 600"
after = { db = "ready" }
"#,
    )
    .unwrap();
    dir.join("bgrun.toml")
}

#[test]
fn the_dashboard_command_starts_one_dashboard_and_stops_it() {
    let d = Dashboard::start();
    // A second call finds the running one.
    let again = d.b.json(&["dashboard", "--port", &d.port.to_string()]);
    assert_eq!(again["started"], false);
    assert!(again["url"].as_str().unwrap().contains(&format!(":{}/", d.port)));
    assert_eq!(d.b.state("bgrun-dashboard"), "ready");
    let pid = d.b.pid("bgrun-dashboard");
    assert!(d.b.json(&["dashboard", "stop"])["stopped"].as_bool().unwrap());
    wait_until("the dashboard to exit", SECS(10), || (!alive(pid)).then_some(()));
    assert!(std::net::TcpStream::connect(("127.0.0.1", d.port)).is_err(), "the port is still open");
    assert_eq!(d.b.json(&["dashboard", "stop"])["stopped"], false);
}

#[test]
fn an_explicit_busy_port_is_an_error_and_the_default_port_falls_back() {
    let b = Bgrun::new(SECS(60));
    let busy = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = b.run_raw(&["dashboard", "--port", &port]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy"), "{}", String::from_utf8_lossy(&out.stderr));
    // The default: 3000, or the next free port (3000 is held here, if nobody else holds it).
    let holder = std::net::TcpListener::bind(("127.0.0.1", 3000));
    let started = b.json(&["dashboard"]);
    let url = started["url"].as_str().unwrap();
    let port: u16 = url.split(':').nth(2).unwrap().split('/').next().unwrap().parse().unwrap();
    assert!((3001..3100).contains(&port), "{url}");
    drop(holder);
    b.json(&["dashboard", "stop"]);
}

#[test]
fn without_the_token_or_from_elsewhere_requests_are_refused() {
    let d = Dashboard::start();
    let port = d.port;
    for path in ["/", "/api/v1/jobs", "/metrics", "/api/v1/openapi.json", "/app.js"] {
        assert_eq!(call(port, "GET", path, &[], None).status, 401, "{path} without a token");
    }
    assert_eq!(call(port, "GET", "/api/v1/jobs", &[("Authorization", "Bearer nope")], None).status, 401);
    assert_eq!(call(port, "GET", "/?token=nope", &[], None).status, 401);
    let auth = d.bearer();
    // DNS rebinding: a name that is not allowed, even with the token.
    let rebound = call(port, "GET", "/api/v1/jobs", &[("Authorization", &auth), ("Host", "evil.example:80")], None);
    assert_eq!(rebound.status, 403);
    assert_eq!(call(port, "GET", "/api/v1/jobs", &[("Authorization", &auth), ("Host", "localhost")], None).status, 200);
    // CSRF: a change asked from another site's page.
    d.b.json(&["run", "--name", "quiet", "--", "sleep", "600"]);
    let before = d.b.state("quiet");
    let foreign = [("Authorization", auth.as_str()), ("Origin", "http://evil.example")];
    assert_eq!(call(port, "POST", "/api/v1/jobs/quiet/kill", &foreign, None).status, 403);
    let cross = [("Authorization", auth.as_str()), ("Sec-Fetch-Site", "cross-site")];
    assert_eq!(call(port, "POST", "/api/v1/jobs/quiet/kill", &cross, None).status, 403);
    assert_eq!(d.b.state("quiet"), before, "a refused request changed nothing");
    // The token URL becomes a cookie the page then uses.
    let signed_in = call(port, "GET", &format!("/?token={}", d.token), &[], None);
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.header("location"), Some("/"));
    let cookie = signed_in.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let page = call(port, "GET", "/", &[("Cookie", pair)], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html"));
    let own = format!("http://127.0.0.1:{port}");
    let from_page = [("Cookie", pair), ("Origin", own.as_str())];
    assert_eq!(call(port, "POST", "/api/v1/jobs/quiet/kill", &from_page, None).status, 200);
    assert_eq!(d.b.state("quiet"), "killed");
}

/// The schema the OpenAPI document gives for `method path` answering `status`, made a document of
/// its own (with the components it refers to).
fn answer_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "the document has no {method} {path}");
    let schema = &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "the document gives no {status} answer for {method} {path}");
    json!({ "allOf": [schema], "components": doc["components"] })
}

/// Checks an answer against the document, and notes which operation it exercised.
fn check(doc: &Value, seen: &mut Vec<String>, method: &str, path: &str, answer: &Answer, status: u16) -> Value {
    assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
    let schema = answer_schema(doc, method, path, status);
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema of {method} {path}: {e}"));
    let body = answer.json();
    let errors: Vec<String> = validator.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} does not match its schema: {errors:?}\n{body}");
    seen.push(format!("{method} {path}"));
    body
}

#[test]
fn every_endpoint_answers_in_the_shape_its_openapi_document_gives() {
    let d = Dashboard::start();
    let file = project(&d.b);
    let file = file.to_str().unwrap();
    let doc = d.api("GET", "/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut seen = vec!["get /openapi.json".to_string()];
    let seen = &mut seen;

    check(&doc, seen, "get", "/daemon", &d.api("GET", "/daemon", None), 200);
    let plan = d.api("POST", "/projects/plan", Some(json!({ "file": file })));
    let plan = check(&doc, seen, "post", "/projects/plan", &plan, 200);
    assert_eq!(plan["changes"].as_array().unwrap().len(), 2, "{plan}");
    let up =
        check(&doc, seen, "post", "/projects/up", &d.api("POST", "/projects/up", Some(json!({ "file": file }))), 200);
    assert_eq!(up["ok"], true, "{up}");
    let projects = check(&doc, seen, "get", "/projects", &d.api("GET", "/projects", None), 200);
    assert_eq!(projects[0]["name"], "shop");
    assert_eq!(projects[0]["file"], file);
    let graph = check(&doc, seen, "get", "/projects/{project}/graph", &d.api("GET", "/projects/shop/graph", None), 200);
    assert_eq!(graph["edges"], json!([{ "from": "db", "to": "web", "condition": "ready" }]));

    let args =
        json!({ "args": ["--name", "echo", "--ready-when", "hello", "--", "sh", "-c", "echo hello; exec sleep 600"] });
    let run = check(&doc, seen, "post", "/jobs", &d.api("POST", "/jobs", Some(args)), 201);
    assert_eq!(run["name"], "echo");
    wait_until("echo to be ready", SECS(10), || (d.b.state("echo") == "ready").then_some(()));
    let list = check(&doc, seen, "get", "/jobs", &d.api("GET", "/jobs", None), 200);
    assert!(list.as_array().unwrap().iter().any(|j| j["name"] == "echo"));
    let status = check(&doc, seen, "get", "/jobs/{job}", &d.api("GET", "/jobs/echo", None), 200);
    assert_eq!(status["spec"]["cmd"], json!(["sh", "-c", "echo hello; exec sleep 600"]));
    let logs =
        check(&doc, seen, "get", "/jobs/{job}/logs", &d.api("GET", "/jobs/echo/logs?lines=5&stream=stdout", None), 200);
    assert_eq!(logs["lines"][0]["content"], "hello");
    let events = check(&doc, seen, "get", "/jobs/{job}/events", &d.api("GET", "/jobs/echo/events", None), 200);
    assert!(!events.as_array().unwrap().is_empty());
    let stats = check(&doc, seen, "get", "/jobs/{job}/stats", &d.api("GET", "/jobs/echo/stats", None), 200);
    assert!(stats["processes"].as_u64().unwrap() >= 1);
    let restarted = check(&doc, seen, "post", "/jobs/{job}/restart", &d.api("POST", "/jobs/echo/restart", None), 200);
    assert_eq!(restarted["name"], "echo");
    let killed = check(&doc, seen, "post", "/jobs/{job}/kill", &d.api("POST", "/jobs/echo/kill", None), 200);
    assert_eq!(killed["killed"].as_array().unwrap().len(), 1);
    let removed = check(&doc, seen, "delete", "/jobs/{job}", &d.api("DELETE", "/jobs/echo", None), 200);
    assert_eq!(removed["removed"].as_array().unwrap().len(), 1);
    let down = check(
        &doc,
        seen,
        "post",
        "/projects/down",
        &d.api("POST", "/projects/down", Some(json!({ "file": file }))),
        200,
    );
    assert_eq!(down["stopped"].as_array().unwrap().len(), 2);

    // Errors have the documented shape and a status from their kind.
    let missing = d.api("GET", "/jobs/nosuchjob", None);
    assert_eq!(missing.status, 404);
    let schema = json!({ "allOf": [doc["paths"]["/jobs/{job}"]["get"]["responses"]["default"]["content"]["application/json"]["schema"]], "components": doc["components"] });
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&missing.json()), "{}", missing.body);
    assert_eq!(missing.json()["kind"], "not_found");
    let bad = d.api("POST", "/jobs", Some(json!({ "args": ["--restart", "sometimes", "--", "true"] })));
    assert_eq!(bad.status, 400, "{}", bad.body);

    // The streams are described, and exercised by the test below.
    seen.extend(["get /jobs/{job}/logs/follow".to_string(), "get /events".to_string()]);
    let documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| format!("{m} {path}")))
        .collect();
    let untested: Vec<&String> = documented.iter().filter(|op| !seen.contains(op)).collect();
    assert!(untested.is_empty(), "documented but not checked: {untested:?}");

    // The README's table lists exactly the documented endpoints.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = &readme[readme.find("<!-- api:start -->").unwrap()..readme.find("<!-- api:end -->").unwrap()];
    let mut listed: Vec<String> = table
        .lines()
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
            let path = cells.get(2)?.strip_prefix("/api/v1")?;
            Some(format!("{} {path}", cells[1].to_lowercase()))
        })
        .collect();
    let mut documented = documented.clone();
    listed.sort();
    documented.sort();
    assert_eq!(listed, documented, "the README's API table and the OpenAPI document differ");

    // The document itself is valid OpenAPI 3.1 (checked by openapi-spec-validator).
    let path = d.b.home.join("openapi.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let validated = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, json\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))",
        ])
        .arg(&path)
        .output()
        .expect("python3 (.ci/run installs it)");
    assert!(
        validated.status.success(),
        "openapi-spec-validator (.ci/run installs it with pip) rejects the document: {}",
        String::from_utf8_lossy(&validated.stderr)
    );
}

#[test]
fn the_job_list_and_a_log_are_followed_live() {
    let d = Dashboard::start();
    let mut jobs = d.events("/events");
    jobs.until("jobs", |list| list.as_array().unwrap().iter().any(|j| j["name"] == "bgrun-dashboard"));
    // A job started elsewhere (the CLI) shows up without asking again.
    d.b.json(&[
        "run",
        "--name",
        "talker",
        "--",
        "sh",
        "-c",
        "echo first; while read line; do echo \"got $line\"; done",
    ]);
    jobs.until("jobs", |list| list.as_array().unwrap().iter().any(|j| j["name"] == "talker"));
    // CPU and memory come while the page is open.
    let stats = jobs.until("stats", |s| s.as_object().is_some_and(|m| !m.is_empty()));
    assert!(stats.as_object().unwrap().values().all(|s| s["rss_mb"].is_u64()));

    let mut log = d.events("/jobs/talker/logs/follow?lines=10");
    log.until("lines", |lines| lines.as_array().unwrap().iter().any(|l| l["content"] == "first"));
    d.b.json(&["send", "talker", "hello", "--enter"]);
    log.until("lines", |lines| lines.as_array().unwrap().iter().any(|l| l["content"] == "got hello"));
    d.b.json(&["kill", "talker"]);
    let end = log.until("end", |_| true);
    assert_eq!(end["state"], "killed");
    jobs.until("jobs", |list| list.as_array().unwrap().iter().any(|j| j["name"] == "talker" && j["state"] == "killed"));

    let missing = call(d.port, "GET", "/api/v1/jobs/nosuchjob/logs/follow", &[("Authorization", &d.bearer())], None);
    assert_eq!(missing.status, 404);
}

#[test]
fn metrics_are_read_by_prometheus_own_parser() {
    let d = Dashboard::start();
    d.b.json(&["run", "--name", "worker", "--ready-when", "up", "--", "sh", "-c", "echo up; exec sleep 600"]);
    // A health check that passes (a command), so its verdict and its time are exported too.
    let checked = ["run", "--name", "checked", "--health-check-exec", "true", "--health-interval", "100ms"];
    d.b.json(&[&checked[..], &["--", "sleep", "600"]].concat());
    wait_until("worker to be ready", SECS(10), || (d.b.state("worker") == "ready").then_some(()));
    wait_until("a health check of checked", SECS(10), || {
        d.b.json(&["stats", "checked"])["health"]["healthy"].as_bool()
    });
    let metrics = call(d.port, "GET", "/metrics", &[("Authorization", &d.bearer())], None);
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    // prometheus_client parses the text into families; print each sample as JSON for the checks.
    let parser = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n    for s in f.samples:\n        \
        print(json.dumps({'family': f.name, 'type': f.type, 'name': s.name, 'labels': s.labels, 'value': s.value}))";
    let mut child = std::process::Command::new("python3")
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (.ci/run installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(metrics.body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client (.ci/run installs it with pip) rejects /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        metrics.body
    );
    let samples: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sample = |name: &str, job: &str| {
        samples
            .iter()
            .find(|s| s["name"] == name && s["labels"]["job"] == job)
            .unwrap_or_else(|| panic!("no {name} for {job} in {}", metrics.body))
            .clone()
    };
    assert_eq!(sample("bgrun_job_ready", "worker")["value"], 1.0);
    assert_eq!(sample("bgrun_job_restarts_total", "worker")["type"], "counter");
    assert!(sample("bgrun_job_memory_rss_bytes", "worker")["value"].as_f64().unwrap() > 0.0);
    assert!(sample("bgrun_job_uptime_seconds", "worker")["value"].as_f64().is_some());
    assert!(sample("bgrun_job_cpu_percent", "worker")["value"].as_f64().is_some());
    let state = samples
        .iter()
        .find(|s| s["name"] == "bgrun_job_state" && s["labels"]["job"] == "worker" && s["value"] == 1.0)
        .unwrap();
    assert_eq!(state["labels"]["state"], "ready");
    assert_eq!(sample("bgrun_job_healthy", "checked")["value"], 1.0);
    assert!(sample("bgrun_job_health_check_seconds", "checked")["value"].as_f64().unwrap() > 0.0);
    assert!(!samples.iter().any(|s| s["name"] == "bgrun_job_healthy" && s["labels"]["job"] == "worker"));
    let jobs = samples.iter().find(|s| s["name"] == "bgrun_jobs").unwrap();
    assert_eq!(jobs["value"], 3.0);
    assert!(samples.iter().any(|s| s["name"] == "bgrun_reconcile_passes_total" && s["value"].as_f64().unwrap() > 0.0));
}
