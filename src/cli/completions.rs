use super::Output;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::protocol::short_id;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a completion script for this shell.
    #[arg(long, value_enum)]
    pub shell: Option<Shell>,
    /// Print the short ids of live jobs with their name and state, tab-separated.
    #[arg(long)]
    pub active_ids: bool,
    /// Print the workspaces of live jobs.
    #[arg(long)]
    pub workspaces: bool,
    /// Print the names of live jobs with their short id and state (for the completion scripts).
    #[arg(long, hide = true)]
    pub active_names: bool,
}

/// Commands whose first argument is a job, for live completion of ids and names.
const JOB_COMMANDS: &str = "status kill wait tail diff send stats attach expect restart screen";

pub fn exec(args: Args, home: &Home, _out: &Output) -> Result<i32> {
    if let Some(shell) = args.shell {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut super::Cli::command(), "bgrun", &mut script);
        script.extend_from_slice(dynamic(shell).as_bytes());
        std::io::stdout().write_all(&script).map_err(|e| Error::context("stdout", e))?;
        return Ok(0);
    }
    // Completion must never start a daemon: with none running there is nothing to complete.
    let Some(mut client) = Client::connect_running(home)? else { return Ok(0) };
    let jobs = client.list(None)?;
    let live = jobs.iter().filter(|j| matches!(j.state.as_str(), "starting" | "running" | "ready"));
    let mut text = String::new();
    if args.active_ids {
        for j in live {
            let name = j.name.as_deref().unwrap_or("-");
            text.push_str(&format!("{}\t{name} {}\n", short_id(&j.id), j.state));
        }
    } else if args.active_names {
        for j in live {
            if let Some(n) = &j.name {
                text.push_str(&format!("{n}\t{} {}\n", short_id(&j.id), j.state));
            }
        }
    } else if args.workspaces {
        let mut seen: Vec<&str> = live.filter_map(|j| j.workspace.as_deref()).collect();
        seen.sort_unstable();
        seen.dedup();
        for w in seen {
            text.push_str(w);
            text.push('\n');
        }
    } else {
        return Err(Error::new("give --shell SHELL, --active-ids or --workspaces"));
    }
    std::io::stdout().write_all(text.as_bytes()).map_err(|e| Error::context("stdout", e))?;
    Ok(0)
}

/// Live completion of job ids and names, added to clap's static script.
fn dynamic(shell: Shell) -> String {
    match shell {
        Shell::Fish => format!(
            "complete -c bgrun -n '__fish_seen_subcommand_from {JOB_COMMANDS}' -f -a '(bgrun completions --active-ids; bgrun completions --active-names)'\n\
             complete -c bgrun -n '__fish_seen_subcommand_from list kill clean; and __fish_prev_arg_in --workspace' -f -a '(bgrun completions --workspaces)'\n"
        ),
        Shell::Bash => format!(
            "\n_bgrun_live() {{\n    local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" cmd=\"${{COMP_WORDS[1]}}\"\n    \
             if [[ $COMP_CWORD -eq 2 && \" {JOB_COMMANDS} \" == *\" $cmd \"* && $cur != -* ]]; then\n        \
             COMPREPLY=( $(compgen -W \"$( (bgrun completions --active-ids; bgrun completions --active-names) 2>/dev/null | cut -f1)\" -- \"$cur\") )\n        \
             return 0\n    fi\n    _bgrun \"$@\"\n}}\ncomplete -F _bgrun_live -o bashdefault -o default bgrun\n"
        ),
        _ => String::new(),
    }
}
