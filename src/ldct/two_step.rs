//! The two-step training of method 4 and its held-out evaluation: a lesion classifier on
//! normal-dose patches; a denoiser trained with MSE on (low-dose, normal-dose) pairs; the same
//! denoiser fine-tuned with the error weighted by the normal-dose activation map; and, as the
//! control that separates "fine-tuned with the map" from "trained longer", the step-1 denoiser
//! fine-tuned for the same steps with plain MSE.

use super::classifier::{
    ClassifierOptions, ClassifierReport, evaluate_classifier, save_lesion_classifier,
    train_lesion_classifier,
};
use super::eval::{ArmMetrics, evaluate_arm, markdown_table};
use super::weights::{WeightCheck, weight_check};
use crate::io::Progress;
use crate::model::Direction;
use crate::model::checkpoint;
use crate::synth::ldct::phantom::ImagedPatient;
use crate::synth::ldct::{DoseConfig, LesionPhantomConfig, lesion_patient};
use crate::train::config::{LossKind, LossTerm, ModelChoice};
use crate::train::{Control, DataSource, Dataset, TrainConfig, TrainError, TrainEvent};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Everything the two-step experiment needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoStepOptions {
    /// Patients 0..train_patients train (the last fifth of them validate each epoch).
    pub train_patients: usize,
    /// Patients after those: held out, evaluated only at the end.
    pub test_patients: usize,
    /// Phantom grid and lesions.
    pub phantom: LesionPhantomConfig,
    /// The two doses.
    pub dose: DoseConfig,
    /// U-Net width at full resolution.
    pub base_width: usize,
    /// U-Net downsamplings.
    pub levels: usize,
    /// Training patch (pixels).
    pub patch: usize,
    /// Patch of step 2 and its control (None: `patch`). The activation map is computed per
    /// patch and scaled to its peak, so this sets how local the weighting is; the classifier's
    /// own patch is the size its maps were trained on.
    pub finetune_patch: Option<usize>,
    /// Patches per step.
    pub batch_size: usize,
    /// Step 1 (MSE) epochs.
    pub mse_epochs: usize,
    /// Step 2 (activation-weighted) epochs; the control uses as many.
    pub finetune_epochs: usize,
    /// Cap on steps per epoch.
    pub steps_per_epoch: Option<usize>,
    /// Step 1 learning rate.
    pub learning_rate: f64,
    /// Step 2 (and control) learning rate.
    pub finetune_learning_rate: f64,
    /// Classifier layer whose Grad-CAM weights the fine-tuning (0 = stem, H/2 .. 3).
    pub cam_layer: usize,
    /// The lesion classifier's training.
    pub classifier: ClassifierOptions,
    /// Also run the MSE fine-tuning control.
    pub control: bool,
    /// Seed.
    pub seed: u64,
}

impl Default for TwoStepOptions {
    fn default() -> Self {
        Self {
            train_patients: 6,
            test_patients: 2,
            phantom: LesionPhantomConfig::default(),
            dose: DoseConfig::default(),
            base_width: 16,
            levels: 3,
            patch: 64,
            finetune_patch: None,
            batch_size: 8,
            mse_epochs: 15,
            finetune_epochs: 5,
            steps_per_epoch: Some(100),
            learning_rate: 2e-3,
            finetune_learning_rate: 5e-4,
            cam_layer: 1,
            classifier: ClassifierOptions::default(),
            control: true,
            seed: 0,
        }
    }
}

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct TwoStepReport {
    /// The options it ran with.
    pub options: TwoStepOptions,
    /// Low-dose I0 / normal-dose I0.
    pub dose_fraction: f64,
    /// The classifier on held-out patients.
    pub classifier: ClassifierReport,
    /// Where step 2's weights fall: on the training patients (what the fine-tuning sees) and
    /// on the held-out ones.
    pub weights: [WeightCheck; 2],
    /// Normal dose, low dose, then each denoiser, on the held-out patients.
    pub arms: Vec<ArmMetrics>,
    /// Seconds per stage: data, classifier, step 1, step 2, control, evaluation.
    pub seconds: Vec<(String, f64)>,
}

/// Phantom patients `range` imaged at both doses.
pub fn imaged_patients(
    opts: &TwoStepOptions,
    range: std::ops::Range<usize>,
) -> Result<Vec<ImagedPatient>, TrainError> {
    range
        .map(|k| {
            lesion_patient(&opts.phantom, k)
                .imaged(&opts.dose)
                .map_err(|e| TrainError::Config(e.to_string()))
        })
        .collect()
}

/// The training config of one step (data recorded as the low-dose phantom source).
pub fn step_config(
    opts: &TwoStepOptions,
    name: &str,
    losses: Vec<LossTerm>,
    epochs: usize,
    lr: f64,
) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        seed: opts.seed,
        direction: Direction::CtDenoise,
        data: DataSource::LowDose {
            patients: opts.train_patients,
            phantom: opts.phantom,
            dose: opts.dose,
        },
        model: ModelChoice::Unet {
            base_width: opts.base_width,
            levels: opts.levels,
        },
        epochs,
        batch_size: opts.batch_size,
        learning_rate: lr,
        patch: opts.patch,
        steps_per_epoch: opts.steps_per_epoch,
        validation_fraction: 0.2,
        validation_slices: 4,
        losses,
        ..TrainConfig::default()
    }
}

/// Run the whole experiment into `out` (classifier/, step1_mse/, step2_activation/,
/// step2_mse_control/, report.json, report.md).
pub fn run_two_step(
    opts: &TwoStepOptions,
    out: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<TwoStepReport, TrainError> {
    opts.dose
        .validate()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    if opts.train_patients < 2 || opts.test_patients < 1 {
        return Err(TrainError::Config(
            "the experiment needs at least 2 training patients and 1 held-out patient".into(),
        ));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| TrainError::file(out, format!("cannot create the folder: {e}")))?;
    let mut seconds = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &str, t: &mut Instant| {
        seconds.push((name.to_string(), t.elapsed().as_secs_f64()));
        *t = Instant::now();
    };
    on_event(TrainEvent::Stage("Simulating low-dose CT".into()));
    let train = imaged_patients(opts, 0..opts.train_patients)?;
    let test = imaged_patients(
        opts,
        opts.train_patients..opts.train_patients + opts.test_patients,
    )?;
    on_event(TrainEvent::Note(format!(
        "{} training and {} held-out phantom patients, {} x {} x {}; dose fraction {} (I0 {:.0} -> {:.0})",
        train.len(),
        test.len(),
        opts.phantom.size,
        opts.phantom.size,
        opts.phantom.slices,
        opts.dose.dose_fraction,
        opts.dose.i0,
        opts.dose.low_dose_i0()
    )));
    lap("simulation", &mut t);

    on_event(TrainEvent::Stage("Training the lesion classifier".into()));
    device.seed(opts.seed);
    let classifier = train_lesion_classifier(&train, &opts.classifier, device, control)?;
    let cls_report =
        evaluate_classifier(&classifier, &test, &opts.classifier, opts.cam_layer, device)?;
    let cls_json = save_lesion_classifier(
        &classifier,
        &opts.classifier,
        &cls_report,
        &out.join("classifier"),
    )?;
    on_event(TrainEvent::Note(format!(
        "lesion classifier (held out): absent {:.0}%, present small/medium/large {:.0}/{:.0}/{:.0}%; activation in lesions {:.2}x the body's",
        100.0 * cls_report.absent_accuracy,
        100.0 * cls_report.present_accuracy[0],
        100.0 * cls_report.present_accuracy[1],
        100.0 * cls_report.present_accuracy[2],
        cls_report.lesion_activation_ratio
    )));
    let ft_patch = opts.finetune_patch.unwrap_or(opts.patch);
    let weights = [
        weight_check(&classifier, &train, ft_patch, opts.cam_layer, device)?,
        weight_check(&classifier, &test, ft_patch, opts.cam_layer, device)?,
    ];
    for (w, on) in weights.iter().zip(["training", "held-out"]) {
        on_event(TrainEvent::Note(format!(
            "step-2 weights on {on} patches (1 = the mean): lesions small/medium/large {:.2}/{:.2}/{:.2}, body {:.2}, air {:.2}; \
             share of the loss on small lesions {:.2}% (their pixels: {:.2}%); {:.0}% of pixels below 1% of the mean",
            w.lesion_weight[0],
            w.lesion_weight[1],
            w.lesion_weight[2],
            w.body_weight,
            w.air_weight,
            100.0 * w.lesion_share[0],
            100.0 * w.lesion_pixel_share[0],
            100.0 * w.near_zero
        )));
    }
    lap("classifier", &mut t);

    let cases = train
        .iter()
        .map(|p| {
            crate::train::data::denoise_case(
                &format!("lesion phantom {}", p.patient.index),
                &p.low,
                &p.normal,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dataset = Dataset::split(cases, 0.2);
    let mse = vec![LossTerm::new(LossKind::Mse, 1.0)];
    let step1 = step_config(
        opts,
        "ldct-step1-mse",
        mse.clone(),
        opts.mse_epochs,
        opts.learning_rate,
    );
    let dir1 = out.join("step1_mse");
    crate::train::train(&step1, &dataset, &dir1, device, control, on_event)?;
    lap("step 1 (MSE)", &mut t);

    let mut term = LossTerm::new(LossKind::ActivationWeighted, 1.0);
    term.layer = Some(opts.cam_layer);
    let mut step2 = step_config(
        opts,
        "ldct-step2-activation",
        vec![term],
        opts.finetune_epochs,
        opts.finetune_learning_rate,
    );
    step2.classifier = Some(cls_json);
    step2.patch = ft_patch;
    step2.init_from = Some(dir1.join("checkpoints/last.json"));
    let dir2 = out.join("step2_activation");
    crate::train::train(&step2, &dataset, &dir2, device, control, on_event)?;
    lap("step 2 (activation-weighted)", &mut t);

    let dir3 = out.join("step2_mse_control");
    if opts.control {
        let mut ctl = step_config(
            opts,
            "ldct-step2-mse-control",
            mse,
            opts.finetune_epochs,
            opts.finetune_learning_rate,
        );
        ctl.init_from = Some(dir1.join("checkpoints/last.json"));
        ctl.patch = ft_patch;
        crate::train::train(&ctl, &dataset, &dir3, device, control, on_event)?;
        lap("control (MSE fine-tuning)", &mut t);
    }

    on_event(TrainEvent::Stage("Evaluating on held-out patients".into()));
    let mut arms = vec![
        evaluate_arm(
            "normal dose",
            &test,
            &test.iter().map(|p| &p.normal).collect::<Vec<_>>(),
        ),
        evaluate_arm(
            "low dose",
            &test,
            &test.iter().map(|p| &p.low).collect::<Vec<_>>(),
        ),
    ];
    let mut denoisers = vec![
        ("MSE (step 1)", dir1.clone()),
        ("activation-map fine-tuned (step 2)", dir2.clone()),
    ];
    if opts.control {
        denoisers.push(("MSE fine-tuned, same steps (control)", dir3.clone()));
    }
    for (arm, dir) in denoisers {
        let (model, _) = checkpoint::load(&dir.join("checkpoints/last.json"), device)?;
        let outputs = test
            .iter()
            .map(|p| {
                crate::synth::synthesize(
                    &model,
                    Direction::CtDenoise,
                    &p.low,
                    4,
                    device,
                    &Progress::default(),
                )
                .map_err(|e| {
                    TrainError::Config(format!("denoising {}: {e}", p.low.meta.description))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        arms.push(evaluate_arm(
            arm,
            &test,
            &outputs.iter().collect::<Vec<_>>(),
        ));
    }
    lap("evaluation", &mut t);
    let report = TwoStepReport {
        options: opts.clone(),
        dose_fraction: opts.dose.dose_fraction,
        classifier: cls_report,
        weights,
        arms,
        seconds,
    };
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| TrainError::Config(e.to_string()))?;
    crate::train::write_atomic(&out.join("report.json"), &json)?;
    crate::train::write_atomic(&out.join("report.md"), &markdown_table(&report.arms))?;
    Ok(report)
}
