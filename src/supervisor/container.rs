//! A container job, on its supervisor's side: before the start a container of the job's name is
//! cleared away (only the job's own leftover, or anything with `--force`); the command gets the
//! name, a label naming the job and a cidfile; a stop is `<engine> stop -t <grace>`; and when the
//! run ends, however it ends (the client killed -9 included), the container goes with it.

use crate::protocol::ContainerView;
use crate::spec::ContainerRun;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where the container's id is written (`--cidfile`), in the job's directory.
pub const CIDFILE: &str = "container.cid";

/// The label that marks a container as a job's: `bgrun.job=<job id>`.
const LABEL: &str = "bgrun.job";

fn engine(c: &ContainerRun, env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(&c.engine);
    cmd.env_clear().envs(env).stdin(Stdio::null());
    cmd
}

/// Clears the job's name for its new container: a container of that name left by this job goes;
/// another's is an error, unless `force`.
pub fn prepare(c: &ContainerRun, job_id: &str, force: bool, env: &BTreeMap<String, String>) -> Result<(), String> {
    let format = format!("{{{{index .Config.Labels \"{LABEL}\"}}}}");
    let inspect = engine(c, env)
        .args(["inspect", "--format", &format, &c.name])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", c.engine))?;
    if !inspect.status.success() {
        return Ok(());
    }
    let owner = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    if owner != job_id && !force {
        return Err(format!(
            "a container named {} exists and is not this job's: remove it ({} rm -f {}) or start with --force",
            c.name, c.engine, c.name
        ));
    }
    remove(c, env);
    Ok(())
}

/// The command with the job's label, its cidfile and (unless the command names it) its name
/// after `run`: in the argument list, or in the shell line that runs it.
pub fn argv(argv: &[String], c: &ContainerRun, job_id: &str, cidfile: &Path) -> Vec<String> {
    let _ = std::fs::remove_file(cidfile);
    let mut options = vec![format!("--label={LABEL}={job_id}"), format!("--cidfile={}", cidfile.display())];
    if !c.named {
        options.push(format!("--name={}", c.name));
    }
    let is_run = |w: &[String]| w[0] == c.engine && w[1] == "run";
    if let Some(at) = argv.windows(2).position(is_run) {
        let mut out = argv.to_vec();
        out.splice(at + 2..at + 2, options);
        return out;
    }
    // A shell line: the options go after the first `<engine> run`.
    argv.iter()
        .map(|word| {
            let run = format!("{} run", c.engine);
            match word.find(&run) {
                Some(at) if word.contains(char::is_whitespace) => {
                    let quoted: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
                    let end = at + run.len();
                    format!("{} {}{}", &word[..end], quoted.join(" "), &word[end..])
                }
                _ => word.clone(),
            }
        })
        .collect()
}

/// How a stop asks the container to end: the engine's own stop, with the job's grace.
pub fn stop_command(c: &ContainerRun, grace_ms: u64) -> String {
    format!("{} stop -t {} {}", c.engine, grace_ms / 1000, c.name)
}

/// The container as its engine reports it, for `bgrun status`.
pub fn inspect(c: &ContainerRun, env: &BTreeMap<String, String>) -> ContainerView {
    let format = "{{.Id}}|{{.State.Status}}|{{.State.ExitCode}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}";
    let out = engine(c, env).args(["inspect", "--format", format, &c.name]).stderr(Stdio::null()).output();
    let text = out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let fields: Vec<&str> = text.as_deref().unwrap_or_default().splitn(4, '|').collect();
    match fields.as_slice() {
        [id, state, code, health] => ContainerView {
            name: c.name.clone(),
            id: id.to_string(),
            state: state.to_string(),
            exit_code: code.parse().ok(),
            health: (!health.is_empty()).then(|| health.to_string()),
        },
        _ => ContainerView {
            name: c.name.clone(),
            id: String::new(),
            state: "absent".into(),
            exit_code: None,
            health: None,
        },
    }
}

/// The container, stopped and removed (nothing if it is gone already).
pub fn remove(c: &ContainerRun, env: &BTreeMap<String, String>) {
    let _ = engine(c, env).args(["rm", "-f", &c.name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(named: bool) -> ContainerRun {
        ContainerRun { engine: "podman".into(), name: "bgrun-shop-db".into(), named }
    }

    fn rewritten(argv: &[String], named: bool) -> Vec<String> {
        super::argv(argv, &run(named), "J", Path::new("/j/container.cid"))
    }

    #[test]
    fn the_options_go_right_after_run() {
        let argv: Vec<String> = ["podman", "run", "--rm", "img", "sleep", "9"].map(String::from).to_vec();
        let out = rewritten(&argv, false);
        assert_eq!(
            out,
            [
                "podman",
                "run",
                "--label=bgrun.job=J",
                "--cidfile=/j/container.cid",
                "--name=bgrun-shop-db",
                "--rm",
                "img",
                "sleep",
                "9"
            ]
        );
        let line = vec!["sh".into(), "-c".into(), "sudo podman run --name db img".into()];
        assert_eq!(
            rewritten(&line, true)[2],
            "sudo podman run '--label=bgrun.job=J' '--cidfile=/j/container.cid' --name db img"
        );
    }
}
