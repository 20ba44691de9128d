//! A reader's session: the trials in the reader's order, the answer being given, and the log.
//! The reading view and `synthscope study answer` both drive this one state machine with the
//! same keys, so what the tests press is what a radiologist presses.

use super::{
    Answer, Design, LogLine, LogWriter, Study, StudyError, Trial, Truth, Viewing, now_unix,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A key of the reading view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StudyKey {
    /// "Real" (single design).
    Real,
    /// "Synthetic" (single design).
    Synthetic,
    /// "A (left) is real" (pair design).
    A,
    /// "B (right) is real" (pair design).
    B,
    /// A rating 1-6: fills the first unanswered rating (confidence, then the Likert questions;
    /// the rating design: the lesion rating, on its scale).
    Digit(u8),
    /// A slider value 0-100 (rating design with `scale = "slider"`).
    Value(u8),
    /// Clear the last rating given.
    Backspace,
    /// Save the answer and go on.
    Next,
    /// Go back one image (when the study allows it).
    Back,
}

impl StudyKey {
    /// Parse a scripted key: r, s, a, b, 1-6, v=0..100 (slider), next (or n / enter), back, bs.
    pub fn parse(s: &str) -> Option<StudyKey> {
        if let Some(v) = s.strip_prefix("v=") {
            return v
                .parse::<u8>()
                .ok()
                .filter(|v| *v <= 100)
                .map(StudyKey::Value);
        }
        Some(match s.to_ascii_lowercase().as_str() {
            "r" => StudyKey::Real,
            "s" => StudyKey::Synthetic,
            "a" => StudyKey::A,
            "b" => StudyKey::B,
            "n" | "next" | "enter" | "space" => StudyKey::Next,
            "back" | "left" => StudyKey::Back,
            "bs" | "backspace" => StudyKey::Backspace,
            d if d.len() == 1 && ("1"..="6").contains(&d) => {
                StudyKey::Digit(d.as_bytes()[0] - b'0')
            }
            _ => return None,
        })
    }
}

/// The answer being given to the current image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    /// Verdict: "real"/"synthetic" (single) or "A"/"B" (pair).
    pub verdict: Option<String>,
    /// Confidence 1-5.
    pub confidence: Option<u8>,
    /// Likert answers, in the study's order.
    pub likert: Vec<Option<u8>>,
    /// Free text.
    pub text: String,
    /// Rating design: the lesion rating on the study's scale.
    pub rating: Option<u8>,
}

/// A reader's session.
pub struct Session {
    /// The study.
    pub study: Study,
    /// The study file.
    pub study_file: PathBuf,
    /// Reader ID.
    pub reader: String,
    /// The trials in this reader's order.
    pub trials: Vec<Trial>,
    /// Answers given so far (latest per trial).
    pub answers: Vec<Answer>,
    /// Index of the current trial (== trials.len() when done).
    pub pos: usize,
    /// The answer being given.
    pub draft: Draft,
    /// Answers found in the log at start (a resumed session).
    pub resumed: usize,
    /// The viewing conditions the reading view reports (logged with each answer).
    pub viewing: Option<Viewing>,
    shown_at: Instant,
    log: LogWriter,
}

impl Session {
    /// Start or resume `reader`'s session of `study` (read from `study_file`), with `slices[i]`
    /// the slices of case `i`, logging to `log`.
    pub fn start(
        study: Study,
        study_file: &Path,
        slices: &[Vec<usize>],
        reader: &str,
        log: &Path,
    ) -> Result<Session, StudyError> {
        let (log, answers) = LogWriter::open(log, &study, reader)?;
        let trials = super::trials(&study, slices, reader);
        let resumed = answers.len();
        let mut s = Session {
            draft: Draft::default(),
            study,
            study_file: study_file.to_path_buf(),
            reader: reader.trim().to_string(),
            trials,
            answers,
            pos: 0,
            resumed,
            viewing: None,
            shown_at: Instant::now(),
            log,
        };
        s.pos = s.first_unanswered();
        s.load_draft();
        Ok(s)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// The first trial without an answer.
    fn first_unanswered(&self) -> usize {
        self.trials
            .iter()
            .position(|t| !self.answers.iter().any(|a| a.trial == t.id))
            .unwrap_or(self.trials.len())
    }

    /// All trials answered.
    pub fn done(&self) -> bool {
        self.pos >= self.trials.len()
    }

    /// The current trial.
    pub fn current(&self) -> Option<&Trial> {
        self.trials.get(self.pos)
    }

    /// Seconds the current image has been shown.
    pub fn elapsed(&self) -> f64 {
        self.shown_at.elapsed().as_secs_f64()
    }

    /// Seconds left under the time limit.
    pub fn remaining(&self) -> Option<f64> {
        self.study
            .time_limit_s
            .map(|t| (t - self.elapsed()).max(0.0))
    }

    /// The rating questions in order: confidence (if asked), then the Likert questions.
    pub fn rating_names(&self) -> Vec<String> {
        if self.study.design == Design::Rating {
            return vec!["rating".into()];
        }
        let mut v = Vec::new();
        if self.study.questions.confidence {
            v.push("confidence".to_string());
        }
        if self.study.design == Design::Single {
            v.extend(self.study.questions.likert.iter().cloned());
        }
        v
    }

    /// The ratings of the draft in [`Self::rating_names`]' order.
    pub fn ratings(&self) -> Vec<Option<u8>> {
        if self.study.design == Design::Rating {
            return vec![self.draft.rating];
        }
        let mut v = Vec::new();
        if self.study.questions.confidence {
            v.push(self.draft.confidence);
        }
        if self.study.design == Design::Single {
            v.extend(self.draft.likert.iter().copied());
        }
        v
    }

    /// Set rating `i` (in [`Self::rating_names`]' order).
    pub fn set_rating(&mut self, i: usize, value: Option<u8>) {
        if self.study.design == Design::Rating {
            let sc = self.study.rating.scale;
            self.draft.rating = value.map(|v| v.clamp(sc.min(), sc.max()));
            return;
        }
        let value = value.map(|v| v.clamp(1, 5));
        let c = usize::from(self.study.questions.confidence);
        if i < c {
            self.draft.confidence = value;
        } else if let Some(l) = self.draft.likert.get_mut(i - c) {
            *l = value;
        }
    }

    /// What is still missing before Next is allowed (empty: complete).
    pub fn missing(&self) -> Vec<String> {
        let mut m = Vec::new();
        if self.draft.verdict.is_none() {
            match self.study.design {
                Design::Single => m.push("real or synthetic (R / S)".to_string()),
                Design::Pair => m.push("which is real (A / B)".to_string()),
                Design::TwoAfc => m.push("which shows the lesion (A / B)".to_string()),
                Design::Rating => {}
            }
        }
        for (n, r) in self.rating_names().into_iter().zip(self.ratings()) {
            if r.is_none() {
                m.push(n);
            }
        }
        m
    }

    fn load_draft(&mut self) {
        let n = if self.study.design == Design::Single {
            self.study.questions.likert.len()
        } else {
            0
        };
        self.draft = Draft {
            likert: vec![None; n],
            ..Default::default()
        };
        if let Some(t) = self.current()
            && let Some(a) = self.answers.iter().find(|a| a.trial == t.id)
        {
            let a = a.clone();
            self.draft.verdict = a.answer.clone();
            self.draft.confidence = a.confidence;
            for (i, q) in self.study.questions.likert.iter().enumerate() {
                if let Some(v) = a.likert.get(q)
                    && i < self.draft.likert.len()
                {
                    self.draft.likert[i] = Some(*v);
                }
            }
            self.draft.text = a.text.clone();
            self.draft.rating = a.rating.map(|r| r.round().clamp(0.0, 100.0) as u8);
        }
        self.shown_at = Instant::now();
    }

    /// Apply a key. Returns Ok(true) when an answer was saved.
    pub fn key(&mut self, k: StudyKey) -> Result<bool, StudyError> {
        if self.done() {
            return Ok(false);
        }
        let design = self.study.design;
        let pair = design.is_paired();
        let single = design == Design::Single;
        match k {
            StudyKey::Real if single => self.draft.verdict = Some("real".into()),
            StudyKey::Synthetic if single => self.draft.verdict = Some("synthetic".into()),
            StudyKey::A if pair => self.draft.verdict = Some("A".into()),
            StudyKey::B if pair => self.draft.verdict = Some("B".into()),
            StudyKey::Value(v)
                if design == Design::Rating && self.study.rating.scale == super::Scale::Slider =>
            {
                self.draft.rating = Some(v.min(100));
            }
            StudyKey::Digit(d) if design == Design::Rating => {
                let sc = self.study.rating.scale;
                if sc != super::Scale::Slider && d >= sc.min() && d <= sc.max() {
                    self.draft.rating = Some(d);
                }
            }
            StudyKey::Digit(d) if d <= 5 => {
                if let Some(i) = self.ratings().iter().position(Option::is_none) {
                    self.set_rating(i, Some(d));
                }
            }
            StudyKey::Backspace => {
                if let Some(i) = self.ratings().iter().rposition(Option::is_some) {
                    self.set_rating(i, None);
                }
            }
            StudyKey::Next => return self.advance(),
            StudyKey::Back => self.back(),
            _ => {}
        }
        Ok(false)
    }

    /// Go back one image, if the study allows it.
    pub fn back(&mut self) {
        if self.study.allow_back && self.pos > 0 {
            self.pos -= 1;
            self.load_draft();
        }
    }

    /// Save the current answer (if complete) and show the next image. Ok(false): incomplete.
    pub fn advance(&mut self) -> Result<bool, StudyError> {
        if self.done() || !self.missing().is_empty() {
            return Ok(false);
        }
        self.save(false)?;
        Ok(true)
    }

    /// Called every frame: when the time limit has run out, saves what was given (a timed-out
    /// answer if no verdict) and moves on. Returns true when it did.
    pub fn tick(&mut self) -> Result<bool, StudyError> {
        if self.done() || self.remaining().is_none_or(|r| r > 0.0) {
            return Ok(false);
        }
        if self.missing().is_empty() {
            self.save(false)?;
        } else {
            self.save(true)?;
        }
        Ok(true)
    }

    fn save(&mut self, timed_out: bool) -> Result<(), StudyError> {
        let Some(t) = self.current().cloned() else {
            return Ok(());
        };
        let case = &self.study.cases[t.case];
        let rating_design = self.study.design == Design::Rating;
        let (truth, partner) = match t.partner {
            Some(p) => (
                if t.real_on_left { "A" } else { "B" }.to_string(),
                Some(self.study.cases[p].id.clone()),
            ),
            None if rating_design => (
                if case.abnormal == Some(true) {
                    "abnormal"
                } else {
                    "normal"
                }
                .to_string(),
                None,
            ),
            None => (case.truth.name().to_string(), None),
        };
        let detection = self.study.design.is_detection();
        let rating = if rating_design && !timed_out {
            self.draft.rating.map(f64::from)
        } else {
            None
        };
        let likert = self
            .study
            .questions
            .likert
            .iter()
            .zip(&self.draft.likert)
            .filter_map(|(q, v)| v.map(|v| (q.clone(), v)))
            .collect();
        let a = Answer {
            trial: t.id.clone(),
            position: self.pos + 1,
            case: case.id.clone(),
            partner,
            slice: t.slice,
            truth,
            source: if case.source.is_empty() {
                match case.truth {
                    Truth::Real => "scanner".into(),
                    Truth::Synthetic => "unknown model".into(),
                }
            } else {
                case.source.clone()
            },
            answer: if timed_out {
                None
            } else if rating_design {
                rating.map(|r| format!("{r}"))
            } else {
                self.draft.verdict.clone()
            },
            confidence: self.draft.confidence,
            likert,
            text: self.draft.text.trim().to_string(),
            time_s: self.elapsed(),
            at_unix: now_unix(),
            rating,
            modality: detection.then(|| case.modality_name().to_string()),
            subject: detection.then(|| case.subject_id().to_string()),
            abnormal: if rating_design { case.abnormal } else { None },
            viewing: self.viewing,
        };
        // Durable first; only then does the session move on.
        self.log.append(&LogLine::Answer(a.clone()))?;
        match self.answers.iter_mut().find(|x| x.trial == a.trial) {
            Some(x) => *x = a,
            None => self.answers.push(a),
        }
        // Next: the first unanswered trial after this one (after going back, the reader
        // returns to where they were).
        self.pos = (self.pos + 1..self.trials.len())
            .find(|i| !self.answers.iter().any(|a| a.trial == self.trials[*i].id))
            .unwrap_or_else(|| self.first_unanswered());
        self.load_draft();
        Ok(())
    }
}
