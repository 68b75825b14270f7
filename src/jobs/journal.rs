//! The job journal: jobs, their results, and the ingested datasets, in an SQLite file in the
//! state folder. Only the serial queue's thread writes it (and the starting thread, before
//! the queue runs); every write is one transaction, committed with a full sync, so what was
//! acknowledged survives kill -9 and power loss alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{JobRecord, JobStatus};

/// The journal's file name inside the state folder.
pub const JOURNAL_FILE: &str = "jobs.sqlite3";
/// Longest wait for a lock held by another connection to the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    result TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS datasets (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    added_at INTEGER NOT NULL,
    job_id INTEGER
);
";

/// A journal failure; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the state folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("job journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// A job as the journal holds it.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: u64,
    pub kind: String,
    pub params: String,
    pub status: JobStatus,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub result: Option<String>,
    pub error: Option<String>,
}

/// The writing connection.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(JOURNAL_FILE);
        let sqlite = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        Ok(Journal { conn, path })
    }

    fn error(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<StoredJob>, JournalError> {
        let read = || -> rusqlite::Result<Vec<StoredJob>> {
            let mut statement = self.conn.prepare(
                "SELECT id, kind, params, status, created_at, started_at, finished_at, result, \
                 error FROM jobs ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                let status: String = row.get(3)?;
                Ok(StoredJob {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    params: row.get(2)?,
                    status: JobStatus::from_name(&status).unwrap_or(JobStatus::Failed),
                    created_at: row.get(4)?,
                    started_at: row.get(5)?,
                    finished_at: row.get(6)?,
                    result: row.get(7)?,
                    error: row.get(8)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|error| self.error(error))
    }

    /// The ingested datasets, in the order they were added.
    pub fn datasets(&self) -> Result<Vec<PathBuf>, JournalError> {
        let read = || -> rusqlite::Result<Vec<PathBuf>> {
            let mut statement = self
                .conn
                .prepare("SELECT path FROM datasets ORDER BY position")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            rows.map(|path| path.map(PathBuf::from)).collect()
        };
        read().map_err(|error| self.error(error))
    }

    /// The largest job id ever journaled.
    pub fn last_id(&self) -> Result<u64, JournalError> {
        self.conn
            .query_row("SELECT MAX(id) FROM jobs", [], |row| {
                row.get::<_, Option<u64>>(0)
            })
            .optional()
            .map(|id| id.flatten().unwrap_or(0))
            .map_err(|error| self.error(error))
    }

    /// Records a new (queued) job.
    pub fn insert(&mut self, job: &JobRecord) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO jobs (id, kind, params, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    job.id,
                    job.spec.kind(),
                    job.spec.params().to_string(),
                    job.status.name(),
                    job.created_at
                ],
            )
            .map(drop)
            .map_err(|error| self.error(error))
    }

    /// Records a job's new status (and its result or error once finished).
    pub fn update(&mut self, job: &JobRecord) -> Result<(), JournalError> {
        let written = update_in(&self.conn, job);
        written.map_err(|error| self.error(error))
    }

    /// Records, in one transaction, that `job` succeeded by adding the dataset at `path`.
    pub fn add_dataset(&mut self, job: &JobRecord, path: &Path) -> Result<(), JournalError> {
        let written = add_dataset_in(&mut self.conn, job, path);
        written.map_err(|error| self.error(error))
    }

    /// Forgets these (finished) jobs.
    pub fn remove(&mut self, ids: &[u64]) -> Result<(), JournalError> {
        let written = remove_in(&mut self.conn, ids);
        written.map_err(|error| self.error(error))
    }
}

fn add_dataset_in(conn: &mut Connection, job: &JobRecord, path: &Path) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    transaction.execute(
        "INSERT INTO datasets (path, added_at, job_id) VALUES (?1, ?2, ?3)",
        params![path.to_string_lossy(), job.finished_at, job.id],
    )?;
    update_in(&transaction, job)?;
    transaction.commit()
}

fn remove_in(conn: &mut Connection, ids: &[u64]) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    for id in ids {
        transaction.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
    }
    transaction.commit()
}

fn update_in(connection: &Connection, job: &JobRecord) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE jobs SET status = ?2, started_at = ?3, finished_at = ?4, result = ?5, error = ?6 \
         WHERE id = ?1",
        params![
            job.id,
            job.status.name(),
            job.started_at,
            job.finished_at,
            job.result.as_deref(),
            job.error
        ],
    )?;
    Ok(())
}
