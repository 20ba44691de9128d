//! What rating and 2AFC studies add to the study file and the log: the confidence scale, the
//! reading order (blocks or interleaved with a washout), a fixed view, and the viewing
//! conditions logged with every answer.

use super::Study;
use crate::volume::WindowLevel;
use serde::{Deserialize, Serialize};

/// The confidence scale of a rating study.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// 1 (definitely no lesion) .. 5 (definitely a lesion).
    #[default]
    Five,
    /// 1 .. 6 (no neutral midpoint).
    Six,
    /// 0 .. 100 (quasi-continuous).
    Slider,
}

impl Scale {
    /// The highest rating.
    pub fn max(self) -> u8 {
        match self {
            Scale::Five => 5,
            Scale::Six => 6,
            Scale::Slider => 100,
        }
    }

    /// The lowest rating.
    pub fn min(self) -> u8 {
        match self {
            Scale::Slider => 0,
            _ => 1,
        }
    }
}

/// How a rating study orders the modalities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingOrder {
    /// All images of one modality, then the next (modality order counterbalanced by reader).
    #[default]
    Blocks,
    /// Modalities mixed, with at least `washout` other images between two readings of the
    /// same subject.
    Interleaved,
}

/// The rating task (rating and 2AFC designs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatingTask {
    /// The question shown.
    #[serde(default = "lesion_question")]
    pub question: String,
    /// Confidence scale.
    #[serde(default)]
    pub scale: Scale,
    /// Blocks per modality or interleaved.
    #[serde(default)]
    pub order: ReadingOrder,
    /// Interleaved: fewest other images between two readings of one subject.
    #[serde(default = "five")]
    pub washout: usize,
}

fn lesion_question() -> String {
    "Is there a lesion?".into()
}

fn five() -> usize {
    5
}

impl Default for RatingTask {
    fn default() -> Self {
        Self {
            question: lesion_question(),
            scale: Scale::Five,
            order: ReadingOrder::Blocks,
            washout: 5,
        }
    }
}

/// A fixed view for every image (readers cannot change what is fixed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FixedView {
    /// Window (None: the study's window per modality, adjustable).
    #[serde(default)]
    pub window: Option<WindowLevel>,
    /// Zoom (1 = fitted; None: adjustable).
    #[serde(default)]
    pub zoom: Option<f32>,
}

/// The viewing conditions of one answer, for the methods section reviewers ask for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Viewing {
    /// The window's size in physical pixels.
    pub screen_px: [u32; 2],
    /// Physical pixels per logical point (the display scale factor).
    pub pixels_per_point: f32,
    /// The window/level on the image when the answer was given.
    pub window: WindowLevel,
    /// Zoom (1 = the image fitted to its pane).
    pub zoom: f32,
}

impl Study {
    /// Rating/2AFC designs: every case names its modality and truth; both truths and (for
    /// ROC across modalities) every subject in every modality.
    pub(super) fn detection_problem(&self) -> Option<String> {
        for c in &self.cases {
            if c.modality.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return Some(format!(
                    "{:?} design: case {:?} names no modality (`modality = \"real CT\"`)",
                    self.design, c.id
                ));
            }
            if c.abnormal.is_none() {
                return Some(format!(
                    "{:?} design: case {:?} does not say whether a lesion is present (`abnormal = true`/`false`)",
                    self.design, c.id
                ));
            }
        }
        for m in self.modalities() {
            let of = |ab: bool| {
                self.cases
                    .iter()
                    .filter(|c| c.modality_name() == m && c.abnormal == Some(ab))
                    .count()
            };
            if of(true) == 0 || of(false) == 0 {
                return Some(format!(
                    "modality {m:?} needs normal and abnormal cases ({} normal, {} abnormal)",
                    of(false),
                    of(true)
                ));
            }
        }
        None
    }

    /// The modalities of a rating/2AFC study, in the order the cases first name them.
    pub fn modalities(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for c in &self.cases {
            if let Some(m) = &c.modality
                && !v.contains(m)
            {
                v.push(m.clone());
            }
        }
        v
    }
}
