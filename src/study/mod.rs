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
//!
//! Here: the study file and the trial order. [`cases`] loads the cases and chooses their
//! slices, [`session`] is the reading state machine, [`log`] the reader logs.

pub mod cases;
mod design;
mod error;
pub mod log;
pub mod mrmc;
pub mod order;
pub mod rating_summary;
pub mod roc;
pub mod roemetz;
pub mod session;
pub mod stats;

pub use self::log::{
    LOG_VERSION, LogLine, LogSet, LogWriter, ReaderLog, answers_csv, answers_dir, log_path,
    read_log, read_logs,
};
pub use cases::{case_slices, head_slices, load_case, resolve_slices, sample_slices};
pub use design::{FixedView, RatingTask, ReadingOrder, Scale, Viewing};
pub use error::{LogStudy, StudyError};

use crate::volume::WindowLevel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Study file format version this build reads and writes.
pub const STUDY_VERSION: u32 = 1;

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
    /// Detection with a confidence rating (5- or 6-point, or a 0-100 slider) of each image,
    /// the same cases read in every modality (blocks, or interleaved with a washout): ROC and
    /// MRMC analysis ([`roc`], [`mrmc`]).
    Rating,
    /// Two-alternative forced choice: an abnormal and a normal image of one modality side by
    /// side: which shows the lesion? Proportion correct estimates the AUC.
    TwoAfc,
}

impl Design {
    /// Designs whose cases carry lesion truth and a modality.
    pub fn is_detection(self) -> bool {
        matches!(self, Design::Rating | Design::TwoAfc)
    }

    /// Designs that show two images side by side.
    pub fn is_paired(self) -> bool {
        matches!(self, Design::Pair | Design::TwoAfc)
    }
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
    /// Rating/2AFC designs: the modality this image is in (e.g. "real CT", "synthetic CT").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// Rating/2AFC designs: the subject shown (the same subject in every modality; default:
    /// the case id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Rating/2AFC designs: a lesion is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal: Option<bool>,
}

impl StudyCase {
    /// The subject this case shows (its id when none is given).
    pub fn subject_id(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.id)
    }

    /// The modality name ("" when none is given).
    pub fn modality_name(&self) -> &str {
        self.modality.as_deref().unwrap_or("")
    }
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
    /// Rating and 2AFC designs: the task.
    #[serde(default, skip_serializing_if = "is_default_task")]
    pub rating: RatingTask,
    /// A fixed window and/or zoom for every image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<FixedView>,
    /// Show a grey-scale test pattern before the session (the reader checks that every step
    /// is visible before reading).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_pattern: bool,
    /// The cases.
    pub cases: Vec<StudyCase>,
}

fn is_default_task(t: &RatingTask) -> bool {
    *t == RatingTask::default()
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
    pub fn read(path: &Path) -> Result<Study, StudyError> {
        let text = crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
            .map_err(|e| StudyError::io(path, "read", e))?;
        let syntax = |format, problem: String| StudyError::Syntax {
            path: path.to_path_buf(),
            format,
            problem,
        };
        // The version first, so a newer file is refused for its version, not for a field.
        let version = if crate::io::is_json_path(path) {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| syntax("JSON", e.to_string()))?
                .get("version")
                .and_then(|v| v.as_u64())
        } else {
            text.parse::<toml::Table>()
                .map_err(|e| syntax("TOML", e.to_string()))?
                .get("version")
                .and_then(|v| v.as_integer())
                .map(|v| v as u64)
        };
        match version {
            Some(v) if v == STUDY_VERSION as u64 => {}
            Some(found) => {
                return Err(StudyError::StudyVersion {
                    path: path.to_path_buf(),
                    found,
                });
            }
            None => {
                return Err(StudyError::NoStudyVersion {
                    path: path.to_path_buf(),
                });
            }
        }
        let s: Study = crate::io::parse_settings(path, &text)
            .map_err(|e| StudyError::Fields(e.to_string()))?;
        if let Some(problem) = s.problem() {
            return Err(StudyError::Invalid {
                path: Some(path.to_path_buf()),
                problem,
            });
        }
        Ok(s)
    }

    /// Write the study (TOML, or JSON by extension) atomically.
    pub fn write(&self, path: &Path) -> Result<(), StudyError> {
        self.validate()?;
        let text = if crate::io::is_json_path(path) {
            serde_json::to_string_pretty(self)?
        } else {
            toml::to_string_pretty(self)?
        };
        crate::atomic::write(path, text).map_err(|e| StudyError::io(path, "write", e.into()))
    }

    /// Problems that make the study unusable.
    pub fn validate(&self) -> Result<(), StudyError> {
        match self.problem() {
            Some(problem) => Err(StudyError::Invalid {
                path: None,
                problem,
            }),
            None => Ok(()),
        }
    }

    /// The first problem that makes the study unusable.
    fn problem(&self) -> Option<String> {
        if self.version != STUDY_VERSION {
            return Some(format!(
                "study format version {}, expected {STUDY_VERSION}",
                self.version
            ));
        }
        if self.name.trim().is_empty() {
            return Some("the study has no name".into());
        }
        if self.cases.is_empty() {
            return Some("the study has no cases".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for c in &self.cases {
            if c.id.trim().is_empty() {
                return Some(format!("a case ({}) has no id", c.path.display()));
            }
            if !ids.insert(c.id.as_str()) {
                return Some(format!("two cases share the id {:?}", c.id));
            }
        }
        if self.slices_per_case == 0 && self.cases.iter().any(|c| c.slices.is_empty()) {
            return Some("slices_per_case is 0 and a case has no fixed slices".into());
        }
        if let Some(t) = self.time_limit_s
            && (t.is_nan() || t <= 0.0)
        {
            return Some(format!("time_limit_s must be positive, got {t}"));
        }
        if self.design == Design::Pair {
            let mut any = false;
            for c in self.cases.iter().filter(|c| c.truth == Truth::Synthetic) {
                let Some(p) = &c.pair else {
                    return Some(format!(
                        "pair design: synthetic case {:?} names no real case (`pair = \"ID\"`)",
                        c.id
                    ));
                };
                match self.cases.iter().find(|r| &r.id == p) {
                    Some(r) if r.truth == Truth::Real => any = true,
                    Some(_) => {
                        return Some(format!("case {:?}: its pair {p:?} is not real", c.id));
                    }
                    None => return Some(format!("case {:?}: no case has the id {p:?}", c.id)),
                }
            }
            if !any {
                return Some("pair design: no synthetic case is paired with a real one".into());
            }
        }
        if self.design.is_detection()
            && let Some(p) = self.detection_problem()
        {
            return Some(p);
        }
        for (i, q) in self.questions.likert.iter().enumerate() {
            if q.trim().is_empty() {
                return Some(format!("Likert question {} has no text", i + 1));
            }
        }
        None
    }

    /// A digest of what readers answer about (cases, slices and questions), so a log is never
    /// resumed or summarised against a different study.
    pub fn digest(&self) -> String {
        if self.design.is_detection() {
            // The fields detection studies add; older designs keep their old digests.
            let key = serde_json::json!({
                "name": self.name,
                "design": self.design,
                "cases": self.cases.iter().map(|c| (&c.id, c.truth, &c.slices, &c.modality, c.subject_id(), c.abnormal)).collect::<Vec<_>>(),
                "slices_per_case": self.slices_per_case,
                "seed": self.seed,
                "rating": self.rating,
                "view": self.view,
            });
            return format!("{:016x}", fnv(key.to_string().as_bytes()));
        }
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

    /// The index of the case that `case` is paired with (pair design), if it names one that exists.
    pub fn partner(&self, case: &StudyCase) -> Option<usize> {
        let id = case.pair.as_ref()?;
        self.cases.iter().position(|r| &r.id == id)
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

/// The study's trials in reader `reader`'s order. `slices[i]` are case `i`'s slices (fixed, or
/// sampled by [`sample_slices`]).
pub fn trials(study: &Study, slices: &[Vec<usize>], reader: &str) -> Vec<Trial> {
    if study.design.is_detection() {
        return order::detection_trials(study, slices, reader);
    }
    let mut rng = crate::train::data::Rng::new(study.reader_seed(reader));
    let mut out = Vec::new();
    match study.design {
        Design::Rating | Design::TwoAfc => {}
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
                let Some(p) = study.partner(c) else {
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
    /// Rating/2AFC designs: the confidence rating (rating design) on the study's scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// Rating/2AFC designs: the modality of the image (2AFC: of both images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// Rating/2AFC designs: the subject shown (2AFC: the abnormal one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Rating design: a lesion is present (2AFC: `truth` is the lesion's side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal: Option<bool>,
    /// The viewing conditions of the answer (display, window, zoom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewing: Option<Viewing>,
}

impl Answer {
    /// Whether the verdict was right (None: no verdict, or a rating-design answer, which has
    /// a rating and no verdict).
    pub fn correct(&self) -> Option<bool> {
        if self.rating.is_some() {
            return None;
        }
        self.answer.as_ref().map(|a| *a == self.truth)
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
