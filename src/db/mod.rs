//! The local study database, as 3D Slicer's DICOM database: every imported (or retrieved)
//! instance is copied into a folder under the user's data directory and indexed in SQLite, so
//! studies stay available after their source media are gone.
//!
//! Layout under the database folder ([`default_dir`], or any folder given to [`Database::open`]):
//! `synthscope.sqlite` (schema [`SCHEMA_VERSION`] in `PRAGMA user_version`) and
//! `files/<series>/<instance>.dcm`, named by Series and SOP Instance UID (a name-based hash of
//! the UID instead where it is not a plain UID). An import stages a series' copies in a hidden
//! folder and commits the series in one transaction after moving them into place, so a crash
//! or a cancel never leaves a half-indexed series; the files can always be indexed again from
//! scratch ([`Database::reindex`]).

mod header;

pub use header::InstanceHeader;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The schema this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 1;

/// The index file inside the database folder.
pub const INDEX_FILE: &str = "synthscope.sqlite";

/// A database problem, naming the file or folder concerned.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DbError {
    /// A file or folder could not be read or written, or the index is not one we can use.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// No series with this SeriesInstanceUID is in the database.
    #[error("no series {0} in the database")]
    NoSeries(String),
    /// The work was cancelled (what was committed before stays).
    #[error("cancelled")]
    Cancelled,
}

impl DbError {
    fn file(path: impl AsRef<Path>, problem: impl std::fmt::Display) -> Self {
        DbError::File {
            path: path.as_ref().to_path_buf(),
            problem: problem.to_string(),
        }
    }
}

/// The folder the database lives in by default: `$SYNTHSCOPE_DATA_DIR/dicom`, else
/// `$XDG_DATA_HOME/synthscope/dicom`, else `~/.local/share/synthscope/dicom`.
pub fn default_dir() -> Result<PathBuf, DbError> {
    let data = if let Some(d) = std::env::var_os("SYNTHSCOPE_DATA_DIR").filter(|d| !d.is_empty()) {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(d).join("synthscope")
    } else if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(h).join(".local/share/synthscope")
    } else {
        return Err(DbError::file(
            "~",
            "no data directory: set SYNTHSCOPE_DATA_DIR, XDG_DATA_HOME or HOME",
        ));
    };
    Ok(data.join("dicom"))
}

/// One series as the series browser lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesRecord {
    /// PatientID.
    pub patient_id: String,
    /// PatientName.
    pub patient_name: String,
    /// PatientBirthDate (YYYYMMDD or empty).
    pub patient_birth_date: String,
    /// PatientSex.
    pub patient_sex: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// StudyDate.
    pub study_date: String,
    /// StudyDescription.
    pub study_description: String,
    /// AccessionNumber.
    pub accession_number: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// Modality.
    pub modality: String,
    /// SeriesDescription.
    pub description: String,
    /// SeriesNumber (None when absent).
    pub number: Option<i64>,
    /// SeriesDate, else the study's date.
    pub date: String,
    /// Rows of the first image (None for non-image instances).
    pub rows: Option<i64>,
    /// Columns of the first image.
    pub cols: Option<i64>,
    /// Instances in the series.
    pub images: i64,
    /// Frames over all instances (as many as `images` for single-frame ones).
    pub frames: i64,
    /// Transfer syntaxes of its files.
    pub transfer_syntaxes: Vec<String>,
    /// Bytes of its files.
    pub bytes: i64,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Files found under the paths.
    pub files: usize,
    /// Instances copied and indexed.
    pub instances_added: usize,
    /// Series added or extended.
    pub series: Vec<String>,
    /// Instances already in the database (same SOP Instance UID), not copied again.
    pub already_present: usize,
    /// Files that are not DICOM (no "DICM" preamble and no readable DICOM header) or are
    /// DICOMDIR indexes, skipped.
    pub not_dicom: usize,
    /// Files that look like DICOM but could not be read: "PATH: problem".
    pub skipped: Vec<String>,
    /// True when the import was cancelled (the series committed before stay).
    pub cancelled: bool,
}

/// The local study database: an SQLite index over copies of DICOM files.
pub struct Database {
    dir: PathBuf,
    conn: Connection,
}

/// Progress of a long operation: `(stage, done, total)`.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);
/// Polled between files: true asks the operation to stop.
pub type CancelFn<'a> = &'a (dyn Fn() -> bool + Sync);

const SCHEMA: &str = "
CREATE TABLE patient (
    id INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    UNIQUE (patient_id, name, birth_date)
);
CREATE TABLE study (
    uid TEXT PRIMARY KEY,
    patient INTEGER NOT NULL REFERENCES patient(id),
    date TEXT NOT NULL,
    time TEXT NOT NULL,
    description TEXT NOT NULL,
    accession_number TEXT NOT NULL,
    study_id TEXT NOT NULL
);
CREATE TABLE series (
    uid TEXT PRIMARY KEY,
    study TEXT NOT NULL REFERENCES study(uid),
    folder TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL,
    description TEXT NOT NULL,
    number INTEGER,
    date TEXT NOT NULL,
    rows INTEGER,
    cols INTEGER
);
CREATE TABLE instance (
    uid TEXT PRIMARY KEY,
    series TEXT NOT NULL REFERENCES series(uid),
    sop_class TEXT NOT NULL,
    number INTEGER,
    frames INTEGER NOT NULL,
    transfer_syntax TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL
);
CREATE INDEX instance_series ON instance(series);
";

/// A file name part for `uid`: the UID itself when it is a plain one (digits and dots), else a
/// name-based hash of it (so no UID can escape the folder or clash with a hidden name).
fn file_key(uid: &str) -> String {
    let plain = !uid.is_empty()
        && uid.len() <= 64
        && uid.chars().all(|c| c.is_ascii_digit() || c == '.')
        && !uid.starts_with('.');
    if plain {
        uid.to_string()
    } else {
        format!(
            "x{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, uid.as_bytes()).simple()
        )
    }
}

impl Database {
    /// Open (creating if needed) the database in `dir`; a leftover of an interrupted import or
    /// removal is cleaned up. An index of a newer schema is refused, naming the file.
    pub fn open(dir: &Path) -> Result<Database, DbError> {
        std::fs::create_dir_all(dir.join("files"))
            .map_err(|e| DbError::file(dir, format!("cannot create folder: {e}")))?;
        let path = dir.join(INDEX_FILE);
        let conn = Connection::open(&path).map_err(|e| DbError::file(&path, e))?;
        // The app and the command line may use the database at once: wait for each other.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| DbError::file(&path, e))?;
        let db = Database {
            dir: dir.to_path_buf(),
            conn,
        };
        db.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;")
            .map_err(|e| db.err(e))?;
        let version: i32 = db
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| db.err(format!("not an SQLite index: {e}")))?;
        match version {
            0 => {
                let tables: i64 = db
                    .conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .map_err(|e| db.err(e))?;
                if tables > 0 {
                    return Err(db.err("an SQLite file that is not a SynthScope index"));
                }
                db.conn
                    .execute_batch(&format!(
                        "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    ))
                    .map_err(|e| db.err(e))?;
            }
            SCHEMA_VERSION => {}
            v => {
                return Err(db.err(format!(
                    "index schema version {v}, this SynthScope reads version {SCHEMA_VERSION} \
                     (a newer SynthScope made it)"
                )));
            }
        }
        db.recover()?;
        Ok(db)
    }

    /// Open the database in [`default_dir`].
    pub fn open_default() -> Result<Database, DbError> {
        Database::open(&default_dir()?)
    }

    /// The database folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }

    fn err(&self, e: impl std::fmt::Display) -> DbError {
        DbError::file(self.index_path(), e)
    }

    /// Finish what an interrupted import or removal left: staged copies are deleted; a series
    /// folder moved aside for removal goes back if its rows are still there, else is deleted.
    fn recover(&self) -> Result<(), DbError> {
        let files = self.files_dir();
        let entries = std::fs::read_dir(&files)
            .map_err(|e| DbError::file(&files, format!("cannot list folder: {e}")))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".staging-") {
                let _ = std::fs::remove_dir_all(e.path());
            } else if let Some(folder) = name.strip_prefix(".removing-") {
                let has_rows: Option<String> = self
                    .conn
                    .query_row("SELECT uid FROM series WHERE folder = ?1", [folder], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(|e| self.err(e))?;
                if has_rows.is_some() && !files.join(folder).exists() {
                    let _ = std::fs::rename(e.path(), files.join(folder));
                } else {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }

    /// Import everything under `paths` (folders recursively): each DICOM instance not yet in
    /// the database is copied in and indexed, one transaction per series. Non-DICOM files are
    /// counted and skipped, unreadable DICOM files named in the report; `cancel` is polled
    /// between files and a cancelled series is rolled back whole (its copies removed).
    pub fn import(
        &mut self,
        paths: &[PathBuf],
        progress: ProgressFn,
        cancel: CancelFn,
    ) -> Result<ImportReport, DbError> {
        let mut report = ImportReport::default();
        let mut files = Vec::new();
        for p in paths {
            if !p.exists() {
                return Err(DbError::file(p, "no such file or folder"));
            }
            collect_files(p, &self.dir, &mut files)?;
        }
        files.sort();
        files.dedup();
        report.files = files.len();
        let headers = header::read_headers(&files, progress, cancel);
        if cancel() {
            report.cancelled = true;
            return Ok(report);
        }
        let mut by_series: BTreeMap<String, Vec<InstanceHeader>> = BTreeMap::new();
        for (path, h) in files.iter().zip(headers) {
            match h {
                header::Read::Instance(h) => {
                    by_series.entry(h.series_uid.clone()).or_default().push(*h)
                }
                header::Read::NotDicom => report.not_dicom += 1,
                header::Read::Unreadable(problem) => report
                    .skipped
                    .push(format!("{}: {problem}", path.display())),
            }
        }
        let total: usize = by_series.values().map(|v| v.len()).sum();
        let mut done = 0;
        progress("Copying into the database", 0, total);
        for (series_uid, mut instances) in by_series {
            if cancel() {
                report.cancelled = true;
                break;
            }
            instances.sort_by(|a, b| {
                a.instance_number
                    .cmp(&b.instance_number)
                    .then(a.sop_instance_uid.cmp(&b.sop_instance_uid))
            });
            match self.import_series(&series_uid, &instances, &mut done, total, progress, cancel) {
                Ok((added, present)) => {
                    report.already_present += present;
                    if added > 0 {
                        report.instances_added += added;
                        report.series.push(series_uid);
                    }
                }
                Err(DbError::Cancelled) => {
                    report.cancelled = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// [`Database::import`] reporting to the app's [`crate::io::Progress`] (its stage, steps
    /// and Cancel), for running on a worker.
    pub fn import_with_progress(
        &mut self,
        paths: &[PathBuf],
        p: &crate::io::Progress,
    ) -> Result<ImportReport, DbError> {
        let stage = std::sync::Mutex::new(String::new());
        let progress = |s: &str, done: usize, total: usize| {
            if let Ok(mut cur) = stage.lock() {
                if *cur != s {
                    *cur = s.to_string();
                    p.start(s, total);
                } else if done > 0 {
                    p.step();
                }
            }
        };
        self.import(paths, &progress, &|| p.is_cancelled())
    }

    /// Copy and index one series' instances in one transaction; returns (added, already there).
    fn import_series(
        &mut self,
        series_uid: &str,
        instances: &[InstanceHeader],
        done: &mut usize,
        total: usize,
        progress: ProgressFn,
        cancel: CancelFn,
    ) -> Result<(usize, usize), DbError> {
        let files = self.files_dir();
        let existing_folder: Option<String> = self
            .conn
            .query_row(
                "SELECT folder FROM series WHERE uid = ?1",
                [series_uid],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let folder = existing_folder
            .clone()
            .unwrap_or_else(|| file_key(series_uid));
        let staging = files.join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&staging)
            .map_err(|e| DbError::file(&staging, format!("cannot create folder: {e}")))?;
        let result = self.stage_and_commit(
            series_uid,
            instances,
            &folder,
            existing_folder.is_some(),
            &staging,
            done,
            total,
            progress,
            cancel,
        );
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn stage_and_commit(
        &mut self,
        series_uid: &str,
        instances: &[InstanceHeader],
        folder: &str,
        folder_exists: bool,
        staging: &Path,
        done: &mut usize,
        total: usize,
        progress: ProgressFn,
        cancel: CancelFn,
    ) -> Result<(usize, usize), DbError> {
        let index = self.index_path();
        let files = self.files_dir();
        let final_dir = files.join(folder);
        // Stage copies of the instances not yet indexed.
        let mut seen = HashSet::new();
        let mut staged: Vec<(&InstanceHeader, String)> = Vec::new();
        let mut present = 0;
        for h in instances {
            if cancel() {
                return Err(DbError::Cancelled);
            }
            let known: Option<String> = self
                .conn
                .query_row(
                    "SELECT uid FROM instance WHERE uid = ?1",
                    [&h.sop_instance_uid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if known.is_some() || !seen.insert(h.sop_instance_uid.clone()) {
                present += 1;
            } else {
                let name = format!("{}.dcm", file_key(&h.sop_instance_uid));
                copy_atomically(&h.path, &staging.join(&name))?;
                staged.push((h, name));
            }
            *done += 1;
            progress("Copying into the database", *done, total);
        }
        if staged.is_empty() {
            return Ok((0, present));
        }
        if cancel() {
            return Err(DbError::Cancelled);
        }
        let first = staged[0].0;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| DbError::file(&index, e))?;
        let sql = |e: rusqlite::Error| DbError::file(&index, e);
        upsert_series(&tx, first, folder).map_err(sql)?;
        for (h, name) in &staged {
            let rel = format!("files/{folder}/{name}");
            tx.execute(
                "INSERT INTO instance (uid, series, sop_class, number, frames, transfer_syntax, \
                 path, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    h.sop_instance_uid,
                    series_uid,
                    h.sop_class_uid,
                    h.instance_number,
                    h.frames,
                    h.transfer_syntax,
                    rel,
                    h.bytes as i64
                ],
            )
            .map_err(sql)?;
        }
        // Move the copies into place, then commit: a crash before the commit leaves files the
        // index does not know (indexed again by reindex), never rows without their files.
        let mut moved = Vec::new();
        let move_result = (|| -> Result<(), DbError> {
            if !folder_exists && !final_dir.exists() {
                std::fs::rename(staging, &final_dir).map_err(|e| {
                    DbError::file(&final_dir, format!("cannot move the copies in: {e}"))
                })?;
                moved.push(final_dir.clone());
                // The staging folder is now the series folder; recreate it for the caller's
                // cleanup to find nothing.
                let _ = std::fs::create_dir_all(staging);
            } else {
                std::fs::create_dir_all(&final_dir)
                    .map_err(|e| DbError::file(&final_dir, format!("cannot create folder: {e}")))?;
                for (_, name) in &staged {
                    let to = final_dir.join(name);
                    std::fs::rename(staging.join(name), &to)
                        .map_err(|e| DbError::file(&to, format!("cannot move the copy in: {e}")))?;
                    moved.push(to);
                }
            }
            sync_dir(&files);
            sync_dir(&final_dir);
            Ok(())
        })();
        let undo = |moved: &[PathBuf]| {
            for p in moved {
                if p.is_dir() {
                    let _ = std::fs::remove_dir_all(p);
                } else {
                    let _ = std::fs::remove_file(p);
                }
            }
        };
        if let Err(e) = move_result {
            undo(&moved);
            return Err(e);
        }
        if let Err(e) = tx.commit() {
            undo(&moved);
            return Err(DbError::file(&index, e));
        }
        Ok((staged.len(), present))
    }

    /// Every series, by patient, study date and series number.
    pub fn list_series(&self) -> Result<Vec<SeriesRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.patient_id, p.name, p.birth_date, p.sex, st.uid, st.date, st.description,
                        st.accession_number, se.uid, se.modality, se.description, se.number,
                        CASE WHEN se.date = '' THEN st.date ELSE se.date END, se.rows, se.cols,
                        count(i.uid), coalesce(sum(i.frames), 0), coalesce(sum(i.bytes), 0),
                        coalesce(group_concat(DISTINCT i.transfer_syntax), '')
                 FROM series se JOIN study st ON se.study = st.uid
                      JOIN patient p ON st.patient = p.id
                      LEFT JOIN instance i ON i.series = se.uid
                 GROUP BY se.uid
                 ORDER BY p.name, p.patient_id, st.date, st.uid, se.number, se.uid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let ts: String = r.get(18)?;
                let mut transfer_syntaxes: Vec<String> = ts
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                transfer_syntaxes.sort();
                Ok(SeriesRecord {
                    patient_id: r.get(0)?,
                    patient_name: r.get(1)?,
                    patient_birth_date: r.get(2)?,
                    patient_sex: r.get(3)?,
                    study_uid: r.get(4)?,
                    study_date: r.get(5)?,
                    study_description: r.get(6)?,
                    accession_number: r.get(7)?,
                    series_uid: r.get(8)?,
                    modality: r.get(9)?,
                    description: r.get(10)?,
                    number: r.get(11)?,
                    date: r.get(12)?,
                    rows: r.get(13)?,
                    cols: r.get(14)?,
                    images: r.get(15)?,
                    frames: r.get(16)?,
                    bytes: r.get(17)?,
                    transfer_syntaxes,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The files of series `uid`, by InstanceNumber: what [`crate::io::load_paths`] opens.
    pub fn series_paths(&self, uid: &str) -> Result<Vec<PathBuf>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path FROM instance WHERE series = ?1 \
                 ORDER BY number IS NULL, number, uid",
            )
            .map_err(|e| self.err(e))?;
        let paths: Vec<PathBuf> = stmt
            .query_map([uid], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .map(|p| p.map(|p| self.dir.join(p)))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        if paths.is_empty() {
            return Err(DbError::NoSeries(uid.to_string()));
        }
        Ok(paths)
    }

    /// Remove series `uid`: its rows (and its study's and patient's once empty) and its files.
    pub fn remove_series(&mut self, uid: &str) -> Result<usize, DbError> {
        let index = self.index_path();
        let folder: String = self
            .conn
            .query_row("SELECT folder FROM series WHERE uid = ?1", [uid], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| DbError::NoSeries(uid.to_string()))?;
        let files = self.files_dir();
        let dir = files.join(&folder);
        let aside = files.join(format!(".removing-{folder}"));
        // Move the files aside first: a crash now is undone by `open`, which puts them back
        // while the rows are there.
        if dir.exists() {
            std::fs::rename(&dir, &aside)
                .map_err(|e| DbError::file(&dir, format!("cannot remove: {e}")))?;
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|e| DbError::file(&index, e))?;
        let r = (|| -> rusqlite::Result<usize> {
            let n = tx.execute("DELETE FROM instance WHERE series = ?1", [uid])?;
            tx.execute("DELETE FROM series WHERE uid = ?1", [uid])?;
            tx.execute(
                "DELETE FROM study WHERE uid NOT IN (SELECT study FROM series)",
                [],
            )?;
            tx.execute(
                "DELETE FROM patient WHERE id NOT IN (SELECT patient FROM study)",
                [],
            )?;
            Ok(n)
        })()
        .and_then(|n| tx.commit().map(|_| n));
        match r {
            Ok(n) => {
                let _ = std::fs::remove_dir_all(&aside);
                sync_dir(&files);
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::rename(&aside, &dir);
                Err(DbError::file(&index, e))
            }
        }
    }

    /// Rebuild the index from the files under `files/` (after the index was lost or damaged):
    /// all rows are replaced in one transaction. Returns the number of instances indexed and
    /// the files that could not be read ("PATH: problem").
    pub fn reindex(
        &mut self,
        progress: ProgressFn,
        cancel: CancelFn,
    ) -> Result<(usize, Vec<String>), DbError> {
        let index = self.index_path();
        let root = self.files_dir();
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&root)
            .map_err(|e| DbError::file(&root, format!("cannot list folder: {e}")))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().is_dir() {
                collect_files(&e.path(), Path::new(""), &mut files)?;
            }
        }
        files.retain(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        files.sort();
        let headers = header::read_headers(&files, progress, cancel);
        if cancel() {
            return Err(DbError::Cancelled);
        }
        let mut problems = Vec::new();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| DbError::file(&index, e))?;
        let sql = |e: rusqlite::Error| DbError::file(&index, e);
        tx.execute_batch(
            "DELETE FROM instance; DELETE FROM series; DELETE FROM study; DELETE FROM patient;",
        )
        .map_err(sql)?;
        let mut n = 0;
        for (path, h) in files.iter().zip(headers) {
            let h = match h {
                header::Read::Instance(h) => h,
                header::Read::NotDicom => {
                    problems.push(format!("{}: not a DICOM file", path.display()));
                    continue;
                }
                header::Read::Unreadable(p) => {
                    problems.push(format!("{}: {p}", path.display()));
                    continue;
                }
            };
            let Ok(rel) = path.strip_prefix(&self.dir) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let folder = path
                .parent()
                .and_then(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let taken: Option<String> = tx
                .query_row(
                    "SELECT folder FROM series WHERE uid = ?1",
                    [&h.series_uid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if let Some(f) = taken
                && f != folder
            {
                problems.push(format!(
                    "{}: series {} is already indexed from folder {f}",
                    path.display(),
                    h.series_uid
                ));
                continue;
            }
            upsert_series(&tx, &h, &folder).map_err(sql)?;
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO instance (uid, series, sop_class, number, frames, \
                     transfer_syntax, path, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        h.sop_instance_uid,
                        h.series_uid,
                        h.sop_class_uid,
                        h.instance_number,
                        h.frames,
                        h.transfer_syntax,
                        rel,
                        h.bytes as i64
                    ],
                )
                .map_err(sql)?;
            if inserted == 0 {
                problems.push(format!(
                    "{}: SOP Instance UID {} is already indexed from another file",
                    path.display(),
                    h.sop_instance_uid
                ));
            } else {
                n += 1;
            }
        }
        tx.commit().map_err(sql)?;
        Ok((n, problems))
    }
}

/// Insert the patient, study and series of `h` if they are new (the first instance's values
/// describe them).
fn upsert_series(
    tx: &rusqlite::Transaction,
    h: &InstanceHeader,
    folder: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO patient (patient_id, name, birth_date, sex) VALUES (?1, ?2, ?3, ?4)",
        params![
            h.patient_id,
            h.patient_name,
            h.patient_birth_date,
            h.patient_sex
        ],
    )?;
    let patient: i64 = tx.query_row(
        "SELECT id FROM patient WHERE patient_id = ?1 AND name = ?2 AND birth_date = ?3",
        params![h.patient_id, h.patient_name, h.patient_birth_date],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO study (uid, patient, date, time, description, accession_number, \
         study_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            h.study_uid,
            patient,
            h.study_date,
            h.study_time,
            h.study_description,
            h.accession_number,
            h.study_id
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO series (uid, study, folder, modality, description, number, date, \
         rows, cols) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            h.series_uid,
            h.study_uid,
            folder,
            h.modality,
            h.series_description,
            h.series_number,
            h.series_date,
            h.rows,
            h.cols
        ],
    )?;
    Ok(())
}

/// Every file under `p` (or `p` itself), skipping the database folder `skip`.
fn collect_files(p: &Path, skip: &Path, out: &mut Vec<PathBuf>) -> Result<(), DbError> {
    let skip_canon = std::fs::canonicalize(skip).ok();
    fn walk(dir: &Path, skip: &Option<PathBuf>, out: &mut Vec<PathBuf>) -> Result<(), DbError> {
        if skip.is_some() && std::fs::canonicalize(dir).ok() == *skip {
            return Ok(());
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| DbError::file(dir, format!("cannot list folder: {e}")))?;
        for e in entries {
            let e = e.map_err(|e| DbError::file(dir, format!("cannot list folder: {e}")))?;
            let ft = e.file_type().map_err(|e| DbError::file(dir, e))?;
            if ft.is_dir() {
                walk(&e.path(), skip, out)?;
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
        Ok(())
    }
    if p.is_dir() {
        walk(p, &skip_canon, out)
    } else {
        out.push(p.to_path_buf());
        Ok(())
    }
}

/// Copy `from` to `to` through [`crate::io::atomic::write_with`].
fn copy_atomically(from: &Path, to: &Path) -> Result<(), DbError> {
    let mut src =
        std::fs::File::open(from).map_err(|e| DbError::file(from, format!("cannot read: {e}")))?;
    crate::io::atomic::write_with(to, |w| std::io::copy(&mut src, w).map(|_| ()))
        .map_err(|e| DbError::file(&e.path, e.problem))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_stay_inside_the_folder() {
        assert_eq!(file_key("1.2.3"), "1.2.3");
        for bad in ["", "..", "../x", "1/2", ".hidden", "a b"] {
            let k = file_key(bad);
            assert!(k.starts_with('x') && k.len() == 33, "{bad}: {k}");
        }
        assert_ne!(file_key("1/2"), file_key("1/3"));
    }

    #[test]
    fn the_apps_progress_drives_and_cancels_an_import() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.txt"), "x").unwrap();
        let mut db = Database::open(&dir.path().join("db")).unwrap();
        let p = crate::io::Progress::default();
        let r = db
            .import_with_progress(std::slice::from_ref(&src), &p)
            .unwrap();
        assert_eq!((r.files, r.not_dicom, r.cancelled), (1, 1, false));
        assert!(p.stage().starts_with("Copying"), "{}", p.stage());
        p.cancel();
        let r = db.import_with_progress(&[src], &p).unwrap();
        assert!(r.cancelled);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Database::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(INDEX_FILE)).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(c);
        let e = Database::open(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("synthscope.sqlite") && e.contains("version 99"),
            "{e}"
        );
    }
}
