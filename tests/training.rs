//! Training: each loss on inputs with a known value, and the loop itself on small phantom
//! patients (loss falls, the same seed gives the same curve, Stop keeps a loadable checkpoint,
//! the run folder reads back).

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use synthscope::model::ClassifierConfig;
use synthscope::model::checkpoint;
use synthscope::train::data::phantom_cases;
use synthscope::train::losses;
use synthscope::train::runs::{Run, compare_table};
use synthscope::train::{
    Control, DataSource, Dataset, LossKind, LossTerm, ModelChoice, TrainConfig, TrainEvent,
};

/// burn's random stream is per process (cubecl seeds it globally) and parameters are
/// initialised lazily, at first use: tests that draw random numbers run one at a time, or a
/// neighbour's draws would change a seeded run's weights.
static RANDOM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RANDOM.lock().unwrap_or_else(|e| e.into_inner())
}

fn device() -> Device {
    synthscope::gpu::compute_device().expect("compute device")
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

fn image(values: Vec<f32>, n: usize, d: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, [1, 1, n, n]), d)
}

/// A smooth test image with edges: a disc on a gradient.
fn disc(n: usize, shift: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * n);
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = (x as f32 - n as f32 / 2.0, y as f32 - n as f32 / 2.0);
            let inside = (dx * dx + dy * dy).sqrt() < n as f32 / 3.0;
            v.push(0.2 + 0.3 * x as f32 / n as f32 + if inside { 0.4 } else { 0.0 } + shift);
        }
    }
    v
}

#[test]
fn pixel_losses_have_their_known_values() {
    let _serial = serial();
    let d = device();
    let n = 32;
    let a = image(disc(n, 0.0), n, &d);
    let zeros = Tensor::<4>::zeros([1, 1, n, n], &d);
    let ones = Tensor::<4>::ones([1, 1, n, n], &d);
    assert!(scalar(losses::mse(a.clone(), a.clone())) < 1e-12);
    assert!((scalar(losses::mse(zeros.clone(), ones.clone())) - 1.0).abs() < 1e-6);
    assert!((scalar(losses::l1(zeros.clone(), ones.clone() * 0.25)) - 0.25).abs() < 1e-6);
    // BCE with logits: 0 logits -> ln 2 for any target; confident and right -> ~0.
    let ln2 = std::f64::consts::LN_2;
    assert!((scalar(losses::bce_with_logits(zeros.clone(), ones.clone())) - ln2).abs() < 1e-5);
    assert!(scalar(losses::bce_with_logits(ones.clone() * 20.0, ones.clone())) < 1e-6);
    assert!(scalar(losses::bce_with_logits(ones.clone() * -20.0, ones.clone())) > 19.0);
    // SSIM: 1 for identical images; equal to the scikit-image-exact CPU SSIM (valid windows
    // are skimage's map with its 5-pixel border cropped).
    assert!(scalar(losses::ssim_loss(a.clone(), a.clone())).abs() < 1e-5);
    let noisy: Vec<f32> = disc(n, 0.0)
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.05 * ((i * 7919 % 13) as f32 / 13.0 - 0.5))
        .collect();
    let gpu = scalar(losses::ssim(image(noisy.clone(), n, &d), a.clone()));
    let cpu = synthscope::analysis::ssim(&noisy, &disc(n, 0.0), [n, n, 1], 1.0, None);
    assert!((gpu - cpu).abs() < 1e-4, "burn SSIM {gpu} vs CPU {cpu}");
    assert!(gpu < 0.99);
}

#[test]
fn contextual_loss_is_zero_for_itself_and_blind_to_position() {
    let _serial = serial();
    let d = device();
    let (c, h, w) = (16, 6, 6);
    let f = Tensor::<4>::random([2, c, h, w], Distribution::Normal(0.0, 1.0), &d);
    let own = scalar(losses::contextual(f.clone(), f.clone(), 0.5));
    assert!(own < 1e-3, "CX loss of features with themselves: {own}");
    // Moving every feature vector elsewhere (a spatial permutation) changes nothing.
    let flat = f.clone().reshape([2, c, h * w]);
    let perm: Vec<i64> = (0..(h * w) as i64).rev().collect();
    let idx = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(perm, [h * w]), &d);
    let shuffled = flat.select(2, idx).reshape([2, c, h, w]);
    let moved = scalar(losses::contextual(shuffled, f.clone(), 0.5));
    assert!(moved < 1e-3, "CX loss after a permutation: {moved}");
    // Unrelated features are far from it.
    let g = Tensor::<4>::random([2, c, h, w], Distribution::Normal(0.0, 1.0), &d);
    let other = scalar(losses::contextual(g, f, 0.5));
    assert!(other > 0.5, "CX loss of unrelated features: {other}");
}

#[test]
fn classifier_losses_vanish_on_the_real_image() {
    let _serial = serial();
    let d = device();
    let n = 32;
    let c = ClassifierConfig::new().with_base_width(8).init(&d);
    let a = image(disc(n, 0.0), n, &d);
    let b = image(disc(n, 0.1), n, &d);
    assert!(scalar(losses::gradcam_guided(&c, a.clone(), a.clone(), 1, 1)) < 1e-6);
    let w = losses::activation_weights(&c, a.clone(), 1, 1);
    assert_eq!(w.dims(), [1, 1, n, n]);
    assert!(scalar(losses::activation_weighted(a.clone(), a.clone(), w.clone())) < 1e-9);
    // An error only where the weight is zero costs nothing; the same error where it is one does.
    let mask: Vec<f32> = (0..n * n)
        .map(|i| if i % n < n / 2 { 1.0 } else { 0.0 })
        .collect();
    let weight = image(mask.clone(), n, &d);
    let err_right = image(
        disc(n, 0.0)
            .iter()
            .zip(&mask)
            .map(|(v, m)| v + 0.3 * (1.0 - m))
            .collect(),
        n,
        &d,
    );
    assert!(
        scalar(losses::activation_weighted(
            err_right.clone(),
            a.clone(),
            weight.clone()
        )) < 1e-9
    );
    assert!(
        scalar(losses::activation_weighted(
            err_right,
            a.clone(),
            weight.clone().neg() + 1.0
        )) > 0.05
    );
    assert!(scalar(losses::gradcam_guided(&c, b, a, 1, 1)).is_finite());
}

fn tiny_config(name: &str, losses: Vec<LossTerm>) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        seed: 3,
        data: DataSource::Demo {
            patients: 2,
            small: true,
        },
        model: ModelChoice::Unet {
            base_width: 8,
            levels: 3,
        },
        epochs: 2,
        batch_size: 4,
        learning_rate: 5e-3,
        patch: 48,
        steps_per_epoch: Some(8),
        validation_slices: 2,
        classifier_steps: 8,
        losses,
        ..TrainConfig::default()
    }
}

fn dataset(cfg: &TrainConfig) -> Dataset {
    let cases = phantom_cases(2, true, cfg.direction).expect("phantom cases");
    Dataset::split(cases, cfg.validation_fraction)
}

#[test]
fn training_lowers_the_loss_is_seeded_and_writes_a_run_folder() {
    let _serial = serial();
    let d = device();
    let cfg = tiny_config("mse", vec![LossTerm::new(LossKind::Mse, 1.0)]);
    let data = dataset(&cfg);
    assert!(
        data.split_note.contains("by patient"),
        "{}",
        data.split_note
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &str| {
        let mut losses = Vec::new();
        let mut epochs = 0;
        let t = std::time::Instant::now();
        let s = synthscope::train::train(
            &cfg,
            &data,
            &tmp.path().join(dir),
            &d,
            &Control::default(),
            &mut |e| match e {
                TrainEvent::Step(s) => losses.push(s.loss),
                TrainEvent::Epoch(_) => epochs += 1,
                _ => {}
            },
        )
        .expect("training runs");
        eprintln!(
            "{dir}: {} steps in {:.1} s, losses {losses:?}",
            s.steps,
            t.elapsed().as_secs_f64()
        );
        assert_eq!(epochs, 2);
        (losses, s)
    };
    let (a, summary) = run("a");
    assert_eq!(a.len(), 16);
    let first: f64 = a[..3].iter().sum::<f64>() / 3.0;
    let last: f64 = a[a.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        last < 0.7 * first,
        "loss did not fall: {first:.4} -> {last:.4}"
    );
    let (b, _) = run("b");
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
            "same seed, different curve: {a:?} vs {b:?}"
        );
    }
    // The run folder reads back, and its best checkpoint synthesises.
    let r = Run::read(&tmp.path().join("a")).unwrap();
    assert_eq!(r.steps.len(), 16);
    assert_eq!(r.epochs.len(), 2);
    // VIF is part of validation (whole phantom slices are larger than its 41-pixel window).
    for e in &r.epochs {
        let v = e.val_vif.expect("validation VIF measured");
        assert!(v > 0.0 && v <= 1.0 + 1e-9, "validation VIF {v}");
    }
    assert_eq!(r.config.as_ref(), Some(&cfg));
    assert!(summary.best.is_some() && !summary.stopped);
    let table = compare_table(std::slice::from_ref(&r));
    assert!(
        table.contains("mse") && table.contains("U-Net 8/3"),
        "{table}"
    );
    let (model, meta) = checkpoint::load(&r.checkpoint().unwrap(), &d).unwrap();
    assert_eq!(
        meta.notes["epoch"],
        serde_json::json!(summary.best.unwrap().epoch)
    );
    let (ct, mr) = synthscope::io::phantom::phantom_patient(
        &synthscope::io::phantom::PhantomConfig::small(),
        0,
    );
    let sct = synthscope::synth::synthesize(
        &model,
        synthscope::model::Direction::MrToCt,
        &mr,
        8,
        &d,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(sct.geometry.dims, ct.geometry.dims);
    let (lo, hi) = sct.min_max();
    assert!(
        lo >= -1000.0 && hi <= 2000.0 && hi > lo,
        "synthetic CT range {lo}..{hi}"
    );
}

#[test]
fn stop_keeps_a_loadable_checkpoint_and_classifier_losses_train() {
    let _serial = serial();
    let d = device();
    let cfg = tiny_config(
        "cx",
        vec![
            LossTerm::new(LossKind::L1, 1.0),
            LossTerm::new(LossKind::Contextual, 0.1),
            LossTerm::new(LossKind::GradcamGuided, 0.1),
        ],
    );
    let data = dataset(&cfg);
    let tmp = tempfile::tempdir().unwrap();
    let control = Control::default();
    let mut steps = 0;
    let mut notes = Vec::new();
    let s = synthscope::train::train(&cfg, &data, tmp.path(), &d, &control, &mut |e| match e {
        TrainEvent::Step(r) => {
            steps += 1;
            assert_eq!(r.terms.len(), 3);
            assert!(r.terms.iter().all(|(_, v)| v.is_finite()));
            if steps == 3 {
                control.stop();
            }
        }
        TrainEvent::Note(n) => notes.push(n),
        _ => {}
    })
    .expect("training runs");
    assert!(s.stopped);
    assert_eq!(s.steps, 3);
    assert!(notes.iter().any(|n| n.contains("classifier")), "{notes:?}");
    assert!(tmp.path().join("classifier.bpk").exists());
    let last = tmp.path().join("checkpoints/last.bpk");
    checkpoint::load(&last, &d).expect("the stopped run's checkpoint loads");
    let r = Run::read(tmp.path()).unwrap();
    assert!(!r.row().finished);
}

#[test]
fn a_synthrad_style_folder_gives_one_case_per_patient() {
    let _serial = serial();
    use synthscope::io::nifti::write_nifti;
    use synthscope::io::phantom::{PhantomConfig, phantom_patient};
    use synthscope::model::Direction;
    let root = tempfile::tempdir().unwrap();
    for k in 0..2 {
        let dir = root.path().join(format!("1BA00{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (ct, mr) = phantom_patient(&PhantomConfig::small(), k);
        write_nifti(&ct, &dir.join("ct.nii.gz")).unwrap();
        write_nifti(&mr, &dir.join("mr.nii.gz")).unwrap();
    }
    // A folder without a pair is skipped; an empty root is an error naming it.
    std::fs::create_dir_all(root.path().join("overview")).unwrap();
    let p = synthscope::io::Progress::default();
    let cases =
        synthscope::train::data::cases_from_folder(root.path(), Direction::MrToCt, &p).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].name, "1BA000");
    let direct = phantom_cases(1, true, Direction::MrToCt).unwrap();
    assert_eq!(
        (cases[0].nx, cases[0].ny, cases[0].nz),
        (direct[0].nx, direct[0].ny, direct[0].nz)
    );
    assert_eq!(
        cases[0].slices, direct[0].slices,
        "same head slices after the NIfTI round trip"
    );
    let err = synthscope::train::data::cases_from_folder(
        &root.path().join("overview"),
        Direction::MrToCt,
        &p,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("overview") && err.contains("ct"), "{err}");
}
