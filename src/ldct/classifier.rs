//! The lesion-present / lesion-absent patch classifier of method 4 (the small ResNet of
//! [`crate::model::Classifier`], classes 0 = absent, 1 = present) trained on normal-dose
//! patches, and its Grad-CAM activation maps.

use crate::analysis::gradcam::gradcam;
use crate::model::normalise::Normalisation;
use crate::model::{Classifier, ClassifierConfig, tensor_values};
use crate::synth::ldct::phantom::ImagedPatient;
use crate::synth::ldct::{Lesion, SizeClass};
use crate::train::data::{Rng, crop};
use crate::train::{Control, TrainError};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

/// Class index of "lesion present".
pub const LESION_CLASS: usize = 1;

/// Settings of the classifier's training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierOptions {
    /// Adam steps.
    pub steps: usize,
    /// Square patch (pixels, a multiple of 16).
    pub patch: usize,
    /// Patches per step (half present, half absent).
    pub batch: usize,
    /// Stem width.
    pub base_width: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        Self {
            steps: 1500,
            patch: 32,
            batch: 16,
            base_width: 16,
            seed: 0,
        }
    }
}

/// Held-out accuracy of the classifier.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClassifierReport {
    /// Correct on lesion-absent patches.
    pub absent_accuracy: f64,
    /// Correct on lesion-present patches, by size class (small, medium, large).
    pub present_accuracy: [f64; 3],
    /// Patches evaluated per kind.
    pub patches: usize,
    /// Mean activation inside lesions over mean activation in the body, on held-out
    /// normal-dose slices through lesion centres (1 = no preference for lesions).
    pub lesion_activation_ratio: f64,
}

fn class_index(c: SizeClass) -> usize {
    match c {
        SizeClass::Small => 0,
        SizeClass::Medium => 1,
        SizeClass::Large => 2,
    }
}

/// Does any lesion reach into the p x p window at (ox, oy) on slice z (1 px margin)?
fn window_has_lesion(
    lesions: &[Lesion],
    p: &ImagedPatient,
    z: usize,
    o: (i64, i64),
    size: usize,
) -> bool {
    lesions.iter().any(|l| {
        let r = l.radius_px_on(z, &p.patient.config);
        r > 0.0
            && l.centre[0] + r + 1.0 >= o.0 as f64
            && l.centre[0] - r - 1.0 <= (o.0 + size as i64) as f64
            && l.centre[1] + r + 1.0 >= o.1 as f64
            && l.centre[1] - r - 1.0 <= (o.1 + size as i64) as f64
    })
}

/// A normalised slice of a volume.
pub fn normalised_slice(v: &crate::volume::Volume, z: usize) -> Vec<f32> {
    let [nx, ny, _] = v.geometry.dims;
    let n = Normalisation::ct();
    v.data[z * nx * ny..(z + 1) * nx * ny]
        .iter()
        .map(|h| n.forward(*h))
        .collect()
}

/// A lesion-present patch (the lesion's centre in the central half of the window, on its
/// centre slice) or, with `lesion` None, a lesion-absent one centred in the body (half of them in
/// liver-like tissue, 45-80 HU, so the classifier cannot answer "liver").
fn patch(
    patients: &[ImagedPatient],
    lesion: Option<(usize, usize)>,
    size: usize,
    augment: bool,
    rng: &mut Rng,
) -> Option<Vec<f32>> {
    let (rot, flip) = if augment {
        (rng.below(4), rng.below(2) == 1)
    } else {
        (0, false)
    };
    match lesion {
        Some((pi, li)) => {
            let p = &patients[pi];
            let l = p.patient.lesions[li];
            let q = size / 4;
            let jitter = |rng: &mut Rng| rng.below(2 * q + 1) as i64 - q as i64;
            let ox = l.centre[0].round() as i64 - (size / 2) as i64 + jitter(rng);
            let oy = l.centre[1].round() as i64 - (size / 2) as i64 + jitter(rng);
            let [nx, ny, _] = p.normal.geometry.dims;
            let img = normalised_slice(&p.normal, l.slice);
            Some(crop(&img, (nx, ny), (ox, oy), size, rot, flip))
        }
        None => {
            let want_liver = rng.below(2) == 0;
            for _ in 0..200 {
                let p = &patients[rng.below(patients.len())];
                let [nx, ny, nz] = p.normal.geometry.dims;
                let z = rng.below(nz);
                let (cx, cy) = (rng.below(nx), rng.below(ny));
                let t = p.patient.truth.get(cx, cy, z);
                if t < -500.0 || (want_liver && !(45.0..80.0).contains(&t)) {
                    continue;
                }
                let o = (cx as i64 - (size / 2) as i64, cy as i64 - (size / 2) as i64);
                if window_has_lesion(&p.patient.lesions, p, z, o, size) {
                    continue;
                }
                let img = normalised_slice(&p.normal, z);
                return Some(crop(&img, (nx, ny), o, size, rot, flip));
            }
            None
        }
    }
}

/// Every (patient, lesion) pair, for sampling present patches.
fn all_lesions(patients: &[ImagedPatient]) -> Vec<(usize, usize)> {
    patients
        .iter()
        .enumerate()
        .flat_map(|(i, p)| (0..p.patient.lesions.len()).map(move |l| (i, l)))
        .collect()
}

/// Train the lesion classifier on normal-dose patches of `train` on the autodiff twin of
/// `device`; returns it on the plain device.
pub fn train_lesion_classifier(
    train: &[ImagedPatient],
    opts: &ClassifierOptions,
    device: &Device,
    control: &Control,
) -> Result<Classifier, TrainError> {
    let lesions = all_lesions(train);
    if lesions.is_empty() {
        return Err(TrainError::Config(
            "the training patients hold no lesion".into(),
        ));
    }
    if opts.patch == 0 || !opts.patch.is_multiple_of(16) || opts.batch < 2 {
        return Err(TrainError::Config(format!(
            "classifier patch {} must be a multiple of 16 and batch {} at least 2",
            opts.patch, opts.batch
        )));
    }
    let ad = device.clone().autodiff();
    let mut model = ClassifierConfig::new()
        .with_base_width(opts.base_width)
        .init(&ad);
    let mut optim = crate::train::adam::adam(0.9, 0.999);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = Rng::new(opts.seed ^ 0x1E51_0C1A);
    let (half, p) = (opts.batch / 2, opts.patch);
    for _ in 0..opts.steps {
        if control.is_stopped() {
            break;
        }
        let mut images = Vec::with_capacity(2 * half * p * p);
        let mut labels = Vec::with_capacity(2 * half);
        for i in 0..2 * half {
            let present = i < half;
            let which = present.then(|| lesions[rng.below(lesions.len())]);
            if let Some(img) = patch(train, which, p, true, &mut rng) {
                images.extend(img);
                labels.push(i64::from(present));
            }
        }
        let n = labels.len();
        let x = Tensor::<4>::from_data(TensorData::new(images, [n, 1, p, p]), &ad);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &ad);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    Ok(model.valid())
}

/// Save `classifier` (trained with `opts`) as `path`.{bpk,json}, the checkpoint a
/// `ct_denoise` run's `classifier` setting names, with `report` in its metadata; returns the
/// .json path.
pub fn save_lesion_classifier(
    classifier: &Classifier,
    opts: &ClassifierOptions,
    report: &ClassifierReport,
    path: &std::path::Path,
) -> Result<std::path::PathBuf, TrainError> {
    use crate::model::checkpoint::{self, AnyModel, ModelSpec};
    checkpoint::save(
        &AnyModel::Classifier(classifier.clone()),
        &ModelSpec::Classifier(ClassifierConfig::new().with_base_width(opts.base_width)),
        serde_json::json!({ "classes": ["lesion absent", "lesion present"], "report": report,
            "options": opts }),
        path,
    )?;
    Ok(path.with_extension("json"))
}

/// Grad-CAM of "lesion present" on a normalised n x n slice at classifier `layer`: 0..1.
pub fn activation_map(
    classifier: &Classifier,
    slice: &[f32],
    (nx, ny): (usize, usize),
    layer: usize,
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let x = Tensor::<4>::from_data(TensorData::new(slice.to_vec(), [1, 1, ny, nx]), device);
    Ok(tensor_values(gradcam(classifier, x, LESION_CLASS, layer))?)
}

/// Accuracy on patches of `test` patients and how much the activation map prefers lesions.
pub fn evaluate_classifier(
    classifier: &Classifier,
    test: &[ImagedPatient],
    opts: &ClassifierOptions,
    layer: usize,
    device: &Device,
) -> Result<ClassifierReport, TrainError> {
    let mut rng = Rng::new(opts.seed ^ 0xE7A1);
    let p = opts.patch;
    let classify = |imgs: Vec<Vec<f32>>| -> Result<Vec<usize>, TrainError> {
        let n = imgs.len();
        let flat: Vec<f32> = imgs.into_iter().flatten().collect();
        let x = Tensor::<4>::from_data(TensorData::new(flat, [n, 1, p, p]), device);
        let v = tensor_values(classifier.forward(x))?;
        Ok(v.chunks(2).map(|c| usize::from(c[1] > c[0])).collect())
    };
    let per = 64usize;
    let absent: Vec<Vec<f32>> = (0..per)
        .filter_map(|_| patch(test, None, p, false, &mut rng))
        .collect();
    let absent_n = absent.len();
    let absent_ok = classify(absent)?.iter().filter(|c| **c == 0).count();
    let mut present_accuracy = [0.0; 3];
    let lesions = all_lesions(test);
    for class in SizeClass::ALL {
        let of: Vec<(usize, usize)> = lesions
            .iter()
            .copied()
            .filter(|(pi, li)| test[*pi].patient.lesions[*li].class == class)
            .collect();
        if of.is_empty() {
            continue;
        }
        let imgs: Vec<Vec<f32>> = (0..per)
            .filter_map(|i| patch(test, Some(of[i % of.len()]), p, false, &mut rng))
            .collect();
        let n = imgs.len();
        let ok = classify(imgs)?
            .iter()
            .filter(|c| **c == LESION_CLASS)
            .count();
        present_accuracy[class_index(class)] = ok as f64 / n.max(1) as f64;
    }
    // Activation inside lesions against the body, on slices through lesion centres.
    let (mut inside, mut ni, mut body, mut nb) = (0.0f64, 0usize, 0.0f64, 0usize);
    for pt in test {
        let [nx, ny, _] = pt.normal.geometry.dims;
        let mut slices: Vec<usize> = pt.patient.lesions.iter().map(|l| l.slice).collect();
        slices.sort_unstable();
        slices.dedup();
        for z in slices {
            let cam = activation_map(
                classifier,
                &normalised_slice(&pt.normal, z),
                (nx, ny),
                layer,
                device,
            )?;
            for y in 0..ny {
                for x in 0..nx {
                    if pt.patient.truth.get(x, y, z) < -500.0 {
                        continue;
                    }
                    let v = cam[x + nx * y] as f64;
                    body += v;
                    nb += 1;
                    let in_lesion = pt.patient.lesions.iter().any(|l| {
                        let r = l.radius_px_on(z, &pt.patient.config);
                        (x as f64 - l.centre[0]).hypot(y as f64 - l.centre[1]) < r
                    });
                    if in_lesion {
                        inside += v;
                        ni += 1;
                    }
                }
            }
        }
    }
    Ok(ClassifierReport {
        absent_accuracy: absent_ok as f64 / absent_n.max(1) as f64,
        present_accuracy,
        patches: per,
        lesion_activation_ratio: (inside / ni.max(1) as f64) / (body / nb.max(1) as f64).max(1e-12),
    })
}
