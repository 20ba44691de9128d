//! Reader logs: one JSON line per answer ([`LOG_VERSION`]), written and fsynced as each answer
//! is given, read back for resuming and summaries, and exported as CSV.

use super::{Answer, LogStudy, Study, StudyError, now_unix};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Answer log format version this build reads and writes.
pub const LOG_VERSION: u32 = 1;

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

/// Read a reader's log, refusing another format version.
pub fn read_log(path: &Path) -> Result<ReaderLog, StudyError> {
    let text = crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
        .map_err(|e| StudyError::io(path, "read", e))?;
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
        let bad_line = |problem: String| StudyError::LogLine {
            path: path.to_path_buf(),
            line: i + 1,
            problem,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad_line(format!("not JSON: {e}")))?;
        if i == 0 || header.is_none() {
            let version = v.get("version").and_then(|x| x.as_u64());
            if v.get("kind").and_then(|k| k.as_str()) != Some("header") {
                return Err(bad_line(
                    "not a SynthScope reader log (no header line)".into(),
                ));
            }
            if version != Some(LOG_VERSION as u64) {
                return Err(StudyError::LogVersion {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
        }
        let l: LogLine = serde_json::from_value(v).map_err(|e| bad_line(e.to_string()))?;
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
                    return Err(bad_line(
                        "a second header for another study or reader".into(),
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
        return Err(StudyError::EmptyLog {
            path: path.to_path_buf(),
        });
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

/// Reader logs read together: the logs, their Likert question order, and warnings to show.
#[derive(Clone, Debug)]
pub struct LogSet {
    /// The logs, in the order of the files.
    pub logs: Vec<ReaderLog>,
    /// The Likert questions: the study's order (from the log headers), then any question only
    /// answers name.
    pub questions: Vec<String>,
    /// Problems that did not stop the reading (a torn last line), one message each.
    pub warnings: Vec<String>,
}

/// Read reader logs (files, or folders of `*.jsonl`) and their Likert question order (first
/// appearance). Torn last lines are ignored and reported in [`LogSet::warnings`].
pub fn read_logs(paths: &[PathBuf]) -> Result<LogSet, StudyError> {
    let mut logs = Vec::new();
    let mut warnings = Vec::new();
    for f in log_files(paths)? {
        let l = read_log(&f)?;
        if l.torn_tail {
            warnings.push(format!(
                "{}: the last line was cut off (a crash while writing); it is ignored",
                f.display()
            ));
        }
        logs.push(l);
    }
    let mut questions: Vec<String> = Vec::new();
    for q in logs.iter().flat_map(|l| l.likert.iter()) {
        if !questions.contains(q) {
            questions.push(q.clone());
        }
    }
    for a in logs.iter().flat_map(|l| l.answers.iter()) {
        for q in a.likert.keys() {
            if !questions.contains(q) {
                questions.push(q.clone());
            }
        }
    }
    Ok(LogSet {
        logs,
        questions,
        warnings,
    })
}

/// Log files named by `paths`: files as they are, folders by their `*.jsonl` (sorted).
fn log_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, StudyError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| StudyError::io(p, "read", e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(StudyError::NoLogsIn { path: p.clone() });
            }
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
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
    answers_dir(study_file).join(format!("{safe}.jsonl"))
}

/// The folder of a study file's reader logs: `STUDY.answers` beside it.
pub fn answers_dir(study_file: &Path) -> PathBuf {
    let stem = study_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "study".into());
    study_file.with_file_name(format!("{stem}.answers"))
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
    ) -> Result<(LogWriter, Vec<Answer>), StudyError> {
        let reader = reader.trim();
        if reader.is_empty() {
            return Err(StudyError::NoReader);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StudyError::io(dir, "create", e))?;
        }
        let existing = path.exists() && std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let answers = if existing {
            let log = read_log(path)?;
            if log.digest != study.digest() || log.study != study.name {
                return Err(StudyError::OtherStudy {
                    log: LogStudy::of(&log),
                    study: study.name.clone(),
                    digest: study.digest(),
                });
            }
            if log.reader != reader {
                return Err(StudyError::OtherReader {
                    path: path.to_path_buf(),
                    owner: log.reader,
                    reader: reader.to_string(),
                });
            }
            if log.torn_tail {
                // Cut the torn line so the next answer starts on a line of its own.
                let text = std::fs::read(path).map_err(|e| StudyError::io(path, "read", e))?;
                let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| StudyError::io(path, "open", e))?;
                f.set_len(keep as u64)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| StudyError::io(path, "repair", e))?;
            }
            log.answers
        } else {
            Vec::new()
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StudyError::io(path, "open for appending", e))?;
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
    pub fn append(&mut self, line: &LogLine) -> Result<(), StudyError> {
        let mut s = serde_json::to_string(line)?;
        s.push('\n');
        self.file
            .write_all(s.as_bytes())
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| StudyError::io(&self.path, "save the answer", e))
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
    // Columns of rating/2AFC studies and the viewing conditions come last, so readers of the
    // older columns keep working.
    out.push_str(",time_s,text,at_unix,rating,modality,subject,abnormal,screen_w,screen_h,pixels_per_point,window_width,window_center,zoom\n");
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
            row.push(a.rating.map_or(String::new(), |r| format!("{r}")));
            row.push(esc(a.modality.as_deref().unwrap_or("")));
            row.push(esc(a.subject.as_deref().unwrap_or("")));
            row.push(
                a.abnormal
                    .map_or(String::new(), |b| u8::from(b).to_string()),
            );
            match &a.viewing {
                Some(v) => {
                    row.push(v.screen_px[0].to_string());
                    row.push(v.screen_px[1].to_string());
                    row.push(format!("{}", v.pixels_per_point));
                    row.push(format!("{}", v.window.width));
                    row.push(format!("{}", v.window.center));
                    row.push(format!("{:.3}", v.zoom));
                }
                None => row.extend(std::iter::repeat_n(String::new(), 6)),
            }
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out
}
