//! The supervisor of real processes: shims launched from this binary, watched through pidfds,
//! signalled directly; probes as tasks of their own. What scans /proc runs on the blocking pool,
//! never on the reconciler's thread.

use super::files::{self, ChildFile, ExitFile, SpawnFile};
use super::{Probe, Report, Supervisor, launch, probes, procfs, sockets};
use crate::home::Home;
use crate::logs::watch::LogWatch;
use crate::state::{Cause, RunIds};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

pub struct ProcessSupervisor {
    home: Home,
    reports: UnboundedSender<Report>,
    logs: Arc<LogWatch>,
    health: Arc<probes::HealthBoard>,
    /// Built on first use: an idle daemon loads no TLS roots.
    http: OnceLock<reqwest::Client>,
    /// The probe tasks of each job's current run, to stop them when the run ends or its
    /// settings change.
    probes: HashMap<String, Vec<AbortHandle>>,
    shim: launch::ShimBinary,
    /// When this daemon's supervisor was made (unix ms): tells its requests from an earlier one's.
    started_ms: u64,
    /// Listening sockets by owner (see [`files::Listen`]), with the addresses they were bound
    /// to: kept while their jobs may run again.
    sockets: HashMap<String, (Vec<String>, Vec<OwnedFd>)>,
}

impl ProcessSupervisor {
    pub fn new(
        home: Home,
        reports: UnboundedSender<Report>,
        logs: Arc<LogWatch>,
        health: Arc<probes::HealthBoard>,
    ) -> ProcessSupervisor {
        let shim = launch::ShimBinary::find();
        let (probes, sockets) = (HashMap::new(), HashMap::new());
        let started_ms = crate::clock::unix_ms();
        ProcessSupervisor { home, reports, logs, health, http: OnceLock::new(), probes, shim, started_ms, sockets }
    }

    /// Makes sure the sockets of `listen` are held: the ones held for its owner if they are
    /// still for the same addresses, else those a live shim of the job holds (a daemon restarted
    /// while it ran), else newly bound.
    fn hold_sockets(&mut self, id: &str, listen: &files::Listen) -> Result<(), String> {
        if self.sockets.get(&listen.key).is_some_and(|(addresses, _)| *addresses != listen.addresses) {
            self.sockets.remove(&listen.key);
        }
        if !self.sockets.contains_key(&listen.key) {
            let fetched = sockets::fetch(&self.home.job_dir(id)).ok().filter(|f| f.len() == listen.addresses.len());
            let fds = match fetched {
                Some(fds) => fds,
                None => listen
                    .addresses
                    .iter()
                    .map(|a| sockets::bind_listener(a).map_err(|e| format!("cannot listen on {a}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            self.sockets.insert(listen.key.clone(), (listen.addresses.clone(), fds));
        }
        Ok(())
    }

    fn http(&self) -> reqwest::Client {
        self.http.get_or_init(probes::http_client).clone()
    }

    fn report_later(&mut self, id: &str, task: impl Future<Output = Option<Report>> + Send + 'static) {
        let reports = self.reports.clone();
        let handle = tokio::spawn(async move {
            if let Some(report) = task.await {
                let _ = reports.send(report);
            }
        });
        self.probes.entry(id.to_string()).or_default().push(handle.abort_handle());
    }
}

/// How long a shim may take to answer a request for a new run before the daemon takes it for
/// one that cannot (a shim of an older bgrun, say): starting a process takes milliseconds.
const NEXT_ANSWER_PATIENCE: Duration = Duration::from_secs(5);
/// How long after a new run's process exited the shim may take to say how.
const NEXT_EXIT_PATIENCE: Duration = Duration::from_secs(1);

/// The shim's answer to a request for new run `attempt` (it writes it into the job's directory,
/// whose watch wakes us).
async fn next_answer(logs: &LogWatch, dir: &std::path::Path, next: files::NextId) -> files::NextStarted {
    let no_answer = || files::NextStarted::Refused { refused: "the job's supervisor did not answer".into() };
    let Ok(mut sub) = logs.subscribe(dir) else { return no_answer() };
    let answer = tokio::time::timeout(NEXT_ANSWER_PATIENCE, async {
        loop {
            if let Some(started) = files::read_next_child(dir, next) {
                return started;
            }
            sub.changed().await;
        }
    });
    answer.await.unwrap_or_else(|_| no_answer())
}

impl ProcessSupervisor {
    /// A new run's name for its shim: attempt numbers start over with each daemon, and a shim
    /// may have answered an earlier daemon's request for the same number.
    fn next_id(&self, attempt: u64) -> files::NextId {
        files::NextId { daemon: self.started_ms, attempt }
    }

    fn next_request(&self, id: &str, run: &RunIds, request: files::NextRequest) {
        match files::write_next_request(&self.home.job_dir(id), None, request) {
            Ok(()) => launch::ask(run.shim_pid),
            Err(e) => crate::warn!("bgrun: cannot ask the supervisor of job {id} about its new run: {e}"),
        }
    }
}

async fn watch_exit(reports: UnboundedSender<Report>, id: String, attempt: u64, run: RunIds) {
    if let Err(e) = launch::wait_exit(run.shim_pid, run.shim_start).await {
        crate::warn!("bgrun: cannot watch the supervisor of job {id}: {e}");
    }
    let _ = reports.send(Report::Exited { id, attempt });
}

impl Supervisor for ProcessSupervisor {
    fn launch(&mut self, id: &str, attempt: u64, spawn: &SpawnFile) -> Result<RunIds, String> {
        if let Some(listen) = &spawn.listen {
            self.hold_sockets(id, listen)?;
        }
        let sockets = spawn.listen.as_ref().map_or(&[][..], |l| &self.sockets[&l.key].1[..]);
        let launched = launch::launch(&self.shim, &self.home.job_dir(id), spawn, sockets)
            .map_err(|e| format!("cannot start the job's supervisor: {e}"))?;
        let run = RunIds { shim_pid: launched.shim_pid, shim_start: launched.shim_start, ..RunIds::default() };
        let (reports, id) = (self.reports.clone(), id.to_string());
        tokio::spawn(async move {
            let result = launched.handshake().await;
            let _ = reports.send(Report::Spawned { id: id.clone(), attempt, result });
            watch_exit(reports, id, attempt, run).await;
        });
        Ok(run)
    }

    fn watch(&mut self, id: &str, attempt: u64, run: RunIds) {
        // An adopted run's sockets are taken back from its shim now, while it is alive: the next
        // run (of this job, or of another copy) gets the very same sockets.
        let dir = self.home.job_dir(id);
        if let Ok(spawn) = files::read_spawn(&dir)
            && let Some(listen) = spawn.listen
            && !self.sockets.contains_key(&listen.key)
            && let Ok(fds) = sockets::fetch(&dir)
        {
            self.sockets.insert(listen.key, (listen.addresses, fds));
        }
        tokio::spawn(watch_exit(self.reports.clone(), id.to_string(), attempt, run));
    }

    fn release_listen(&mut self, key: &str) {
        self.sockets.remove(key);
    }

    fn take_freed(&mut self, id: &str) -> Vec<String> {
        files::take_freed(&self.home.job_dir(id))
    }

    fn await_child(&mut self, id: &str, attempt: u64, run: RunIds) {
        // A rare path (a daemon died within the few milliseconds of a launch), so a short poll
        // bounded by the shim's life is enough.
        let (reports, id, dir) = (self.reports.clone(), id.to_string(), self.home.job_dir(id));
        tokio::spawn(async move {
            while procfs::is_same_process(run.shim_pid, run.shim_start) {
                if let Some(child) = files::read_child(&dir) {
                    let _ = reports.send(Report::Spawned { id, attempt, result: Ok(child) });
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    fn live_shim(&self, id: &str) -> Option<RunIds> {
        let shim = files::live_shim(&self.home.job_dir(id))?;
        Some(RunIds { shim_pid: shim.pid, shim_start: shim.start_time, ..RunIds::default() })
    }

    fn child(&self, id: &str) -> Option<ChildFile> {
        files::read_child(&self.home.job_dir(id))
    }

    fn is_alive(&self, run: &RunIds) -> bool {
        procfs::is_same_process(run.shim_pid, run.shim_start)
    }

    fn stop(&mut self, id: &str, run: &RunIds, grace: Duration) {
        if let Err(e) = launch::request_stop(run.shim_pid, grace) {
            crate::warn!("bgrun: cannot ask job {id} to stop: {e}");
        }
    }

    fn force_kill(&mut self, id: &str, run: &RunIds, kill_shim: bool) {
        let (id, run) = (id.to_string(), *run);
        tokio::task::spawn_blocking(move || {
            launch::force_kill(&id, run.shim_pid, run.shim_start, run.pid, kill_shim);
        });
    }

    fn exit_of(&mut self, id: &str, run: Option<&RunIds>) -> Option<ExitFile> {
        let dir = self.home.job_dir(id);
        if let Some(exit) = files::read_exit(&dir) {
            return Some(exit);
        }
        // The shim died without a word (SIGKILLed, say). Its job can no longer be supervised or
        // logged, so none of its processes is left running unseen.
        let job_pid = files::read_child(&dir).map_or(run.map_or(0, |r| r.pid), |c| c.pid);
        let (id, run) = (id.to_string(), run.copied().unwrap_or_default());
        // Only this run's processes: the scan may finish after the job's next run has started.
        tokio::task::spawn_blocking(move || launch::kill_job_processes(&id, run.shim_pid, run.shim_start, job_pid));
        None
    }

    fn probe(&mut self, id: &str, attempt: u64, child: &ChildFile, probe: Probe) {
        let (key, child) = (id.to_string(), child.clone());
        match probe {
            Probe::Readiness { ready, at, log_cursor, run } => {
                let (http, logs, dir) = (self.http(), self.logs.clone(), self.home.job_dir(id));
                self.report_later(id, async move {
                    probes::readiness(logs, http, dir, at, ready, (log_cursor, run)).await;
                    Some(Report::Ready { id: key, attempt })
                });
            }
            Probe::Health { health, at } => {
                let (http, board) = (self.http(), (self.health.clone(), id.to_string()));
                self.report_later(id, async move {
                    let run = (child.pid, child.start_time);
                    let (failures, last) = probes::health(http, health, at, run, board).await?;
                    Some(Report::Evict { id: key, attempt, cause: Cause::Unhealthy { failures, last } })
                });
            }
            Probe::MainProcess => {
                let (logs, dir) = (self.logs.clone(), self.home.job_dir(id));
                self.report_later(id, async move {
                    let mut sub = logs.subscribe(&dir).ok()?;
                    loop {
                        if let Some(now) = files::read_child(&dir).filter(|c| *c != child) {
                            return Some(Report::MainChanged { id: key, attempt, child: now });
                        }
                        // The shim rewrites its record (the lock file) in the directory it shares with us.
                        sub.changed().await;
                    }
                });
            }
            Probe::Memory { limit_mb } => self.report_later(id, async move {
                let rss_mb = probes::memory(child.pid, child.start_time, limit_mb).await?;
                Some(Report::Evict { id: key, attempt, cause: Cause::MaxRss { rss_mb, limit_mb } })
            }),
        }
    }

    fn stop_probes(&mut self, id: &str) {
        for task in self.probes.remove(id).unwrap_or_default() {
            task.abort();
        }
    }

    fn log_end(&self, id: &str) -> u64 {
        probes::log_end(&self.home.job_dir(id))
    }

    fn free_port(&self, previous: Option<u16>, taken: &dyn Fn(u16) -> bool) -> Option<u16> {
        let free = |p: u16| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok();
        previous.filter(|p| free(*p)).or_else(|| {
            (0..64).find_map(|_| {
                let p = std::net::TcpListener::bind(("0.0.0.0", 0)).ok()?.local_addr().ok()?.port();
                (!taken(p)).then_some(p)
            })
        })
    }

    fn resize(&mut self, id: &str, run: &RunIds, cols: u16, rows: u16) {
        launch::resize_pty(&self.home.job_dir(id), run.shim_pid, cols, rows);
    }

    fn remove(&mut self, id: &str) {
        self.stop_probes(id);
        let _ = std::fs::remove_dir_all(self.home.job_dir(id));
    }

    fn job_dirs(&self) -> Vec<String> {
        let Ok(dirs) = std::fs::read_dir(self.home.root().join("jobs")) else { return Vec::new() };
        dirs.flatten().filter_map(|e| e.file_name().to_str().map(String::from)).collect()
    }

    fn start_next(&mut self, id: &str, attempt: u64, run: &RunIds, spawn: &SpawnFile) {
        let dir = self.home.job_dir(id);
        let (reports, logs, key) = (self.reports.clone(), self.logs.clone(), id.to_string());
        let next = self.next_id(attempt);
        if let Err(e) = files::write_next_request(&dir, Some(spawn), files::NextRequest::Start { next }) {
            let started = files::NextStarted::Error { error: format!("cannot ask for the new run: {e}") };
            let _ = reports.send(Report::NextSpawned { id: key, attempt, started });
            return;
        }
        launch::ask(run.shim_pid);
        self.report_later(id, async move {
            let started = next_answer(&logs, &dir, next).await;
            let child = match started {
                files::NextStarted::Ok { pid, start_time, .. } => Some((pid, start_time)),
                _ => None,
            };
            let _ = reports.send(Report::NextSpawned { id: key.clone(), attempt, started });
            let (pid, start_time) = child?;
            let _ = launch::wait_exit(pid, start_time).await;
            // The shim reaps it and says how it ended a moment later.
            let mut sub = logs.subscribe(&dir).ok()?;
            let _ = tokio::time::timeout(NEXT_EXIT_PATIENCE, async {
                while files::read_next_exit(&dir, next).is_none() {
                    sub.changed().await;
                }
            })
            .await;
            Some(Report::Exited { id: key, attempt })
        });
    }

    fn promote_next(&mut self, id: &str, attempt: u64, run: &RunIds) {
        self.next_request(id, run, files::NextRequest::Promote { next: self.next_id(attempt) });
    }

    fn abort_next(&mut self, id: &str, attempt: u64, run: &RunIds) {
        self.next_request(id, run, files::NextRequest::Abort { next: self.next_id(attempt) });
    }

    fn next_exit(&self, id: &str, attempt: u64) -> Option<ExitFile> {
        files::read_next_exit(&self.home.job_dir(id), self.next_id(attempt))
    }

    fn watch_retiring(&mut self, id: &str, old: &ChildFile) {
        let (reports, id, old) = (self.reports.clone(), id.to_string(), old.clone());
        // Not one of the run's probes: a change of settings that restarts those must not lose it.
        tokio::spawn(async move {
            let _ = launch::wait_exit(old.pid, old.start_time).await;
            let _ = reports.send(Report::Retired { id, pid: old.pid });
        });
    }

    fn stop_stray(&mut self, id: &str) {
        let dir = self.home.job_dir(id);
        match files::live_shim(&dir) {
            Some(shim) => {
                crate::warn!(
                    "bgrun: job directory {} has no record; stopping its supervisor (pid {}) and job",
                    dir.display(),
                    shim.pid
                );
                if procfs::is_same_process(shim.pid, shim.start_time) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim.pid), nix::sys::signal::Signal::SIGTERM);
                }
            }
            None => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}
