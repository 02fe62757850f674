//! systemd units: `<project>-<job>.service` for each job (each copy of a job with replicas),
//! `.socket` units for `listen`, `.timer` units for `cron`, and `<project>.target`, which wants
//! them all: `systemctl enable --now <project>.target` starts the project as `bgrun up` does.

use super::{Check, File, Input, Report, calendar, header, span};
use crate::spec::{Condition, JobSpec, KillMode, RestartPolicy};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// The first systemd with RestartSteps= and RestartMaxDelaySec= (bgrun's doubling backoff).
const RESTART_STEPS_SINCE: u32 = 254;

pub fn export(input: &Input, report: &mut Report) -> Vec<File> {
    let project = &input.project.name;
    let mut files = Vec::new();
    let mut wanted = Vec::new();
    for spec in &input.project.jobs {
        let name = spec.name.clone().unwrap_or_default();
        let job = spec.replica.as_ref().map_or(name.clone(), |r| r.of.clone());
        report.dropped_keys(&job, spec);
        let unit = format!("{project}-{name}");
        let sockets = socket(input, spec, &job, &unit);
        let schedule = spec.cron.as_deref().map(|cron| (cron, calendar::on_calendar(cron)));
        if let Some((_, None)) = schedule {
            report.drop(&job, "cron");
        }
        files.push(File {
            name: format!("{unit}.service"),
            text: service(input, spec, &unit, sockets.is_some(), report),
        });
        if spec.disabled {
            continue;
        }
        if let Some(text) = sockets {
            files.push(File { name: format!("{unit}.socket"), text });
            wanted.push(format!("{unit}.socket"));
        }
        match schedule {
            // A one-shot job runs on its schedule only.
            Some((cron, Some(calendar))) if spec.oneshot => {
                files.push(File { name: format!("{unit}.timer"), text: timer(input, &unit, cron, &calendar) });
                wanted.push(format!("{unit}.timer"));
            }
            // A running job is restarted on it, by a one-shot unit of its own.
            Some((cron, Some(calendar))) => {
                let restarter = format!("{unit}-restart");
                files.push(File { name: format!("{restarter}.service"), text: restart_service(input, &unit) });
                files
                    .push(File { name: format!("{restarter}.timer"), text: timer(input, &restarter, cron, &calendar) });
                wanted.extend([format!("{unit}.service"), format!("{restarter}.timer")]);
            }
            Some((_, None)) if spec.oneshot => {}
            _ => wanted.push(format!("{unit}.service")),
        }
    }
    let mut target = header("#", input, "systemd");
    let _ = write!(
        target,
        "[Unit]\nDescription=bgrun project {}\nWants={}\n\n[Install]\nWantedBy=multi-user.target\n",
        escape(project),
        wanted.join(" ")
    );
    files.push(File { name: format!("{project}.target"), text: target });
    files
}

fn service(input: &Input, spec: &JobSpec, unit: &str, sockets: bool, report: &mut Report) -> String {
    let project = &input.project.name;
    let name = spec.name.as_deref().unwrap_or_default();
    let mut u = header("#", input, "systemd");
    if spec.disabled {
        u.push_str("# disabled in the file: not wanted by the target; start it by name.\n");
    }
    let _ = write!(
        u,
        "[Unit]\nDescription=bgrun job {} of project {}\nPartOf={project}.target\n",
        escape(name),
        escape(project)
    );
    if sockets {
        let _ = writeln!(u, "Requires={unit}.socket\nAfter={unit}.socket");
    }
    for dep in &spec.after {
        let other = format!("{project}-{}.service", dep.job);
        let how = if dep.condition == Condition::ReadyOrEnded { "Wants" } else { "Requires" };
        let _ = writeln!(u, "After={other}\n{how}={other}");
        if spec.restart_with_dependencies {
            let _ = writeln!(u, "PartOf={other}");
        }
    }
    let delays = restart_delays(spec, input.systemd_version);
    if spec.restart != RestartPolicy::Never {
        // bgrun gives up after `max` crashes in a row, each within min-uptime of its start.
        let window = spec.restarts.min_uptime * (spec.restarts.max + 1) + delays.total(spec.restarts.max);
        let _ = writeln!(
            u,
            "StartLimitIntervalSec={}s\nStartLimitBurst={}",
            super::whole_seconds(window),
            spec.restarts.max + 1
        );
    }
    u.push_str("\n[Service]\n");
    let kind = if spec.oneshot {
        "oneshot\nRemainAfterExit=yes"
    } else if spec.daemonizes {
        "forking"
    } else if spec.ready.notify {
        "notify"
    } else {
        "exec"
    };
    let _ = writeln!(u, "Type={kind}");
    if let Some(pidfile) = &spec.pidfile {
        let _ = writeln!(u, "PIDFile={}", escape(&spec.cwd.join(pidfile).to_string_lossy()));
    }
    let _ = writeln!(u, "ExecStart={}", command_line(&spec.argv(), &spec.cwd));
    // The unit has started (and its dependents may start) once its readiness checks pass.
    let waits = Check::readiness(spec);
    if !waits.is_empty() {
        let all: Vec<String> = waits.iter().map(|c| format!("( {} )", c.shell())).collect();
        let script = format!("until {}; do sleep 1; done", all.join(" && "));
        let _ = writeln!(u, "ExecStartPost={}", command_line(&["sh".into(), "-c".into(), script], &spec.cwd));
    }
    if let Some(stop) = &spec.stop.command {
        let _ = writeln!(u, "ExecStop={}", command_line(&["sh".into(), "-c".into(), stop.clone()], &spec.cwd));
    }
    let _ = writeln!(u, "WorkingDirectory={}", escape(&spec.cwd.to_string_lossy()));
    for (key, value) in &spec.declared_env {
        let _ = writeln!(u, "Environment={}", quote(&format!("{key}={value}")));
    }
    let restart = match spec.restart {
        RestartPolicy::Never => "no",
        RestartPolicy::OnCrash => "on-failure",
        RestartPolicy::Always => "always",
    };
    let _ = writeln!(u, "Restart={restart}");
    if spec.restart != RestartPolicy::Never {
        let _ = writeln!(u, "RestartSec={}", span(delays.first));
        if let Some((steps, max)) = delays.steps {
            let _ = writeln!(u, "RestartSteps={steps}\nRestartMaxDelaySec={}", span(max));
        }
    }
    if !spec.restarts.stop_exit_codes.is_empty() {
        let codes: Vec<String> = spec.restarts.stop_exit_codes.iter().map(i32::to_string).collect();
        let _ = writeln!(u, "SuccessExitStatus={0}\nRestartPreventExitStatus={0}", codes.join(" "));
    }
    if spec.ready.notify || !waits.is_empty() {
        let _ = writeln!(u, "TimeoutStartSec={}", span(spec.ready.timeout));
    }
    let _ = writeln!(u, "TimeoutStopSec={}", span(spec.grace));
    if let Some(signal) = &spec.stop.signal {
        let _ = writeln!(u, "KillSignal={signal}");
    }
    if spec.stop.kill_mode == KillMode::Main {
        u.push_str("KillMode=mixed\n");
    }
    if let Some(mb) = spec.max_rss_mb {
        let _ = writeln!(u, "MemoryMax={mb}M");
    }
    // A one-shot's run is its start: systemd limits it with the start's timeout.
    if let Some(limit) = spec.max_runtime {
        let key = if spec.oneshot { "TimeoutStartSec" } else { "RuntimeMaxSec" };
        let _ = writeln!(u, "{key}={}", span(limit));
    }
    let mirror = &spec.mirror;
    let file = |path: &Path| escape(&spec.cwd.join(path).to_string_lossy());
    if mirror.log.is_some() && (mirror.stdout.is_some() || mirror.stderr.is_some()) {
        let job = spec.replica.as_ref().map_or(name, |r| r.of.as_str());
        report.because(job, "log", "systemd writes each stream to one file: stdout and stderr win".into());
    }
    if let Some(path) = mirror.stdout.as_ref().or(mirror.log.as_ref()) {
        let _ = writeln!(u, "StandardOutput=append:{}", file(path));
    }
    if let Some(path) = mirror.stderr.as_ref().or(mirror.log.as_ref()) {
        let _ = writeln!(u, "StandardError=append:{}", file(path));
    }
    u
}

/// The `.socket` unit of a job with `listen`: its addresses, named as bgrun names them.
fn socket(input: &Input, spec: &JobSpec, job: &str, unit: &str) -> Option<String> {
    if spec.listen.is_empty() {
        return None;
    }
    let mut u = header("#", input, "systemd");
    let _ = write!(
        u,
        "[Unit]\nDescription=Sockets of bgrun job {} of project {}\nPartOf={}.target\n\n[Socket]\n",
        escape(spec.name.as_deref().unwrap_or_default()),
        escape(&input.project.name),
        input.project.name
    );
    for address in &spec.listen {
        let _ = writeln!(u, "ListenStream={}", escape(address.strip_prefix("unix:").unwrap_or(address)));
    }
    let _ = writeln!(u, "FileDescriptorName={job}\nService={unit}.service");
    // bgrun hands one set of sockets to every copy; systemd gives each copy its own, on one port.
    if spec.replica.is_some() {
        u.push_str("ReusePort=yes\n");
    }
    Some(u)
}

fn timer(input: &Input, unit: &str, cron: &str, calendar: &str) -> String {
    let mut u = header("#", input, "systemd");
    let _ = write!(
        u,
        "[Unit]\nDescription=Schedule of {unit} (cron {})\nPartOf={}.target\n\n[Timer]\nOnCalendar={calendar}\n\
         AccuracySec=1s\nUnit={unit}.service\n",
        escape(cron),
        input.project.name
    );
    u
}

/// The one-shot unit a running job's schedule starts: it restarts the job.
fn restart_service(input: &Input, unit: &str) -> String {
    let mut u = header("#", input, "systemd");
    let _ = write!(
        u,
        "[Unit]\nDescription=Restart {unit} on its schedule\n\n[Service]\nType=oneshot\n\
         ExecStart=systemctl try-restart {unit}.service\n"
    );
    u
}

/// The delays before restarts, as the unit writes them.
struct Delays {
    first: Duration,
    /// RestartSteps= and RestartMaxDelaySec=, on a systemd that has them.
    steps: Option<(u32, Duration)>,
}

impl Delays {
    /// The sum of the first `n` delays.
    fn total(&self, n: u32) -> Duration {
        let cap = self.steps.map_or(self.first, |(_, max)| max);
        (0..n).map(|i| self.first.saturating_mul(1u32 << i.min(20)).min(cap)).sum()
    }
}

fn restart_delays(spec: &JobSpec, version: u32) -> Delays {
    if let Some(delay) = spec.restarts.delay {
        return Delays { first: delay, steps: None };
    }
    let first = spec.backoff;
    let cap = crate::plan::BACKOFF_CAP.max(first);
    // Doubling from the first delay reaches the cap in this many steps.
    let steps = (cap.as_secs_f64() / first.as_secs_f64().max(0.001)).log2().ceil() as u32;
    let steps = (version >= RESTART_STEPS_SINCE && steps > 0 && !first.is_zero()).then_some((steps, cap));
    Delays { first, steps }
}

/// `%` is a specifier everywhere in a unit file.
fn escape(text: &str) -> String {
    text.replace('%', "%%")
}

/// A value in double quotes, with the escapes systemd reads there.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in escape(text).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An ExecStart= line: the program found as bgrun finds it (`sh` is /bin/sh; a relative path is
/// under the cwd; a bare name is searched for by systemd), `$` kept from systemd's expansion.
fn command_line(argv: &[String], cwd: &Path) -> String {
    let words = argv.iter().enumerate().map(|(i, word)| {
        let word = match word.as_str() {
            "sh" if i == 0 => "/bin/sh".to_string(),
            w if i == 0 && w.contains('/') && !w.starts_with('/') => cwd.join(w).to_string_lossy().into_owned(),
            w => w.to_string(),
        };
        let plain = !word.is_empty()
            && word != ";"
            && word.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'));
        let word = if plain { escape(&word) } else { quote(&word) };
        word.replace('$', "$$")
    });
    words.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_keep_every_character_from_systemd() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cwd = Path::new("/srv/app");
        assert_eq!(
            command_line(&argv(&["sh", "-c", "echo \"$HOME\" 100%"]), cwd),
            r#"/bin/sh -c "echo \"$$HOME\" 100%%""#
        );
        assert_eq!(command_line(&argv(&["./server", "--port", "80"]), cwd), "/srv/app/./server --port 80");
        assert_eq!(command_line(&argv(&["python3", ";", ""]), cwd), r#"python3 ";" """#);
        assert_eq!(quote("A=b\"c\nd"), r#""A=b\"c\nd""#);
    }

    #[test]
    fn the_backoff_doubles_to_five_minutes_where_systemd_can() {
        let mut spec = crate::spec::tests::sample();
        spec.backoff = Duration::from_secs(2);
        let d = restart_delays(&spec, 254);
        assert_eq!(d.steps, Some((8, Duration::from_secs(300))));
        assert_eq!(d.total(3), Duration::from_secs(2 + 4 + 8));
        let d = restart_delays(&spec, 252);
        assert_eq!((d.steps, d.total(3)), (None, Duration::from_secs(6)));
        spec.restarts.delay = Some(Duration::from_secs(1));
        assert_eq!(restart_delays(&spec, 254).steps, None);
    }
}
