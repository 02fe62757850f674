//! What `/proc` says about processes: identity (pid + start time, so a reused pid is never
//! mistaken for a job), process trees, and memory.

use std::collections::HashMap;

/// Reads `/proc/<pid>/stat` into `buf` and returns the fields after the command name (which may
/// itself contain spaces and ')'): state, ppid, pgrp, ... Allocation-free: `list` calls this for
/// every process on the machine.
fn stat_fields(pid: i32, buf: &mut [u8; 1024]) -> Option<impl Iterator<Item = &[u8]>> {
    use std::io::Read;
    let mut path = [0u8; 32];
    let path = {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut path[..]);
        write!(cur, "/proc/{pid}/stat").ok()?;
        let len = cur.position() as usize;
        std::str::from_utf8(&path[..len]).ok()?
    };
    let n = std::fs::File::open(path).ok()?.read(buf).ok()?;
    let stat = &buf[..n];
    let close = stat.iter().rposition(|b| *b == b')')?;
    Some(stat.get(close + 2..)?.split(|b| *b == b' '))
}

fn parse<T: std::str::FromStr>(field: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(field?).ok()?.trim().parse().ok()
}

/// Start time of `pid` in clock ticks since boot, or None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    // Field 22 overall; index 19 after the pid and comm fields.
    parse(stat_fields(pid, &mut [0; 1024])?.nth(19))
}

/// True if `pid` is alive (and not a zombie) and is the same process that started at `start`.
pub fn is_same_process(pid: i32, start: u64) -> bool {
    let mut buf = [0; 1024];
    let Some(mut fields) = stat_fields(pid, &mut buf) else { return false };
    let state = fields.next();
    state.is_some_and(|s| s != b"Z") && parse(fields.nth(18)) == Some(start)
}

/// Parent pid of every process on the system.
pub fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let mut buf = [0; 1024];
    let Ok(dir) = std::fs::read_dir("/proc") else { return map };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(ppid) = stat_fields(pid, &mut buf).and_then(|mut f| parse(f.nth(1))) {
            map.insert(pid, ppid);
        }
    }
    map
}

/// Every descendant of `root` (not including it), parents before children. Read from each
/// process's `children` list (the size of the tree, not of the machine); from a scan of all of
/// /proc where the kernel has no such lists.
pub fn descendants(root: i32) -> Vec<i32> {
    match children_of(root) {
        Some(first) => {
            let mut out = Vec::new();
            let mut stack = first;
            while let Some(pid) = stack.pop() {
                out.push(pid);
                stack.extend(children_of(pid).unwrap_or_default());
            }
            out
        }
        None => descendants_in(&parents(), root),
    }
}

/// The children of `pid`, from its threads' `children` lists (None when the kernel keeps none).
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    Some(out)
}

/// Like [`descendants`], from a parent map.
pub fn descendants_in(parents: &HashMap<i32, i32>, root: i32) -> Vec<i32> {
    descendants_of(&children(parents), root)
}

/// The children of every process, from a parent map: made once for many roots, since making it
/// costs a look at every process of the machine.
pub fn children(parents: &HashMap<i32, i32>) -> HashMap<i32, Vec<i32>> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &ppid) in parents {
        children.entry(ppid).or_default().push(pid);
    }
    children
}

/// Every descendant of `root` (not including it), parents before children, from [`children`].
pub fn descendants_of(children: &HashMap<i32, Vec<i32>>, root: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(child);
            stack.push(child);
        }
    }
    out
}

/// True for a process that has exited and waits to be reaped (or is gone).
pub fn is_zombie(pid: i32) -> bool {
    let mut buf = [0; 1024];
    stat_fields(pid, &mut buf).and_then(|mut f| f.next().map(|s| s == b"Z")).unwrap_or(true)
}

/// The session a process belongs to.
pub fn session_of(pid: i32) -> Option<i32> {
    let mut buf = [0; 1024];
    stat_fields(pid, &mut buf).and_then(|mut f| parse::<i32>(f.nth(3)))
}

/// True for a process that leads its own session (it called setsid, as daemons do).
pub fn leads_session(pid: i32) -> bool {
    session_of(pid) == Some(pid)
}

/// The environment variable every process of a job inherits, naming the job. It finds the job's
/// processes even after its supervisor died and they were reparented, including ones that started
/// sessions of their own.
pub const JOB_ID_ENV: &str = "BGRUN_JOB_ID";

/// The environment variable naming one run of a job (its supervisor's pid and start time), so a
/// search for a run's processes never finds those of the job's next run.
pub const RUN_ENV: &str = "BGRUN_RUN";

/// The value of [`RUN_ENV`] for the run whose supervisor is `shim_pid`, started at `shim_start`.
pub fn run_marker(shim_pid: i32, shim_start: u64) -> String {
    format!("{shim_pid}.{shim_start}")
}

/// Every process of one run of job `id` still alive: those in the run's session (`sid`, the pid
/// of its first process) and those carrying the run's marker in their environment (or, for runs
/// started before runs were marked, the job's id). Reads all of /proc, so it is for the rare
/// moments that need it (a supervisor died, or did not finish a stop).
pub fn job_processes(id: &str, run: &str, sid: i32) -> Vec<i32> {
    let run_var = format!("{RUN_ENV}={run}");
    let job_var = format!("{JOB_ID_ENV}={id}");
    let run_prefix = format!("{RUN_ENV}=");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let mut buf = [0; 1024];
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        // state, ppid, pgrp, session
        let in_session =
            sid > 0 && stat_fields(pid, &mut buf).and_then(|mut f| parse::<i32>(f.nth(3))).is_some_and(|s| s == sid);
        let marked = || {
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
            let vars = || env.split(|b| *b == 0);
            vars().any(|var| var == run_var.as_bytes())
                || (vars().any(|var| var == job_var.as_bytes())
                    && !vars().any(|var| var.starts_with(run_prefix.as_bytes())))
        };
        if in_session || marked() {
            out.push(pid);
        }
    }
    out
}

/// User + system CPU time of the processes, in clock ticks (processes that are gone count 0).
pub fn cpu_ticks(pids: &[i32]) -> u64 {
    let mut buf = [0; 1024];
    pids.iter()
        .filter_map(|&p| {
            let mut f = stat_fields(p, &mut buf)?;
            // utime and stime: fields 14 and 15 overall, 11 and 12 after the command name.
            let utime: u64 = parse(f.nth(11))?;
            let stime: u64 = parse(f.next())?;
            Some(utime + stime)
        })
        .sum()
}

pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Resident memory of one process, in KiB (0 if it is gone).
pub fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of `pid` and all its descendants, in KiB.
pub fn tree_rss_kb(pid: i32) -> u64 {
    rss_kb(pid) + descendants(pid).into_iter().map(rss_kb).sum::<u64>()
}

/// TCP ports in LISTEN state on this machine, by socket inode (from /proc/net/tcp and tcp6).
pub fn listening_sockets() -> HashMap<u64, u16> {
    let mut map = HashMap::new();
    for_each_listener(|port, inode| {
        map.insert(inode, port);
    });
    map
}

/// True when a TCP socket on this machine listens on `port`, on any address. Read from the
/// kernel's tables, so deciding never connects: a probe that connected in a loop to a port
/// nobody listens on yet could connect to itself and hold the port the job wants.
pub fn is_listening(port: u16) -> bool {
    let mut found = false;
    for_each_listener(|p, _| found |= p == port);
    found
}

/// Calls `f(port, inode)` for every TCP socket in LISTEN state, IPv4 and IPv6. Asked of the
/// kernel's sock_diag interface for listening sockets only; /proc/net/tcp (the fallback) makes the
/// kernel walk its whole table of connections on every read, about 6 ms each for tcp and tcp6 even
/// on an idle machine, which was most of a `list` and of every port readiness check.
fn for_each_listener(mut f: impl FnMut(u16, u64)) {
    let mut found = Vec::new();
    let asked = [libc::AF_INET, libc::AF_INET6].into_iter().try_for_each(|family| diag_listeners(family, &mut found));
    match asked {
        Ok(()) => found.into_iter().for_each(|(port, inode)| f(port, inode)),
        Err(_) => from_proc_net(f),
    }
}

/// The listening TCP sockets of one address family, from a NETLINK_SOCK_DIAG dump.
fn diag_listeners(family: i32, out: &mut Vec<(u16, u64)>) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const TCP_LISTEN: u32 = 10;
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16 bytes), then inet_diag_req_v2: family, protocol, ext, pad, states, and a zeroed
    // inet_diag_sockid (48 bytes).
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&[0; 8]);
    req.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend_from_slice(&[0; 48]);
    // SAFETY: an all-zero sockaddr_nl is valid; it names the kernel once its family is set.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: the buffer and address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= 16 {
            let len = u32::from_ne_bytes(msgs[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(msgs[4..6].try_into().expect("2 bytes"));
            if len < 16 || len > msgs.len() {
                return Err(std::io::Error::other("malformed sock_diag answer"));
            }
            match i32::from(kind) {
                libc::NLMSG_DONE => return Ok(()),
                libc::NLMSG_ERROR => return Err(std::io::Error::other("sock_diag refused the dump")),
                _ => {}
            }
            // inet_diag_msg: family, state, timer, retrans, then the sockid (source port first,
            // big-endian), expires, rqueue, wqueue, uid, inode.
            let msg = &msgs[16..len];
            if msg.len() >= 72 {
                let port = u16::from_be_bytes([msg[4], msg[5]]);
                let inode = u32::from_ne_bytes(msg[68..72].try_into().expect("4 bytes"));
                out.push((port, u64::from(inode)));
            }
            msgs = &msgs[((len + 3) & !3).min(msgs.len())..];
        }
    }
}

/// The listening TCP sockets, read from /proc/net/tcp and tcp6.
fn from_proc_net(mut f: impl FnMut(u16, u64)) {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "0A" {
                continue;
            }
            let port = fields[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Ok(inode)) = (port, fields[9].parse::<u64>()) {
                f(port, inode);
            }
        }
    }
}

/// The TCP ports `pids` listen on, sorted, without duplicates.
pub fn ports_of(pids: &[i32], listening: &HashMap<u64, u16>) -> Vec<u16> {
    let mut ports: Vec<u16> = sockets_of(pids, listening).iter().filter_map(|i| listening.get(i).copied()).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The listening sockets (inodes, from `listening`) that `pids` hold.
pub fn sockets_of(pids: &[i32], listening: &HashMap<u64, u16>) -> Vec<u64> {
    let mut held = Vec::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            if let Some(inode) = target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
                && let Ok(inode) = inode.parse::<u64>()
                && listening.contains_key(&inode)
            {
                held.push(inode);
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_this_process() {
        let me = std::process::id() as i32;
        let start = start_time(me).expect("own start time");
        assert!(is_same_process(me, start));
        assert!(!is_same_process(me, start + 1));
    }

    #[test]
    fn finds_the_port_this_process_listens_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id() as i32;
        assert!(ports_of(&[me], &listening_sockets()).contains(&port));
    }

    #[test]
    fn tells_a_listening_port_from_a_bound_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(is_listening(port));
        drop(listener);
        assert!(!is_listening(port));
    }

    #[test]
    fn finds_children() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let me = std::process::id() as i32;
        assert!(descendants(me).contains(&(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
