//! Training survives a kill: a real `synthscope train` is SIGKILLed in the middle of an epoch,
//! `synthscope train --resume` continues from the last completed epoch, and the run ends as an
//! uninterrupted run with the same seed does: epochs 1..N once each, steps 1..M contiguous with
//! no repeat, and the same loss at every step.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};
use synthscope::train::{DataSource, LogLine, LossKind, LossTerm, ModelChoice, TrainConfig};

const EPOCHS: usize = 3;

fn config(dir: &Path) -> std::path::PathBuf {
    let cfg = TrainConfig {
        name: "resume".into(),
        seed: 11,
        data: DataSource::Demo {
            patients: 4,
            small: true,
        },
        model: ModelChoice::Unet {
            base_width: 8,
            levels: 3,
        },
        epochs: EPOCHS,
        batch_size: 4,
        learning_rate: 3e-3,
        patch: 96,
        validation_slices: 2,
        losses: vec![LossTerm::new(LossKind::Mse, 1.0)],
        ..TrainConfig::default()
    };
    let p = dir.join("resume.toml");
    std::fs::write(&p, cfg.to_toml()).unwrap();
    p
}

fn log_lines(run: &Path) -> Vec<LogLine> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (step number, loss) of every step line, and the epochs of the epoch lines.
fn curve(run: &Path) -> (Vec<(usize, f64)>, Vec<usize>) {
    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    for l in log_lines(run) {
        match l {
            LogLine::Step(s) => steps.push((s.step, s.loss)),
            LogLine::Epoch(e) => epochs.push(e.epoch),
        }
    }
    (steps, epochs)
}

#[test]
fn a_killed_run_resumes_where_its_last_epoch_ended() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (killed, whole) = (dir.path().join("killed"), dir.path().join("whole"));

    // Start, wait until epoch 2 is a few steps in, SIGKILL.
    let mut child = common::synthscope()
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&killed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let per_epoch = loop {
        let (steps, epochs) = curve(&killed);
        if epochs.len() == 1 {
            // Steps of the first epoch: those logged before its epoch line.
            let first = log_lines(&killed)
                .iter()
                .take_while(|l| matches!(l, LogLine::Step(_)))
                .count();
            if steps.len() >= first + 2 {
                break first;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed mid-epoch"
        );
        assert!(t0.elapsed() < Duration::from_secs(600), "training too slow");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (before, _) = curve(&killed);
    assert!(
        before.len() > per_epoch && before.len() < 2 * per_epoch,
        "killed mid-epoch 2: {} steps of {per_epoch} per epoch",
        before.len()
    );
    assert!(!killed.join("summary.json").exists());

    // Resume; and the same run uninterrupted.
    let out = common::run_ok(
        common::synthscope()
            .args(["train", "--resume"])
            .arg(&killed),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Resuming after epoch 1"), "{said}");
    common::run_ok(
        common::synthscope()
            .args(["train", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&whole),
    );

    let (steps, epochs) = curve(&killed);
    let (ref_steps, ref_epochs) = curve(&whole);
    assert_eq!(epochs, (1..=EPOCHS).collect::<Vec<_>>(), "each epoch once");
    let numbers: Vec<usize> = steps.iter().map(|s| s.0).collect();
    assert_eq!(
        numbers,
        (1..=EPOCHS * per_epoch).collect::<Vec<_>>(),
        "steps contiguous, none repeated"
    );
    assert_eq!(ref_epochs, epochs);
    let worst = steps
        .iter()
        .zip(&ref_steps)
        .map(|(a, b)| (a.1 - b.1).abs() / b.1.abs().max(1e-12))
        .fold(0.0, f64::max);
    eprintln!(
        "killed after {} steps; resumed run vs uninterrupted: worst relative loss difference {worst:.2e} over {} steps",
        before.len(),
        steps.len()
    );
    assert!(
        worst <= 1e-3,
        "the resumed run follows the uninterrupted one: {worst}"
    );
    // The final weights: the two last checkpoints give the same output on the same input.
    let device = synthscope::gpu::compute_device().expect("compute device");
    let input: Vec<f32> = (0..96 * 96)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    let output = |run: &Path| {
        let (m, _) =
            synthscope::model::checkpoint::load(&run.join("checkpoints/last"), &device).unwrap();
        let x = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(input.clone(), [1, 1, 96, 96]),
            &device,
        );
        let y = match m {
            synthscope::model::checkpoint::AnyModel::Unet(u) => u.forward(x),
            _ => unreachable!("a U-Net run"),
        };
        synthscope::model::tensor_values(y).unwrap()
    };
    let (a, b) = (output(&killed), output(&whole));
    let weight_diff = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    eprintln!("final networks: max |output difference| {weight_diff:e}");
    assert!(weight_diff <= 1e-4, "final weights differ by {weight_diff}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"].as_u64(), Some((EPOCHS * per_epoch) as u64));
    assert_eq!(summary["epochs_done"].as_u64(), Some(EPOCHS as u64));

    // A folder without a completed epoch is refused, naming what is missing.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = common::synthscope()
        .args(["train", "--resume"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot resume") || err.contains("config.toml"),
        "{err}"
    );
}
