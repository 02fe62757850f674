//! Request and response types. Views serialize to the shapes of the CLI contract, so the CLI
//! prints them as they come.

use crate::spec::JobSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Run {
        spec: Box<JobSpec>,
    },
    List {
        workspace: Option<String>,
    },
    Status {
        job: String,
    },
    Tail(TailRequest),
    Diff(DiffRequest),
    Kill {
        target: KillTarget,
        grace_ms: Option<u64>,
    },
    Clean {
        workspace: Option<String>,
    },
    /// Stop and forget a job (every copy of a job with replicas), its log too; every job when
    /// `job` is None (`bgrun nuke`).
    Delete {
        job: Option<String>,
    },
    Wait {
        job: String,
        timeout_ms: u64,
    },
    Up(UpRequest),
    Plan {
        project: String,
        jobs: Vec<JobSpec>,
        only: Vec<String>,
    },
    Down {
        project: String,
        only: Vec<String>,
    },
    Restart {
        job: String,
        /// Stop any process of the user holding the job's ports first (`--force`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    Send {
        job: String,
        data: String,
    },
    Stats {
        job: String,
    },
    /// A job's environment, each variable with where it came from.
    Env {
        job: String,
    },
    /// Records a deploy (`bgrun deploy`) in the project's history and its jobs' events.
    RecordDeploy(Box<DeployView>),
    /// A project's deploys, newest first.
    Deploys {
        project: String,
        limit: usize,
    },
    Screen {
        job: String,
        lines: usize,
    },
    /// Attach to a PTY job: the connection then carries AttachInput/AttachResize from the client
    /// and Output frames from the daemon, until the job ends (End) or the client goes away.
    Attach {
        job: String,
        cols: u16,
        rows: u16,
    },
    /// Keystrokes, as bytes (base64 on the wire: never a lossy string).
    AttachInput {
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    AttachResize {
        cols: u16,
        rows: u16,
    },
    Expect {
        job: String,
        pattern: String,
        regex: bool,
        timeout_ms: u64,
    },
    DaemonStatus,
    DaemonStop,
    /// `stats` of every job that has a process, measured over one window.
    StatsAll,
    /// The job list (`jobs`) now and again each time it changes, until the client goes away:
    /// what a live view (the dashboard) follows instead of asking again and again.
    Watch {
        workspace: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillTarget {
    Job(String),
    Workspace(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
}

/// Which lines to show, shared by `tail`, `diff` and `--follow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LineFilter {
    pub stream: Option<Stream>,
    pub strip_ansi: bool,
    pub regex: Option<String>,
    pub level: Option<Level>,
    /// Only lines written at or after this time (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailRequest {
    pub job: String,
    pub lines: usize,
    #[serde(default)]
    pub filter: LineFilter,
    #[serde(default)]
    pub digest: bool,
    #[serde(default)]
    pub follow: bool,
}

impl TailRequest {
    /// The last `lines` lines of `job`, unfiltered.
    pub fn last(job: impl Into<String>, lines: usize) -> TailRequest {
        TailRequest { job: job.into(), lines, filter: LineFilter::default(), digest: false, follow: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRequest {
    pub job: String,
    pub lines: Option<usize>,
    #[serde(default)]
    pub filter: LineFilter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Job(JobView),
    Jobs {
        jobs: Vec<JobView>,
    },
    Status(Box<StatusView>),
    /// A large answer comes in several frames: every one but the last says `more`.
    Lines {
        lines: Vec<LineView>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    },
    Digest(DigestView),
    Diff {
        cursor: u64,
        lines: Vec<LineView>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    },
    Killed {
        killed: Vec<String>,
    },
    Removed {
        removed: Vec<String>,
    },
    Daemon(DaemonInfo),
    Wait(WaitView),
    Expect(ExpectView),
    /// A job of an `up` moved on (streamed before the final answer when asked for).
    Progress(UpJob),
    Up(UpView),
    Plan {
        project: String,
        changes: Vec<Change>,
    },
    Down {
        stopped: Vec<String>,
    },
    /// The end of a stream of `Lines` frames (`tail --follow`): the job has ended.
    End {
        state: String,
    },
    Ok,
    Error {
        message: String,
        hint: Option<String>,
        /// What kind of failure (it decides the CLI's exit code).
        #[serde(default)]
        kind: crate::error::ErrorKind,
    },
    Stats(StatsView),
    /// By job id.
    AllStats {
        stats: std::collections::BTreeMap<String, StatsView>,
    },
    Env(EnvView),
    Deploys {
        deploys: Vec<DeployView>,
    },
    Screen {
        lines: Vec<String>,
    },
    /// Bytes for the attached terminal.
    Output {
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
}

/// The first 8 characters of a job id: what people see and type (any unique prefix of 4 or more
/// characters finds the job).
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl JobView {
    /// The job's name, or its short id when it has none.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(short_id(&self.id))
    }
}

/// A job as `run` and `list` show it. `T` is its text: owned where a view is read or kept
/// (`String`, the default), borrowed from the job where the daemon writes a listing (`Cow<str>`),
/// so listing 1000 jobs copies none of their names, commands or directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "JobView")]
pub struct JobView<T = String> {
    pub id: T,
    pub name: Option<T>,
    /// The project (bgrun.toml) that owns the job, if any.
    #[serde(default)]
    pub project: Option<T>,
    pub workspace: Option<T>,
    pub cmd: Vec<T>,
    pub pid: Option<i32>,
    pub state: T,
    pub started_at: Option<T>,
    pub exit_code: Option<i32>,
    pub restart_count: u32,
    pub reason: T,
    pub cwd: T,
    /// TCP ports the job's process tree listens on. Last: a listing written without them
    /// (see `reconcile::views::Listing`) gets them filled in at the end of each job.
    #[serde(default)]
    pub ports: Vec<u16>,
}

impl<T> JobView<T> {
    /// The same view with its text in another form.
    pub fn map_text<U>(self, f: impl Fn(T) -> U) -> JobView<U> {
        JobView {
            id: f(self.id),
            name: self.name.map(&f),
            project: self.project.map(&f),
            workspace: self.workspace.map(&f),
            cmd: self.cmd.into_iter().map(&f).collect(),
            pid: self.pid,
            state: f(self.state),
            started_at: self.started_at.map(&f),
            exit_code: self.exit_code,
            restart_count: self.restart_count,
            reason: f(self.reason),
            cwd: f(self.cwd),
            ports: self.ports,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusView {
    pub state: String,
    pub exit_code: Option<i32>,
    pub ready_at: Option<String>,
    pub restart_count: u32,
    pub last_diff_cursor: u64,
    pub id: String,
    pub name: Option<String>,
    pub project: Option<String>,
    pub workspace: Option<String>,
    pub cmd: Vec<String>,
    pub cwd: String,
    pub pid: Option<i32>,
    pub signal: Option<i32>,
    pub reason: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub desired: String,
    pub generation: u64,
    pub observed_generation: u64,
    pub log: String,
    /// When a restart by policy is due, while one is.
    pub next_restart_at: Option<String>,
    /// TCP ports the job's process tree listens on.
    pub ports: Vec<u16>,
    /// Ports bgrun allocated for the job (`--allocate-port`), by variable name.
    pub allocated_ports: std::collections::BTreeMap<String, u16>,
    pub events: Vec<EventView>,
    /// The container a container job runs, as its engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerView>,
    /// What the job was asked to be (command, environment, readiness, `after`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub spec: Option<Box<JobSpec>>,
}

/// A container as `docker inspect`/`podman inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContainerView {
    pub name: String,
    /// Empty when there is no such container (the run has ended and it was removed).
    pub id: String,
    /// running, exited, … or "absent".
    pub state: String,
    pub exit_code: Option<i32>,
    /// healthy, unhealthy or starting, when the container has a health check.
    pub health: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LineView {
    pub line_number: u64,
    pub content: String,
    pub timestamp: Option<String>,
    pub stream: Stream,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DigestView {
    pub lines: u64,
    pub errors: u64,
    pub warnings: u64,
    pub last_error: Option<String>,
    pub last_warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DaemonInfo {
    pub pid: u32,
    pub version: String,
    pub protocol: u32,
    pub uptime_secs: u64,
    pub socket: String,
    pub home: String,
    pub jobs: usize,
    /// Passes the reconciler has made since the daemon started.
    pub passes: u64,
    /// What is wrong inside the daemon (a state database it cannot write, refused transitions),
    /// one sentence each; empty when all is well.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitView {
    pub ready: bool,
    pub elapsed_ms: u64,
    pub exit_code: Option<i32>,
    /// The terminal state, when the job ended before it was ready; null when ready or timed out.
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectView {
    pub matched: bool,
    pub line_number: Option<u64>,
    pub content: Option<String>,
}

/// How long `up` waits before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitFor {
    /// Once the edit is applied.
    Applied,
    /// Once every job has a process (or waits for its dependencies).
    Launched,
    /// Once every job is ready, finished cleanly, or has failed.
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpRequest {
    pub project: String,
    pub file: String,
    /// The file's jobs, checked and resolved by the client.
    pub jobs: Vec<JobSpec>,
    /// Only these jobs (and what they need); all when empty.
    pub only: Vec<String>,
    pub wait: WaitFor,
    /// Start again jobs that were stopped on request or crashed (an explicit `up`); a watch
    /// re-converge leaves them be.
    pub revive: bool,
    /// Stream a Progress frame whenever a job moves on.
    pub progress: bool,
    /// Jobs to replace even where their spec is unchanged: their code changed (`deploy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renew: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpJob {
    pub job: String,
    pub id: String,
    pub action: String,
    pub fields: Vec<String>,
    pub state: String,
    pub reason: String,
    pub pid: Option<i32>,
    /// Whether this job got where `up` wanted it (ready, or finished cleanly).
    pub ok: bool,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpView {
    pub project: String,
    pub ok: bool,
    pub elapsed_ms: u64,
    pub jobs: Vec<UpJob>,
}

/// One `bgrun deploy`: where it moved the checkout, what became of each job, and whether it was
/// rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeployView {
    pub project: String,
    /// When it was recorded (filled in by the daemon).
    #[serde(default)]
    pub at: String,
    /// Who ran it (the user name).
    pub user: String,
    pub branch: String,
    /// What the branch was moved to: its upstream, or the `--ref` given.
    pub target: String,
    pub old: String,
    pub new: String,
    pub ok: bool,
    /// The checkout was moved back to `old` and the project converged to it again.
    pub rolled_back: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub jobs: Vec<DeployJob>,
}

impl DeployView {
    /// How it went: `ok`, `failed`, or `failed, rolled back`.
    pub fn outcome(&self) -> &'static str {
        match (self.ok, self.rolled_back) {
            (true, _) => "ok",
            (false, true) => "failed, rolled back",
            (false, false) => "failed",
        }
    }
}

/// A commit id as people quote it: its first 12 characters.
pub fn short_commit(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeployJob {
    pub job: String,
    pub action: String,
    pub state: String,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvView {
    pub id: String,
    pub name: Option<String>,
    /// Sorted by name.
    pub vars: Vec<EnvVar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    /// `inherited` (the caller's environment when the job was started), `[env]`,
    /// `[jobs.api.env]`, `env-file .env`, `[environments.production]`, `--env`, `replicas`,
    /// `allocate-port` or `bgrun`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatsView {
    /// CPU use of the job's whole process tree, in percent of one core (so up to 100 × cores).
    pub cpu_pct: f64,
    /// Resident memory of the whole tree.
    pub rss_mb: u64,
    pub uptime_secs: u64,
    pub processes: usize,
    /// The job's last health check, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthView {
    /// The last check passed, or failed while the start period lasts (such failures do not count).
    pub healthy: bool,
    /// The last check itself passed.
    #[serde(default)]
    pub passed: bool,
    /// Failed checks in a row.
    pub failures: u32,
    /// How long the last check took.
    pub latency_ms: f64,
}

/// One entry of a job's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct EventView {
    pub at: String,
    pub kind: String,
    pub detail: String,
}

/// What `up` does (or `plan` would do) to one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub job: String,
    /// create, replace, update, start, unchanged or remove.
    pub action: String,
    /// The keys whose change caused a replace or an update.
    pub fields: Vec<String>,
}

/// Which output of a job a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    Pty,
}

/// Bytes as base64 text: a terminal's bytes (any, not only UTF-8) in a JSON frame.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
