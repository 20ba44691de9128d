//! What can go wrong with a study: each variant names the file (or the case) and the problem.

use super::{LOG_VERSION, ReaderLog, STUDY_VERSION};
use crate::io::LoadError;
use std::path::{Path, PathBuf};

/// A study, case or reader log that cannot be read, checked, written or summarised.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A file or folder that cannot be read, written, created or opened.
    #[error("{}: cannot {action}: {cause}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed ("read", "write", "create", "save the answer", ...).
        action: &'static str,
        /// Why (in the message, so not a `source`: printing the chain must not repeat it).
        cause: std::io::Error,
    },
    /// A study file that is not valid TOML or JSON.
    #[error("{}: not valid {format}: {problem}", path.display())]
    Syntax {
        /// The study file.
        path: PathBuf,
        /// "TOML" or "JSON".
        format: &'static str,
        /// The parser's message.
        problem: String,
    },
    /// A study file whose fields do not make a study (the parser's message names the file).
    #[error("{0}")]
    Fields(String),
    /// A study file written in another format version.
    #[error(
        "{}: study format version {found}, but this SynthScope reads version {STUDY_VERSION}; open it with the SynthScope that wrote it",
        path.display()
    )]
    StudyVersion {
        /// The study file.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
    /// A study file without a `version`.
    #[error(
        "{}: no `version` (this SynthScope writes version = {STUDY_VERSION})",
        path.display()
    )]
    NoStudyVersion {
        /// The study file.
        path: PathBuf,
    },
    /// A study that cannot be used as it stands (`path`: the file it was read from).
    #[error("{}{problem}", in_file(.path.as_deref()))]
    Invalid {
        /// The study file, when it came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        problem: String,
    },
    /// A line of a reader log that is not what a log holds.
    #[error("{}: line {line}: {problem}", path.display())]
    LogLine {
        /// The log.
        path: PathBuf,
        /// Line number (1-based).
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A reader log written in another format version (or with none).
    #[error(
        "{}: answers written by log format version {}, but this SynthScope reads version {LOG_VERSION}; they were not read, to avoid misreading them",
        path.display(),
        .found.map_or("(none)".to_string(), |v| v.to_string())
    )]
    LogVersion {
        /// The log.
        path: PathBuf,
        /// Its version, if it names one.
        found: Option<u64>,
    },
    /// A reader log without a header line.
    #[error("{}: empty log (no header line)", path.display())]
    EmptyLog {
        /// The log.
        path: PathBuf,
    },
    /// A session asked for without a reader ID.
    #[error("a reader ID is needed")]
    NoReader,
    /// A reader log written for another version of the study.
    #[error(
        "{}: these answers are for another version of the study (\"{}\", digest {}; this study: \"{study}\", digest {digest}); they are kept as they are: use another reader ID or log",
        .log.path.display(),
        .log.study,
        .log.digest
    )]
    OtherStudy {
        /// The log and the study it is for.
        log: Box<LogStudy>,
        /// This study's name.
        study: String,
        /// This study's digest.
        digest: String,
    },
    /// A reader log that belongs to another reader.
    #[error("{}: the log belongs to reader {owner:?}, not {reader:?}", path.display())]
    OtherReader {
        /// The log.
        path: PathBuf,
        /// The reader in the log.
        owner: String,
        /// The reader who asked for it.
        reader: String,
    },
    /// A folder named as holding reader logs that holds none.
    #[error("{}: no reader logs (*.jsonl) in this folder", path.display())]
    NoLogsIn {
        /// The folder.
        path: PathBuf,
    },
    /// A summary of no logs at all.
    #[error("no logs to summarise")]
    NoLogs,
    /// Logs of two different studies given to one summary.
    #[error(
        "{} is for study \"{}\" (digest {}), {} for \"{}\" (digest {}): summarise one study at a time",
        .log.path.display(),
        .log.study,
        .log.digest,
        .first.path.display(),
        .first.study,
        .first.digest
    )]
    MixedStudies {
        /// The log that differs.
        log: Box<LogStudy>,
        /// The first log.
        first: Box<LogStudy>,
    },
    /// One reader's answers in two logs of a summary.
    #[error("{}: reader {reader:?} appears in two logs", path.display())]
    DuplicateReader {
        /// The second log.
        path: PathBuf,
        /// The reader.
        reader: String,
    },
    /// A case whose file is missing or holds no image.
    #[error("case {id:?}: {}: {problem}", path.display())]
    CaseFile {
        /// The case id.
        id: String,
        /// Its file or folder.
        path: PathBuf,
        /// What is wrong ("no such file or folder", "no images found").
        problem: &'static str,
    },
    /// A case whose volume does not load.
    #[error("case {id:?}: {cause}")]
    CaseLoad {
        /// The case id.
        id: String,
        /// Why it does not load.
        cause: LoadError,
    },
    /// A case whose fixed slice lies outside its volume.
    #[error(
        "case {id:?}: slice {slice} does not exist (the volume has {count} slices, 0..{})",
        .count.saturating_sub(1)
    )]
    SliceOutOfRange {
        /// The case id.
        id: String,
        /// The slice asked for.
        slice: usize,
        /// Slices in the volume.
        count: usize,
    },
    /// A case in which no slice shows a head (nothing to sample).
    #[error("case {id:?}: no slice shows a head")]
    NoHead {
        /// The case id.
        id: String,
    },
    /// An A/B pair whose volumes differ in size.
    #[error(
        "pair {case:?} / {partner:?}: the volumes differ in size ({case_dims:?} vs {partner_dims:?}); pairs must share a grid"
    )]
    PairGrid {
        /// The synthetic case.
        case: String,
        /// The real case it is paired with.
        partner: String,
        /// The synthetic case's grid.
        case_dims: [usize; 3],
        /// The real case's grid.
        partner_dims: [usize; 3],
    },
    /// Loading cancelled (or another load failure outside a case).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A value that cannot be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A study that cannot be written as TOML.
    #[error(transparent)]
    Toml(#[from] toml::ser::Error),
}

/// A reader log and the study it was written for (boxed in errors: they stay small).
#[derive(Debug)]
pub struct LogStudy {
    /// The log.
    pub path: PathBuf,
    /// The study name in its header.
    pub study: String,
    /// The study digest in its header.
    pub digest: String,
}

impl LogStudy {
    /// The log's file and study.
    pub fn of(log: &ReaderLog) -> Box<LogStudy> {
        Box::new(LogStudy {
            path: log.path.clone(),
            study: log.study.clone(),
            digest: log.digest.clone(),
        })
    }
}

impl StudyError {
    /// An I/O failure of `action` on `path`.
    pub(crate) fn io(path: &Path, action: &'static str, cause: std::io::Error) -> Self {
        StudyError::Io {
            path: path.to_path_buf(),
            action,
            cause,
        }
    }
}

/// The app's panels keep errors as text.
impl From<StudyError> for String {
    fn from(e: StudyError) -> String {
        e.to_string()
    }
}

fn in_file(path: Option<&Path>) -> String {
    path.map_or(String::new(), |p| format!("{}: ", p.display()))
}
