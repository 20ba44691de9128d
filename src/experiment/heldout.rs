//! Held-out figures of a synthesis network and of an MR/CT classifier on varied phantom
//! patients that neither saw in training: what the embedded demo models are reported with
//! (`tests/demo_model_heldout.rs`), and what an experiment's folds are measured with.

use super::{PatientMetrics, eval_slices, slab, synthesize_ct};
use crate::analysis::metrics::{Region, evaluate_volumes};
use crate::io::phantom::{PhantomConfig, phantom_patient_varied};
use crate::model::checkpoint::AnyModel;
use crate::model::{Classifier, Direction};
use crate::train::data::{Rng, crop, origin};
use crate::train::{Case, TrainError};
use crate::volume::Volume;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

/// One held-out patient: index, real CT (HU) on the MR grid, T1 MR.
pub struct HeldOutPatient {
    /// Varied-patient index.
    pub index: usize,
    /// Real CT on the MR grid.
    pub ct: Volume,
    /// T1 MR.
    pub mr: Volume,
}

/// Varied phantom patients `indices` on the demo grids (`small`: the coarse test grids).
pub fn varied_patients(indices: &[usize], small: bool) -> Vec<HeldOutPatient> {
    let base = if small {
        PhantomConfig::small()
    } else {
        PhantomConfig::default()
    };
    indices
        .iter()
        .map(|&k| {
            let (ct, mr) = phantom_patient_varied(&base, k);
            HeldOutPatient { index: k, ct, mr }
        })
        .collect()
}

/// Synthesise each patient's CT from its MR with `model` and measure it against the real CT
/// on `n_slices` evenly spaced head slices (0 = every head slice): head (CT > -500 HU) and bone
/// (CT > 300 HU) rows per patient.
pub fn synthesis_metrics(
    model: &AnyModel,
    patients: &[(usize, &Volume, &Volume)],
    n_slices: usize,
    device: &Device,
) -> Result<Vec<PatientMetrics>, TrainError> {
    let mut rows = Vec::new();
    for &(index, ct, mr) in patients {
        // The whole MR goes through (its normalisation is the whole volume's, as in training);
        // the evaluated slices are cut afterwards.
        let synth = synthesize_ct(model, mr, device)
            .map_err(|e| TrainError::Config(format!("patient {index}: synthesis failed: {e}")))?;
        let zs = eval_slices(ct, n_slices);
        let (ct, synth) = (slab(ct, &zs), slab(&synth, &zs));
        let mut mask = ct.clone();
        mask.data
            .iter_mut()
            .for_each(|v| *v = if *v > -500.0 { 1.0 } else { 0.0 });
        let reports = evaluate_volumes(&synth, &ct, Some(&mask), None)
            .map_err(|e| TrainError::Config(format!("patient {index}: {e}")))?;
        for r in &reports {
            let region = match r.region {
                Region::Head => "head",
                Region::Bone => "bone",
                Region::All => continue,
            };
            rows.push(PatientMetrics::from_report(index, region, r));
        }
    }
    Ok(rows)
}

/// A classifier's held-out figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClassifierFigures {
    /// Patches classified (half MR, half CT).
    pub patches: usize,
    /// Share called right (p(CT) > 0.5 for CT patches, < 0.5 for MR).
    pub accuracy: f64,
    /// Area under the ROC curve of p(CT), CT patches positive.
    pub auc: f64,
}

/// Area under the ROC curve: the probability that a positive scores above a negative (ties
/// count a half), the Mann-Whitney U over n+ n-.
pub fn auc(positive: &[f64], negative: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|v| (*v, true))
        .chain(negative.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mid-ranks over ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Classify `per_slice` random `p` x `p` crops of the MR and of the CT of every head slice of
/// every patient (normalised as in training, not augmented; crops from `seed`).
pub fn classifier_metrics(
    classifier: &Classifier,
    patients: &[(usize, &Volume, &Volume)],
    p: usize,
    per_slice: usize,
    seed: u64,
    device: &Device,
) -> Result<ClassifierFigures, TrainError> {
    let mut rng = Rng::new(seed);
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for &(index, ct, mr) in patients {
        let case = Case::from_pair(
            &format!("varied phantom {index}"),
            ct,
            mr,
            None,
            Direction::MrToCt,
        )?;
        let dims = (case.nx, case.ny);
        for &z in &case.slices {
            let (input, target, _) = case.slice(z);
            let mut images = Vec::with_capacity(2 * per_slice * p * p);
            for _ in 0..per_slice {
                let o = (origin(case.nx, p, &mut rng), origin(case.ny, p, &mut rng));
                images.extend(crop(&input, dims, o, p, 0, false));
            }
            for _ in 0..per_slice {
                let o = (origin(case.nx, p, &mut rng), origin(case.ny, p, &mut rng));
                images.extend(crop(&target, dims, o, p, 0, false));
            }
            let n = 2 * per_slice;
            let x = Tensor::<4>::from_data(TensorData::new(images, [n, 1, p, p]), device);
            let probs = softmax(classifier.forward(x), 1).into_data();
            let probs: Vec<f32> = probs
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Config(format!("classifier output: {e:?}")))?;
            for i in 0..n {
                let p_ct = probs[2 * i + 1] as f64;
                if i < per_slice {
                    neg.push(p_ct);
                } else {
                    pos.push(p_ct);
                }
            }
        }
    }
    let right = pos.iter().filter(|v| **v > 0.5).count() + neg.iter().filter(|v| **v < 0.5).count();
    let patches = pos.len() + neg.len();
    Ok(ClassifierFigures {
        patches,
        accuracy: right as f64 / patches.max(1) as f64,
        auc: auc(&pos, &neg),
    })
}

#[cfg(test)]
mod tests {
    use super::auc;

    #[test]
    fn auc_known_answers() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(auc(&[0.1, 0.2], &[0.9, 0.8]), 0.0);
        assert_eq!(auc(&[0.5], &[0.5]), 0.5);
        // sklearn.metrics.roc_auc_score([1,1,1,0,0,0], [.9,.4,.6,.5,.3,.6]) = 0.7222...
        let a = auc(&[0.9, 0.4, 0.6], &[0.5, 0.3, 0.6]);
        assert!((a - 6.5 / 9.0).abs() < 1e-12, "{a}");
    }
}
