//! Converging a project: what `up` changes for each job of a `bgrun.toml`, applied as edits to the
//! desired state (the plan then starts, replaces and stops processes like for any edit).

use super::Reconciler;
use crate::graph::Graph;
use crate::job::{Desired, Job};
use crate::protocol::Change;
use crate::spec::{JobSpec, diff};
use crate::state::{JobState, StoppedBy};
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl Reconciler {
    /// The file's jobs `only` asks for (when empty: every job not `disabled`), with everything
    /// they need (a disabled job a wanted one starts after is wanted too).
    fn targets(jobs: &[JobSpec], only: &[String]) -> BTreeSet<String> {
        let deps: BTreeMap<String, Vec<String>> =
            jobs.iter().map(|j| (j.name.clone().unwrap_or_default(), j.after_names())).collect();
        let enabled: Vec<String>;
        let wanted = if only.is_empty() {
            enabled = jobs.iter().filter(|j| !j.disabled).filter_map(|j| j.name.clone()).collect();
            &enabled
        } else {
            only
        };
        Graph::new(&deps).with_dependencies(wanted).into_iter().map(String::from).collect()
    }

    /// What converging to `jobs` would change, without changing anything. `revive` says whether
    /// jobs that were stopped on request (or crashed) start again, as an explicit `up` does;
    /// jobs in `renew` are replaced even if their spec is the same (their code changed).
    pub(super) fn changes(
        &self,
        project: &str,
        jobs: &[JobSpec],
        only: &[String],
        revive: bool,
        renew: &[String],
    ) -> Vec<Change> {
        let targets = Self::targets(jobs, only);
        let current = self.project_jobs(project);
        let mut out = Vec::new();
        for spec in jobs.iter().filter(|j| j.name.as_ref().is_some_and(|n| targets.contains(n))) {
            let name = spec.name.clone().unwrap_or_default();
            let (action, fields) = match current.get(name.as_str()) {
                None => ("create", vec![]),
                Some(job) => {
                    let mut d = diff(&job.spec, spec);
                    if renew.contains(&name) {
                        d.replace.push("code");
                    }
                    let stopped = job.desired == Desired::Stopped;
                    let crashed = job.life().is_over() && job.state() == JobState::Crashed;
                    if stopped && !revive {
                        ("unchanged", vec![])
                    } else if !d.replace.is_empty() {
                        ("replace", [d.replace, d.update].concat())
                    } else if revive && (stopped || crashed) {
                        ("start", d.update)
                    } else if !d.update.is_empty() {
                        ("update", d.update)
                    } else {
                        ("unchanged", vec![])
                    }
                }
            };
            out.push(Change {
                job: name,
                action: action.into(),
                fields: fields.into_iter().map(String::from).collect(),
            });
        }
        if only.is_empty() {
            let in_file: BTreeSet<&str> = jobs.iter().filter_map(|j| j.name.as_deref()).collect();
            for job in self.jobs.values().filter(|j| j.spec.project.as_deref() == Some(project)) {
                let name = job.spec.name.clone().unwrap_or_default();
                if !in_file.contains(name.as_str()) {
                    out.push(Change { job: name, action: "remove".into(), fields: vec![] });
                }
            }
        }
        out
    }

    /// Applies [`Self::changes`]. Returns them with each job's id.
    pub(super) fn apply_project(
        &mut self,
        project: &str,
        jobs: Vec<JobSpec>,
        only: &[String],
        revive: bool,
        renew: &[String],
    ) -> Vec<(Change, String)> {
        let changes = self.changes(project, &jobs, only, revive, renew);
        let mut specs: BTreeMap<String, JobSpec> =
            jobs.into_iter().map(|j| (j.name.clone().unwrap_or_default(), j)).collect();
        let ids: HashMap<String, String> =
            self.project_jobs(project).into_iter().map(|(name, job)| (name.to_string(), job.id.clone())).collect();
        let mut out = Vec::new();
        let mut replaced = Vec::new();
        for change in changes {
            let id = match change.action.as_str() {
                "create" => match specs.remove(&change.job) {
                    Some(spec) => self.create(spec),
                    None => continue,
                },
                "remove" => match ids.get(&change.job) {
                    Some(id) => self.remove(id, "removed from the file"),
                    None => String::new(),
                },
                "unchanged" => ids.get(&change.job).cloned().unwrap_or_default(),
                action => {
                    let Some(spec) = specs.remove(&change.job) else { continue };
                    let Some(id) = ids.get(&change.job).cloned() else { continue };
                    self.change_job(&id, action, spec);
                    if action == "replace" {
                        replaced.push(change.job.clone());
                    }
                    let detail = format!("{action} by up ({})", change.fields.join(", "));
                    self.save(&id, Some((action, &detail)));
                    id
                }
            };
            out.push((change, id));
        }
        // Dependents that asked for it restart with a replaced dependency (the first replaced one
        // they start after is named). One look at the jobs, not one per replaced job.
        let order: HashMap<&str, usize> = replaced.iter().enumerate().map(|(i, dep)| (dep.as_str(), i)).collect();
        let dependents: Vec<(String, usize)> = self
            .jobs
            .values()
            .filter(|j| j.spec.project.as_deref() == Some(project))
            .filter(|j| j.spec.restart_with_dependencies && j.desired == Desired::Running)
            .filter(|j| j.obs.generation == j.generation)
            .filter_map(|j| {
                Some((j.id.clone(), j.spec.after.iter().filter_map(|d| order.get(d.job.as_str()).copied()).min()?))
            })
            .collect();
        for (id, dep) in dependents {
            if let Some(job) = self.jobs.get_mut(&id) {
                job.generation += 1;
                let detail = format!("restarted with its dependency {}", replaced[dep]);
                self.save(&id, Some(("replace", &detail)));
            }
        }
        out
    }

    /// The project's jobs by name (the first by id, should two share one), looked up once rather
    /// than searched for among every job, job by job of the file.
    fn project_jobs(&self, project: &str) -> HashMap<&str, &Job> {
        let mut named = HashMap::new();
        for job in self.jobs.values().filter(|j| j.spec.project.as_deref() == Some(project)) {
            if let Some(name) = job.spec.name.as_deref() {
                named.entry(name).or_insert(job);
            }
        }
        named
    }

    /// Replace or start (a new run of the new spec), or update in place: bgrun applies the
    /// updated settings itself, so the running process is already of the new generation.
    fn change_job(&mut self, id: &str, action: &str, spec: JobSpec) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.spec.cron != spec.cron {
            // A new schedule counts from now, not from when the job was created.
            job.obs.cron_from_ms = Some(now);
        }
        if action != "update" {
            job.set_spec(spec);
            return job.want_new_run();
        }
        job.desired = Desired::Running;
        job.generation += 1;
        job.stop_grace = None;
        // The environment is the process's: it changes only with a new run.
        let env = std::mem::take(&mut job.spec.env);
        job.spec = spec;
        job.spec.env = env;
        job.obs.generation = job.generation;
        self.restart_probes(id);
    }

    pub(super) fn create(&mut self, spec: JobSpec) -> String {
        let id = crate::job::new_id();
        self.jobs.insert(Job::new(id.clone(), spec, self.now()));
        id
    }

    /// A job gone from the file (or deleted): stopped, then forgotten.
    pub(super) fn remove(&mut self, id: &str, why: &str) -> String {
        let now = self.now();
        let id = id.to_string();
        let Some(job) = self.jobs.get_mut(&id) else { return id };
        super::edits::want_stopped(job, None, StoppedBy::Removed, now);
        job.obs.remove_when_stopped = true;
        self.release_unused_sockets(&id);
        if !self.jobs.get(&id).is_some_and(|j| j.life().has_process()) {
            self.forget(&id);
        } else {
            self.save(&id, Some(("remove", why)));
        }
        id
    }

    /// `down`: the project's jobs (or the named ones) desired stopped. Returns their ids.
    pub(super) fn down_project(&mut self, project: &str, only: &[String]) -> Vec<String> {
        let ids: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.spec.project.as_deref() == Some(project))
            .filter(|j| only.is_empty() || j.spec.name.as_ref().is_some_and(|n| only.contains(n)))
            .map(|j| j.id.clone())
            .collect();
        let now = self.now();
        for id in &ids {
            let Some(job) = self.jobs.get_mut(id) else { continue };
            let changed = super::edits::want_stopped(job, None, StoppedBy::Down, now);
            self.release_unused_sockets(id);
            if changed {
                self.save(id, Some(("down", "stop requested by down")));
            }
        }
        ids
    }
}
