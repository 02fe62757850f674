//! SQLite state: job specs, observed status and an event history per job. Every change is one
//! transaction, so a daemon killed at any instant leaves a consistent database.

use crate::error::Result;
use crate::job::{Desired, Job, Observed};
use crate::protocol::{DeployView, EventView as Event};
use rusqlite::{Connection, params};
use std::path::Path;

pub struct Store {
    conn: Connection,
    /// Inside a batch, saves join one transaction instead of committing one by one.
    batch: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT,
    workspace TEXT,
    spec TEXT NOT NULL,
    desired TEXT NOT NULL,
    generation INTEGER NOT NULL,
    observed TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS deploys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deploys_by_project ON deploys(project, seq);
";

/// The stored shape of a job, for the daemon to rebuild its state from.
pub struct StoredJob {
    pub id: String,
    pub spec: crate::spec::JobSpec,
    pub desired: Desired,
    pub generation: u64,
    pub created_ms: u64,
    pub obs: Observed,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        // SQLite follows links: one planted in the database's place is refused.
        if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(crate::error::Error::of(
                crate::error::ErrorKind::System,
                format!("refusing to use {}: it is not a regular file", path.display()),
            ));
        }
        let conn = Connection::open(path)?;
        // WAL: readers never block the writer, and a commit is one append. NORMAL sync is
        // crash-safe in WAL mode (a power loss may drop the last commits, never corrupt). A
        // small page cache (64 KB): the daemon keeps its jobs in memory and mostly writes; a page
        // it must read again comes from the kernel's cache, and the daemon stays small.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-64;
             PRAGMA busy_timeout=5000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn, batch: false })
    }

    /// An empty database in memory, for tests.
    #[cfg(test)]
    pub fn in_memory() -> Store {
        let conn = Connection::open_in_memory().expect("sqlite in memory");
        conn.execute_batch(SCHEMA).expect("schema");
        Store { conn, batch: false }
    }

    /// Every stored job, and the ids of rows this version cannot read (skipped rather than
    /// taking the daemon down; the caller reports them).
    pub fn load(&self) -> Result<(Vec<StoredJob>, Vec<String>)> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, spec, desired, generation, observed, created_ms FROM jobs ORDER BY created_ms, id")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        let (mut jobs, mut unreadable) = (Vec::new(), Vec::new());
        for row in rows {
            let (id, spec, desired, generation, observed, created_ms) = row?;
            // A row this version cannot read is skipped rather than taking the daemon down.
            let (Ok(spec), Ok(desired), Ok(obs)) = (
                serde_json::from_str(&spec),
                serde_json::from_value(serde_json::Value::String(desired)),
                Observed::from_stored(&observed),
            ) else {
                unreadable.push(id);
                continue;
            };
            jobs.push(StoredJob {
                id,
                spec,
                desired,
                generation: generation as u64,
                created_ms: created_ms as u64,
                obs,
            });
        }
        Ok((jobs, unreadable))
    }

    /// Starts a batch: every save until [`Self::end_batch`] commits as one transaction, so a
    /// `down` of 100 jobs is one write, and a daemon killed in between leaves none of it.
    pub fn begin_batch(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.conn.execute_batch("BEGIN")?;
        self.batch = true;
        Ok(())
    }

    /// Commits the batch. When that fails, nothing of it was written (it is rolled back).
    pub fn end_batch(&mut self) -> Result<()> {
        self.batch = false;
        self.commit()
    }

    /// Makes everything written so far durable now, and carries on the batch. When the commit
    /// fails, nothing since the batch began was written.
    pub fn checkpoint(&mut self) -> Result<()> {
        if !self.batch {
            return Ok(());
        }
        let committed = self.commit();
        self.conn.execute_batch("BEGIN")?;
        committed
    }

    fn commit(&mut self) -> Result<()> {
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // A failed commit (a full disk) may leave the transaction open: end it, so the next
            // batch starts clean.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Writes the job and, in the same transaction, an event about it.
    pub fn save(&mut self, job: &Job, event: Option<(&str, &str)>) -> Result<()> {
        // Prepared once and kept: parsing the statement again was a good part of each save.
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO jobs (id, name, workspace, spec, desired, generation, observed, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET name=?2, workspace=?3, spec=?4, desired=?5,
                     generation=?6, observed=?7",
            )?
            .execute(params![
                job.id,
                job.spec.name,
                job.spec.workspace,
                serde_json::to_string(&job.spec).unwrap_or_default(),
                desired_str(job.desired),
                job.generation as i64,
                serde_json::to_string(&job.obs).unwrap_or_default(),
                job.created_ms as i64,
            ])?;
            if let Some((kind, detail)) = event {
                conn.prepare_cached("INSERT INTO events (job_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![job.id, crate::clock::unix_ms() as i64, kind, detail])?;
            }
            Ok(())
        })
    }

    pub fn delete(&mut self, id: &str) -> Result<()> {
        self.write(|conn| {
            conn.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
            conn.execute("DELETE FROM events WHERE job_id = ?1", [id])?;
            Ok(())
        })
    }

    /// Runs `f` in the open batch, or in a transaction of its own.
    fn write(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Result<()> {
        if self.batch {
            return Ok(f(&self.conn)?);
        }
        let tx = self.conn.transaction()?;
        f(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a deploy of `project`, and an event for each of `jobs` (their ids) saying so.
    pub fn add_deploy(&mut self, deploy: &DeployView, jobs: &[String], event: &str) -> Result<()> {
        let at = crate::clock::unix_ms() as i64;
        self.write(|conn| {
            conn.execute(
                "INSERT INTO deploys (project, at_ms, record) VALUES (?1, ?2, ?3)",
                params![deploy.project, at, serde_json::to_string(deploy).unwrap_or_default()],
            )?;
            for id in jobs {
                conn.prepare_cached("INSERT INTO events (job_id, at_ms, kind, detail) VALUES (?1, ?2, 'deploy', ?3)")?
                    .execute(params![id, at, event])?;
            }
            Ok(())
        })
    }

    /// The most recent `limit` deploys of `project`, newest first.
    pub fn deploys(&self, project: &str, limit: usize) -> Result<Vec<DeployView>> {
        let mut stmt =
            self.conn.prepare("SELECT at_ms, record FROM deploys WHERE project = ?1 ORDER BY seq DESC LIMIT ?2")?;
        let rows = stmt
            .query_map(params![project, limit as i64], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (at_ms, record) = row?;
            // A record this version cannot read is skipped, never a reason to fail the history.
            if let Ok(mut deploy) = serde_json::from_str::<DeployView>(&record) {
                deploy.at = crate::clock::rfc3339_ms(at_ms as u64);
                out.push(deploy);
            }
        }
        Ok(out)
    }

    /// The most recent `limit` events of a job, oldest first.
    pub fn events(&self, id: &str, limit: usize) -> Result<Vec<Event>> {
        let mut stmt =
            self.conn.prepare("SELECT at_ms, kind, detail FROM events WHERE job_id = ?1 ORDER BY seq DESC LIMIT ?2")?;
        let mut events = stmt
            .query_map(params![id, limit as i64], |row| {
                Ok(Event {
                    at: crate::clock::rfc3339_ms(row.get::<_, i64>(0)? as u64),
                    kind: row.get(1)?,
                    detail: row.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}

fn desired_str(d: Desired) -> &'static str {
    match d {
        Desired::Running => "running",
        Desired::Stopped => "stopped",
    }
}
