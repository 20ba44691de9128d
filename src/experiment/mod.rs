//! Experiments as the synthesis papers report them: a grid of arms (loss sets x networks) x
//! seeds x k folds by patient on varied phantom patients, each fold an ordinary training run
//! folder; the held-out patients of each fold evaluated (whole head and bone); tables of
//! mean +/- sd over folds, pairwise tests between arms, figures, and one self-contained HTML
//! report. An interrupted experiment resumes: folds trained to their end and evaluated are
//! skipped, a fold with a resumable checkpoint (killed or stopped) continues from it.

pub mod figures;
pub mod heldout;
pub mod report;
mod run;

pub use run::{
    ExperimentEvent, ExperimentProgress, check_output, finished_folds, fold_finished, fold_trained,
    run_experiment, run_experiment_with,
};

use crate::analysis::metrics::MetricsReport;
use crate::io::Progress;
use crate::io::phantom::{PhantomConfig, phantom_patient_varied};
use crate::model::Direction;
use crate::train::runs::Run;
use crate::train::{DataSource, LossTerm, ModelChoice, TrainConfig, TrainError};
use crate::volume::Volume;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One arm's loss set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossArm {
    /// Short name ("mse", "contextual").
    pub name: String,
    /// The weighted terms.
    pub losses: Vec<LossTerm>,
}

/// One network of the grid.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkArm {
    /// Short name ("unet8").
    pub name: String,
    /// The network.
    pub model: ModelChoice,
}

/// An experiment file (`experiments/*.toml`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Experiment name (the default output folder: experiments/out/NAME).
    pub name: String,
    /// Varied phantom patients 0..patients (see [`phantom_patient_varied`]).
    pub patients: usize,
    /// Coarse test grids.
    #[serde(default = "yes")]
    pub small: bool,
    /// Folds of the cross-validation by patient (patient i is held out in fold i % folds).
    pub folds: usize,
    /// Seeds; every arm runs every fold once per seed.
    #[serde(default = "seed0")]
    pub seeds: Vec<u64>,
    /// Loss sets.
    pub losses: Vec<LossArm>,
    /// Networks.
    pub networks: Vec<NetworkArm>,
    /// Epochs per fold.
    #[serde(default = "two")]
    pub epochs: usize,
    /// Patches per step.
    #[serde(default = "four")]
    pub batch_size: usize,
    /// Adam learning rate.
    #[serde(default = "lr")]
    pub learning_rate: f64,
    /// Training patch side.
    #[serde(default = "patch")]
    pub patch: usize,
    /// Cap on steps per epoch.
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
    /// Steps of the in-run classifier (contextual and Grad-CAM terms).
    #[serde(default = "classifier_steps")]
    pub classifier_steps: usize,
    /// Validation slices evaluated per epoch (the curves).
    #[serde(default = "four")]
    pub validation_slices: usize,
    /// Slices of each held-out patient evaluated (evenly spaced head slices; 0 = all).
    #[serde(default)]
    pub eval_slices: usize,
}

fn yes() -> bool {
    true
}
fn seed0() -> Vec<u64> {
    vec![0]
}
fn two() -> usize {
    2
}
fn four() -> usize {
    4
}
fn lr() -> f64 {
    2e-3
}
fn patch() -> usize {
    48
}
fn classifier_steps() -> usize {
    40
}

impl ExperimentConfig {
    /// Read and check an experiment file.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
            .map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
        let cfg: Self = toml::from_str(&text)
            .map_err(|e| TrainError::file(path, format!("not a valid experiment: {e}")))?;
        cfg.validate().map_err(|e| TrainError::file(path, e))?;
        Ok(cfg)
    }

    /// Refuse a grid that cannot run.
    pub fn validate(&self) -> Result<(), String> {
        if self.folds < 2 {
            return Err(format!("folds = {}: at least 2 are needed", self.folds));
        }
        if self.patients < self.folds {
            return Err(format!(
                "patients = {} is fewer than folds = {}",
                self.patients, self.folds
            ));
        }
        if self.losses.is_empty() || self.networks.is_empty() || self.seeds.is_empty() {
            return Err("losses, networks and seeds must each name at least one".into());
        }
        let mut names: Vec<String> = self.arms().iter().map(|a| a.name.clone()).collect();
        names.sort();
        names.dedup();
        if names.len() != self.arms().len() {
            return Err("loss and network names must be unique".into());
        }
        for arm in self.arms() {
            self.train_config(&arm, 0, 0, "")
                .validate()
                .map_err(|e| format!("arm {}: {e}", arm.name))?;
        }
        Ok(())
    }

    /// The arms: every loss set with every network.
    pub fn arms(&self) -> Vec<Arm> {
        let mut out = Vec::new();
        for n in &self.networks {
            for l in &self.losses {
                let name = if self.networks.len() == 1 {
                    l.name.clone()
                } else {
                    format!("{}-{}", l.name, n.name)
                };
                out.push(Arm {
                    name,
                    losses: l.losses.clone(),
                    model: n.model.clone(),
                });
            }
        }
        out
    }

    /// The held-out patients of fold `f`.
    pub fn held_out(&self, f: usize) -> Vec<usize> {
        (0..self.patients).filter(|i| i % self.folds == f).collect()
    }

    /// The training config of one fold of one arm.
    pub fn train_config(
        &self,
        arm: &Arm,
        seed: u64,
        fold: usize,
        description: &str,
    ) -> TrainConfig {
        TrainConfig {
            name: format!("{}-s{seed}-f{fold}", arm.name),
            seed,
            direction: Direction::MrToCt,
            data: DataSource::Loaded {
                description: description.to_string(),
            },
            model: arm.model.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            patch: self.patch,
            steps_per_epoch: self.steps_per_epoch,
            validation_fraction: 0.34,
            validation_slices: self.validation_slices,
            losses: arm.losses.clone(),
            classifier_steps: self.classifier_steps,
            ..TrainConfig::default()
        }
    }

    /// Folds to run: (arm, seed, fold) in order.
    pub fn grid(&self) -> Vec<(Arm, u64, usize)> {
        let mut out = Vec::new();
        for arm in self.arms() {
            for &s in &self.seeds {
                for f in 0..self.folds {
                    out.push((arm.clone(), s, f));
                }
            }
        }
        out
    }
}

/// One arm of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// Name (loss name, with the network's when there are several).
    pub name: String,
    /// Loss terms.
    pub losses: Vec<LossTerm>,
    /// Network.
    pub model: ModelChoice,
}

/// The folder of one fold's run.
pub fn run_dir(out: &Path, arm: &str, seed: u64, fold: usize) -> PathBuf {
    out.join("runs").join(format!("{arm}-s{seed}-f{fold}"))
}

/// Metrics of one held-out patient in one region, as stored in a run's `evaluation.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PatientMetrics {
    /// Patient index.
    pub patient: usize,
    /// "head" or "bone".
    pub region: String,
    /// PSNR (dB; data range = the reference CT's range).
    pub psnr: f64,
    /// SSIM.
    pub ssim: f64,
    /// MAE (HU).
    pub mae: f64,
    /// RMSE (HU).
    pub rmse: f64,
    /// Tenengrad of the synthetic CT (0..1 units).
    pub tenengrad: f64,
    /// UQI.
    pub uqi: f64,
}

/// The metric names, in table order.
pub const METRICS: [&str; 6] = ["psnr", "ssim", "mae", "rmse", "tenengrad", "uqi"];
/// Regions reported.
pub const REGIONS: [&str; 2] = ["head", "bone"];

impl PatientMetrics {
    /// A metric by name.
    pub fn get(&self, metric: &str) -> f64 {
        match metric {
            "psnr" => self.psnr,
            "ssim" => self.ssim,
            "mae" => self.mae,
            "rmse" => self.rmse,
            "tenengrad" => self.tenengrad,
            "uqi" => self.uqi,
            _ => f64::NAN,
        }
    }

    fn from_report(patient: usize, region: &str, r: &MetricsReport) -> Self {
        Self {
            patient,
            region: region.to_string(),
            psnr: r.psnr,
            ssim: r.ssim,
            mae: r.mae,
            rmse: r.rmse,
            tenengrad: r.tenengrad_pred,
            uqi: r.uqi,
        }
    }
}

/// A fold's value of `metric` in `region`: the mean over its held-out patients.
pub fn fold_value(rows: &[PatientMetrics], region: &str, metric: &str) -> f64 {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.region == region)
        .map(|r| r.get(metric))
        .collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// A patient: (name, CT on the MR grid, T1 MR), cut to the evaluated slices.
pub struct Patient {
    /// Index.
    pub index: usize,
    /// Real CT (HU) on the MR grid.
    pub ct: Volume,
    /// T1 MR.
    pub mr: Volume,
}

/// Varied phantom patient `k` of the experiment.
pub fn patient(cfg: &ExperimentConfig, k: usize) -> Patient {
    let base = if cfg.small {
        PhantomConfig::small()
    } else {
        PhantomConfig::default()
    };
    let (ct, mr) = phantom_patient_varied(&base, k);
    Patient { index: k, ct, mr }
}

/// The head slices of `ct` evaluated: `n` evenly spaced among those with >= 10% head (0 = all).
pub fn eval_slices(ct: &Volume, n: usize) -> Vec<usize> {
    let [nx, ny, nz] = ct.geometry.dims;
    let plane = nx * ny;
    let head: Vec<usize> = (0..nz)
        .filter(|z| {
            ct.data[z * plane..(z + 1) * plane]
                .iter()
                .filter(|v| **v > -500.0)
                .count()
                * 10
                >= plane
        })
        .collect();
    if n == 0 || n >= head.len() {
        return head;
    }
    (0..n)
        .map(|i| head[(i * 2 + 1) * head.len() / (2 * n)])
        .collect()
}

/// A volume made of the slices `zs` of `v`.
pub fn slab(v: &Volume, zs: &[usize]) -> Volume {
    let [nx, ny, _] = v.geometry.dims;
    let plane = nx * ny;
    let mut data = Vec::with_capacity(plane * zs.len());
    for &z in zs {
        data.extend_from_slice(&v.data[z * plane..(z + 1) * plane]);
    }
    let mut g = v.geometry.clone();
    g.dims = [nx, ny, zs.len()];
    Volume::new(g, data, v.meta.clone())
}

/// The synthetic CT of a whole MR volume.
pub fn synthesize_ct(
    model: &crate::model::checkpoint::AnyModel,
    mr: &Volume,
    device: &Device,
) -> Result<Volume, crate::synth::SynthError> {
    crate::synth::synthesize(
        model,
        Direction::MrToCt,
        mr,
        4,
        device,
        &Progress::default(),
    )
}

/// Synthesise the held-out patients' CTs with the run's final checkpoint and measure them
/// against the real CTs (whole head and bone, on the evaluated slices).
pub fn evaluate_fold(
    run: &Path,
    patients: &[&Patient],
    eval_slices_n: usize,
    device: &Device,
) -> Result<Vec<PatientMetrics>, TrainError> {
    let ckpt = run.join("checkpoints").join("last.bpk");
    let (model, _) = crate::model::checkpoint::load(&ckpt, device)?;
    let list: Vec<(usize, &Volume, &Volume)> =
        patients.iter().map(|p| (p.index, &p.ct, &p.mr)).collect();
    heldout::synthesis_metrics(&model, &list, eval_slices_n, device)
        .map_err(|e| TrainError::file(&ckpt, e.to_string()))
}

/// Everything of one fold read back from its run folder.
pub struct FoldResult {
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: usize,
    /// The run.
    pub run: Run,
    /// Held-out metrics.
    pub rows: Vec<PatientMetrics>,
}

/// Read every fold of `arm` back from `out`.
pub fn read_folds(
    cfg: &ExperimentConfig,
    out: &Path,
    arm: &str,
) -> Result<Vec<FoldResult>, TrainError> {
    let mut v = Vec::new();
    for &seed in &cfg.seeds {
        for fold in 0..cfg.folds {
            let dir = run_dir(out, arm, seed, fold);
            let f = dir.join("evaluation.json");
            let text = crate::io::read_text(&f, crate::io::MAX_TEXT_BYTES)
                .map_err(|e| TrainError::file(&f, format!("cannot read: {e}")))?;
            let rows: Vec<PatientMetrics> = serde_json::from_str(&text)
                .map_err(|e| TrainError::file(&f, format!("not an evaluation: {e}")))?;
            v.push(FoldResult {
                seed,
                fold,
                run: Run::read(&dir)?,
                rows,
            });
        }
    }
    Ok(v)
}
