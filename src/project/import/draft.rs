//! What every importer produces: a project drafted key by key, each key with the note that says
//! what differs from the source, and the source keys that could not be carried over. One renderer
//! turns it into `bgrun.toml` text, so the three formats share the file's layout.

use serde::Serialize;
use std::collections::BTreeMap;
use toml_edit::{DocumentMut, Item, Table, Value};

/// The order keys are written in: what runs, where, with what; when it starts; how it is
/// restarted; how it stops; where its output goes.
const ORDER: &[&str] = &[
    "cmd",
    "cwd",
    "env-file",
    "env",
    "workspace",
    "disabled",
    "after",
    "oneshot",
    "daemonizes",
    "pidfile",
    "replicas",
    "pty",
    "cols",
    "rows",
    "allocate-port",
    "ready-when",
    "ready-when-regex",
    "ready-when-port",
    "ready-when-url",
    "ready-when-file",
    "ready-when-notify",
    "ready-when-exec",
    "ready-timeout",
    "health-check-url",
    "health-check-port",
    "health-check-exec",
    "health-interval",
    "health-timeout",
    "health-threshold",
    "health-start-period",
    "restart",
    "backoff",
    "max-restarts",
    "min-uptime",
    "restart-delay",
    "stop-exit-codes",
    "cron",
    "max-rss",
    "max-runtime",
    "watch",
    "watch-ignore",
    "restart-with-dependencies",
    "stop-signal",
    "stop-command",
    "kill-mode",
    "grace",
    "stdout",
    "stderr",
    "log",
    "log-timestamps",
    "log-max-size",
    "log-max-files",
];

/// A source key bgrun cannot express, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    /// The source file's name.
    pub file: String,
    /// The app (process type, process) as the source names it; none for a key of the whole file.
    pub app: Option<String>,
    pub key: String,
    pub reason: String,
}

impl Unsupported {
    /// One line for a person: `ecosystem.config.js, app "api": wait_ready: ...`.
    pub fn line(&self, kind: &str) -> String {
        match &self.app {
            Some(app) => format!("{}, {kind} {app:?}: `{}` not imported: {}", self.file, self.key, self.reason),
            None => format!("{}: `{}` not imported: {}", self.file, self.key, self.reason),
        }
    }
}

/// A key's value and, when the translation is not exact, what differs.
#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    note: Option<String>,
}

/// One job being drafted.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// Where it came from, for the comment above it: `app "api"`, `line 3`, `process "db"`.
    pub origin: String,
    /// Comments under that one (a renamed job, a description).
    pub notes: Vec<String>,
    keys: BTreeMap<&'static str, Entry>,
    pub env: BTreeMap<String, String>,
    env_notes: Vec<String>,
    /// Named environments: `[jobs.<job>.environments.<name>]`.
    pub environments: BTreeMap<String, BTreeMap<String, String>>,
}

impl Job {
    pub fn new(name: String, origin: String) -> Job {
        Job {
            name,
            origin,
            notes: Vec::new(),
            keys: BTreeMap::new(),
            env: BTreeMap::new(),
            env_notes: Vec::new(),
            environments: BTreeMap::new(),
        }
    }

    /// Sets a key that means what the source meant.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        debug_assert!(ORDER.contains(&key), "{key} has no place in ORDER");
        self.keys.insert(key, Entry { value: value.into(), note: None });
    }

    /// Sets a key whose meaning differs from the source's, saying how in a comment above it.
    pub fn approx(&mut self, key: &'static str, value: impl Into<Value>, note: impl Into<String>) {
        debug_assert!(ORDER.contains(&key), "{key} has no place in ORDER");
        self.keys.insert(key, Entry { value: value.into(), note: Some(note.into()) });
    }

    /// Adds a note to a key already set (a second reason it differs).
    pub fn add_note(&mut self, key: &'static str, note: &str) {
        if let Some(entry) = self.keys.get_mut(key) {
            entry.note = Some(match entry.note.take() {
                Some(n) => format!("{n}; {note}"),
                None => note.to_string(),
            });
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// A note above the job's environment.
    pub fn env_note(&mut self, note: impl Into<String>) {
        self.env_notes.push(note.into());
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        let mut header = format!("\n# from {}\n", self.origin);
        for note in &self.notes {
            header.push_str(&comment(note));
        }
        table.decor_mut().set_prefix(header);
        for key in ORDER {
            if *key == "env" {
                if !self.env.is_empty() {
                    table.insert("env", Item::Table(dotted(&self.env, &self.env_notes)));
                }
                continue;
            }
            let Some(entry) = self.keys.get(key) else { continue };
            table.insert(key, Item::Value(entry.value.clone()));
            if let Some(note) = &entry.note
                && let Some(mut k) = table.key_mut(key)
            {
                k.leaf_decor_mut().set_prefix(comment(note));
            }
        }
        if !self.environments.is_empty() {
            let mut all = Table::new();
            all.set_implicit(true);
            for (name, vars) in &self.environments {
                all.insert(name, Item::Table(plain(vars)));
            }
            table.insert("environments", Item::Table(all));
        }
        table
    }
}

/// A whole project being drafted from one source file.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// The source file's name, as comments and reports name it.
    pub file: String,
    /// The project's name, when the source gives one.
    pub project: Option<String>,
    /// A dotenv file every job reads (top-level `env-file`).
    pub env_file: Option<(String, String)>,
    /// Variables of every job (`[env]`).
    pub env: BTreeMap<String, String>,
    pub jobs: Vec<Job>,
    pub unsupported: Vec<Unsupported>,
}

impl Draft {
    pub fn new(file: &str) -> Draft {
        Draft { file: file.to_string(), ..Draft::default() }
    }

    /// Reports a source key bgrun cannot express.
    pub fn unsupported(&mut self, app: Option<&str>, key: &str, reason: impl Into<String>) {
        let file = self.file.clone();
        self.unsupported.push(Unsupported {
            file,
            app: app.map(str::to_string),
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// The `bgrun.toml` text.
    pub fn render(&self) -> String {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(format!(
            "# Imported from {} by `bgrun import`. Comments mark what differs from the source;\n\
             # `bgrun plan` shows what `bgrun up` would start.\n",
            self.file
        ));
        if let Some((path, note)) = &self.env_file {
            doc.insert("env-file", toml_edit::value(path.as_str()));
            if let Some(mut k) = doc.key_mut("env-file") {
                k.leaf_decor_mut().set_prefix(format!("\n{}", comment(note)));
            }
        }
        if let Some(name) = &self.project {
            let mut project = Table::new();
            project.insert("name", toml_edit::value(name.as_str()));
            project.decor_mut().set_prefix("\n");
            doc.insert("project", Item::Table(project));
        }
        if !self.env.is_empty() {
            let mut env = plain(&self.env);
            env.decor_mut().set_prefix(format!("\n{}", comment("every job's environment")));
            doc.insert("env", Item::Table(env));
        }
        let mut jobs = Table::new();
        jobs.set_implicit(true);
        for job in &self.jobs {
            jobs.insert(&job.name, Item::Table(job.table()));
        }
        doc.insert("jobs", Item::Table(jobs));
        doc.to_string()
    }
}

/// `KEY = "value"` lines.
fn plain(vars: &BTreeMap<String, String>) -> Table {
    let mut table = Table::new();
    for (k, v) in vars {
        table.insert(k, toml_edit::value(v.as_str()));
    }
    table
}

/// `env.KEY = "value"` lines, which keep the environment in its place among the job's keys (a
/// `[jobs.x.env]` table would have to come after all of them).
fn dotted(vars: &BTreeMap<String, String>, notes: &[String]) -> Table {
    let mut table = plain(vars);
    table.set_dotted(true);
    if let Some(first) = vars.keys().next()
        && let Some(mut key) = table.key_mut(first)
        && !notes.is_empty()
    {
        key.leaf_decor_mut().set_prefix(notes.iter().map(|n| comment(n)).collect::<String>());
    }
    table
}

/// A note as comment lines of at most 100 characters.
pub fn comment(note: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in note.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_in_their_natural_order_with_notes_above_the_approximate_ones() {
        let mut draft = Draft::new("ecosystem.config.js");
        let mut job = Job::new("api".into(), "ecosystem.config.js, app \"api\"".into());
        job.set("grace", "5s");
        job.approx("restart", "always", "PM2 restarts after every exit");
        job.set("cmd", Value::from_iter(["node", "server.js"]));
        job.env.insert("PORT".into(), "3000".into());
        job.env.insert("NODE_ENV".into(), "development".into());
        job.environments.insert("production".into(), [("NODE_ENV".to_string(), "production".to_string())].into());
        draft.jobs.push(job);
        let text = draft.render();
        let expected = "\n# from ecosystem.config.js, app \"api\"\n[jobs.api]\ncmd = [\"node\", \"server.js\"]\n\
                        env.NODE_ENV = \"development\"\nenv.PORT = \"3000\"\n\
                        # PM2 restarts after every exit\nrestart = \"always\"\ngrace = \"5s\"\n\n\
                        [jobs.api.environments.production]\nNODE_ENV = \"production\"\n";
        assert!(text.ends_with(expected), "{text}");
        assert!(text.starts_with("# Imported from ecosystem.config.js"), "{text}");
    }

    #[test]
    fn long_notes_wrap() {
        let note = "word ".repeat(40);
        let text = comment(&note);
        assert!(text.lines().all(|l| l.len() <= 100 && l.starts_with("# ")), "{text}");
        assert_eq!(text.split_whitespace().filter(|w| *w == "word").count(), 40);
    }
}
