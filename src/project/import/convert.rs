//! Conversions every importer needs: values read as text, durations, job names, and paths moved
//! from the source file's directory to the output's.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// A scalar as text: strings as they are, numbers and booleans as written. Lists and objects are
/// not text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An environment variable's value as the source's runtime would pass it: objects and lists as
/// JSON (what Node's `String()` of them would be is not useful to anyone), null as empty.
pub fn env_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => text(other).unwrap_or_else(|| other.to_string()),
    }
}

/// A whole number, from a number or a string of digits.
pub fn whole(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Milliseconds as a bgrun duration: "1600ms", "5s", "2m".
pub fn millis(ms: u64) -> String {
    if ms >= 60_000 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Whole seconds as a bgrun duration.
pub fn seconds(s: u64) -> String {
    millis(s * 1000)
}

/// A valid, unused job name for `raw`, and a note when it had to change. bgrun names are letters,
/// digits, '.', '_' and '-', starting with a letter or digit.
pub fn job_name(raw: &str, taken: &mut BTreeSet<String>) -> (String, Option<String>) {
    let mut name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    // Runs of replaced characters read better as one dash.
    while name.contains("--") && !raw.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).trim_end_matches('-');
    let mut name = if name.is_empty() { "job".to_string() } else { name.to_string() };
    if taken.contains(&name) {
        let base = name.clone();
        let mut n = 2;
        while taken.contains(&format!("{base}-{n}")) {
            n += 1;
        }
        name = format!("{base}-{n}");
    }
    taken.insert(name.clone());
    let note = (name != raw)
        .then(|| format!("named {raw:?} in the source; bgrun names are letters, digits, '.', '_' and '-', and unique"));
    (name, note)
}

/// `path` (relative to the source file's directory, or absolute) as seen from the output file's
/// directory, given `base`: the source's directory relative to the output's (empty when they are
/// the same, absolute when no relative way leads there).
pub fn rebase(base: &Path, path: &str) -> String {
    if Path::new(path).is_absolute() {
        return path.to_string();
    }
    let joined = normalize(&base.join(path));
    if joined.as_os_str().is_empty() { ".".to_string() } else { joined.display().to_string() }
}

/// `target` as seen from `from`, both relative to the same directory (or absolute): a job's log
/// file named from the project's directory, written relative to the job's cwd.
pub fn relative(from: &str, target: &str) -> String {
    let (from, target) = (normalize(Path::new(from)), normalize(Path::new(target)));
    if target.is_absolute() || from.is_absolute() || from.components().any(|c| c == Component::ParentDir) {
        return target.display().to_string();
    }
    let mut up = PathBuf::new();
    let mut rest = target.as_path();
    for part in from.components() {
        match rest.strip_prefix(part) {
            Ok(r) if up.as_os_str().is_empty() => rest = r,
            _ => up.push(".."),
        }
    }
    up.join(rest).display().to_string()
}

/// The relative path from directory `from` to directory `to`, both absolute and canonical; `to`
/// itself when there is no common root.
pub fn path_between(from: &Path, to: &Path) -> PathBuf {
    let common = from.components().zip(to.components()).take_while(|(a, b)| a == b).count();
    if common <= 1 && from != to {
        return to.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for part in to.components().skip(common) {
        out.push(part);
    }
    out
}

/// `a/./b/../c` as `a/c`, without looking at the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A signal number as its name (`15` → `SIGTERM`).
pub fn signal_name(number: i64) -> Option<String> {
    let n = i32::try_from(number).ok()?;
    nix::sys::signal::Signal::try_from(n).ok().map(|s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_as_text() {
        assert_eq!(text(&json!("a")).as_deref(), Some("a"));
        assert_eq!(text(&json!(3000)).as_deref(), Some("3000"));
        assert_eq!(text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(text(&json!([1])), None);
        assert_eq!(env_value(&json!(null)), "");
        assert_eq!(env_value(&json!({"a": 1})), "{\"a\":1}");
        assert_eq!(whole(&json!("42")), Some(42));
        assert_eq!(whole(&json!(-1)), None);
    }

    #[test]
    fn durations() {
        assert_eq!(millis(1600), "1600ms");
        assert_eq!(millis(5000), "5s");
        assert_eq!(millis(120_000), "2m");
        assert_eq!(millis(0), "0s");
        assert_eq!(seconds(90), "90s");
    }

    #[test]
    fn names_are_made_valid_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(job_name("api", &mut taken), ("api".to_string(), None));
        let (name, note) = job_name("my app (v2)", &mut taken);
        assert_eq!(name, "my-app-v2");
        assert!(note.unwrap().contains("\"my app (v2)\""));
        assert_eq!(job_name("api", &mut taken).0, "api-2");
        assert_eq!(job_name("_worker", &mut taken).0, "worker");
        assert_eq!(job_name("!!!", &mut taken).0, "job");
        for name in taken {
            assert!(crate::spec::validate_name(&name).is_ok(), "{name}");
        }
    }

    #[test]
    fn paths_move_to_the_output_directory() {
        assert_eq!(rebase(Path::new(""), "api"), "api");
        assert_eq!(rebase(Path::new(""), "./api/"), "api");
        assert_eq!(rebase(Path::new(""), "."), ".");
        assert_eq!(rebase(Path::new("deploy"), "../api"), "api");
        assert_eq!(rebase(Path::new("deploy"), "."), "deploy");
        assert_eq!(rebase(Path::new("deploy"), "/srv/api"), "/srv/api");
        assert_eq!(relative("api", "logs/api.log"), "../logs/api.log");
        assert_eq!(relative("", "logs/api.log"), "logs/api.log");
        assert_eq!(relative("logs", "logs/api.log"), "api.log");
        assert_eq!(relative("a/b", "a/c/x.log"), "../c/x.log");
        assert_eq!(path_between(Path::new("/w/p"), Path::new("/w/p")), PathBuf::new());
        assert_eq!(path_between(Path::new("/w/p"), Path::new("/w/p/deploy")), PathBuf::from("deploy"));
        assert_eq!(path_between(Path::new("/w/out"), Path::new("/w/p")), PathBuf::from("../p"));
        assert_eq!(path_between(Path::new("/home/x"), Path::new("/srv/p")), PathBuf::from("/srv/p"));
    }

    #[test]
    fn signals_by_number() {
        assert_eq!(signal_name(15).as_deref(), Some("SIGTERM"));
        assert_eq!(signal_name(2).as_deref(), Some("SIGINT"));
        assert_eq!(signal_name(999), None);
    }
}
