//! A small YAML writer for the compose file and the Kubernetes manifests: block style, keys in
//! the order they were added, and every string double-quoted (JSON's escapes are valid YAML), so
//! no value is ever read back as a boolean, a number or null (`no`, `on`, `0755`). Writing what
//! export needs takes less than a serializer dependency would, and the output is byte-stable.

#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Str(String),
    Int(u64),
    Bool(bool),
    List(Vec<Yaml>),
    Map(Map),
}

/// A mapping, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map(Vec<(String, Yaml)>);

impl Map {
    pub fn new() -> Map {
        Map::default()
    }

    pub fn with(mut self, key: &str, value: impl Into<Yaml>) -> Map {
        self.0.push((key.to_string(), value.into()));
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<Yaml>) {
        self.0.push((key.to_string(), value.into()));
    }

    /// Sets the key only when there is a value.
    pub fn opt(&mut self, key: &str, value: Option<impl Into<Yaml>>) {
        if let Some(value) = value {
            self.set(key, value);
        }
    }

    /// Sets the key only when the list has items.
    pub fn list(&mut self, key: &str, items: Vec<Yaml>) {
        if !items.is_empty() {
            self.set(key, Yaml::List(items));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Yaml {
    fn from(s: &str) -> Yaml {
        Yaml::Str(s.to_string())
    }
}

impl From<String> for Yaml {
    fn from(s: String) -> Yaml {
        Yaml::Str(s)
    }
}

impl From<u64> for Yaml {
    fn from(n: u64) -> Yaml {
        Yaml::Int(n)
    }
}

impl From<u32> for Yaml {
    fn from(n: u32) -> Yaml {
        Yaml::Int(n.into())
    }
}

impl From<bool> for Yaml {
    fn from(b: bool) -> Yaml {
        Yaml::Bool(b)
    }
}

impl From<Map> for Yaml {
    fn from(m: Map) -> Yaml {
        Yaml::Map(m)
    }
}

/// A list of strings.
pub fn strings<S: AsRef<str>>(items: &[S]) -> Yaml {
    Yaml::List(items.iter().map(|s| Yaml::Str(s.as_ref().to_string())).collect())
}

/// One document (a top-level mapping), ending in a newline.
pub fn document(map: &Map) -> String {
    let mut out = String::new();
    write_map(&mut out, map, 0);
    out
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Str(s) => Some(serde_json::to_string(s).unwrap_or_default()),
        Yaml::Int(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::List(items) if items.is_empty() => Some("[]".into()),
        Yaml::Map(map) if map.is_empty() => Some("{}".into()),
        _ => None,
    }
}

/// A key as written: plain when it cannot be mistaken for anything else, quoted otherwise.
fn key(k: &str) -> String {
    let plain = k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "y" | "n"
        );
    if plain { k.to_string() } else { serde_json::to_string(k).unwrap_or_default() }
}

fn write_map(out: &mut String, map: &Map, indent: usize) {
    for (i, (k, v)) in map.0.iter().enumerate() {
        // A mapping that is a list item starts on the dash's line.
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&key(k));
        out.push(':');
        write_value(out, v, indent);
    }
}

/// The value after `key:`, then its lines.
fn write_value(out: &mut String, value: &Yaml, indent: usize) {
    if let Some(s) = scalar(value) {
        out.push(' ');
        out.push_str(&s);
        out.push('\n');
        return;
    }
    out.push('\n');
    match value {
        Yaml::Map(map) => write_map(out, map, indent + 2),
        Yaml::List(items) => write_items(out, items, indent + 2),
        _ => {}
    }
}

fn write_items(out: &mut String, items: &[Yaml], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match (scalar(item), item) {
            (Some(s), _) => {
                out.push_str(&s);
                out.push('\n');
            }
            (None, Yaml::Map(map)) => write_map(out, map, indent + 2),
            (None, Yaml::List(inner)) => {
                out.push('\n');
                write_items(out, inner, indent + 2);
            }
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_style_with_every_string_quoted() {
        let mut m = Map::new().with("name", "no").with("count", 3u32).with("tty", true);
        m.set("args", strings(&["a b", "$x", "line\none"]));
        m.set("empty", Yaml::List(vec![]));
        let item = Map::new().with("name", "PORT").with("value", "8080");
        m.set("env", Yaml::List(vec![item.into()]));
        m.set("deploy", Map::new().with("replicas", 2u32).with("on", "x"));
        let expected = "name: \"no\"\ncount: 3\ntty: true\nargs:\n  - \"a b\"\n  - \"$x\"\n  - \"line\\none\"\n\
                        empty: []\nenv:\n  - name: \"PORT\"\n    value: \"8080\"\ndeploy:\n  replicas: 2\n  \"on\": \"x\"\n";
        assert_eq!(document(&m), expected);
    }
}
