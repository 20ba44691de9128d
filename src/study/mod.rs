//! Reader studies: blinded, randomised perceptual scoring of real against synthetic images.
//!
//! - A **study file** (TOML or JSON, [`STUDY_VERSION`]) lists the cases (volumes tagged real or
//!   synthetic and by source, hidden from the reader), the slices to show (fixed indices or
//!   sampled inside the head with the study's seed, so every reader sees the same slices), the
//!   window per modality, the questions and the design: one image at a time ("real or
//!   synthetic?") or A/B pairs ("which is real?").
//! - Each reader gets the trials in an order shuffled with a seed derived from the reader ID and
//!   the study name: stable for that reader, different between readers.
//! - Every answer is appended to the reader's log (JSON lines, [`LOG_VERSION`]) and fsynced the
//!   moment it is given; a session that crashed or was closed resumes at the first unanswered
//!   trial. A log written by another format version, or for another study, is refused.
//! - [`stats`] summarises logs: accuracy with exact binomial 95% intervals, Likert means by
//!   truth and source, Cohen's and Fleiss' kappa.

pub mod session;
pub mod stats;

use crate::volume::WindowLevel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Study file format version this build reads and writes.
pub const STUDY_VERSION: u32 = 1;
/// Answer log format version this build reads and writes.
pub const LOG_VERSION: u32 = 1;

/// What a case really is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// Acquired on a scanner.
    Real,
    /// Made by a network.
    Synthetic,
}

impl Truth {
    /// "real" / "synthetic".
    pub fn name(self) -> &'static str {
        match self {
            Truth::Real => "real",
            Truth::Synthetic => "synthetic",
        }
    }
}

/// How images are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Design {
    /// One image at a time: real or synthetic?
    #[default]
    Single,
    /// A real and a synthetic image side by side (sides shuffled): which is real?
    Pair,
}

/// One case of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyCase {
    /// Identifier in logs and results (never shown to the reader).
    pub id: String,
    /// Volume file or DICOM folder, relative to the study file.
    pub path: PathBuf,
    /// Real or synthetic.
    pub truth: Truth,
    /// Where it came from: "scanner", or the model that made it.
    #[serde(default)]
    pub source: String,
    /// Fixed slice indices (axial, 0-based); empty: sampled inside the head.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<usize>,
    /// Pair design: the id of the real case this synthetic case is shown against (same grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<String>,
}

/// The questions asked for every image (or pair).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Questions {
    /// Ask for confidence (1 = guessing .. 5 = certain).
    #[serde(default = "yes")]
    pub confidence: bool,
    /// Likert 1-5 questions, in order (single design).
    #[serde(default = "default_likert")]
    pub likert: Vec<String>,
    /// Offer a free-text comment.
    #[serde(default)]
    pub free_text: bool,
}

fn yes() -> bool {
    true
}

fn default_likert() -> Vec<String> {
    vec![
        "image quality".into(),
        "diagnostic usability".into(),
        "artifacts (5 = none)".into(),
    ]
}

impl Default for Questions {
    fn default() -> Self {
        Self {
            confidence: true,
            likert: default_likert(),
            free_text: false,
        }
    }
}

/// Window per modality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    /// CT window (HU).
    #[serde(default = "ct_window")]
    pub ct: WindowLevel,
    /// MR window; None: from each image's robust range.
    #[serde(default)]
    pub mr: Option<WindowLevel>,
}

fn ct_window() -> WindowLevel {
    WindowLevel {
        width: 80.0,
        center: 40.0,
    }
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            ct: ct_window(),
            mr: None,
        }
    }
}

/// A study file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// Format version ([`STUDY_VERSION`]).
    pub version: u32,
    /// Study name (part of the readers' shuffle seed and of the log).
    pub name: String,
    /// Single images or A/B pairs.
    #[serde(default)]
    pub design: Design,
    /// Readers may go back and change answers.
    #[serde(default)]
    pub allow_back: bool,
    /// Seconds per image (none: unlimited). When it runs out, an unanswered image is logged as
    /// timed out and the next one shown.
    #[serde(default)]
    pub time_limit_s: Option<f64>,
    /// Slices per case when sampled.
    #[serde(default = "three")]
    pub slices_per_case: usize,
    /// Seed of the slice sampling (the same for every reader).
    #[serde(default)]
    pub seed: u64,
    /// Window per modality.
    #[serde(default)]
    pub window: Windows,
    /// The questions.
    #[serde(default)]
    pub questions: Questions,
    /// The cases.
    pub cases: Vec<StudyCase>,
}

fn three() -> usize {
    3
}

/// FNV-1a, for seeds and digests that must not change between builds.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Study {
    /// Read a study file (TOML, or JSON by extension), refusing other format versions.
    pub fn read(path: &Path) -> Result<Study, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let json = crate::io::is_json_path(path);
        // The version first, so a newer file is refused for its version, not for a field.
        let version = if json {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?
                .get("version")
                .and_then(|v| v.as_u64())
        } else {
            text.parse::<toml::Table>()
                .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?
                .get("version")
                .and_then(|v| v.as_integer())
                .map(|v| v as u64)
        };
        match version {
            Some(v) if v == STUDY_VERSION as u64 => {}
            Some(v) => {
                return Err(format!(
                    "{}: study format version {v}, but this SynthScope reads version {STUDY_VERSION}; open it with the SynthScope that wrote it",
                    path.display()
                ));
            }
            None => {
                return Err(format!(
                    "{}: no `version` (this SynthScope writes version = {STUDY_VERSION})",
                    path.display()
                ));
            }
        }
        let s: Study = crate::io::parse_settings(path, &text)?;
        s.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(s)
    }

    /// Write the study (TOML, or JSON by extension) atomically.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        self.validate()?;
        let json = crate::io::is_json_path(path);
        let text = if json {
            serde_json::to_string_pretty(self).map_err(|e| e.to_string())?
        } else {
            toml::to_string_pretty(self).map_err(|e| e.to_string())?
        };
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }

    /// Problems that make the study unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != STUDY_VERSION {
            return Err(format!(
                "study format version {}, expected {STUDY_VERSION}",
                self.version
            ));
        }
        if self.name.trim().is_empty() {
            return Err("the study has no name".into());
        }
        if self.cases.is_empty() {
            return Err("the study has no cases".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for c in &self.cases {
            if c.id.trim().is_empty() {
                return Err(format!("a case ({}) has no id", c.path.display()));
            }
            if !ids.insert(c.id.as_str()) {
                return Err(format!("two cases share the id {:?}", c.id));
            }
        }
        if self.slices_per_case == 0 && self.cases.iter().any(|c| c.slices.is_empty()) {
            return Err("slices_per_case is 0 and a case has no fixed slices".into());
        }
        if let Some(t) = self.time_limit_s
            && (t.is_nan() || t <= 0.0)
        {
            return Err(format!("time_limit_s must be positive, got {t}"));
        }
        if self.design == Design::Pair {
            let mut any = false;
            for c in self.cases.iter().filter(|c| c.truth == Truth::Synthetic) {
                let Some(p) = &c.pair else {
                    return Err(format!(
                        "pair design: synthetic case {:?} names no real case (`pair = \"ID\"`)",
                        c.id
                    ));
                };
                match self.cases.iter().find(|r| &r.id == p) {
                    Some(r) if r.truth == Truth::Real => any = true,
                    Some(_) => {
                        return Err(format!("case {:?}: its pair {p:?} is not real", c.id));
                    }
                    None => return Err(format!("case {:?}: no case has the id {p:?}", c.id)),
                }
            }
            if !any {
                return Err("pair design: no synthetic case is paired with a real one".into());
            }
        }
        for (i, q) in self.questions.likert.iter().enumerate() {
            if q.trim().is_empty() {
                return Err(format!("Likert question {} has no text", i + 1));
            }
        }
        Ok(())
    }

    /// A digest of what readers answer about (cases, slices and questions), so a log is never
    /// resumed or summarised against a different study.
    pub fn digest(&self) -> String {
        let key = serde_json::json!({
            "name": self.name,
            "design": self.design,
            "cases": self.cases.iter().map(|c| (&c.id, c.truth, &c.slices, &c.pair)).collect::<Vec<_>>(),
            "slices_per_case": self.slices_per_case,
            "seed": self.seed,
            "questions": self.questions,
        });
        format!("{:016x}", fnv(key.to_string().as_bytes()))
    }

    /// A case's file, resolved against the study file's folder.
    pub fn case_path(&self, study_file: &Path, case: &StudyCase) -> PathBuf {
        if case.path.is_absolute() {
            case.path.clone()
        } else {
            study_file
                .parent()
                .unwrap_or(Path::new("."))
                .join(&case.path)
        }
    }

    /// The seed of reader `reader`'s order.
    pub fn reader_seed(&self, reader: &str) -> u64 {
        fnv(format!("{}\u{0}{}", self.name, reader.trim()).as_bytes())
    }
}

/// One image (or pair) to score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Stable identifier: "CASE#SLICE" (pair: "SYNTHETIC|REAL#SLICE").
    pub id: String,
    /// The case shown (single), or the synthetic case of the pair.
    pub case: usize,
    /// Pair design: the real case.
    pub partner: Option<usize>,
    /// Axial slice index.
    pub slice: usize,
    /// Pair design: the real image is on the left (side A).
    pub real_on_left: bool,
}

/// Slices of a volume inside the head: those where more than 5% of the voxels are above
/// `threshold`, in order.
pub fn head_slices(data: &[f32], dims: [usize; 3], threshold: f32) -> Vec<usize> {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    (0..nz)
        .filter(|z| {
            let s = &data[z * plane..(z + 1) * plane];
            s.iter().filter(|v| **v > threshold).count() * 20 > plane
        })
        .collect()
}

/// `n` slices sampled from `candidates` with `seed`: spread over the middle 80% (the ends of
/// the head are mostly skull), sorted.
pub fn sample_slices(candidates: &[usize], n: usize, seed: u64) -> Vec<usize> {
    if candidates.is_empty() || n == 0 {
        return Vec::new();
    }
    let lo = candidates.len() / 10;
    let hi = (candidates.len() - candidates.len() / 10).max(lo + 1);
    let mut pool: Vec<usize> = candidates[lo..hi].to_vec();
    let mut rng = crate::train::data::Rng::new(seed);
    rng.shuffle(&mut pool);
    pool.truncate(n);
    pool.sort_unstable();
    pool
}

/// The study's trials in reader `reader`'s order. `slices[i]` are case `i`'s slices (fixed, or
/// sampled by [`sample_slices`]).
pub fn trials(study: &Study, slices: &[Vec<usize>], reader: &str) -> Vec<Trial> {
    let mut rng = crate::train::data::Rng::new(study.reader_seed(reader));
    let mut out = Vec::new();
    match study.design {
        Design::Single => {
            for (i, c) in study.cases.iter().enumerate() {
                for &z in &slices[i] {
                    out.push(Trial {
                        id: format!("{}#{z}", c.id),
                        case: i,
                        partner: None,
                        slice: z,
                        real_on_left: false,
                    });
                }
            }
        }
        Design::Pair => {
            for (i, c) in study.cases.iter().enumerate() {
                let Some(p) = c
                    .pair
                    .as_ref()
                    .and_then(|p| study.cases.iter().position(|r| &r.id == p))
                else {
                    continue;
                };
                if c.truth != Truth::Synthetic {
                    continue;
                }
                for &z in &slices[i] {
                    out.push(Trial {
                        id: format!("{}|{}#{z}", c.id, study.cases[p].id),
                        case: i,
                        partner: Some(p),
                        slice: z,
                        real_on_left: false,
                    });
                }
            }
        }
    }
    rng.shuffle(&mut out);
    for t in &mut out {
        t.real_on_left = rng.below(2) == 0;
    }
    out
}

/// A reader's answer to one trial, as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Trial id.
    pub trial: String,
    /// Position in the reader's order (1-based).
    pub position: usize,
    /// Case id (single), or the synthetic case (pair).
    pub case: String,
    /// Pair: the real case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// Axial slice.
    pub slice: usize,
    /// Single: "real" / "synthetic". Pair: the real image's side, "A" (left) or "B".
    pub truth: String,
    /// Source of the case (single) or of the synthetic image (pair).
    pub source: String,
    /// The reader's verdict in the same terms as `truth`; None: time ran out.
    pub answer: Option<String>,
    /// Confidence 1-5.
    #[serde(default)]
    pub confidence: Option<u8>,
    /// Likert answers by question.
    #[serde(default)]
    pub likert: BTreeMap<String, u8>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Seconds from showing the image to the answer.
    pub time_s: f64,
    /// When (seconds since the Unix epoch).
    pub at_unix: f64,
}

impl Answer {
    /// Whether the verdict was right (None: no verdict).
    pub fn correct(&self) -> Option<bool> {
        self.answer.as_ref().map(|a| *a == self.truth)
    }
}

/// A line of a reader's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogLine {
    /// First line: who reads which study.
    Header {
        /// Log format version.
        version: u32,
        /// Study name.
        study: String,
        /// [`Study::digest`].
        digest: String,
        /// Reader ID.
        reader: String,
        /// SynthScope version that wrote it.
        app: String,
        /// When the session began.
        started_unix: f64,
        /// The Likert questions in the study's order (results list them so).
        #[serde(default)]
        likert: Vec<String>,
    },
    /// An answer (a later answer to the same trial replaces an earlier one).
    Answer(Answer),
}

/// A reader's log read back: its header fields and the answers (the latest per trial, in the
/// order first given).
#[derive(Clone, Debug)]
pub struct ReaderLog {
    /// The file.
    pub path: PathBuf,
    /// Reader ID.
    pub reader: String,
    /// Study name.
    pub study: String,
    /// Study digest.
    pub digest: String,
    /// The study's Likert questions, in order.
    pub likert: Vec<String>,
    /// Answers.
    pub answers: Vec<Answer>,
    /// A torn last line (a crash mid-write) was found and ignored.
    pub torn_tail: bool,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Read a reader's log, refusing another format version.
pub fn read_log(path: &Path) -> Result<ReaderLog, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    // A complete file ends with a newline; anything after the last one is a torn write.
    let tail = lines.pop().unwrap_or("");
    let torn_tail = !tail.trim().is_empty();
    let mut header = None;
    let mut likert: Vec<String> = Vec::new();
    let mut answers: Vec<Answer> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{}: line {}: not JSON: {e}", path.display(), i + 1))?;
        if i == 0 || header.is_none() {
            let version = v.get("version").and_then(|x| x.as_u64());
            if v.get("kind").and_then(|k| k.as_str()) != Some("header") {
                return Err(format!(
                    "{}: line {}: not a SynthScope reader log (no header line)",
                    path.display(),
                    i + 1
                ));
            }
            if version != Some(LOG_VERSION as u64) {
                return Err(format!(
                    "{}: answers written by log format version {}, but this SynthScope reads version {LOG_VERSION}; they were not read, to avoid misreading them",
                    path.display(),
                    version.map_or("(none)".to_string(), |v| v.to_string())
                ));
            }
        }
        let l: LogLine = serde_json::from_value(v)
            .map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?;
        match l {
            LogLine::Header {
                study,
                digest,
                reader,
                likert: questions,
                ..
            } => {
                if likert.is_empty() {
                    likert = questions;
                }
                if let Some((s, d, r)) = &header
                    && (s != &study || d != &digest || r != &reader)
                {
                    return Err(format!(
                        "{}: line {}: a second header for another study or reader",
                        path.display(),
                        i + 1
                    ));
                }
                header = Some((study, digest, reader));
            }
            LogLine::Answer(a) => match answers.iter_mut().find(|x| x.trial == a.trial) {
                Some(x) => *x = a,
                None => answers.push(a),
            },
        }
    }
    let Some((study, digest, reader)) = header else {
        return Err(format!("{}: empty log (no header line)", path.display()));
    };
    Ok(ReaderLog {
        path: path.to_path_buf(),
        reader,
        study,
        digest,
        likert,
        answers,
        torn_tail,
    })
}

/// The log file of `reader` for a study file: `STUDY.answers/READER.jsonl` beside it (the
/// reader ID made safe for a file name).
pub fn log_path(study_file: &Path, reader: &str) -> PathBuf {
    let safe: String = reader
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = study_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "study".into());
    study_file
        .with_file_name(format!("{stem}.answers"))
        .join(format!("{safe}.jsonl"))
}

/// Appends answers to a reader's log, each written, flushed and fsynced before it returns.
pub struct LogWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl LogWriter {
    /// Open (or create) `path` for `reader` of `study`. An existing log must be for the same
    /// study (digest) and reader and in this format version; its answers are returned. A torn
    /// last line from a crash is cut off before appending.
    pub fn open(
        path: &Path,
        study: &Study,
        reader: &str,
    ) -> Result<(LogWriter, Vec<Answer>), String> {
        let reader = reader.trim();
        if reader.is_empty() {
            return Err("a reader ID is needed".into());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        }
        let existing = path.exists() && std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let answers = if existing {
            let log = read_log(path)?;
            if log.digest != study.digest() || log.study != study.name {
                return Err(format!(
                    "{}: these answers are for another version of the study (\"{}\", digest {}; this study: \"{}\", digest {}); they are kept as they are: use another reader ID or log",
                    path.display(),
                    log.study,
                    log.digest,
                    study.name,
                    study.digest()
                ));
            }
            if log.reader != reader {
                return Err(format!(
                    "{}: the log belongs to reader {:?}, not {reader:?}",
                    path.display(),
                    log.reader
                ));
            }
            if log.torn_tail {
                // Cut the torn line so the next answer starts on a line of its own.
                let text = std::fs::read(path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
                let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
                f.set_len(keep as u64)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| format!("{}: cannot repair: {e}", path.display()))?;
            }
            log.answers
        } else {
            Vec::new()
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: cannot open for appending: {e}", path.display()))?;
        let mut w = LogWriter {
            file,
            path: path.to_path_buf(),
        };
        if !existing {
            w.append(&LogLine::Header {
                version: LOG_VERSION,
                study: study.name.clone(),
                digest: study.digest(),
                reader: reader.to_string(),
                app: env!("CARGO_PKG_VERSION").into(),
                started_unix: now_unix(),
                likert: study.questions.likert.clone(),
            })?;
            if let Some(dir) = path.parent()
                && let Ok(d) = std::fs::File::open(dir)
            {
                // The new file's directory entry is durable too.
                let _ = d.sync_all();
            }
        }
        Ok((w, answers))
    }

    /// Append one line: written whole, flushed and fsynced before returning.
    pub fn append(&mut self, line: &LogLine) -> Result<(), String> {
        let mut s = serde_json::to_string(line).map_err(|e| e.to_string())?;
        s.push('\n');
        self.file
            .write_all(s.as_bytes())
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| format!("{}: cannot save the answer: {e}", self.path.display()))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// CSV of answers (one row per answer: reader, case, slice, truth, answer, confidence, Likert,
/// time taken), Likert columns in `questions`' order.
pub fn answers_csv(logs: &[ReaderLog], questions: &[String]) -> String {
    let esc = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from(
        "reader,trial,position,case,partner,slice,source,truth,answer,correct,confidence",
    );
    for q in questions {
        out.push(',');
        out.push_str(&esc(&format!("likert: {q}")));
    }
    out.push_str(",time_s,text,at_unix\n");
    for l in logs {
        for a in &l.answers {
            let mut row = vec![
                esc(&l.reader),
                esc(&a.trial),
                a.position.to_string(),
                esc(&a.case),
                esc(a.partner.as_deref().unwrap_or("")),
                a.slice.to_string(),
                esc(&a.source),
                esc(&a.truth),
                esc(a.answer.as_deref().unwrap_or("timeout")),
                a.correct()
                    .map_or(String::new(), |c| u8::from(c).to_string()),
                a.confidence.map_or(String::new(), |c| c.to_string()),
            ];
            for q in questions {
                row.push(a.likert.get(q).map_or(String::new(), |v| v.to_string()));
            }
            row.push(format!("{:.3}", a.time_s));
            row.push(esc(&a.text));
            row.push(format!("{:.3}", a.at_unix));
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out
}
