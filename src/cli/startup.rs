//! `bgrun startup` / `bgrun unstartup`: a systemd unit that starts the daemon at boot. The daemon
//! then starts again the jobs the reboot ended (see `resurrect`).

use super::Output;
use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A user unit (~/.config/systemd/user), started at boot once lingering is enabled (default).
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// A system unit (/etc/systemd/system) that runs the daemon as you.
    #[arg(long)]
    pub system: bool,
    /// Print the unit instead of writing it.
    #[arg(long)]
    pub print: bool,
}

const UNIT: &str = "bgrun.service";

pub fn exec(args: Args, home: &Home, out: &Output) -> Result<i32> {
    let text = unit(&args, home)?;
    if args.print {
        out.text(&text);
        return Ok(0);
    }
    let path = unit_path(args.system)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::context(dir.display().to_string(), e))?;
    }
    std::fs::write(&path, &text).map_err(|e| Error::context(path.display().to_string(), e))?;
    let (ctl, linger) = if args.system {
        ("systemctl", String::new())
    } else {
        (
            "systemctl --user",
            format!("\nloginctl enable-linger {}   # start it at boot, not at your first login", super::user_name()),
        )
    };
    report(out, &path, &format!("{ctl} daemon-reload && {ctl} enable --now bgrun{linger}"));
    Ok(0)
}

/// `bgrun unstartup`: the unit goes (the running daemon and its jobs stay).
pub fn remove(args: Args, out: &Output) -> Result<i32> {
    let path = unit_path(args.system)?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::of(ErrorKind::NotFound, format!("there is no {}", path.display())));
        }
        Err(e) => return Err(Error::context(path.display().to_string(), e)),
    }
    let ctl = if args.system { "systemctl" } else { "systemctl --user" };
    report(out, &path, &format!("{ctl} disable bgrun && {ctl} daemon-reload"));
    Ok(0)
}

fn report(out: &Output, path: &std::path::Path, then: &str) {
    if out.json {
        out.json_line(&serde_json::json!({ "unit": path, "then": then }));
    } else {
        out.text(&format!("{}\nthen run:\n{then}", path.display()));
    }
}

/// The unit: the daemon in the foreground, ready when its socket listens (Type=notify), and
/// stopped alone (KillMode=process): its jobs outlive it, as they outlive any daemon.
fn unit(args: &Args, home: &Home) -> Result<String> {
    let exe = crate::programs::beside(crate::programs::DAEMON).map_err(|e| Error::context("this program's path", e))?;
    let (wanted_by, user) = match args.system {
        true => ("multi-user.target", format!("User={}\n", super::user_name())),
        false => ("default.target", String::new()),
    };
    Ok(format!(
        "# Written by `bgrun startup`: the bgrun daemon, started at boot. After a reboot it starts\n\
         # again every job that was running (jobs stopped on request stay stopped).\n\
         [Unit]\n\
         Description=bgrun: background jobs\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         {user}\
         Environment=BGRUN_HOME={home}\n\
         ExecStart={exe}\n\
         KillMode=process\n\
         Restart=on-failure\n\
         \n\
         [Install]\n\
         WantedBy={wanted_by}\n",
        home = home.root().display(),
        exe = exe.display(),
    ))
}

fn unit_path(system: bool) -> Result<PathBuf> {
    if system {
        return Ok(PathBuf::from("/etc/systemd/system").join(UNIT));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| Error::new("neither XDG_CONFIG_HOME nor HOME is set: where do user units go?"))?;
    Ok(config.join("systemd/user").join(UNIT))
}
