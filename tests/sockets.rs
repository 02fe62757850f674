//! Socket handoff (`listen`): bgrun binds a job's sockets once and hands the same sockets to
//! every run, through restarts, replicas and a daemon killed -9, with systemd's LISTEN_* protocol.
//! The server is a few lines of Python with `socket.socket(fileno=3)`, as a real socket-activated
//! server (gunicorn, uvicorn --fd) takes it.

mod common;
use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;

/// Refuses to serve unless LISTEN_PID is its own pid; answers each request with its pid. Like a
/// real server (gunicorn's graceful shutdown) it finishes the request in hand on SIGTERM and
/// leaves the rest queued on the socket for the next run.
const SERVER: &str = r#"
import os, select, signal, socket, sys
if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit("LISTEN_PID is not my pid")
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
print("serving", os.environ["LISTEN_FDS"], os.environ["LISTEN_FDNAMES"], flush=True)
s = socket.socket(fileno=3)
while not stopping:
    if select.select([s], [], [], 0.05)[0]:
        c, _ = s.accept()
        c.recv(1024)
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + str(os.getpid()).encode())
        c.close()
"#;

fn write_server(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("server.py");
    std::fs::write(&path, SERVER).unwrap();
    path.display().to_string()
}

/// The socket a process has on fd 3, as the kernel names it (`socket:[inode]`).
fn socket_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap().display().to_string()
}

fn serving_pid(b: &Bgrun, job: &str) -> i32 {
    wait_until("the server to serve", SECS(10), || {
        (b.tail_text(job, 1).last().is_some_and(|l| l.starts_with("serving"))).then(|| b.pid(job))
    })
}

#[test]
fn every_run_gets_the_same_socket_through_restarts_and_a_killed_daemon_and_refuses_no_request() {
    let b = Bgrun::new(SECS(90));
    let server = write_server(&b.home.join("app"));
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    // A command line through sh: the shell execs the server, so LISTEN_PID is the server's.
    let cmd = format!("python3 -u {server}");
    b.json(&["run", "--name", "web", "--listen", &address, &cmd]);
    let first = serving_pid(&b, "web");
    assert_eq!(b.tail_text("web", 1), ["serving 1 web"]);
    let socket = socket_of(first);
    assert_eq!(request(port).unwrap(), first.to_string());

    let load = Load::start(port, 4);
    let mut pids = vec![first];
    for round in 0..4 {
        if round == 2 {
            // A daemon killed -9: the next one takes the socket back from the job's supervisor.
            kill_daemon(&b);
        }
        b.json(&["restart", "web"]);
        let pid = serving_pid(&b, "web");
        assert!(!pids.contains(&pid), "a new run");
        assert_eq!(socket_of(pid), socket, "run {round} got the same socket");
        pids.push(pid);
    }
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "requests failed during the restarts ({ok} succeeded)");
    assert!(ok > 0);

    // Stopped on request, the job gives its socket up: the port is free again.
    b.json(&["kill", "web"]);
    wait_until("the port to close", SECS(10), || TcpStream::connect(("127.0.0.1", port)).is_err().then_some(()));
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "nothing holds the port");
}

#[test]
fn replicas_share_one_socket_and_it_closes_with_the_last() {
    let b = Bgrun::new(SECS(60));
    let dir = b.home.join("shared");
    let server = write_server(&dir);
    let port = free_port();
    let toml =
        format!("[jobs.web]\ncmd = [\"python3\", \"-u\", {server:?}]\nlisten = \"127.0.0.1:{port}\"\nreplicas = 2\n");
    std::fs::write(dir.join("bgrun.toml"), toml).unwrap();
    assert!(b.cmd(&["up"]).current_dir(&dir).output().unwrap().status.success());
    let (one, two) = (serving_pid(&b, "web.1"), serving_pid(&b, "web.2"));
    assert_eq!(socket_of(one), socket_of(two), "one socket for both copies");
    // Either copy answers from the one queue.
    let answers: std::collections::BTreeSet<String> = (0..40).map(|_| request(port).unwrap()).collect();
    assert!(answers.iter().all(|a| *a == one.to_string() || *a == two.to_string()), "{answers:?}");
    b.json(&["kill", "web.1"]);
    assert_eq!(request(port).unwrap(), two.to_string(), "the other copy keeps the socket open");
    b.json(&["kill", "web"]);
    wait_until("the port to close", SECS(10), || TcpStream::connect(("127.0.0.1", port)).is_err().then_some(()));
}

#[test]
fn an_address_in_use_or_malformed_is_one_clear_error() {
    let b = Bgrun::new(SECS(30));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let err = b.fails(&["run", "--name", "a", "--listen", &address, "sleep", "30"]);
    assert!(err.contains(&format!("cannot listen on {address}")), "{err}");
    let err = b.fails(&["run", "--name", "b", "--listen", "localhost", "sleep", "30"]);
    assert!(err.contains("is not an address to listen on"), "{err}");
}

/// A process in the way of a job that wants `port`: it binds the port and serves nothing. Killed
/// when dropped, should the test fail before bgrun stops it.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn holder(port: u16, job_id: Option<&str>) -> Holder {
    let code = format!(
        "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\nprint('bound', flush=True)\ntime.sleep(60)\n"
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &code]).stdout(std::process::Stdio::piped());
    if let Some(id) = job_id {
        cmd.env("BGRUN_JOB_ID", id);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = [0u8; 6];
    child.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    Holder(child)
}

fn gone(holder: &mut Holder) -> bool {
    wait_until("the holder to end", SECS(10), || holder.0.try_wait().unwrap().map(|_| ()));
    true
}

#[test]
fn a_leftover_holding_the_jobs_port_is_stopped_and_another_process_only_with_force() {
    let b = Bgrun::new(SECS(60));
    let port = free_port();
    let serve =
        format!("import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\ntime.sleep(60)");
    let port_arg = port.to_string();
    let job = b.json(&["run", "--name", "web", "--ready-when-port", &port_arg, "python3", "-c", &serve]);
    let id = job["id"].as_str().unwrap().to_string();
    b.json(&["kill", "web"]);
    // A leftover of an earlier run (a stand-in: a process carrying the job's id, as every
    // process of the job does) still holds the port: the next start stops it.
    let mut leftover = holder(port, Some(&id));
    b.json(&["restart", "web"]);
    assert!(gone(&mut leftover));
    wait_until("web ready", SECS(10), || (b.state("web") == "ready").then_some(()));
    let events = b.status("web")["events"].to_string();
    assert!(events.contains("freed-ports") && events.contains(&format!("held port {port}")), "{events}");

    // Another program of the user in the way: left alone without --force (the job cannot bind
    // and crashes), stopped with it.
    b.json(&["kill", "web"]);
    let mut other = holder(port, None);
    b.cmd(&["restart", "web"]).output().unwrap();
    wait_until("web to fail", SECS(10), || (b.state("web") == "crashed").then_some(()));
    assert!(other.0.try_wait().unwrap().is_none(), "not stopped without --force");
    b.json(&["restart", "web", "--force"]);
    assert!(gone(&mut other));
    wait_until("web ready", SECS(10), || (b.state("web") == "ready").then_some(()));
}

#[test]
fn a_crashed_job_killed_or_deleted_gives_its_socket_up() {
    let b = Bgrun::new(SECS(30));
    for how in ["kill", "delete"] {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        b.json(&["run", "--name", "gone", "--listen", &address, "sh", "-c", "exit 3"]);
        wait_until("the crash", SECS(10), || (b.state("gone") == "crashed").then_some(()));
        // Crashed, it may run again: bgrun keeps its socket (connections wait in its queue).
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err(), "held while the job may run again");
        b.json(&[how, "gone"]);
        wait_until("the port to be free", SECS(10), || std::net::TcpListener::bind(("127.0.0.1", port)).ok());
        if how == "kill" {
            b.json(&["delete", "gone"]);
        }
    }
}
