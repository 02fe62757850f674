//! The typed face of [`Client`]: one method per request, returning what that request answers.
//! What the CLI uses, and what a program driving bgrun would.

use super::Client;
use crate::error::{Error, Result};
use crate::protocol::{
    Change, DaemonInfo, DeployView, DiffRequest, EnvView, ExpectView, JobView, KillTarget, LineView, Request, Response,
    StatsView, StatusView, TailRequest, UpJob, UpRequest, UpView, WaitView,
};
use crate::spec::JobSpec;

/// Takes apart the one kind of answer a request expects.
macro_rules! answer {
    ($response:expr, $kind:pat => $value:expr) => {
        match $response {
            $kind => Ok($value),
            other => Err(unexpected(&other)),
        }
    };
}

/// An answer of a kind the request does not have: a daemon of another version, most likely.
pub fn unexpected(answer: &Response) -> Error {
    let debug = format!("{answer:?}");
    let kind = debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default();
    Error::new(format!("unexpected answer from the daemon ({kind})"))
        .with_hint("`bgrun daemon status` shows the daemon's version; `bgrun daemon stop` restarts it")
}

impl Client {
    /// Starts a job (see [`crate::cli::run::spec`] to make one from `bgrun run`'s arguments); the
    /// answer comes once it has a process, or once it waits for the jobs it starts after.
    pub fn run(&mut self, spec: JobSpec) -> Result<JobView> {
        answer!(self.call(Request::Run { spec: Box::new(spec) })?, Response::Job(job) => job)
    }

    /// Every job (of `workspace` when given), as `bgrun list` shows them.
    pub fn list(&mut self, workspace: Option<String>) -> Result<Vec<JobView>> {
        let frame = self.list_frame(workspace)?;
        jobs_in(&frame)
    }

    /// The `jobs` answer as the daemon wrote it: [`jobs_in`] reads each job from it, as a
    /// [`JobView`] or as the JSON object it is (what `list --json` prints, with no decoding and
    /// encoding again on the way: the longest answer there is).
    pub fn list_frame(&mut self, workspace: Option<String>) -> Result<Vec<u8>> {
        self.send(Request::List { workspace })?;
        self.receive_frame()
    }

    /// One job in full (its spec, recent events, ports); `job` is an id, a unique id prefix, a
    /// name or `project/name`.
    pub fn status(&mut self, job: String) -> Result<StatusView> {
        answer!(self.call(Request::Status { job })?, Response::Status(status) => *status)
    }

    /// Stops the job and starts it again; `force` first stops whatever holds its ports.
    pub fn restart(&mut self, job: String, force: bool) -> Result<JobView> {
        answer!(self.call(Request::Restart { job, force })?, Response::Job(job) => job)
    }

    /// Stops and forgets a job (every job when None), its logs too; the ids removed.
    pub fn delete(&mut self, job: Option<String>) -> Result<Vec<String>> {
        answer!(self.call(Request::Delete { job })?, Response::Removed { removed } => removed)
    }

    pub fn record_deploy(&mut self, deploy: DeployView) -> Result<()> {
        answer!(self.call(Request::RecordDeploy(Box::new(deploy)))?, Response::Ok => ())
    }

    pub fn deploys(&mut self, project: String, limit: usize) -> Result<Vec<DeployView>> {
        answer!(self.call(Request::Deploys { project, limit })?, Response::Deploys { deploys } => deploys)
    }

    pub fn env(&mut self, job: String) -> Result<EnvView> {
        answer!(self.call(Request::Env { job })?, Response::Env(env) => env)
    }

    /// CPU, memory, uptime and last health check of a running job.
    pub fn stats(&mut self, job: String) -> Result<StatsView> {
        answer!(self.call(Request::Stats { job })?, Response::Stats(stats) => stats)
    }

    /// The same for every job that has a process, by job id, measured over one window.
    pub fn stats_all(&mut self) -> Result<std::collections::BTreeMap<String, StatsView>> {
        answer!(self.call(Request::StatsAll)?, Response::AllStats { stats } => stats)
    }

    /// The ids of the jobs that were running and are now stopped.
    pub fn kill(&mut self, target: KillTarget, grace_ms: Option<u64>) -> Result<Vec<String>> {
        answer!(self.call(Request::Kill { target, grace_ms })?, Response::Killed { killed } => killed)
    }

    /// The ids of the finished jobs removed.
    pub fn clean(&mut self, workspace: Option<String>) -> Result<Vec<String>> {
        answer!(self.call(Request::Clean { workspace })?, Response::Removed { removed } => removed)
    }

    pub fn wait(&mut self, job: String, timeout_ms: u64) -> Result<WaitView> {
        answer!(self.call(Request::Wait { job, timeout_ms })?, Response::Wait(wait) => wait)
    }

    pub fn expect(&mut self, job: String, pattern: String, regex: bool, timeout_ms: u64) -> Result<ExpectView> {
        answer!(self.call(Request::Expect { job, pattern, regex, timeout_ms })?, Response::Expect(found) => found)
    }

    /// New lines since the job's cursor, and the cursor after them.
    pub fn diff(&mut self, request: DiffRequest) -> Result<(u64, Vec<LineView>)> {
        let mut all = Vec::new();
        let cursor = self.diff_each(request, |_, lines| all.extend(lines))?;
        Ok((cursor, all))
    }

    /// New lines since the job's cursor, handed over as they arrive (a large diff comes in
    /// several frames, each with the cursor after them all); returns that cursor.
    pub fn diff_each(&mut self, request: DiffRequest, mut each: impl FnMut(u64, Vec<LineView>)) -> Result<u64> {
        self.send(Request::Diff(request))?;
        loop {
            let (cursor, more) = answer!(self.receive()?, Response::Diff { cursor, lines, more } => {
                each(cursor, lines);
                (cursor, more)
            })?;
            if !more {
                return Ok(cursor);
            }
        }
    }

    /// The last lines of a job (`tail` without `follow`).
    pub fn tail(&mut self, request: TailRequest) -> Result<Vec<LineView>> {
        let mut all = Vec::new();
        self.tail_each(request, |lines| all.extend(lines))?;
        Ok(all)
    }

    /// A job's last lines, then its new lines as they are written (across restarts), handed to
    /// `each` until the job is finished (returns its final state) or `each` returns false
    /// (returns None; the connection is then spent).
    pub fn follow(
        &mut self,
        request: TailRequest,
        mut each: impl FnMut(Vec<LineView>) -> bool,
    ) -> Result<Option<String>> {
        self.send(Request::Tail(TailRequest { follow: true, digest: false, ..request }))?;
        loop {
            match self.receive()? {
                Response::Lines { lines, .. } => {
                    if !each(lines) {
                        return Ok(None);
                    }
                }
                Response::End { state } => return Ok(Some(state)),
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// The job list now, and again each time it changes, handed to `each` until it returns false
    /// (the connection is then spent).
    pub fn watch(&mut self, workspace: Option<String>, mut each: impl FnMut(Vec<JobView>) -> bool) -> Result<()> {
        self.send(Request::Watch { workspace })?;
        loop {
            let jobs = answer!(self.receive()?, Response::Jobs { jobs } => jobs)?;
            if !each(jobs) {
                return Ok(());
            }
        }
    }

    /// Converges a project to its jobs (`bgrun up`); `progress` sees each job move on when the
    /// request asks for progress.
    pub fn up(&mut self, request: UpRequest, mut progress: impl FnMut(UpJob)) -> Result<UpView> {
        self.send(Request::Up(request))?;
        loop {
            match self.receive()? {
                Response::Progress(job) => progress(job),
                Response::Up(view) => return Ok(view),
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// The last lines of a job (`tail` without `follow`), handed over as they arrive.
    pub fn tail_each(&mut self, request: TailRequest, mut each: impl FnMut(Vec<LineView>)) -> Result<()> {
        self.send(Request::Tail(TailRequest { follow: false, digest: false, ..request }))?;
        loop {
            let more = answer!(self.receive()?, Response::Lines { lines, more } => {
                each(lines);
                more
            })?;
            if !more {
                return Ok(());
            }
        }
    }

    pub fn screen(&mut self, job: String, lines: usize) -> Result<Vec<String>> {
        answer!(self.call(Request::Screen { job, lines })?, Response::Screen { lines } => lines)
    }

    pub fn send_input(&mut self, job: String, data: String) -> Result<()> {
        answer!(self.call(Request::Send { job, data })?, Response::Ok => ())
    }

    pub fn plan(&mut self, project: String, jobs: Vec<JobSpec>, only: Vec<String>) -> Result<Vec<Change>> {
        answer!(self.call(Request::Plan { project, jobs, only })?, Response::Plan { changes, .. } => changes)
    }

    /// The ids of the project's jobs that were stopped.
    pub fn down(&mut self, project: String, only: Vec<String>) -> Result<Vec<String>> {
        answer!(self.call(Request::Down { project, only })?, Response::Down { stopped } => stopped)
    }

    pub fn daemon_status(&mut self) -> Result<DaemonInfo> {
        answer!(self.call(Request::DaemonStatus)?, Response::Daemon(info) => info)
    }
}

/// The jobs of a `jobs` answer ([`Client::list_frame`]), read straight into their shape (borrowed
/// from the frame where `T` can be). Through [`Response`], whose kind is a field inside it, serde
/// first copies the whole answer into a generic tree: twice the work, for the longest answer there is.
pub fn jobs_in<'a, T: serde::Deserialize<'a>>(frame: &'a [u8]) -> Result<Vec<T>> {
    #[derive(serde::Deserialize)]
    #[serde(bound(deserialize = "T: serde::Deserialize<'de>"))]
    struct Frame<T> {
        response: Jobs<T>,
    }
    #[derive(serde::Deserialize)]
    #[serde(bound(deserialize = "T: serde::Deserialize<'de>"))]
    struct Jobs<T> {
        #[serde(rename = "type")]
        kind: String,
        jobs: Vec<T>,
    }
    match serde_json::from_slice::<Frame<T>>(frame) {
        Ok(Frame { response }) if response.kind == "jobs" => Ok(response.jobs),
        _ => Err(unexpected(&super::decode(frame)?)),
    }
}
