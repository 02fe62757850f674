//! Container jobs against a real engine: podman (with runc, as `.ci/run` sets it up), running an
//! image made offline from a static busybox. Its `docker`-compatible CLI covers the docker path.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

/// Tagged with what it holds: a machine with an older one makes this one beside it.
const IMAGE: &str = "localhost/bgrun-busybox:sh-sleep-echo-touch-test-tmp";

/// podman's settings for this machine (no ulimits to set, runc), and the image, made once.
fn engine(b: &Bgrun) -> PathBuf {
    let conf = b.home.join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n").unwrap();
    // The tests of this file run at once: one of them makes the image.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let exists = podman(&conf, &["image", "exists", IMAGE]).status.success();
    if !exists {
        let root = b.home.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static (.ci/run installs it)");
        for tool in ["sh", "sleep", "echo", "touch", "test"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
        }
        let import = format!("tar -C {} -c . | podman import - {IMAGE}", root.display());
        let made = Command::new("sh").args(["-c", &import]).env("CONTAINERS_CONF", &conf).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    conf
}

fn podman(conf: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new("podman").args(args).env("CONTAINERS_CONF", conf).output().expect("podman (.ci/run installs it)")
}

/// Removes the test's containers whatever happens to the test.
struct Containers(PathBuf, Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.1 {
            let _ = podman(&self.0, &["rm", "-f", name]);
        }
    }
}

fn exists(conf: &PathBuf, name: &str) -> bool {
    podman(conf, &["container", "exists", name]).status.success()
}

fn bgrun_json(b: &Bgrun, conf: &PathBuf, args: &[&str]) -> serde_json::Value {
    let out = b.cmd(args).env("CONTAINERS_CONF", conf).output().unwrap();
    assert!(out.status.success(), "bgrun {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_container_job_is_named_labelled_stopped_and_never_left_running() {
    let b = Bgrun::new(SECS(120));
    let conf = engine(&b);
    let job = format!("db{}", std::process::id());
    let name = format!("bgrun-{job}");
    let _cleanup = Containers(conf.clone(), vec![name.clone()]);
    let serve = ["podman", "run", "--rm", IMAGE, "sh", "-c", "echo started; exec sleep 300"];
    bgrun_json(&b, &conf, &[&["run", "--name", &job, "--grace", "1s"][..], &serve].concat());
    wait_until("the container's output", SECS(20), || (b.tail_text(&job, 1) == ["started"]).then_some(()));
    let status = bgrun_json(&b, &conf, &["status", &job]);
    assert_eq!(status["container"]["name"], name.as_str());
    assert_eq!(status["container"]["state"], "running");
    let id = status["container"]["id"].as_str().unwrap().to_string();
    let cid = std::fs::read_to_string(b.home.join("jobs").join(status["id"].as_str().unwrap()).join("container.cid"));
    assert_eq!(cid.unwrap().trim(), id, "its id recorded");

    // Stopped through the engine, and gone.
    bgrun_json(&b, &conf, &["kill", &job]);
    assert!(!exists(&conf, &name));

    // The client killed -9: the container does not stay behind unseen.
    bgrun_json(&b, &conf, &["restart", &job]);
    wait_until("running again", SECS(20), || exists(&conf, &name).then_some(()));
    signal(b.pid(&job), 9);
    wait_until("the container to go", SECS(30), || (!exists(&conf, &name)).then_some(()));

    // A daemon killed -9: the next one still controls the container.
    bgrun_json(&b, &conf, &["restart", &job]);
    wait_until("running again", SECS(20), || exists(&conf, &name).then_some(()));
    kill_daemon(&b);
    let status = bgrun_json(&b, &conf, &["status", &job]);
    assert_eq!(status["container"]["state"], "running", "re-adopted");
    bgrun_json(&b, &conf, &["kill", &job]);
    assert!(!exists(&conf, &name));
}

#[test]
fn a_name_taken_by_another_container_is_an_error_unless_forced() {
    let b = Bgrun::new(SECS(120));
    let conf = engine(&b);
    let job = format!("web{}", std::process::id());
    let name = format!("bgrun-{job}");
    let _cleanup = Containers(conf.clone(), vec![name.clone()]);
    let other = podman(&conf, &["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    assert!(other.status.success(), "{}", String::from_utf8_lossy(&other.stderr));
    let container = ["podman", "run", "--rm", IMAGE, "sleep", "300"];
    let run = [&["run", "--name", &job, "--grace", "1s"][..], &container].concat();
    let out = b.cmd(&run).env("CONTAINERS_CONF", &conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("a container named {name} exists and is not this job's")), "{err}");
    assert!(exists(&conf, &name), "left alone");
    bgrun_json(&b, &conf, &[&["run", "--name", &job, "--grace", "1s", "--force"][..], &container].concat());
    let status = wait_until("our container", SECS(20), || {
        let status = bgrun_json(&b, &conf, &["status", &job]);
        (status["container"]["state"] == "running").then_some(status)
    });
    let labels = podman(&conf, &["inspect", "--format", "{{index .Config.Labels \"bgrun.job\"}}", &name]);
    assert_eq!(String::from_utf8_lossy(&labels.stdout).trim(), status["id"].as_str().unwrap(), "ours now");
    bgrun_json(&b, &conf, &["kill", &job]);
}

#[test]
fn ready_when_healthy_waits_for_the_containers_health_check() {
    let b = Bgrun::new(SECS(120));
    let conf = engine(&b);
    let job = format!("api{}", std::process::id());
    let _cleanup = Containers(conf.clone(), vec![format!("bgrun-{job}")]);
    // Healthy once the file exists, a second after the start.
    let cmd = [
        "podman",
        "run",
        "--rm",
        "--health-cmd",
        "test -f /tmp/ok",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; touch /tmp/ok; exec sleep 300",
    ];
    let args =
        [&["run", "--name", &job, "--grace", "1s", "--ready-when", "healthy", "--ready-timeout", "30s"][..], &cmd]
            .concat();
    bgrun_json(&b, &conf, &args);
    let waited = b.cmd(&["wait", &job, "--timeout", "30s"]).env("CONTAINERS_CONF", &conf).output().unwrap();
    assert!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stdout));
    let status = bgrun_json(&b, &conf, &["status", &job]);
    assert_eq!(status["state"], "ready");
    assert_eq!(status["container"]["health"], "healthy", "{status}");
    bgrun_json(&b, &conf, &["kill", &job]);
}
