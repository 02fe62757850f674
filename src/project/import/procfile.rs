//! Procfiles, as foreman, honcho and overmind read them: `name: command` lines run through
//! `sh -c` from the Procfile's directory, comments and blank lines skipped, each process given a
//! PORT, and `.env` beside the file read for all of them.

use super::Context;
use super::convert::{self, job_name};
use super::draft::{Draft, Job};
use crate::error::{Error, Result};
use std::collections::BTreeSet;

const PORT_NOTE: &str = "foreman gave each process a PORT, numbered by its place in the Procfile (5000, 5100, \
                         5200…; honcho and overmind do the same); bgrun gives each job a free port in PORT";

pub fn translate(text: &str, cx: &Context) -> Result<Draft> {
    let mut draft = Draft::new(&cx.file);
    let mut taken = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = split(line) else {
            draft.unsupported(None, &format!("line {}", i + 1), "not a `name: command` line (foreman skips it too)");
            continue;
        };
        let (job, renamed) = job_name(name, &mut taken);
        let mut job = Job::new(job, format!("{}, line {}: {name:?}", cx.file, i + 1));
        job.notes.extend(renamed);
        job.set("cmd", command);
        if !cx.base.as_os_str().is_empty() {
            job.set("cwd", convert::rebase(&cx.base, "."));
        }
        job.approx("allocate-port", "PORT", PORT_NOTE);
        draft.jobs.push(job);
    }
    if draft.jobs.is_empty() {
        return Err(Error::bad_input(format!("{} has no `name: command` lines", cx.file)));
    }
    if cx.dir.join(".env").is_file() {
        let note = "foreman, honcho and overmind read the .env beside the Procfile for every process";
        draft.env_file = Some((convert::rebase(&cx.base, ".env"), note.into()));
    }
    Ok(draft)
}

/// `web: bundle exec puma`: a name of letters, digits, '_' and '-', then the command (foreman's
/// own pattern).
fn split(line: &str) -> Option<(&str, &str)> {
    let (name, command) = line.split_once(':')?;
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let command = command.trim();
    (name_ok && !command.is_empty()).then_some((name, command))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cx(dir: PathBuf, base: &str) -> Context {
        Context { file: "Procfile".into(), dir, base: PathBuf::from(base), cpus: 4 }
    }

    #[test]
    fn lines_become_jobs_with_a_port_each() {
        let text = "# the app\nweb: bundle exec puma -p $PORT\n\nworker:   bundle exec sidekiq\nnot a line\nrelease:\n";
        let draft = translate(text, &cx(PathBuf::from("/nonexistent"), "")).unwrap();
        let toml = draft.render();
        assert!(toml.contains("[jobs.web]\ncmd = \"bundle exec puma -p $PORT\"\n"), "{toml}");
        assert!(
            toml.contains("# from Procfile, line 4: \"worker\"\n[jobs.worker]\ncmd = \"bundle exec sidekiq\"\n"),
            "{toml}"
        );
        assert!(toml.contains("5000, 5100"), "{toml}");
        assert_eq!(toml.matches("allocate-port = \"PORT\"").count(), 2);
        let keys: Vec<&str> = draft.unsupported.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, vec!["line 5", "line 6"]);
        assert!(!toml.contains("env-file"));
    }

    #[test]
    fn a_dotenv_beside_it_is_read_by_every_job() {
        let dir = std::env::temp_dir().join(format!("bgrun-procfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), "A=1\n").unwrap();
        let draft = translate("web: ./serve\n", &cx(dir.clone(), "app")).unwrap();
        let toml = draft.render();
        assert!(toml.contains("env-file = \"app/.env\""), "{toml}");
        assert!(toml.contains("cwd = \"app\""), "{toml}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_without_processes_is_refused() {
        let e = translate("# nothing\n\n", &cx(PathBuf::from("/nonexistent"), "")).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::BadInput);
    }
}
