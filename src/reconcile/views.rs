//! The shapes jobs are shown in, built by handlers from snapshots of the reconciler's jobs.

use crate::clock::{rfc3339_ms, rfc3339_s};
use crate::job::{Desired, Job};
use crate::protocol::{EnvVar, EnvView, EventView, JobView, Response, ResponseFrame, StatusView, VERSION};
use crate::state::Lifecycle;
use crate::supervisor::procfs;
use std::borrow::Cow;

/// The environment the job's current (or next) run gets, each variable with its source.
pub fn env_view(job: &Job) -> EnvView {
    let mut vars: std::collections::BTreeMap<String, EnvVar> = std::collections::BTreeMap::new();
    let mut set = |name: &str, value: String, source: &str| {
        let var = EnvVar { name: name.to_string(), value, source: source.to_string() };
        vars.insert(name.to_string(), var);
    };
    for (name, value) in &job.spec.env {
        let source = job.spec.env_sources.get(name).map_or("inherited", String::as_str);
        set(name, value.clone(), source);
    }
    for (name, port) in &job.obs.allocated_ports {
        set(name, port.to_string(), "allocate-port");
    }
    set(procfs::JOB_ID_ENV, job.id.clone(), "bgrun");
    EnvView { id: job.id.clone(), name: job.spec.name.clone(), vars: vars.into_values().collect() }
}

pub fn job_view(job: &Job) -> JobView {
    listed(job).map_text(Cow::into_owned)
}

/// How `list` shows a job, borrowing what the job already holds. Its ports are left empty: they
/// are found in /proc, outside the reconciler (see [`Listing::with_ports`]).
fn listed(job: &Job) -> JobView<Cow<'_, str>> {
    let life = job.life();
    JobView {
        id: job.id.as_str().into(),
        name: job.spec.name.as_deref().map(Cow::from),
        project: job.spec.project.as_deref().map(Cow::from),
        workspace: job.spec.workspace.as_deref().map(Cow::from),
        cmd: job.spec.word_slices().into_iter().map(Cow::from).collect(),
        pid: life.last_pid(),
        state: life.state().as_str().into(),
        started_at: life.started_ms().map(|ms| rfc3339_s(ms).into()),
        exit_code: life.ending().and_then(|e| e.code),
        restart_count: job.obs.restart_count,
        reason: job.reason().into(),
        cwd: job.spec.cwd.to_string_lossy(),
        ports: Vec::new(),
    }
}

/// A job as `list` writes it on the wire, with no ports: encoded from what the job holds, with
/// no owned copy of it made first.
pub fn listed_json(job: &Job) -> Box<[u8]> {
    // Writing to a Vec fails only on a map with keys that are not strings: a view has none.
    serde_json::to_vec(&listed(job)).unwrap_or_default().into_boxed_slice()
}

/// The `jobs` answer as it goes on the wire, put together from each job's [`listed_json`].
/// Every job is written with no ports; [`Listing::with_ports`] fills them in.
pub struct Listing {
    frame: Vec<u8>,
    /// Where each job's object ends in `frame` (just past its `}`), and the root of its process
    /// tree.
    jobs: Vec<(usize, Option<i32>)>,
}

/// The end of a job's object written with no ports.
const NO_PORTS: &[u8] = b"\"ports\":[]}";

impl Listing {
    /// The jobs' encodings, each with the root of its process tree, in the order listed.
    pub fn of<'a>(jobs: impl IntoIterator<Item = (&'a [u8], Option<i32>)>) -> Listing {
        let (head, tail) = frame_around_jobs();
        let mut frame = head;
        let mut ends = Vec::new();
        for (json, root) in jobs {
            if !ends.is_empty() {
                frame.push(b',');
            }
            frame.extend_from_slice(json);
            ends.push((frame.len(), root));
        }
        frame.extend_from_slice(&tail);
        Listing { frame, jobs: ends }
    }

    /// The roots of the jobs' process trees.
    pub fn roots(&self) -> Vec<i32> {
        self.jobs.iter().filter_map(|(_, root)| *root).collect()
    }

    /// The frame, each job with the ports its tree listens on.
    pub fn with_ports(self, ports: &PortsByRoot) -> Vec<u8> {
        let listens = |root: &Option<i32>| root.and_then(|r| ports.get(&r));
        if !self.jobs.iter().any(|(_, root)| listens(root).is_some()) {
            return self.frame;
        }
        let mut frame = Vec::with_capacity(self.frame.len() + 64);
        let mut from = 0;
        for (end, root) in &self.jobs {
            let Some(ports) = listens(root) else { continue };
            debug_assert!(self.frame[..*end].ends_with(NO_PORTS));
            frame.extend_from_slice(&self.frame[from..end - b"[]}".len()]);
            let _ = serde_json::to_writer(&mut frame, ports);
            frame.push(b'}');
            from = *end;
        }
        frame.extend_from_slice(&self.frame[from..]);
        frame
    }
}

/// The `jobs` answer's frame before its first job and after its last one.
fn frame_around_jobs() -> (Vec<u8>, Vec<u8>) {
    let empty = ResponseFrame { v: VERSION, response: Response::Jobs { jobs: Vec::new() } };
    let mut head = serde_json::to_vec(&empty).unwrap_or_default();
    let at = head.windows(2).rposition(|w| w == b"[]").map_or(head.len(), |at| at + 1);
    let tail = head.split_off(at);
    (head, tail)
}

/// The root of a job's process tree while it has one, for finding its ports outside the
/// reconciler.
pub fn tree_root(job: &Job) -> Option<i32> {
    job.life().pid()
}

/// How long one look at the machine's listening sockets serves `list`.
const PORTS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The listening TCP sockets each process tree holds (socket inodes), by root pid.
type HeldByRoot = std::collections::HashMap<i32, Vec<u64>>;

/// The listening ports of job process trees. Finding which process holds a socket means reading
/// every process's stat and every job process's fds (tens of ms with 1000 jobs), but a process can
/// only start listening on a socket that was not listening before: the trees are looked at again
/// only when the machine's listening sockets (one small file to read) include one that the last
/// look did not explain. Until then, a tree keeps what it held and a new tree holds nothing.
#[derive(Default)]
pub struct PortCache {
    scan: std::sync::Mutex<Option<Scan>>,
}

struct Scan {
    at: std::time::Instant,
    /// The machine's listening sockets (inode to port) as of `at`.
    listening: std::collections::HashMap<u64, u16>,
    held: HeldByRoot,
}

/// The ports process trees listen on, by root pid (trees that listen on none are left out).
pub type PortsByRoot = std::collections::HashMap<i32, Vec<u16>>;

impl PortCache {
    /// The ports the trees of `roots` listen on.
    pub fn ports(&self, roots: &[i32]) -> PortsByRoot {
        if roots.is_empty() {
            // No job has a process: nothing to look at (the idle daemon never reads /proc).
            return PortsByRoot::new();
        }
        let mut guard = self.scan.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = guard
            .as_ref()
            .is_some_and(|scan| scan.at.elapsed() < PORTS_FRESH_FOR && roots.iter().all(|r| scan.held.contains_key(r)));
        if !fresh {
            let listening = procfs::listening_sockets();
            let held = match guard.take() {
                Some(last) if !last.unexplained(&listening, roots) => {
                    roots.iter().map(|r| (*r, last.held.get(r).cloned().unwrap_or_default())).collect()
                }
                _ => scan_trees(roots, &listening),
            };
            *guard = Some(Scan { at: std::time::Instant::now(), listening, held });
        }
        let scan = guard.as_ref().expect("just filled");
        let mut out = PortsByRoot::new();
        for (root, held) in roots.iter().filter_map(|r| Some((r, scan.held.get(r)?))) {
            let mut ports: Vec<u16> = held.iter().filter_map(|i| scan.listening.get(i).copied()).collect();
            if !ports.is_empty() {
                ports.sort_unstable();
                ports.dedup();
                out.insert(*root, ports);
            }
        }
        out
    }
}

impl Scan {
    /// True when a socket listening now may belong to a tree the last look did not find it in: it
    /// was not listening then, or the tree that held it is gone (its sockets may have passed to a
    /// new root, as a daemonizing job's do).
    fn unexplained(&self, listening: &std::collections::HashMap<u64, u16>, roots: &[i32]) -> bool {
        let roots: std::collections::HashSet<i32> = roots.iter().copied().collect();
        listening.keys().any(|inode| !self.listening.contains_key(inode))
            || self
                .held
                .iter()
                .any(|(root, held)| !roots.contains(root) && held.iter().any(|i| listening.contains_key(i)))
    }
}

/// One look at /proc for the listening sockets several process trees hold.
fn scan_trees(roots: &[i32], listening: &std::collections::HashMap<u64, u16>) -> HeldByRoot {
    if listening.is_empty() {
        // Nothing on the machine listens: no process tree needs looking at.
        return roots.iter().map(|r| (*r, Vec::new())).collect();
    }
    // One map of the machine's processes serves every root (made per root, it made the scan
    // quadratic in the jobs).
    let children = procfs::children(&procfs::parents());
    roots
        .iter()
        .map(|&root| {
            let mut pids = procfs::descendants_of(&children, root);
            pids.push(root);
            (root, procfs::sockets_of(&pids, listening))
        })
        .collect()
}

/// The ports one process tree listens on.
fn ports_of_tree(root: i32) -> Vec<u16> {
    let listening = procfs::listening_sockets();
    let mut pids = procfs::descendants(root);
    pids.push(root);
    procfs::ports_of(&pids, &listening)
}

/// `status` of a job; reads /proc for its ports, so it is built outside the reconciler.
pub fn status_view(job: &Job, log: String, events: Vec<EventView>) -> StatusView {
    let life = job.life();
    let end = life.ending();
    StatusView {
        state: life.state().as_str().to_string(),
        exit_code: end.and_then(|e| e.code),
        ready_at: life.ready_ms().map(rfc3339_ms),
        restart_count: job.obs.restart_count,
        last_diff_cursor: job.obs.diff_cursor,
        id: job.id.clone(),
        name: job.spec.name.clone(),
        project: job.spec.project.clone(),
        workspace: job.spec.workspace.clone(),
        cmd: job.spec.words(),
        cwd: job.spec.cwd.display().to_string(),
        pid: life.last_pid(),
        signal: end.and_then(|e| e.signal),
        reason: job.reason(),
        started_at: life.started_ms().map(rfc3339_s),
        // Records converted from an earlier daemon may not know when they ended.
        ended_at: end.map(|e| e.at_ms).filter(|ms| *ms > 0).map(rfc3339_s),
        desired: match job.desired {
            Desired::Running => "running".into(),
            Desired::Stopped => "stopped".into(),
        },
        generation: job.generation,
        observed_generation: job.obs.generation,
        log,
        next_restart_at: match life {
            Lifecycle::BackingOff { until_ms, .. } => Some(rfc3339_ms(*until_ms)),
            _ => None,
        },
        ports: tree_root(job).map_or_else(Vec::new, ports_of_tree),
        allocated_ports: job.obs.allocated_ports.clone(),
        events,
        // The engine is asked (a process per status): this runs on the blocking pool.
        container: job.spec.container_run().map(|c| crate::supervisor::container::inspect(&c, &job.spec.env)),
        spec: Some(Box::new(job.spec.clone())),
    }
}
