//! The MR/CT classifier trained inside a run (for the Grad-CAM-guided and contextual losses).

use super::data::{Rng, SliceRef};
use super::fit::sample_batch;
use super::{Control, Dataset, TrainConfig, TrainError, TrainEvent, config};
use crate::model::checkpoint::{self, AnyModel, ModelSpec};
use crate::model::normalise::class_of_target;
use crate::model::{Classifier, ClassifierConfig, Direction};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::path::Path;

/// Train the MR/CT classifier on the training slices (input modality vs target modality
/// patches) on the autodiff twin of `device` (the shared plain device). Returns it (on the plain
/// device) and its accuracy on validation patches.
pub fn train_classifier(
    dataset: &Dataset,
    steps: usize,
    p: usize,
    seed: u64,
    direction: Direction,
    device: &Device,
    control: &Control,
) -> Result<(Classifier, f64), TrainError> {
    let ad = device.clone().autodiff();
    let mut model = ClassifierConfig::new().with_base_width(16).init(&ad);
    let mut optim = crate::train::adam::adam(0.9, 0.999);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = Rng::new(seed ^ 0xC1A5_51F1);
    let half = 4usize;
    let aug = config::Augment::default();
    // Label 0 = MR, 1 = CT: inputs are one, targets the other.
    let target_class = class_of_target(direction) as i64;
    let label = |is_target: bool| {
        if is_target {
            target_class
        } else {
            1 - target_class
        }
    };
    for _ in 0..steps {
        if control.wait() {
            break;
        }
        let refs: Vec<SliceRef> = (0..half)
            .map(|_| dataset.train[rng.below(dataset.train.len())])
            .collect();
        let (xs, ys) = sample_batch(dataset, &refs, p, &aug, &mut rng);
        let mut images = xs;
        images.extend(ys);
        let n = 2 * half;
        let x = Tensor::<4>::from_data(TensorData::new(images, [n, 1, p, p]), &ad);
        let labels: Vec<i64> = (0..n).map(|i| label(i >= half)).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &ad);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    // Accuracy on validation patches (random crops, not augmented).
    let plain = model.valid();
    let mut correct = 0usize;
    let mut total = 0usize;
    let mut rng = Rng::new(seed ^ 0xACC);
    let none = config::Augment {
        rot90: false,
        flip: false,
    };
    for chunk in dataset.val.chunks(4).take(4) {
        let (xs, ys) = sample_batch(dataset, chunk, p, &none, &mut rng);
        let n = chunk.len();
        let mut images = xs;
        images.extend(ys);
        let x = Tensor::<4>::from_data(TensorData::new(images, [2 * n, 1, p, p]), device);
        let pred = plain.forward(x).argmax(1).into_data();
        for (i, c) in pred.iter::<i64>().enumerate() {
            correct += usize::from(c == label(i >= n));
            total += 1;
        }
    }
    Ok((plain, correct as f64 / total.max(1) as f64))
}

/// Train the run's MR/CT classifier on `dataset`'s training slices (`cfg.classifier_steps`
/// steps of `p`² patches), save it as `run_dir/classifier.{bpk,json}` with its validation
/// accuracy, and return it.
pub fn classifier_for_run(
    cfg: &TrainConfig,
    dataset: &Dataset,
    p: usize,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Classifier, TrainError> {
    on_event(TrainEvent::Stage("Training the MR/CT classifier".into()));
    let (c, acc) = train_classifier(
        dataset,
        cfg.classifier_steps,
        p,
        cfg.seed,
        cfg.direction,
        device,
        control,
    )?;
    let spec = ModelSpec::Classifier(ClassifierConfig::new().with_base_width(16));
    let any = AnyModel::Classifier(c);
    std::fs::create_dir_all(run_dir)
        .map_err(|e| TrainError::file(run_dir, format!("cannot create the folder: {e}")))?;
    checkpoint::save(
        &any,
        &spec,
        serde_json::json!({ "run": cfg.name, "validation_accuracy": acc,
            "classes": ["MR", "CT"], "steps": cfg.classifier_steps, "patch": p }),
        &run_dir.join("classifier"),
    )?;
    on_event(TrainEvent::Note(format!(
        "MR/CT classifier: {:.0}% correct on validation patches",
        100.0 * acc
    )));
    match any {
        AnyModel::Classifier(c) => Ok(c),
        _ => unreachable!("built as a classifier above"),
    }
}
