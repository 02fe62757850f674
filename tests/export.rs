//! `bgrun export`: every example project and the fixture that sets every key, exported by the
//! built binary to each format, compared with golden files and checked by the format's own
//! validator: `systemd-analyze verify`, `docker-compose config`, `kubernetes-validate --strict`.
//! A validator missing is a failure, not a skip: `.ci/run` installs them.
//! `BGRUN_UPDATE_GOLDEN=1 cargo test --test export` rewrites the golden files.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Kubernetes version manifests are checked against (kubernetes-validate ships its schemas).
const KUBERNETES: &str = "1.35.0";
const FORMATS: [&str; 3] = ["systemd", "compose", "kubernetes"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every project exported: the examples and the everything fixture, by name.
fn projects() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("bgrun.toml").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.push(("everything".into(), root().join("tests/fixtures/export/everything")));
    out.sort();
    out
}

fn export(b: &Bgrun, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["export"];
    all.extend(args);
    b.cmd(&all).current_dir(dir).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The reports on stderr (JSON lines, as stderr is a pipe here; `--strict`'s error is a line of
/// its own).
fn reports(out: &Output) -> Vec<Value> {
    text(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Compares with the golden file (or rewrites it under BGRUN_UPDATE_GOLDEN). Absolute paths of
/// the project (systemd's) are written `@PROJECT@`, so the files hold wherever the tree is.
fn golden(name: &str, file: &str, actual: &str, dir: &Path) {
    let actual = actual.replace(&dir.canonicalize().unwrap().display().to_string(), "@PROJECT@");
    let path = root().join("tests/golden/export").join(name).join(file);
    if std::env::var_os("BGRUN_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{name}: the output differs from {} (BGRUN_UPDATE_GOLDEN=1 rewrites it):\n{actual}",
        path.display()
    );
}

/// A validator's command, or a failure saying how to get it.
fn validator(program: &str, args: &[&str], package: &str) -> Command {
    let found = Command::new(program).args(args).output().is_ok_and(|o| o.status.success());
    assert!(found, "`{program} {}` does not run: install {package} (`.ci/run` does)", args.join(" "));
    Command::new(program)
}

#[test]
fn every_project_exports_as_its_golden_files() {
    let b = Bgrun::new(SECS(120));
    for (name, dir) in projects() {
        for format in FORMATS {
            let out = export(&b, &dir, &[format]);
            assert!(out.status.success(), "{name} {format}: {}", text(&out.stderr));
            let again = export(&b, &dir, &[format]);
            assert_eq!(out.stdout, again.stdout, "{name} {format}: two exports differ");
            let stdout = text(&out.stdout);
            assert!(stdout.contains(&format!("from bgrun.toml (project {name})")), "{name} {format}: no header");
            // systemd's units are printed one after another: not one file of any kind.
            let extension = if format == "systemd" { "txt" } else { "yaml" };
            golden(&name, &format!("{format}.{extension}"), &stdout, &dir);
            let lines: Vec<String> = reports(&out).iter().map(Value::to_string).collect();
            golden(&name, &format!("{format}.not-exported.jsonl"), &(lines.join("\n") + "\n"), &dir);
        }
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let b = Bgrun::new(SECS(120));
    let verify = || validator("systemd-analyze", &["--version"], "systemd (Debian's `systemd` package)");
    let installed = installed_systemd();
    for (name, dir) in projects() {
        for version in ["252", "254"] {
            let units = b.home.join(format!("units-{name}-{version}"));
            let out = export(&b, &dir, &["systemd", "-o", units.to_str().unwrap(), "--systemd-version", version]);
            assert!(out.status.success(), "{name}: {}", text(&out.stderr));
            let files: Vec<PathBuf> = std::fs::read_dir(&units).unwrap().flatten().map(|e| e.path()).collect();
            assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "target")), "{name}: no target");
            let checked = verify().arg("verify").args(&files).output().unwrap();
            // Directives newer than this machine's systemd are the only thing it may not know.
            let newer = |l: &&str| installed < 254 && (l.contains("RestartSteps") || l.contains("RestartMaxDelaySec"));
            let stderr = text(&checked.stderr);
            let complaints: Vec<&str> = stderr.lines().filter(|l| !newer(l)).collect();
            assert!(
                checked.status.success() && complaints.is_empty(),
                "{name} (systemd {version}): systemd-analyze verify: {stderr}"
            );
        }
    }
}

/// The version of systemd on this machine (`systemd 252 (252.38-1~deb12u1)`).
fn installed_systemd() -> u32 {
    let out = Command::new("systemd-analyze").arg("--version").output();
    let first = out.map(|o| text(&o.stdout)).unwrap_or_default();
    first.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn the_newer_systemd_backs_off_as_bgrun_does() {
    let b = Bgrun::new(SECS(60));
    let dir = root().join("tests/fixtures/export/everything");
    let out = export(&b, &dir, &["systemd", "--systemd-version", "254"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    golden("everything", "systemd-254.txt", &text(&out.stdout), &dir);
    let api = text(&out.stdout);
    assert!(api.contains("RestartSec=1s\nRestartSteps=9\nRestartMaxDelaySec=300s\n"), "{api}");
}

#[test]
fn docker_compose_reads_the_file_as_written() {
    let b = Bgrun::new(SECS(180));
    let compose = || validator("docker-compose", &["version"], "docker-compose (Debian's `docker-compose` package)");
    for (name, dir) in projects() {
        let out_dir = b.home.join(format!("compose-{name}"));
        let out = export(&b, &dir, &["compose", "-o", out_dir.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let file = out_dir.join("compose.yaml");
        let written: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let checked = compose().arg("-f").arg(&file).arg("config").output().unwrap();
        assert!(checked.status.success(), "{name}: docker-compose config: {}", text(&checked.stderr));
        let normalised: Value = serde_saphyr::from_str(&text(&checked.stdout)).unwrap();
        let (ours, theirs) = (&written["services"], &normalised["services"]);
        let names = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        assert_eq!(names(ours), names(theirs), "{name}: the services");
        for service in names(ours) {
            for field in ["depends_on", "healthcheck", "image", "entrypoint", "command", "restart"] {
                let (a, b) = (&ours[&service][field], &theirs[&service][field]);
                match field {
                    // compose writes durations its own way (60s is 1m): the test is the same.
                    "healthcheck" => assert_eq!(a["test"], b["test"], "{name}: {service}.healthcheck"),
                    _ => assert_eq!(a, b, "{name}: {service}.{field}"),
                }
            }
        }
        if name == "everything" {
            let depends = &theirs["api"]["depends_on"];
            assert_eq!(depends["migrate"]["condition"], "service_completed_successfully", "{depends}");
            assert_eq!(depends["db"]["condition"], "service_healthy", "{depends}");
            assert_eq!(theirs["api"]["deploy"]["replicas"], 2);
            assert!(theirs.get("dev").is_some() && theirs.get("tool").is_none(), "a job without an image is left out");
        }
    }
}

#[test]
fn kubernetes_validate_accepts_the_manifests_in_strict_mode() {
    let b = Bgrun::new(SECS(300));
    let kubernetes_validate = || {
        let mut c = validator("python3", &["-m", "kubernetes_validate", "--version"], "kubernetes-validate (pip)");
        c.args(["-m", "kubernetes_validate"]);
        c
    };
    for (name, dir) in projects() {
        let out_dir = b.home.join(format!("kubernetes-{name}"));
        let out = export(&b, &dir, &["kubernetes", "-o", out_dir.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let file = out_dir.join("kubernetes.yaml");
        let checked = kubernetes_validate().args(["--strict", "-k", KUBERNETES]).arg(&file).output().unwrap();
        let report = text(&checked.stdout) + &text(&checked.stderr);
        assert!(checked.status.success(), "{name}: kubernetes-validate: {report}");
        assert!(!report.contains("WARN") && !report.contains("ERROR"), "{name}: {report}");
        let passed = report.lines().filter(|l| l.contains(" passed for resource ")).count();
        let documents = std::fs::read_to_string(&file).unwrap().matches("apiVersion:").count();
        assert_eq!(passed, documents, "{name}: every object is checked: {report}");
    }
}

#[test]
fn strict_writes_nothing_when_anything_is_left_out() {
    let b = Bgrun::new(SECS(60));
    let dir = root().join("tests/fixtures/export/everything");
    let out_dir = b.home.join("strict");
    let out = export(&b, &dir, &["compose", "--strict", "-o", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!out_dir.exists(), "nothing written");
    assert!(text(&out.stderr).contains("--strict"), "{}", text(&out.stderr));
    let reported = reports(&out);
    let tool = reported.iter().find(|r| r["not_exported"]["job"] == "tool").unwrap();
    assert_eq!(tool["not_exported"]["key"], "image", "{tool}");
    // Nothing left out: --strict changes nothing.
    let clean = b.home.join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    std::fs::write(clean.join("bgrun.toml"), "[jobs.a]\ncmd = ['sleep', '1000']\nimage = 'busybox'\n").unwrap();
    let out = export(&b, &clean, &["systemd", "--strict"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn a_file_with_problems_is_reported_and_nothing_is_written() {
    let b = Bgrun::new(SECS(60));
    let dir = b.home.join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bgrun.toml"), "[jobs.a]\ncmd = 'x'\nimage = 3\n").unwrap();
    let out_dir = dir.join("out");
    let out = export(&b, &dir, &["kubernetes", "-o", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let problems: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(problems["problems"][0]["line"], 3, "{problems}");
    assert!(!out_dir.exists());
    let missing = export(&b, &dir, &["systemd", "-f", "nowhere.toml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).starts_with("error: cannot read"), "{}", text(&missing.stderr));
    let unknown = export(&b, &dir, &["nomad"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn an_environment_is_laid_over_the_jobs() {
    let b = Bgrun::new(SECS(60));
    let dir = root().join("tests/fixtures/export/everything");
    let out = export(&b, &dir, &["kubernetes", "--env", "production"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifests = text(&out.stdout);
    assert!(manifests.starts_with("# Exported by `bgrun export kubernetes --env production` from bgrun.toml"));
    for variable in ["name: \"WORKERS\"", "value: \"warn\""] {
        assert!(manifests.contains(variable), "{variable}: {manifests}");
    }
    let out = export(&b, &dir, &["kubernetes", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
