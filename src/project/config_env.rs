//! A TOML settings file as environment variables (`config = "production.toml"`): every value
//! becomes one variable named by its path, `[server] port = 3000` → `SERVER_PORT=3000`.
//!
//! The rules: table names and keys are joined with `_` and upper-cased, and any character that
//! cannot be in a variable name (`-`, `.`, spaces…) becomes `_`; strings are taken as they are,
//! numbers, booleans and dates as TOML writes them; an array of values is one variable, its
//! values joined with commas (`hosts = ["a", "b"]` → `HOSTS=a,b`); an array of tables numbers its
//! tables from 0 (`[[upstream]] host = "a"` → `UPSTREAM_0_HOST=a`).

use std::collections::BTreeMap;
use std::path::Path;
use toml_edit::{Item, Table, Value};

/// The default settings file, looked for in a job's working directory.
pub const DEFAULT_FILE: &str = ".config.toml";

/// The variables of a settings file, or why it cannot be read: a message with the file's
/// path, line and column (`production.toml:3:9: …`).
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    flatten(&text).map_err(|(message, offset)| {
        let (line, column) = position(&text, offset);
        format!("{}:{line}:{column}: {message}", path.display())
    })
}

/// The variables of a settings file's text, or its error and where (a byte offset).
pub fn flatten(text: &str) -> Result<BTreeMap<String, String>, (String, usize)> {
    let doc: toml_edit::Document<String> = text
        .parse()
        .map_err(|e: toml_edit::TomlError| (e.message().trim().to_string(), e.span().map_or(0, |s| s.start)))?;
    let mut vars = BTreeMap::new();
    table(doc.as_table(), "", &mut vars);
    Ok(vars)
}

fn table(t: &Table, prefix: &str, vars: &mut BTreeMap<String, String>) {
    for (key, item) in t.iter() {
        let name = join(prefix, key);
        match item {
            Item::Table(inner) => table(inner, &name, vars),
            Item::ArrayOfTables(tables) => {
                for (i, inner) in tables.iter().enumerate() {
                    table(inner, &join(&name, &i.to_string()), vars);
                }
            }
            Item::Value(v) => value(v, &name, vars),
            Item::None => {}
        }
    }
}

fn value(v: &Value, name: &str, vars: &mut BTreeMap<String, String>) {
    match v {
        Value::InlineTable(t) => {
            for (key, inner) in t.iter() {
                value(inner, &join(name, key), vars);
            }
        }
        Value::Array(items) => {
            let words: Vec<String> = items.iter().map(scalar).collect();
            vars.insert(name.to_string(), words.join(","));
        }
        other => {
            vars.insert(name.to_string(), scalar(other));
        }
    }
}

/// A value as one word: a string as it is, anything else as TOML writes it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.value().clone(),
        other => other.clone().decorated("", "").to_string(),
    }
}

fn join(prefix: &str, key: &str) -> String {
    let key: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if prefix.is_empty() { key } else { format!("{prefix}_{key}") }
}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_keys_and_values_become_variables() {
        let text = r#"
name = "shop"
debug = false

[server]
port = 3000
max-conns = 1.5
hosts = ["a.example", "b.example"]
tls = { cert = "c.pem" }

[database.primary]
url = "postgres://db/shop"

[[upstream]]
host = "u1"
[[upstream]]
host = "u2"
"#;
        let vars = flatten(text).unwrap();
        let want: BTreeMap<String, String> = [
            ("NAME", "shop"),
            ("DEBUG", "false"),
            ("SERVER_PORT", "3000"),
            ("SERVER_MAX_CONNS", "1.5"),
            ("SERVER_HOSTS", "a.example,b.example"),
            ("SERVER_TLS_CERT", "c.pem"),
            ("DATABASE_PRIMARY_URL", "postgres://db/shop"),
            ("UPSTREAM_0_HOST", "u1"),
            ("UPSTREAM_1_HOST", "u2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, want);
    }

    #[test]
    fn a_malformed_file_says_where() {
        let dir = std::env::temp_dir().join(format!("bgrun-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("production.toml");
        std::fs::write(&path, "[server]\nport = 30 00\n").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.starts_with(&format!("{}:2:", path.display())), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
