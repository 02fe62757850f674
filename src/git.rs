//! The git side of `bgrun deploy`, with libgit2 (no `git` binary needed): fetch a project's
//! upstream, decide whether its checkout may move, and move it by fast-forward only (or back, for
//! a rollback). Every refusal is one clear error and leaves the checkout exactly as it was.

use crate::error::{Error, ErrorKind, Result};
use git2::{BranchType, Cred, CredentialType, FetchOptions, Oid, RemoteCallbacks, Repository, StatusOptions};
use std::path::{Path, PathBuf};

/// Where a checkout is and where a deploy would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub repo: PathBuf,
    /// The branch checked out, e.g. `main`.
    pub branch: String,
    /// What it follows: `origin/main`, or the `--ref` given.
    pub target: String,
    pub old: Oid,
    pub new: Oid,
}

impl Move {
    pub fn moves(&self) -> bool {
        self.old != self.new
    }
}

fn refused(message: impl Into<String>) -> Error {
    Error::of(ErrorKind::Conflict, message)
}

/// Fetches what the branch checked out in `dir`'s repository follows (its upstream, or
/// `reference`), and says where a fast-forward would take it, moving nothing. Refuses a detached
/// HEAD, modified tracked files, a branch without upstream, a failed fetch, and a diverged branch.
pub fn prepare(dir: &Path, reference: Option<&str>) -> Result<(Repository, Move)> {
    let repo = Repository::discover(dir).map_err(|_| {
        refused(format!("{} is not in a git repository", dir.display())).with_hint("deploy moves a git checkout")
    })?;
    let workdir =
        repo.workdir().ok_or_else(|| refused("the repository is bare: nothing is checked out"))?.to_path_buf();
    if repo.head_detached().unwrap_or(false) {
        return Err(
            refused("HEAD is detached: there is no branch to move").with_hint("check out a branch (git switch main)")
        );
    }
    let head = repo.head().map_err(|e| refused(format!("no commit is checked out: {}", e.message())))?;
    let branch = head.shorthand().unwrap_or("HEAD").to_string();
    let old = head.target().ok_or_else(|| refused("HEAD names no commit"))?;
    drop(head);
    let modified = modified_files(&repo)?;
    if !modified.is_empty() {
        let shown: Vec<&str> = modified.iter().take(5).map(String::as_str).collect();
        let more = if modified.len() > 5 { format!(" and {} more", modified.len() - 5) } else { String::new() };
        return Err(refused(format!("tracked files are modified: {}{more}", shown.join(", ")))
            .with_hint("commit or stash them: a deploy only fast-forwards a clean checkout"));
    }
    let refname = format!("refs/heads/{branch}");
    let remote_name = match repo.branch_upstream_remote(&refname) {
        Ok(name) => name.as_str().unwrap_or("origin").to_string(),
        Err(_) if reference.is_some() => "origin".to_string(),
        Err(_) => {
            return Err(refused(format!("branch {branch} has no upstream"))
                .with_hint(format!("git branch --set-upstream-to origin/{branch}, or deploy --ref REF")));
        }
    };
    fetch(&repo, &remote_name)?;
    let (target, new) = match reference {
        Some(r) => {
            let object =
                repo.revparse_single(r).or_else(|_| repo.revparse_single(&format!("{remote_name}/{r}"))).map_err(
                    |_| refused(format!("--ref {r}: no such branch, tag or commit after fetching {remote_name}")),
                )?;
            let commit = object.peel_to_commit().map_err(|_| refused(format!("--ref {r} names no commit")))?;
            (r.to_string(), commit.id())
        }
        None => {
            let local = repo.find_branch(&branch, BranchType::Local).map_err(|e| refused(e.message().to_string()))?;
            let upstream = local.upstream().map_err(|e| refused(e.message().to_string()))?;
            let name = upstream.name().ok().flatten().unwrap_or("upstream").to_string();
            let id = upstream.get().target().ok_or_else(|| refused(format!("{name} names no commit")))?;
            (name, id)
        }
    };
    if new != old && !repo.graph_descendant_of(new, old).unwrap_or(false) {
        let ahead = repo.graph_descendant_of(old, new).unwrap_or(false);
        let why = if ahead { "is ahead of" } else { "has diverged from" };
        return Err(refused(format!("branch {branch} {why} {target}: a deploy only fast-forwards"))
            .with_hint("merge or rebase by hand, then deploy"));
    }
    Ok((repo, Move { repo: workdir, branch, target, old, new }))
}

/// Tracked files that differ from HEAD, in the index or the working tree.
fn modified_files(repo: &Repository) -> Result<Vec<String>> {
    let mut options = StatusOptions::new();
    options.include_untracked(false).include_ignored(false).exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut options)).map_err(|e| Error::new(format!("git status: {}", e.message())))?;
    Ok(statuses
        .iter()
        .filter(|s| !s.status().is_empty() && !s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(String::from))
        .collect())
}

fn fetch(repo: &Repository, remote_name: &str) -> Result<()> {
    let mut remote = repo
        .find_remote(remote_name)
        .map_err(|_| refused(format!("there is no remote {remote_name:?}")).with_hint("git remote -v lists them"))?;
    let config = repo.config().ok();
    let mut tried = Vec::new();
    let mut callbacks = RemoteCallbacks::new();
    // Each kind of credential is offered once: libgit2 asks again after every refusal, and would
    // ask forever.
    callbacks.credentials(move |url, username, allowed| {
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) && !tried.contains(&"agent") {
            tried.push("agent");
            return Cred::ssh_key_from_agent(user);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !tried.contains(&"helper") {
            tried.push("helper");
            if let Some(config) = &config {
                return Cred::credential_helper(config, url, username);
            }
        }
        if allowed.contains(CredentialType::DEFAULT) && !tried.contains(&"default") {
            tried.push("default");
            return Cred::default();
        }
        Err(git2::Error::from_str("no credentials were accepted (ssh agent, credential helper)"))
    });
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks).download_tags(git2::AutotagOption::All);
    let refspecs: [&str; 0] = [];
    remote.fetch(&refspecs, Some(&mut options), Some("bgrun deploy: fetch")).map_err(|e| {
        refused(format!("cannot fetch from {remote_name}: {}", e.message().trim()))
            .with_hint("check the network and your credentials (ssh agent, git credential helper)")
    })
}

/// Moves the checked-out branch and the working tree to `to` (a fast-forward, or back for a
/// rollback). The checkout is safe: a file changed meanwhile stops it with an error.
pub fn move_to(repo: &Repository, branch: &str, to: Oid, why: &str) -> Result<()> {
    let commit = repo.find_commit(to).map_err(|e| Error::new(format!("commit {to}: {}", e.message())))?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.safe();
    repo.checkout_tree(commit.as_object(), Some(&mut checkout))
        .map_err(|e| refused(format!("cannot check out {}: {}", short(to), e.message())))?;
    repo.reference(&format!("refs/heads/{branch}"), to, true, why)
        .map_err(|e| Error::new(format!("cannot move {branch}: {}", e.message())))?;
    Ok(())
}

/// The files that differ between commits `old` and `new`, as absolute paths in the checkout.
pub fn changed_files(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<PathBuf>> {
    let tree = |id: Oid| repo.find_commit(id).and_then(|c| c.tree());
    let diff = tree(old)
        .and_then(|o| tree(new).and_then(|n| repo.diff_tree_to_tree(Some(&o), Some(&n), None)))
        .map_err(|e| Error::new(format!("git diff: {}", e.message())))?;
    let workdir = repo.workdir().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path().map(|p| workdir.join(p))
                && !files.contains(&path)
            {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// A file of the commit `at`, as text (the project file a deploy would converge to).
pub fn file_at(repo: &Repository, at: Oid, path: &Path) -> Result<String> {
    let workdir = repo.workdir().unwrap_or(Path::new("."));
    let relative = path.strip_prefix(workdir).unwrap_or(path);
    let tree = repo.find_commit(at).and_then(|c| c.tree()).map_err(|e| Error::new(e.message().to_string()))?;
    let entry = tree
        .get_path(relative)
        .map_err(|_| refused(format!("{} is not in commit {}", relative.display(), short(at))))?;
    let blob = repo.find_blob(entry.id()).map_err(|e| Error::new(e.message().to_string()))?;
    String::from_utf8(blob.content().to_vec())
        .map_err(|_| Error::bad_input(format!("{} is not text", relative.display())))
}

/// The first 12 characters of a commit id, as people quote them.
pub fn short(id: Oid) -> String {
    id.to_string()[..12].to_string()
}
