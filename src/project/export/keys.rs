//! Every key of a job, and what each export format makes of it: the data the exporters take the
//! reasons they report from, the table the README holds (a test keeps them equal), and what the
//! exporters' own tests check their output against (a translated key's target appears in it, a
//! dropped key is reported), so the three cannot drift apart.

use super::Format;

/// What one format makes of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Translated: `target` is what the output holds (a test looks for it there).
    To { target: &'static str, note: &'static str },
    /// Translated where it can be; reported, with `reason`, where it cannot.
    Partly { target: &'static str, note: &'static str, reason: &'static str },
    /// Not translated: reported, with `reason`, for every job that sets it.
    Dropped { reason: &'static str },
    /// Means nothing there: neither written nor reported.
    Ignored { note: &'static str },
}

use Cell::{Dropped, Ignored, Partly, To};

#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub key: &'static str,
    pub systemd: Cell,
    pub compose: Cell,
    pub kubernetes: Cell,
}

impl Key {
    pub fn cell(&self, format: Format) -> Cell {
        match format {
            Format::Systemd => self.systemd,
            Format::Compose => self.compose,
            Format::Kubernetes => self.kubernetes,
        }
    }
}

const fn to(target: &'static str, note: &'static str) -> Cell {
    To { target, note }
}

const fn partly(target: &'static str, note: &'static str, reason: &'static str) -> Cell {
    Partly { target, note, reason }
}

const fn dropped(reason: &'static str) -> Cell {
    Dropped { reason }
}

const fn ignored(note: &'static str) -> Cell {
    Ignored { note }
}

const fn key(key: &'static str, systemd: Cell, compose: Cell, kubernetes: Cell) -> Key {
    Key { key, systemd, compose, kubernetes }
}

const NO_OUTPUT_MATCHING: &str = "no engine watches a program's output: dependents start once it has started";
const NO_HEALTH: &str = "systemd has no health checks";
const DEV_ONLY: &str = "restarts on file changes are for `bgrun up --watch`";
const FETCH: &str = "bgrun's git fast-forward before each start";
const STOP_FIRST: &str = "a new version starts once the old one has stopped";
const SOCKETS: &str = "no socket activation in a container: the program must bind the address itself";
const IMAGE_LOGS: &str = "output goes to the engine's own log";

/// The first row is the job itself; then every key of `[jobs.<name>]`, in the order of the
/// file-format reference.
pub const KEYS: &[Key] = &[
    key(
        "[jobs.<name>]",
        to(".service", "`<project>-<job>.service`, wanted by `<project>.target`"),
        to("services", "a service of the same name"),
        to("name", "a Deployment (or Job, CronJob) named after the job (lower case, `-` for `_` and `.`)"),
    ),
    key(
        "cmd",
        to("ExecStart", "as bgrun runs it: a line with spaces through /bin/sh -c; `$` and `%` escaped"),
        to("entrypoint", "entrypoint and command, as bgrun runs it; a `docker run` job's arguments after its image"),
        to("command", "command and args, likewise"),
    ),
    key(
        "cwd",
        to("WorkingDirectory", "its absolute path on this machine"),
        partly(
            "working_dir",
            "the project directory is bind-mounted at /app; the cwd is the same place under it",
            "the working directory is outside the project's directory",
        ),
        partly(
            "workingDir",
            "/app and the cwd under it: the image holds the project there",
            "the working directory is outside the project's directory",
        ),
    ),
    key(
        "env",
        to("Environment", "every variable as bgrun resolves it"),
        to("environment", "every variable as bgrun resolves it (`$` written `$$`)"),
        to("env", "every variable as bgrun resolves it"),
    ),
    key(
        "env-file",
        to("Environment", "its variables, inline: EnvironmentFile= reads another syntax and overrides Environment="),
        to("environment", "its variables, inline"),
        to("configMapRef", "its variables in a ConfigMap `<job>-env`, through envFrom"),
    ),
    key(
        "config",
        to("Environment", "its variables, inline"),
        to("environment", "its variables, inline"),
        to("configMapRef", "its variables in the ConfigMap `<job>-env`"),
    ),
    key(
        "environments",
        to("Environment", "the one chosen with `--env NAME`"),
        to("environment", "the one chosen with `--env NAME`"),
        to("env", "the one chosen with `--env NAME`"),
    ),
    key(
        "replicas",
        to(".1.service", "a unit per copy, each with its BGRUN_REPLICA"),
        to("replicas", "deploy.replicas; BGRUN_REPLICA is not set per copy"),
        to("replicas", "the Deployment's; BGRUN_REPLICA is not set per copy"),
    ),
    key(
        "cron",
        partly(
            "OnCalendar",
            "a `.timer`; a long-running job's timer restarts it through `<unit>-restart.service`",
            "an expression systemd's calendar cannot say (L, W, #, or both day fields set)",
        ),
        dropped("compose has no schedules"),
        partly(
            "CronJob",
            "a one-shot job's schedule (seconds dropped)",
            "Kubernetes restarts no Deployment on a schedule, and its schedules have no seconds",
        ),
    ),
    key(
        "workspace",
        ignored("bgrun's grouping for list, kill and clean"),
        ignored("bgrun's grouping"),
        ignored("bgrun's grouping"),
    ),
    key(
        "after",
        to("Requires", "After= and Requires= (Wants= for ready-or-ended)"),
        partly(
            "depends_on",
            "started: service_started, ready: service_healthy, completed: service_completed_successfully",
            "ready on a job with no health check to wait for can only be service_started",
        ),
        partly(
            "initContainers",
            "an init container waits for each dependency's Service to accept connections",
            "a dependency has no port to wait for (a Job, a log readiness): Kubernetes keeps no start order",
        ),
    ),
    key(
        "oneshot",
        to("Type=oneshot", "with RemainAfterExit=yes"),
        to("service_completed_successfully", "what its dependents wait for"),
        to("Job", "a Job (a CronJob with `cron`)"),
    ),
    key(
        "daemonizes",
        to("Type=forking", "the process left behind is the service"),
        dropped("a container ends when its first process does"),
        dropped("a container ends when its first process does"),
    ),
    key("pidfile", to("PIDFile", "absolute"), ignored("comes with daemonizes"), ignored("comes with daemonizes")),
    key(
        "stop-signal",
        to("KillSignal", ""),
        to("stop_signal", ""),
        dropped("a pod's containers are stopped with SIGTERM or their image's STOPSIGNAL"),
    ),
    key(
        "stop-command",
        to("ExecStop", "through /bin/sh -c"),
        dropped("compose stops a container with a signal only"),
        to("preStop", "a preStop exec hook; SIGTERM follows it"),
    ),
    key(
        "kill-mode",
        to("KillMode", "group: control-group; main: mixed"),
        ignored("the container's main process gets the signal, as with main"),
        ignored("the container's main process gets the signal, as with main"),
    ),
    key("ready-when", dropped(NO_OUTPUT_MATCHING), dropped(NO_OUTPUT_MATCHING), dropped(NO_OUTPUT_MATCHING)),
    key("ready-when-regex", dropped(NO_OUTPUT_MATCHING), dropped(NO_OUTPUT_MATCHING), dropped(NO_OUTPUT_MATCHING)),
    key(
        "ready-when-port",
        to("ExecStartPost", "waits until `nc -z`, else bash's /dev/tcp, connects"),
        to("nc -z", "a healthcheck `nc -z 127.0.0.1 PORT`, else bash's /dev/tcp (the image needs one)"),
        to("tcpSocket", "a readinessProbe"),
    ),
    key(
        "ready-when-url",
        to("ExecStartPost", "waits until curl, else wget, gets it"),
        to("curl", "a healthcheck with curl, else wget (the image needs one)"),
        to("httpGet", "a readinessProbe (to the pod's address)"),
    ),
    key(
        "ready-when-file",
        to("test -e", "ExecStartPost= waits for it (`test -e`)"),
        to("test -e", "a healthcheck"),
        to("test -e", "an exec readinessProbe"),
    ),
    key(
        "ready-when-notify",
        to("Type=notify", ""),
        dropped("a container has no notify socket"),
        dropped("a container has no notify socket"),
    ),
    key(
        "ready-when-exec",
        to("ExecStartPost", "run until it exits 0"),
        to("CMD-SHELL", "a healthcheck"),
        to("exec", "an exec readinessProbe through sh -c"),
    ),
    key(
        "ready-timeout",
        to("TimeoutStartSec", "the unit fails when not ready in time (bgrun leaves the job running)"),
        to("start_period", "of the healthcheck"),
        ignored("a pod is ready whenever its probe passes"),
    ),
    key(
        "restart",
        to("Restart", "never: no, on-crash: on-failure, always: always"),
        to("restart", "never: \"no\", on-crash: on-failure, always: always"),
        to("restartPolicy", "a Deployment restarts its pods always; a Job's pods: Never, or OnFailure for on-crash"),
    ),
    key(
        "backoff",
        to(
            "RestartSec",
            "the first delay; with `--systemd-version 254` or later, RestartSteps= and RestartMaxDelaySec= grow it to 5 minutes as bgrun does",
        ),
        dropped("docker restarts with its own backoff"),
        dropped("the kubelet restarts with its own backoff"),
    ),
    key(
        "max-restarts",
        to("StartLimitBurst", "restarts + 1 starts within StartLimitIntervalSec= (approximate)"),
        to("on-failure:", "restart: on-failure:N"),
        partly("backoffLimit", "a Job's", "a Deployment restarts its pods without limit"),
    ),
    key(
        "min-uptime",
        to("StartLimitIntervalSec", "the window of StartLimitBurst= (approximate)"),
        dropped("compose does not count restarts"),
        dropped("the kubelet does not count restarts"),
    ),
    key(
        "restart-delay",
        to("RestartSec", "a constant delay"),
        dropped("docker restarts with its own backoff"),
        dropped("the kubelet restarts with its own backoff"),
    ),
    key(
        "stop-exit-codes",
        to("SuccessExitStatus", "and RestartPreventExitStatus="),
        dropped("compose restarts on any non-zero exit"),
        dropped("Kubernetes restarts on any non-zero exit"),
    ),
    key("stdout", to("StandardOutput", "append:FILE"), dropped(IMAGE_LOGS), dropped(IMAGE_LOGS)),
    key("stderr", to("StandardError", "append:FILE"), dropped(IMAGE_LOGS), dropped(IMAGE_LOGS)),
    key("log", to("StandardError", "both streams append:FILE"), dropped(IMAGE_LOGS), dropped(IMAGE_LOGS)),
    key(
        "log-timestamps",
        dropped("systemd writes the files without times (the journal has them)"),
        ignored("comes with the log files"),
        ignored("comes with the log files"),
    ),
    key(
        "log-max-size",
        ignored("the journal keeps the logs"),
        ignored("the engine keeps the logs"),
        ignored("the engine keeps the logs"),
    ),
    key(
        "log-max-files",
        ignored("the journal keeps the logs"),
        ignored("the engine keeps the logs"),
        ignored("the engine keeps the logs"),
    ),
    key(
        "disabled",
        to("disabled", "the unit is left out of the target (a comment says so)"),
        to("profiles", "profiles: [\"disabled\"]: started only when named"),
        to("replicas: 0", "a Deployment of 0 replicas; a Job or CronJob suspended"),
    ),
    key("max-rss", to("MemoryMax", ""), to("mem_limit", ""), to("memory", "resources.limits.memory")),
    key(
        "max-runtime",
        to("RuntimeMaxSec", "TimeoutStartSec= for a one-shot"),
        dropped("compose has no time limit"),
        partly("activeDeadlineSeconds", "a Job's", "a Deployment's pods have no time limit"),
    ),
    key(
        "allocate-port",
        dropped("systemd allocates no ports: set the variable in `env`"),
        to("expose", "port 8080 (then 8081, …) in the service's own network"),
        to("containerPort", "port 8080 (then 8081, …), with a Service"),
    ),
    key(
        "listen",
        to("ListenStream", "a `.socket` unit (ReusePort=yes for copies)"),
        partly("ports", "published on the same address", SOCKETS),
        partly("containerPort", "with a Service", SOCKETS),
    ),
    key(
        "health-check-url",
        dropped(NO_HEALTH),
        to("curl", "a healthcheck with curl, else wget"),
        to("livenessProbe", "httpGet"),
    ),
    key("health-check-port", dropped(NO_HEALTH), to("nc -z", "a healthcheck"), to("livenessProbe", "tcpSocket")),
    key("health-check-exec", dropped(NO_HEALTH), to("CMD-SHELL", "a healthcheck"), to("livenessProbe", "exec")),
    key("health-timeout", ignored("comes with the health check"), to("timeout", ""), to("timeoutSeconds", "")),
    key(
        "health-start-period",
        ignored("comes with the health check"),
        to("start_period", ""),
        to("initialDelaySeconds", ""),
    ),
    key("health-interval", ignored("comes with the health check"), to("interval", ""), to("periodSeconds", "")),
    key("health-threshold", ignored("comes with the health check"), to("retries", ""), to("failureThreshold", "")),
    key(
        "pty",
        dropped("systemd gives a service no terminal of its own"),
        to("tty", "tty: true"),
        to("tty", "tty and stdin"),
    ),
    key(
        "cols",
        ignored("comes with pty"),
        ignored("the terminal's size is the engine's"),
        ignored("the terminal's size is the engine's"),
    ),
    key(
        "rows",
        ignored("comes with pty"),
        ignored("the terminal's size is the engine's"),
        ignored("the terminal's size is the engine's"),
    ),
    key("grace", to("TimeoutStopSec", ""), to("stop_grace_period", ""), to("terminationGracePeriodSeconds", "")),
    key("watch", dropped(DEV_ONLY), dropped(DEV_ONLY), dropped(DEV_ONLY)),
    key("watch-ignore", ignored("comes with watch"), ignored("comes with watch"), ignored("comes with watch")),
    key(
        "restart-with-dependencies",
        to("PartOf", "PartOf= each dependency"),
        dropped("compose restarts no dependents"),
        dropped("Kubernetes restarts no dependents"),
    ),
    key(
        "container",
        to("ExecStart", "the engine's run command, as it is"),
        partly(
            "image",
            "the image and the arguments after it, from the run command",
            "the run command has options (ports, volumes, …), which are not carried over",
        ),
        partly(
            "image",
            "the image and the arguments after it, from the run command",
            "the run command has options (ports, volumes, …), which are not carried over",
        ),
    ),
    key("fetch", dropped(FETCH), dropped(FETCH), dropped(FETCH)),
    key(
        "update",
        dropped(STOP_FIRST),
        dropped(STOP_FIRST),
        to("strategy", "start-first: RollingUpdate with maxSurge 1, maxUnavailable 0; stop-first: Recreate"),
    ),
    key(
        "image",
        ignored("the command runs on the machine"),
        partly("image", "", "the job has no image: set `image = \"...\"`"),
        partly("image", "", "the job has no image: set `image = \"...\"`"),
    ),
];

/// The row of a key; every key the exporters name is in the table (a test checks it).
pub fn named(key: &str) -> &'static Key {
    KEYS.iter().find(|k| k.key == key).unwrap_or(&KEYS[0])
}

/// Why `format` does not carry `key`.
pub fn reason(format: Format, key: &str) -> &'static str {
    match named(key).cell(format) {
        Partly { reason, .. } | Dropped { reason } => reason,
        To { .. } | Ignored { .. } => "not translated",
    }
}

#[cfg(test)]
fn describe(cell: Cell) -> String {
    let with_note = |target: &str, note: &str| match note {
        "" => format!("`{target}`"),
        _ => format!("`{target}`: {note}"),
    };
    match cell {
        To { target, note } => with_note(target, note),
        Partly { target, note, reason } => format!("{}; reported when {reason}", with_note(target, note)),
        Dropped { reason } => format!("reported: {reason}"),
        Ignored { note } => format!("— ({note})"),
    }
}

/// The table as markdown, as the README holds it (the test that keeps them equal prints it).
#[cfg(test)]
fn markdown() -> String {
    let mut out = String::from("| bgrun.toml | systemd | compose | Kubernetes |\n|---|---|---|---|\n");
    for k in KEYS {
        let cells = [k.systemd, k.compose, k.kubernetes].map(|c| describe(c).replace('|', "\\|"));
        out.push_str(&format!("| `{}` | {} |\n", k.key, cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_job_is_in_the_table_once() {
        let keys: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
        let mut expected = crate::project::file::job_keys();
        expected.insert(0, "[jobs.<name>]".into());
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "a key is listed twice");
        for key in &expected {
            assert!(keys.contains(&key.as_str()), "`{key}` is not in export::keys::KEYS");
        }
        assert_eq!(keys.len(), expected.len(), "the table has a key that is not a job key");
    }

    #[test]
    fn the_readme_holds_the_table_as_generated() {
        let readme = include_str!("../../../README.md");
        let table = markdown();
        assert!(
            readme.contains(&table),
            "README.md's export table differs from export::keys::markdown(); paste this in:\n{table}"
        );
    }
}
