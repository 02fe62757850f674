#!/usr/bin/env python3
"""bgrun's benchmark harness: bgrun side by side with PM2, supervisord and pueue, on this machine, in
one run, with several rounds per figure (managers alternate inside each round so drift hits all
alike). A figure a manager does not have (pueue restarts nothing) shows as "–".

Every daemon and job it starts runs in a temporary directory with its own home, and is stopped by
pid at the end. Peers are installed into that directory: PM2 from the npm registry, supervisord from
PyPI into a virtual environment, pueue with `cargo install` from crates.io; a peer that cannot be
installed is reported and skipped.

BGRUN_BENCH_CACHE=DIR installs the peers there instead, once for all runs.

Log capture is checked byte for byte: the job writes 100-byte lines, and "bytes lost" counts what
the stored output does not hold of them, from the first byte that differs on.
"""

import argparse
import collections
import contextlib
import socket
import threading
import datetime
import fcntl
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Built for the host tuple named in .cargo/config.toml (so it can be linked statically).
HOST = subprocess.run(["rustc", "--print", "host-tuple"], capture_output=True, text=True, check=True).stdout.strip()
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BGRUN = os.path.join(TARGET, HOST, "release", "bgrun")
LINE = "x" * 99  # 100-byte lines with the newline
JOBS = 100
MANY = 1000


def now():
    return time.perf_counter()


def ms(t0):
    return (now() - t0) * 1000


def proc_kb(pid, name, key):
    """A kB figure of /proc/<pid>/<name>, 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def remove_big_files(home):
    """A finished round's home loses its big files (the log figures' gigabyte) at once; the rest
    (thousands of small files: job directories) stays until the run ends. On a file system that
    avoids reusing freshly freed inodes (ext4 without a journal scans past every inode freed in
    the last minutes to allocate one), deleting them between rounds would slow down the next
    round's file creation, whichever manager it measures."""
    for root, _dirs, files in os.walk(home):
        for name in files:
            path = os.path.join(root, name)
            try:
                if os.lstat(path).st_size > 1_000_000:
                    os.unlink(path)
            except OSError:
                pass


def rss_kb(pid):
    return proc_kb(pid, "status", "VmRSS:")


def private_kb(pid):
    """Memory only this process has: what each more of it costs."""
    return proc_kb(pid, "smaps_rollup", "Private_Dirty:") + proc_kb(pid, "smaps_rollup", "Private_Clean:")


def bytes_lost(path, nbytes):
    """How much of the `nbytes` of LINE-lines the file at `path` does not hold, byte for byte: all
    from the first byte that differs (or from its end, if it is short)."""
    unit = (LINE + "\n").encode()
    chunk = unit * (64_000_000 // len(unit))
    good = 0
    try:
        with open(path, "rb") as f:
            while good < nbytes:
                want = chunk[: min(len(chunk), nbytes - good)]
                got = f.read(len(want))
                if got != want:
                    same = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                    return nbytes - good - same
                good += len(want)
            if f.read(1):
                return -1  # more than was written: a corruption of its own
    except FileNotFoundError:
        return nbytes
    return 0


def pss_kb(pid):
    """Proportional memory: pages shared between processes (such as one binary mapped by 100
    supervisors) are divided among them, so summing over processes counts them once."""
    return proc_kb(pid, "smaps_rollup", "Pss:")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def unlocked(path):
    """Whether nobody holds the flock on `path` (bgrun's supervisor holds its job's for its life)."""
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def wait_for(what, check, timeout=60.0, pause=0.001):
    deadline = now() + timeout
    while now() < deadline:
        value = check()
        if value:
            return value
        time.sleep(pause)
    raise TimeoutError(f"timed out waiting for {what}")


def processes_with_env(key, value):
    """Pids whose environment has key=value: how we find, by pid, everything we started."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(cmd, env=None, cwd=None, check=True):
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} {' '.join(cmd[1:3])} failed: {p.stderr.strip()[:300]}")
    return p


def start_times(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def respawn_gaps(path, want):
    times = wait_for("restarts", lambda: (t := start_times(path)) and len(t) >= want and t, timeout=60)
    return [(b - a) / 1e6 for a, b in zip(times, times[1:])]


class Manager:
    """One process manager, in its own home under `base`. Subclasses implement the figures."""

    name = "?"

    def __init__(self, base):
        self.base = os.path.join(base, self.name)
        os.makedirs(self.base, exist_ok=True)
        # Where the peer is installed: BGRUN_BENCH_CACHE keeps installs between runs.
        cache = os.environ.get("BGRUN_BENCH_CACHE")
        self.install_dir = os.path.join(cache, self.name) if cache else self.base
        os.makedirs(self.install_dir, exist_ok=True)
        self.home = None
        self.marker = None

    def fresh(self):
        """A new, empty home for a round; everything from the last one is stopped first."""
        self.teardown()
        self.home = tempfile.mkdtemp(prefix="h", dir=self.base)
        self.marker = os.path.basename(self.home)

    def env(self):
        e = dict(os.environ)
        e["BENCH_MARKER"] = self.marker
        return e

    def teardown(self):
        if self.marker:
            kill_pids(processes_with_env("BENCH_MARKER", self.marker))
            wait_for("processes gone", lambda: not processes_with_env("BENCH_MARKER", self.marker), timeout=10)
        if self.home:
            remove_big_files(self.home)
        self.home = self.marker = None

    def crash_cmd(self, path):
        return f"date +%s%N >> {path}; exit 1"

    def log_cmd(self, nbytes):
        return f"yes {LINE} | head -c {nbytes}"

    # Figures only some managers have: None leaves them out.
    def crash_respawn(self):
        return None

    def many_jobs(self):
        return None

    def tail_last_lines(self):
        return None

    def supervisor_private_kb(self):
        return None

    def index_share(self):
        return None

    def redeploy_under_load(self):
        return None

    def dashboard(self):
        return None


class Bgrun(Manager):
    name = "bgrun"

    def env(self):
        e = super().env()
        e["BGRUN_HOME"] = self.home
        return e

    def cli(self, *args, cwd=None, check=True):
        return run([BGRUN, *args], env=self.env(), cwd=cwd, check=check)

    def cold_start(self):
        t0 = now()
        self.cli("list")
        return ms(t0)

    def daemon_pids(self):
        return [json.loads(self.cli("daemon", "status").stdout)["pid"]]

    def teardown(self):
        # Supervisors start with an environment of their own: found by their command line.
        if self.home:
            kill_pids(self.shim_pids())
        super().teardown()

    def all_manager_pids(self):
        """The daemon and the supervisor process of every job (`bgrun-shim <job> <dir in home>`)."""
        return self.daemon_pids() + self.shim_pids()

    def shim_pids(self):
        found = []
        jobs = os.path.join(self.home, "jobs").encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0] == b"bgrun-shim" and len(argv) > 2 and argv[2].startswith(jobs):
                found.append(int(entry))
        return found

    def supervisor_private_kb(self):
        shims = self.shim_pids()
        return sum(private_kb(p) for p in shims) / len(shims) if shims else None

    def list(self):
        self.cli("list")

    def project(self, name, jobs):
        proj = os.path.join(self.home, name)
        os.makedirs(proj)
        with open(os.path.join(proj, "bgrun.toml"), "w") as f:
            for i in range(jobs):
                f.write(f'[jobs.j{i}]\ncmd = ["sleep", "600"]\n\n')
        return proj

    def start_jobs(self):
        proj = self.project("proj", JOBS)
        t0 = now()
        out = json.loads(self.cli("up", cwd=proj).stdout)
        took = ms(t0)
        assert out["ok"] and len(out["jobs"]) == JOBS
        return took

    def redeploy_under_load(self):
        """`bgrun deploy` of a new version of a server behind `listen` (so replaced start-first), from a
        git remote."""
        port = free_port()
        root = os.path.join(self.home, "git")
        os.makedirs(root)
        run(["git", "init", "-q", "--bare", "-b", "main", "remote.git"], cwd=root)
        run(["git", "clone", "-q", "remote.git", "dev"], cwd=root)
        dev = os.path.join(root, "dev")
        git(dev, "checkout", "-q", "-b", "main")

        def push(version):
            with open(os.path.join(dev, "server.py"), "w") as f:
                f.write(SERVER.replace("VERSION", f"v{version}"))
            with open(os.path.join(dev, "bgrun.toml"), "w") as f:
                f.write(f'[jobs.web]\ncmd = ["python3", "-u", "server.py"]\nlisten = "127.0.0.1:{port}"\nready-when = "serving"\n')
            git(dev, "add", ".")
            git(dev, "commit", "-q", "-m", f"v{version}")
            git(dev, "push", "-q", "origin", "main")
        push(0)
        run(["git", "clone", "-q", "remote.git", "work"], cwd=root)
        work = os.path.join(root, "work")
        self.cli("up", cwd=work)

        def redeploy(i):
            push(i)
            self.cli("deploy", cwd=work)
        found = under_load(port, redeploy)
        self.cli("down", cwd=work)
        return found

    def many_jobs(self):
        """`up`, `list` (the slowest of 10 calls, the first included) and `down` of 1000 jobs."""
        proj = self.project("many", MANY)
        t0 = now()
        out = json.loads(self.cli("up", cwd=proj).stdout)
        up = ms(t0)
        assert out["ok"] and len(out["jobs"]) == MANY
        lat = []
        for _ in range(10):
            t0 = now()
            self.cli("list")
            lat.append(ms(t0))
        pids = self.job_pids()
        t0 = now()
        self.cli("down", cwd=proj)
        wait_for("jobs gone", lambda: not any(alive(p) for p in pids))
        return up, max(lat), ms(t0)

    def job_pids(self):
        return [json.loads(line)["pid"] for line in self.cli("list").stdout.splitlines()]

    def dashboard(self):
        """The dashboard: its idle memory; how long a line a job writes takes to reach an open
        log viewer (the job writes the time into each line); the first frame of the live job list
        with DASHBOARD_JOBS jobs (what a page waits for when it opens), and its size."""
        port = free_port()
        self.cli("dashboard", "--port", str(port))
        with open(os.path.join(self.home, "dashboard.token")) as f:
            token = f.read().strip()
        pid = json.loads(self.cli("status", "bgrun-dashboard").stdout)["pid"]
        time.sleep(0.5)  # let it settle before reading its memory
        idle_mb = rss_kb(pid) / 1024
        stamper = "import time\nfor i in range(%d):\n    print(time.time_ns(), flush=True)\n    time.sleep(0.02)\ntime.sleep(600)" % DASHBOARD_LINES
        self.cli("run", "--name", "stamper", "--", "python3", "-c", stamper)
        delays = []
        with sse(port, token, "/api/v1/jobs/stamper/logs/follow?lines=0") as events:
            while len(delays) < DASHBOARD_LINES:
                name, data = next(events)
                if name == "lines":
                    arrived = time.time_ns()
                    delays += [(arrived - int(line["content"])) / 1e6 for line in json.loads(data)]
        self.cli("delete", "stamper")
        # A job writing FLOOD_RATE lines a second to an open viewer: the dashboard's CPU meanwhile,
        # and every line delivered.
        flood = ("import sys, time\nt0 = time.time()\nfor n in range(%d):\n    print('line', n)\n"
                 "    if n %% 100 == 99:\n        sys.stdout.flush()\n        time.sleep(max(0, t0 + n / %d - time.time()))\n"
                 "sys.stdout.flush()\ntime.sleep(600)") % (FLOOD_LINES, FLOOD_RATE)
        before = cpu_ticks(pid)
        t0 = now()
        self.cli("run", "--name", "flood", "--", "python3", "-c", flood)
        got = 0
        with sse(port, token, "/api/v1/jobs/flood/logs/follow?lines=0") as events:
            while got < FLOOD_LINES:
                name, data = next(events)
                if name == "lines":
                    got += len(json.loads(data))
        flood_cpu = (cpu_ticks(pid) - before) / os.sysconf("SC_CLK_TCK") / (now() - t0) * 100
        self.cli("delete", "flood")
        proj = self.project("dash", DASHBOARD_JOBS)
        self.cli("up", cwd=proj)

        def first_list():
            with sse(port, token, "/api/v1/events") as events:
                for name, data in events:
                    if name == "jobs":
                        return data
        # The dashboard follows the daemon's list: wait until it has caught up with the `up`.
        def listed():
            return sum(1 for j in json.loads(first_list()) if j.get("project") == "dash")
        wait_for("the dashboard to list every job", lambda: listed() == DASHBOARD_JOBS)
        t0 = now()
        data = first_list()
        first = ms(t0)
        self.cli("down", cwd=proj)
        self.cli("dashboard", "stop")
        return idle_mb, statistics.median(delays), first, len(data) / 1024, flood_cpu

    def stop_all(self, pids):
        t0 = now()
        self.cli("down", cwd=os.path.join(self.home, "proj"))
        wait_for("jobs gone", lambda: not any(alive(p) for p in pids))
        return ms(t0)

    def crash_respawn(self):
        path = os.path.join(self.home, "starts")
        self.cli("run", "--name", "crash", "--restart", "always", "--backoff", "0ms", self.crash_cmd(path))
        # bgrun gives up after 10 crashes in a row: 9 gaps.
        gaps = respawn_gaps(path, 10)
        self.cli("kill", "crash")
        return gaps

    def log_throughput(self, nbytes):
        # One file for the whole output, so it can be compared with what was written.
        size = str(nbytes // 1_000_000 + 100)
        t0 = now()
        job = json.loads(self.cli("run", "--name", "logs", "--log-max-size", size, self.log_cmd(nbytes)).stdout)
        self.log_dir = os.path.join(self.home, "jobs", job["id"])
        # Done once its supervisor has written the last byte and exited, releasing its lock.
        lock = os.path.join(self.log_dir, "shim.lock")
        wait_for("log job done", lambda: unlocked(lock), timeout=600, pause=0.005)
        took = now() - t0
        return took, os.path.join(self.log_dir, "output.log")

    def index_share(self):
        idx, log = (os.path.getsize(os.path.join(self.log_dir, f)) for f in ("output.idx", "output.log"))
        return 100 * idx / log

    def tail_last_lines(self):
        """The last 20 lines of the big log just written, in ms (the CLI process included)."""
        lat = []
        for _ in range(5):
            t0 = now()
            out = self.cli("tail", "logs", "--lines", "20").stdout
            lat.append(ms(t0))
        assert len(json.loads(out)["lines"]) == 20
        return statistics.median(lat)


class Pm2(Manager):
    name = "pm2"

    def install(self):
        prefix = os.path.join(self.install_dir, "npm")
        if not os.path.exists(os.path.join(prefix, "node_modules", ".bin", "pm2")):
            run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", "pm2"])
        self.bin = os.path.join(prefix, "node_modules", ".bin", "pm2")
        # Not `pm2 --version`: that starts a daemon.
        with open(os.path.join(prefix, "node_modules", "pm2", "package.json")) as f:
            return json.load(f)["version"]

    def env(self):
        e = super().env()
        e["PM2_HOME"] = self.home
        return e

    def cli(self, *args, check=True):
        return run([self.bin, *args], env=self.env(), cwd=self.home, check=check)

    def cold_start(self):
        t0 = now()
        self.cli("jlist")
        return ms(t0)

    def daemon_pids(self):
        with open(os.path.join(self.home, "pm2.pid")) as f:
            return [int(f.read().strip())]

    def all_manager_pids(self):
        return self.daemon_pids()

    def list(self):
        self.cli("jlist")

    def jlist(self):
        out = self.cli("jlist").stdout
        return json.loads(out[out.index("["):])

    def start_jobs(self):
        eco = os.path.join(self.home, "ecosystem.config.js")
        apps = [{"name": f"j{i}", "script": "sleep", "args": "600", "interpreter": "none"} for i in range(JOBS)]
        with open(eco, "w") as f:
            f.write("module.exports = " + json.dumps({"apps": apps}))
        t0 = now()
        self.cli("start", eco)
        wait_for("100 online", lambda: sum(1 for a in self.jlist() if a["pm2_env"]["status"] == "online" and a["pid"]) == JOBS)
        return ms(t0)

    def job_pids(self):
        return [a["pid"] for a in self.jlist()]

    def stop_all(self, pids):
        t0 = now()
        self.cli("delete", "all")
        wait_for("jobs gone", lambda: not any(alive(p) for p in pids))
        return ms(t0)

    def redeploy_under_load(self):
        """`pm2 reload` (fork mode: PM2's zero-downtime reload needs cluster mode, Node only) of a
        new version of the same server."""
        port = free_port()
        script = os.path.join(self.home, "server.py")
        app = {"name": "web", "script": script, "interpreter": "python3", "env": {"PORT": str(port)},
               "kill_timeout": 5000}
        eco = os.path.join(self.home, "web.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = " + json.dumps({"apps": [app]}))

        def write(version):
            with open(script, "w") as f:
                f.write(SERVER.replace("VERSION", f"v{version}"))
        write(0)
        self.cli("start", eco)
        wait_for("server up", lambda: port_open(port), timeout=30, pause=0.01)

        def redeploy(i):
            write(i)
            self.cli("reload", "web")
        found = under_load(port, redeploy)
        self.cli("delete", "web")
        return found

    def crash_respawn(self):
        path = os.path.join(self.home, "starts")
        app = {"name": "crash", "script": "sh", "args": ["-c", self.crash_cmd(path)], "interpreter": "none",
               "autorestart": True, "restart_delay": 0, "min_uptime": 0, "max_restarts": 1000}
        eco = os.path.join(self.home, "crash.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = " + json.dumps({"apps": [app]}))
        self.cli("start", eco)
        gaps = respawn_gaps(path, 10)
        self.cli("delete", "crash")
        return gaps

    def log_throughput(self, nbytes):
        out = os.path.join(self.home, "logs.out")
        app = {"name": "logs", "script": "sh", "args": ["-c", self.log_cmd(nbytes)], "interpreter": "none",
               "autorestart": False, "out_file": out, "error_file": os.path.join(self.home, "logs.err")}
        eco = os.path.join(self.home, "logs.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = " + json.dumps({"apps": [app]}))
        t0 = now()
        self.cli("start", eco)
        wait_for("log job done", lambda: any(a["name"] == "logs" and a["pm2_env"]["status"] != "online" for a in self.jlist()), timeout=600, pause=0.05)
        took = now() - t0
        return took, out


class Supervisord(Manager):
    name = "supervisord"

    def install(self):
        venv = os.path.join(self.install_dir, "venv")
        if not os.path.exists(os.path.join(venv, "bin", "supervisord")):
            run([sys.executable, "-m", "venv", venv])
            run([os.path.join(venv, "bin", "pip"), "install", "--quiet", "supervisor"])
        self.bin = os.path.join(venv, "bin")
        return run([os.path.join(self.bin, "supervisord"), "--version"]).stdout.strip()

    def conf(self, programs=""):
        path = os.path.join(self.home, "supervisord.conf")
        with open(path, "w") as f:
            f.write(f"""[unix_http_server]
file={self.home}/s.sock
[supervisord]
logfile={self.home}/supervisord.log
pidfile={self.home}/supervisord.pid
childlogdir={self.home}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{self.home}/s.sock
[include]
files = {self.home}/programs/*.conf
""")
        os.makedirs(os.path.join(self.home, "programs"), exist_ok=True)
        return path

    def ctl(self, *args, check=False):
        return run([os.path.join(self.bin, "supervisorctl"), "-c", self.conf_path, *args], env=self.env(), check=check)

    def cold_start(self):
        self.conf_path = self.conf()
        t0 = now()
        run([os.path.join(self.bin, "supervisord"), "-c", self.conf_path], env=self.env())
        wait_for("supervisorctl answers", lambda: self.ctl("status").returncode in (0, 3))
        return ms(t0)

    def daemon_pids(self):
        with open(os.path.join(self.home, "supervisord.pid")) as f:
            return [int(f.read().strip())]

    def all_manager_pids(self):
        return self.daemon_pids()

    def list(self):
        self.ctl("status")

    def crash_cmd(self, path):
        # supervisord's config interpolates %(name)s: a literal % is written %%.
        return super().crash_cmd(path).replace("%", "%%")

    def program(self, name, command, **extra):
        opts = "\n".join(f"{k}={v}" for k, v in extra.items())
        with open(os.path.join(self.home, "programs", f"{name}.conf"), "w") as f:
            f.write(f"[program:{name}]\ncommand={command}\n{opts}\n")

    def start_jobs(self):
        for i in range(JOBS):
            self.program(f"j{i}", "sleep 600")
        t0 = now()
        self.ctl("update")
        wait_for("100 RUNNING", lambda: self.ctl("status").stdout.count(" RUNNING ") == JOBS, pause=0.01)
        return ms(t0)

    def job_pids(self):
        return [int(line.split("pid ")[1].split(",")[0]) for line in self.ctl("status").stdout.splitlines() if "pid " in line]

    def stop_all(self, pids):
        t0 = now()
        self.ctl("stop", "all")
        wait_for("jobs gone", lambda: not any(alive(p) for p in pids))
        return ms(t0)

    def crash_respawn(self):
        path = os.path.join(self.home, "starts")
        self.program("crash", f"sh -c '{self.crash_cmd(path)}'", autorestart="true", startsecs=0, startretries=1000)
        self.ctl("update")
        gaps = respawn_gaps(path, 10)
        self.ctl("stop", "crash")
        return gaps

    def log_throughput(self, nbytes):
        out = os.path.join(self.home, "logs.out")
        self.program("logs", f"sh -c '{self.log_cmd(nbytes)}'", autorestart="false", startsecs=0,
                     stdout_logfile=out, stdout_logfile_maxbytes=0, stdout_logfile_backups=0)
        t0 = now()
        self.ctl("update")
        wait_for("log job done", lambda: "EXITED" in self.ctl("status", "logs").stdout, timeout=600, pause=0.05)
        took = now() - t0
        return took, out


class Pueue(Manager):
    """pueue runs tasks rather than services: it restarts nothing, so it has no respawn figure."""

    name = "pueue"

    def install(self):
        root = os.path.join(self.install_dir, "cargo")
        if not os.path.exists(os.path.join(root, "bin", "pueued")):
            run(["cargo", "install", "--quiet", "--locked", "--root", root, "pueue"])
        self.bin = root + "/bin"
        return run([self.bin + "/pueue", "--version"]).stdout.split()[-1]

    def env(self):
        e = super().env()
        e["PUEUE_CONFIG_PATH"] = os.path.join(self.home, "pueue.yml")
        return e

    def cli(self, *args, check=True):
        return run([self.bin + "/pueue", *args], env=self.env(), cwd=self.home, check=check)

    def cold_start(self):
        with open(os.path.join(self.home, "pueue.yml"), "w") as f:
            f.write(f"shared:\n  pueue_directory: {self.home}\n  runtime_directory: {self.home}\n"
                    f"  unix_socket_path: {self.home}/pueue.socket\n  pid_path: {self.home}/pueue.pid\n")
        t0 = now()
        # It forks into the background: its pipes must not be ours, or waiting for them never ends.
        subprocess.run([self.bin + "/pueued", "--daemonize"], env=self.env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("pueue answers", lambda: self.cli("status", "--json", check=False).returncode == 0)
        took = ms(t0)
        # Tasks run one at a time by default (the config's default is only for new groups).
        self.cli("parallel", str(MANY + 10))
        return took

    def daemon_pids(self):
        with open(os.path.join(self.home, "pueue.pid")) as f:
            return [int(f.read().strip())]

    def all_manager_pids(self):
        return self.daemon_pids()

    def list(self):
        self.cli("status", "--json")

    def tasks(self):
        return json.loads(self.cli("status", "--json").stdout)["tasks"].values()

    def running(self):
        return sum(1 for t in self.tasks() if "Running" in json.dumps(t["status"]))

    def job_pids(self):
        """The task processes: pueued's children and theirs."""
        daemon = self.daemon_pids()[0]
        parents = {}
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
        children = [p for p, pp in parents.items() if pp == daemon]
        return children + [p for p, pp in parents.items() if pp in children]

    def add_all(self, n):
        t0 = now()
        for _ in range(n):
            self.cli("add", "--", "sleep 600")
        wait_for(f"{n} running", lambda: self.running() == n, pause=0.01)
        return ms(t0)

    def start_jobs(self):
        return self.add_all(JOBS)

    def stop_all(self, pids):
        t0 = now()
        self.cli("kill", "--all")
        wait_for("jobs gone", lambda: not any(alive(p) for p in pids))
        return ms(t0)

    def many_jobs(self):
        self.cli("clean")
        up = self.add_all(MANY)
        lat = []
        for _ in range(10):
            t0 = now()
            self.list()
            lat.append(ms(t0))
        return up, max(lat), self.stop_all(self.job_pids())

    def log_throughput(self, nbytes):
        t0 = now()
        task = self.cli("add", "--print-task-id", "--", self.log_cmd(nbytes)).stdout.strip()
        done = lambda: any(str(t["id"]) == task and "Done" in json.dumps(t["status"]) for t in self.tasks())
        wait_for("log job done", done, timeout=600, pause=0.005)
        took = now() - t0
        self.task = task
        return took, os.path.join(self.home, "task_logs", f"{task}.log")

    def tail_last_lines(self):
        lat = []
        for _ in range(5):
            t0 = now()
            self.cli("log", self.task, "--lines", "20")
            lat.append(ms(t0))
        return statistics.median(lat)


# The server both managers redeploy: it takes its socket from fd 3 when handed one (LISTEN_FDS,
# bgrun's `listen`), else binds PORT itself (PM2's fork mode), answers each request with its
# version, and on SIGTERM or SIGINT finishes the request in hand and exits.
SERVER = """
import os, select, signal, socket
stopping = []
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stopping.append(1))
if os.environ.get("LISTEN_FDS"):
    s = socket.socket(fileno=3)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(os.environ["PORT"])))
    s.listen(1024)
print("serving", flush=True)
while not stopping:
    if select.select([s], [], [], 0.05)[0]:
        c, _ = s.accept()
        c.recv(1024)
        c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nVERSION")
        c.close()
"""
REDEPLOYS = 5
CLIENTS = 4
# Lines timed from a job to an open log viewer, and jobs in the live list, for the dashboard's figures.
DASHBOARD_LINES = 50
DASHBOARD_JOBS = 500
FLOOD_LINES = 30_000
FLOOD_RATE = 10_000


def cpu_ticks(pid):
    """User and system CPU time of a process so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@contextlib.contextmanager
def sse(port, token, path):
    """Server-Sent Events from the dashboard: an iterator of (event name, data)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    f = c.makefile("rb")

    def events():
        while f.readline().strip():  # the status line and headers
            pass
        name, data = "message", []
        for raw in f:
            line = raw.decode().rstrip("\r\n")
            if not line and data:
                yield name, "".join(data)
                name, data = "message", []
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
    try:
        yield events()
    finally:
        f.close()
        c.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def under_load(port, redeploy):
    """Clients send requests back to back on loopback while `redeploy()` runs REDEPLOYS times:
    (failed requests, p99 latency in ms)."""
    stop, failed, lat = threading.Event(), [0], []

    def client():
        while not stop.is_set():
            t0 = now()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    if b"\r\n\r\n" not in c.recv(1024):
                        raise OSError("no answer")
                lat.append(ms(t0))
            except OSError:
                failed[0] += 1
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        for i in range(REDEPLOYS):
            redeploy(i + 1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    lat.sort()
    return failed[0], lat[int(len(lat) * 0.99)] if lat else None


def git(cwd, *args):
    run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args], cwd=cwd)


def direct_write(base, nbytes):
    """The same data written straight to a file, the ceiling for log capture."""
    path = os.path.join(base, "direct.out")
    t0 = now()
    subprocess.run(["sh", "-c", f"yes {LINE} | head -c {nbytes} > {path}"], check=True)
    took = now() - t0
    os.remove(path)
    return took


def measure_round(m, figures, log_bytes, many):
    """One round of every figure for manager `m`; a figure it does not have stays empty."""
    def put(name, value):
        if value is not None:
            figures[name].append(value)

    m.fresh()
    if isinstance(m, Supervisord):
        m.conf_path = None
    put("cold start to first list (ms)", m.cold_start())
    time.sleep(0.5)  # let the daemon settle before reading its memory
    put("idle daemon RSS (MB)", sum(rss_kb(p) for p in m.daemon_pids()) / 1024)
    idle_pss = sum(pss_kb(p) for p in m.all_manager_pids())
    lat = []
    for _ in range(10):
        t0 = now()
        m.list()
        lat.append(ms(t0))
    put("list, 0 jobs (ms)", statistics.median(lat))
    put("start 100 jobs from one file until all running (ms)", m.start_jobs())
    lat = []
    for _ in range(10):
        t0 = now()
        m.list()
        lat.append(ms(t0))
    put("list, 100 jobs (ms)", statistics.median(lat))
    put("daemon RSS with 100 jobs (MB)", sum(rss_kb(p) for p in m.daemon_pids()) / 1024)
    pss = sum(pss_kb(p) for p in m.all_manager_pids())
    put("all of the manager's processes with 100 jobs, PSS (MB)", pss / 1024)
    put("manager memory per job, PSS (KB)", (pss - idle_pss) / JOBS)
    put("private memory of one job's supervisor process (KB)", m.supervisor_private_kb())
    put("stop 100 jobs until every process is gone (ms)", m.stop_all(m.job_pids()))
    if many:
        found = m.many_jobs()
        if found:
            up, slowest_list, down = found
            put(f"{MANY} jobs: up until all running (ms)", up)
            put(f"{MANY} jobs: list, slowest of 10 calls (ms)", slowest_list)
            put(f"{MANY} jobs: down until every process is gone (ms)", down)
    found = m.redeploy_under_load()
    if found:
        failed, p99 = found
        put(f"redeploy under load ({REDEPLOYS}x, {CLIENTS} clients): failed requests", failed)
        put(f"redeploy under load ({REDEPLOYS}x, {CLIENTS} clients): p99 latency (ms)", p99)
    found = m.dashboard()
    if found:
        idle_mb, delay, first, size, flood_cpu = found
        put("dashboard idle RSS (MB)", idle_mb)
        put("dashboard: a log line to an open page, median (ms)", delay)
        put(f"dashboard: live job list with {DASHBOARD_JOBS} jobs, first frame (ms)", first)
        put(f"dashboard: live job list with {DASHBOARD_JOBS} jobs, size (KB)", size)
        put(f"dashboard CPU while a viewer follows {FLOOD_RATE} lines/s (% of a core)", flood_cpu)
    gaps = m.crash_respawn()
    put("crash to respawn, no backoff (ms)", statistics.median(gaps) if gaps else None)
    took, stored = m.log_throughput(log_bytes)
    put("log capture throughput (MB/s)", log_bytes / took / 1e6)
    put("log bytes lost (byte for byte)", bytes_lost(stored, log_bytes))
    put("log index, % of the stored bytes", m.index_share())
    put(f"tail: last 20 lines of the {log_bytes // 1_000_000} MB log (ms)", m.tail_last_lines())
    m.teardown()


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="bgrun alone, fewer rounds, 100 MB of logs: under a minute")
    ap.add_argument("--alone", action="store_true", help="bgrun alone, every figure (to compare two builds of it)")
    ap.add_argument("--rounds", type=int, help="rounds per figure (default 5, quick 3)")
    ap.add_argument("--log-mb", type=int, help="log capture size in MB (default 1024, quick 100)")
    ap.add_argument("--update-readme", action="store_true", help="rewrite the README's Performance section")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    log_bytes = (args.log_mb or (100 if args.quick else 1024)) * 1_000_000
    base = tempfile.mkdtemp(prefix="bgrun-bench-")
    managers = [Bgrun(base)]
    versions = {"bgrun": run([BGRUN, "--version"]).stdout.split()[-1]}
    if not (args.quick or args.alone):
        for cls in (Pm2, Supervisord, Pueue):
            m = cls(base)
            try:
                versions[m.name] = m.install()
                managers.append(m)
            except Exception as e:  # a peer that cannot be installed is skipped, loudly
                print(f"skipping {m.name}: cannot install it ({e})", file=sys.stderr)
    figures = {m.name: {} for m in managers}
    figures = {m.name: collections.defaultdict(list) for m in managers}
    direct = []
    failed = {}
    try:
        for r in range(rounds):
            order = managers[r % len(managers):] + managers[: r % len(managers)]
            for m in order:
                if m.name in failed:
                    continue
                print(f"round {r + 1}/{rounds}: {m.name}", file=sys.stderr)
                try:
                    measure_round(m, figures[m.name], log_bytes, many=not args.quick)
                except Exception as e:
                    if m.name == "bgrun":
                        raise
                    # A peer that fails is reported and left out; the others go on.
                    print(f"leaving out {m.name}: {e}", file=sys.stderr)
                    failed[m.name] = str(e)
                    m.teardown()
            direct.append(log_bytes / direct_write(base, log_bytes) / 1e6)
    finally:
        for m in managers:
            m.teardown()
        shutil.rmtree(base, ignore_errors=True)
    for name in failed:
        del figures[name]
    report(figures, direct, versions, rounds, log_bytes, args.update_readme)


def report(figures, direct, versions, rounds, log_bytes, update_readme):
    peers = [n for n in figures if n != "bgrun"]
    stamp = datetime.date.today().isoformat()
    lines = [f"Measured {stamp} on {machine()}; {rounds} rounds, median (min–max); "
             f"versions: {', '.join(f'{k} {v}' for k, v in versions.items())}. Regenerated by `bench/run --update-readme`.", ""]
    head = "| " + " | ".join(["figure", "bgrun"] + peers + [f"bgrun/{p}" for p in peers]) + " |"
    lines += [head, "|" + "---|" * (2 + 2 * len(peers))]
    def num(x):
        # Small shares (an index's size) keep two significant digits.
        return f"{x:.2g}" if 0 < abs(x) < 1 else f"{x:.1f}"

    def cell(xs):
        return f"{num(statistics.median(xs))} ({num(min(xs))}–{num(max(xs))})" if xs else "–"
    for name in figures["bgrun"]:
        row = [name, cell(figures["bgrun"][name])]
        row += [cell(figures[p].get(name, [])) for p in peers]
        for p in peers:
            theirs = figures[p].get(name, [])
            b, o = statistics.median(figures["bgrun"][name]), statistics.median(theirs) if theirs else 0
            row.append(f"{b / o:.2f}" if o else "–")
        lines.append("| " + " | ".join(row) + " |")
    lines.append(f"| writing the same {log_bytes // 1_000_000} MB straight to a file (MB/s) | {cell(direct)} |" + " |" * (2 * len(peers)))
    table = "\n".join(lines)
    print(table)
    if update_readme:
        # The raw figures behind the README's table, kept beside it.
        results = {"date": stamp, "machine": machine(), "versions": versions, "rounds": rounds, "figures": figures, "direct_write_mb_s": direct}
        with open(os.path.join(ROOT, "bench", "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        path = os.path.join(ROOT, "README.md")
        with open(path) as f:
            text = f.read()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        with open(path, "w") as f:
            f.write(before + start + "\n" + table + "\n" + end + after)


if __name__ == "__main__":
    main()
