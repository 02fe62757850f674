//! Every key of a PM2 app, what it becomes in `bgrun.toml`, and what differs: the data the PM2
//! translator follows, and the table `bgrun import --mapping pm2` prints and the README holds, so
//! the three cannot drift apart.

/// How a PM2 value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A string, as it is.
    Text,
    /// A whole number.
    Whole,
    /// Milliseconds, written as a duration.
    Millis,
    /// Milliseconds, or a duration with a unit ("1h", "30s").
    Duration,
    /// Bytes, or a size with K, M or G.
    Size,
    /// An exit code or a list of them.
    Codes,
    /// A log file's path; `/dev/null`, `"NULL"` and false mean none.
    LogFile,
    /// Read by the translator's own code: it takes part in a key built from several (the command),
    /// or its value decides what is written.
    Own,
    /// Nothing is written.
    Nothing,
}

/// When a key that bgrun cannot express still needs no report: its value asks for what bgrun
/// does anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    Never,
    IfFalse,
    IfTrue,
    /// Whatever its value: bgrun always behaves so (merge_logs: one log holds both streams).
    Always,
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub pm2: &'static str,
    /// Other names PM2 accepts for it (camelCase spellings are accepted for every key).
    pub aliases: &'static [&'static str],
    /// The bgrun key written ("" when none is).
    pub bgrun: &'static str,
    pub read: Read,
    /// The translation is approximate: the note is written as a comment above the key.
    pub approximate: bool,
    pub quiet: Quiet,
    /// What differs (the comment), or why nothing is written (the reason reported).
    pub note: &'static str,
}

const fn exact(pm2: &'static str, bgrun: &'static str, read: Read, note: &'static str) -> Rule {
    Rule { pm2, aliases: &[], bgrun, read, approximate: false, quiet: Quiet::Never, note }
}

const fn approx(pm2: &'static str, bgrun: &'static str, read: Read, note: &'static str) -> Rule {
    Rule { pm2, aliases: &[], bgrun, read, approximate: true, quiet: Quiet::Never, note }
}

const fn dropped(pm2: &'static str, quiet: Quiet, note: &'static str) -> Rule {
    Rule { pm2, aliases: &[], bgrun: "", read: Read::Nothing, approximate: false, quiet, note }
}

const fn aka(mut rule: Rule, aliases: &'static [&'static str]) -> Rule {
    rule.aliases = aliases;
    rule
}

/// The prefix of PM2's named environments: `env_production` is selected by `--env production`.
pub const ENV_PREFIX: &str = "env_";

pub const RULES: &[Rule] = &[
    exact("name", "[jobs.<name>]", Read::Own, "made a valid bgrun name when it is not one (a comment says so)"),
    aka(
        exact(
            "script",
            "cmd",
            Read::Own,
            "one argv list with interpreter, node_args and args. As PM2 picks the interpreter: .js/.cjs/.mjs \
             run with node, .py python3, .sh bash, .rb ruby, .php php, .pl perl, .ts/.tsx bun, .coffee coffee; \
             anything else (`npm`, a binary) runs directly. A script with spaces runs through `bash -c`, as PM2 does",
        ),
        &["exec", "cmd", "command"],
    ),
    exact("args", "cmd", Read::Own, "split into words as PM2 splits them (quotes group words)"),
    aka(
        exact("exec_interpreter", "cmd", Read::Own, "the argv's first word; `none` runs the script directly"),
        &["interpreter"],
    ),
    aka(
        exact("node_args", "cmd", Read::Own, "between the interpreter and the script"),
        &["interpreter_args", "interpreterArgs"],
    ),
    exact("cwd", "cwd", Read::Own, "relative paths are rewritten for where bgrun.toml is written"),
    exact("env", "env", Read::Own, "values become strings"),
    exact(
        "env_<name>",
        "[jobs.<name>.environments.<env>]",
        Read::Own,
        "selected with `bgrun up --env <env>`, as `pm2 start --env <env>`",
    ),
    exact("port", "env PORT", Read::Own, "PM2's shortcut for the PORT variable"),
    exact("namespace", "workspace", Read::Text, ""),
    approx(
        "instances",
        "replicas",
        Read::Own,
        "each replica is a process of its own (`<job>.1`, `<job>.2`…, BGRUN_REPLICA counting from 0); \
         \"max\" and 0 are the CPU count at import time, -N that count less N",
    ),
    approx(
        "exec_mode",
        "replicas",
        Read::Own,
        "cluster mode shared one port among the instances through Node's cluster module; bgrun's replicas \
         are separate processes, so a PORT becomes allocate-port = \"PORT\": each replica gets a port of its own",
    ),
    approx(
        "watch",
        "watch",
        Read::Own,
        "applies under `bgrun up --watch`; true is everything under the job's cwd, a directory everything under it",
    ),
    approx(
        "ignore_watch",
        "watch-ignore",
        Read::Own,
        "applies under `bgrun up --watch`; PM2 took regexes and paths, bgrun takes globs",
    ),
    dropped("watch_delay", Quiet::Never, "bgrun restarts on each change it sees; there is no extra delay"),
    dropped("watch_options", Quiet::Never, "chokidar's options have no bgrun equivalent"),
    approx(
        "max_memory_restart",
        "max-rss",
        Read::Size,
        "bgrun measures the job's whole process tree every second; PM2 the app's own memory",
    ),
    approx(
        "autorestart",
        "restart",
        Read::Own,
        "PM2 restarts an app after every exit, even a clean one (autorestart is true unless set false)",
    ),
    exact("autostart", "disabled", Read::Own, "false: `bgrun up` leaves the job alone unless it is named"),
    exact("max_restarts", "max-restarts", Read::Whole, "both count quick crashes in a row (within min_uptime)"),
    exact("min_uptime", "min-uptime", Read::Duration, ""),
    exact("restart_delay", "restart-delay", Read::Millis, ""),
    approx(
        "exp_backoff_restart_delay",
        "backoff",
        Read::Millis,
        "PM2 grew the delay 1.5 times per restart up to 15 s; bgrun doubles it up to 5 min",
    ),
    exact("stop_exit_codes", "stop-exit-codes", Read::Codes, ""),
    aka(exact("cron_restart", "cron", Read::Own, "0 turns it off, as in PM2"), &["cron"]),
    aka(
        exact(
            "out_file",
            "stdout",
            Read::LogFile,
            "relative to the job's cwd, as in PM2; PM2's default files are not kept",
        ),
        &["out", "output", "out_log"],
    ),
    aka(exact("error_file", "stderr", Read::LogFile, "as out_file"), &["error", "err", "err_file", "err_log"]),
    aka(exact("log_file", "log", Read::LogFile, "true (PM2's default file) writes nothing"), &["log"]),
    aka(
        dropped(
            "merge_logs",
            Quiet::Always,
            "bgrun's log of a job holds both streams, and a file of yours gets every replica",
        ),
        &["combine_logs"],
    ),
    approx("time", "log-timestamps", Read::Own, "bgrun's own time format"),
    approx("log_date_format", "log-timestamps", Read::Own, "the format is not kept: bgrun writes its own"),
    dropped("log_type", Quiet::Never, "bgrun's files hold the output as written; `bgrun logs` prints JSON when piped"),
    dropped("disable_logs", Quiet::IfFalse, "bgrun always keeps its log of a job (bounded by log-max-size)"),
    exact("kill_timeout", "grace", Read::Millis, "the time from the stop signal (SIGINT, as PM2 sends it) to SIGKILL"),
    approx(
        "listen_timeout",
        "ready-timeout",
        Read::Millis,
        "bgrun waits this long for the job's readiness checks (ready-when-…), not for a listen or a ready message",
    ),
    dropped(
        "wait_ready",
        Quiet::IfFalse,
        "PM2 waited for the app's process.send('ready'), which bgrun cannot receive: have the app send READY=1 \
         (ready-when-notify), or wait for its port (ready-when-port) or a line of its output (ready-when)",
    ),
    dropped(
        "shutdown_with_message",
        Quiet::IfFalse,
        "PM2 asked the app to stop with process.send('shutdown'); bgrun sends a signal (stop-signal) or runs a stop-command",
    ),
    dropped("kill_retry_time", Quiet::Always, "how often PM2 checked for the stop; bgrun waits on the process itself"),
    approx(
        "treekill",
        "kill-mode",
        Read::Own,
        "false: kill-mode = \"main\", the stop signal reaches only the main process; bgrun still kills what is left after the grace",
    ),
    dropped(
        "instance_var",
        Quiet::Never,
        "bgrun sets BGRUN_REPLICA (from 0) in each replica, and no NODE_APP_INSTANCE: read BGRUN_REPLICA instead",
    ),
    dropped(
        "increment_var",
        Quiet::Never,
        "PM2 added the instance number to this variable; bgrun sets BGRUN_REPLICA, and allocate-port gives each replica a port",
    ),
    aka(dropped("pid_file", Quiet::Never, "PM2 wrote the app's pid there; `bgrun status` shows it"), &["pid"]),
    aka(dropped("uid", Quiet::Never, "bgrun runs jobs as the user who runs it"), &["user"]),
    dropped("gid", Quiet::Never, "bgrun runs jobs as the user who runs it"),
    dropped("username", Quiet::Always, "PM2 records who started the app"),
    dropped("filter_env", Quiet::Never, "jobs start from the environment of whoever runs `bgrun up`"),
    dropped("append_env_to_name", Quiet::IfFalse, "bgrun keeps the job's name for every environment"),
    dropped(
        "force",
        Quiet::IfFalse,
        "bgrun's job names are unique: a second start of a name answers with the running job",
    ),
    dropped("execute_command", Quiet::Always, "bgrun starts every job as a process of its own"),
    dropped("windowsHide", Quiet::Always, "Windows only"),
    dropped("vizion", Quiet::IfFalse, "PM2's git metadata of the app has no bgrun equivalent"),
    dropped("post_update", Quiet::Never, "commands PM2.io ran after an update; bgrun does not update apps"),
    dropped("pmx", Quiet::IfFalse, "PM2.io's monitoring has no bgrun equivalent"),
    dropped("automation", Quiet::IfFalse, "PM2.io's monitoring has no bgrun equivalent"),
    dropped("trace", Quiet::IfFalse, "PM2.io's tracing has no bgrun equivalent"),
    dropped("disable_trace", Quiet::IfTrue, "PM2.io's tracing has no bgrun equivalent"),
    dropped("deep_monitoring", Quiet::IfFalse, "PM2.io's monitoring has no bgrun equivalent"),
    dropped("event_loop_inspector", Quiet::IfFalse, "PM2.io's monitoring has no bgrun equivalent"),
    dropped("v8", Quiet::IfFalse, "PM2.io's monitoring has no bgrun equivalent"),
    dropped("io", Quiet::Never, "PM2.io's settings have no bgrun equivalent"),
    dropped(
        "source_map_support",
        Quiet::IfFalse,
        "PM2 loaded source-map-support into the app; Node's own `--enable-source-maps` in node_args does the same",
    ),
    dropped("disable_source_map_support", Quiet::IfTrue, "bgrun loads nothing into the app"),
    dropped("name_prefix", Quiet::Never, "not an app setting bgrun knows"),
    dropped("install_url", Quiet::Never, "PM2 module installation; bgrun runs what is installed"),
    dropped("write", Quiet::Never, "not an app setting bgrun knows"),
];

/// The rule for a key of an app: by name, alias or camelCase spelling. `env_<name>` keys have the
/// `env_<name>` rule.
pub fn rule(key: &str) -> Option<&'static Rule> {
    let snake = snake_case(key);
    let named = |k: &str| RULES.iter().find(|r| r.pm2 == k || r.aliases.contains(&k));
    named(key)
        .or_else(|| named(&snake))
        .or_else(|| snake.strip_prefix(ENV_PREFIX).filter(|n| !n.is_empty()).and_then(|_| named("env_<name>")))
}

/// The rule of a key by its own name (not an alias), for the translator's code.
pub fn named(pm2: &str) -> &'static Rule {
    RULES.iter().find(|r| r.pm2 == pm2).unwrap_or_else(|| panic!("no rule for {pm2}"))
}

/// `maxMemoryRestart` as `max_memory_restart`: PM2 accepts the camelCase spelling of every key.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The mapping as a markdown table.
pub fn markdown() -> String {
    let mut out = String::from("| PM2 | bgrun.toml | notes |\n|---|---|---|\n");
    for r in RULES {
        let mut pm2 = format!("`{}`", r.pm2);
        for alias in r.aliases {
            pm2.push_str(&format!(", `{alias}`"));
        }
        let bgrun = match r.bgrun {
            "" => "not imported".to_string(),
            key => format!("`{key}`"),
        };
        let note = match (r.bgrun, r.approximate, r.quiet) {
            ("", _, Quiet::Always) => format!("nothing to do: {}", r.note),
            ("", _, Quiet::IfFalse) => format!("reported unless false: {}", r.note),
            ("", _, Quiet::IfTrue) => format!("reported unless true: {}", r.note),
            ("", _, Quiet::Never) => format!("reported: {}", r.note),
            (_, true, _) => format!("approximate: {}", r.note),
            _ => r.note.to_string(),
        };
        out.push_str(&format!("| {pm2} | {bgrun} | {} |\n", note.replace('|', "\\|")));
    }
    out.push_str("| `deploy` (beside `apps`) | not imported | reported once: import does not handle deployments |\n");
    out.push_str("| any other key | not imported | reported as unknown |\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_name_alias_spelling_and_environment() {
        assert_eq!(rule("script").unwrap().bgrun, "cmd");
        assert_eq!(rule("interpreter").unwrap().pm2, "exec_interpreter");
        assert_eq!(rule("maxMemoryRestart").unwrap().pm2, "max_memory_restart");
        assert_eq!(rule("interpreterArgs").unwrap().pm2, "node_args");
        assert_eq!(rule("env_production").unwrap().pm2, "env_<name>");
        assert_eq!(rule("windowsHide").unwrap().pm2, "windowsHide");
        assert!(rule("env_").is_none());
        assert!(rule("scirpt").is_none());
    }

    #[test]
    fn no_key_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            for name in std::iter::once(&r.pm2).chain(r.aliases) {
                assert!(seen.insert(*name), "{name} is listed twice");
            }
        }
    }

    #[test]
    fn every_key_written_is_a_bgrun_key() {
        let keys = crate::project::file::job_keys();
        for r in RULES.iter().filter(|r| !r.bgrun.is_empty() && !r.bgrun.contains(['[', ' '])) {
            assert!(keys.iter().any(|k| k == r.bgrun), "{} maps to {}, which bgrun.toml does not have", r.pm2, r.bgrun);
        }
    }

    #[test]
    fn the_readme_holds_the_table_as_generated() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = "<!-- pm2-keys:start -->\n";
        let end = "<!-- pm2-keys:end -->";
        let (_, rest) = readme.split_once(start).expect("README has the pm2-keys:start marker");
        let (table, _) = rest.split_once(end).expect("README has the pm2-keys:end marker");
        assert!(
            table == markdown(),
            "README's PM2 key table differs from `bgrun import --mapping pm2`; paste its output between the markers"
        );
    }
}
