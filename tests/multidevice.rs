//! Several devices in one run and streamed training data in the training loop.
//!
//! - Known answer: for a network without batch norm, the gradients of a batch split across two
//!   devices (each share's mean loss scaled by its fraction of the batch, summed on the first
//!   device by burn-optim's `MultiGradientsParams`) equal the whole batch's gradient: one SGD
//!   step from the same weights gives the same weights, to f32 rounding.
//! - The training loop on two devices follows the one-device loss curve: not exactly, since the
//!   U-Net's batch norm normalises each share with that share's own statistics (2 samples
//!   instead of 4), which changes every activation a little; see the tolerance below.
//! - A streamed run of a folder of phantom patients trains, and with crops that draw no random
//!   numbers (whole slices, no augmentation) it takes the very batches of the in-memory run of
//!   the same folder: the same losses; a streamed run resumed after its first epoch continues
//!   with the losses of an uninterrupted one.
//! - `synthscope train --devices cpu,ws://...` spreads a run over this machine and a real
//!   `synthscope serve` on 127.0.0.1, following the `--devices cpu,cpu` curve.

mod common;

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use std::path::Path;
use synthscope::io::nifti::write_nifti;
use synthscope::io::phantom::{PhantomConfig, phantom_patient_varied};
use synthscope::train::config::Augment;
use synthscope::train::parallel::{self, BatchShape};
use synthscope::train::{
    Control, DataSource, Dataset, LogLine, ModelChoice, RunSummary, StepReport, TrainConfig,
    TrainEvent, data, load_dataset,
};

/// burn's random stream is per process and weights are drawn lazily: seeded runs one at a time.
static RANDOM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = RANDOM.lock().unwrap_or_else(|e| e.into_inner());
    // The wgpu device first: seeding a device registers burn's default wgpu runtime, after
    // which the shared device can no longer be created in this process.
    let _ = synthscope::gpu::shared();
    guard
}

fn cpu() -> Device {
    synthscope::gpu::compute::choose(synthscope::gpu::DeviceChoice::Cpu)
        .expect("the CPU device")
        .device
}

/// Two convolutions, no batch norm.
#[derive(Module, Debug)]
struct Plain {
    a: Conv2d,
    b: Conv2d,
}

impl Plain {
    fn new(d: &Device) -> Self {
        let c = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(d)
        };
        Self {
            a: c(1, 4),
            b: c(4, 1),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.b.forward(relu(self.a.forward(x)))
    }

    fn weights(&self) -> Vec<f32> {
        let mut v = Vec::new();
        for t in [self.a.weight.val(), self.b.weight.val()] {
            v.extend(t.into_data().try_to_vec::<f32>().unwrap());
        }
        for t in [self.a.bias.as_ref(), self.b.bias.as_ref()]
            .into_iter()
            .flatten()
        {
            v.extend(t.val().into_data().try_to_vec::<f32>().unwrap());
        }
        v
    }
}

fn mse(m: &Plain, x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    (m.forward(x) - y).powf_scalar(2.0).mean()
}

/// max |a - b| / max |b - start|: the step's error relative to the step itself.
fn relative_step_error(a: &[f32], b: &[f32], start: &[f32]) -> f64 {
    let step = b
        .iter()
        .zip(start)
        .map(|(b, s)| (b - s).abs() as f64)
        .fold(0.0, f64::max);
    let err = a
        .iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max);
    err / step.max(1e-30)
}

/// One SGD step (lr 1) of `start` on the whole batch, and split across `devices` by `counts`.
fn full_and_split(
    start: &Plain,
    devices: &[Device],
    counts: &[usize],
    xs: &[f32],
    ys: &[f32],
    p: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let b: usize = counts.iter().sum();
    let ad0 = devices[0].clone().autodiff();
    let full = {
        let m = start.clone().fork(&ad0);
        let x = Tensor::<4>::from_data(TensorData::new(xs.to_vec(), [b, 1, p, p]), &ad0);
        let y = Tensor::<4>::from_data(TensorData::new(ys.to_vec(), [b, 1, p, p]), &ad0);
        let grads = GradientsParams::from_grads(mse(&m, x, y).backward(), &m);
        let mut optim = SgdConfig::new().init();
        optim.step(1.0, m, grads).weights()
    };
    let ads: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let mut states = vec![(); ads.len()];
    let master = start.clone().fork(&ad0);
    let shards = parallel::shard_grads(
        &master,
        &ads,
        &mut states,
        counts,
        (xs, ys),
        BatchShape { batch: b, side: p },
        false,
        &|_: &mut (), m: &Plain, x, y| (mse(m, x, y), Vec::new()),
    );
    assert_eq!(shards.len(), devices.len());
    assert_eq!(
        shards.iter().map(|s| s.samples).collect::<Vec<_>>(),
        counts.to_vec()
    );
    for (s, d) in shards.iter().zip(devices) {
        let g = s.grads.get::<4>(start.a.weight.id).expect("a gradient");
        assert!(
            g.device() == *d,
            "each share's gradient is computed on its device"
        );
    }
    // The first shard alone, for the negative control below.
    let first_only = {
        let m = start.clone().fork(&ad0);
        let n = counts[0];
        let x = Tensor::<4>::from_data(
            TensorData::new(xs[..n * p * p].to_vec(), [n, 1, p, p]),
            &ad0,
        );
        let y = Tensor::<4>::from_data(
            TensorData::new(ys[..n * p * p].to_vec(), [n, 1, p, p]),
            &ad0,
        );
        let grads = GradientsParams::from_grads(mse(&m, x, y).backward(), &m);
        let mut optim = SgdConfig::new().init();
        optim.step(1.0, m, grads).weights()
    };
    let mut optim = SgdConfig::new().init();
    let split = parallel::step_on_first(&mut optim, 1.0, master, shards, &ad0);
    assert!(
        split.devices().iter().all(|d| *d == devices[0]),
        "the weights stay on the first device"
    );
    (full, split.weights(), first_only)
}

#[test]
fn the_split_batch_gradient_equals_the_full_batch_gradient_without_batch_norm() {
    let _s = serial();
    let d = cpu();
    d.seed(11);
    let p = 16;
    // On the autodiff device (forks keep a module's autodiff association).
    let start = Plain::new(&d.clone().autodiff());
    let b = 4;
    let xs: Vec<f32> = Tensor::<4>::random([b, 1, p, p], Distribution::Default, &d)
        .into_data()
        .try_to_vec()
        .unwrap();
    let ys: Vec<f32> = xs.iter().map(|v| (v * 3.0).sin() * 0.5 + 0.5).collect();
    let before = start.weights();
    let mut cases: Vec<(&str, Vec<Device>, Vec<usize>)> = vec![
        ("cpu + cpu, 2 + 2", vec![d.clone(), d.clone()], vec![2, 2]),
        ("cpu + cpu, 1 + 3", vec![d.clone(), d.clone()], vec![1, 3]),
        (
            "cpu x 3, 2 + 1 + 1",
            vec![d.clone(), d.clone(), d.clone()],
            vec![2, 1, 1],
        ),
    ];
    match synthscope::gpu::shared() {
        Ok(g) => cases.push((
            "cpu + gpu, 2 + 2",
            vec![d.clone(), g.device.clone()],
            vec![2, 2],
        )),
        Err(e) => eprintln!("no wgpu device ({e}): the cpu + gpu case is left out"),
    }
    for (what, devices, counts) in cases {
        let (full, split, first_only) = full_and_split(&start, &devices, &counts, &xs, &ys, p);
        let err = relative_step_error(&split, &full, &before);
        // f32 sums in another order, and on another backend for the GPU: far below 1e-4 of the
        // step; a share's gradient alone is off by a large fraction of it.
        println!("{what}: split vs full batch step, relative error {err:.2e}");
        assert!(err < 1e-4, "{what}: relative error {err}");
        let control = relative_step_error(&first_only, &full, &before);
        assert!(
            control > 1e-2,
            "{what}: one share alone differs ({control})"
        );
    }
}

fn tiny(name: &str) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        seed: 5,
        data: DataSource::Demo {
            patients: 2,
            small: true,
        },
        model: ModelChoice::Unet {
            base_width: 8,
            levels: 3,
        },
        epochs: 1,
        batch_size: 4,
        learning_rate: 5e-3,
        patch: 48,
        steps_per_epoch: Some(6),
        validation_slices: 2,
        ..TrainConfig::default()
    }
}

fn run(cfg: &TrainConfig, dataset: &Dataset, dir: &Path) -> (RunSummary, Vec<StepReport>) {
    let mut steps = Vec::new();
    let s = synthscope::train::train(cfg, dataset, dir, &cpu(), &Control::default(), &mut |e| {
        if let TrainEvent::Step(s) = e {
            steps.push(s)
        }
    })
    .expect("training runs");
    (s, steps)
}

#[test]
fn two_devices_follow_the_one_device_loss_curve() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let one = tiny("one");
    let two = TrainConfig {
        devices: parallel::parse_list("cpu, cpu").unwrap(),
        ..tiny("two")
    };
    let dataset = Dataset::split(
        data::phantom_cases(2, true, one.direction).unwrap(),
        one.validation_fraction,
    );
    let (_, a) = run(&one, &dataset, &tmp.path().join("one"));
    let (sb, b) = run(&two, &dataset, &tmp.path().join("two"));
    assert_eq!(a.len(), b.len());
    assert!(sb.device.contains("cpu #1 + cpu #2"), "{}", sb.device);
    for (x, y) in a.iter().zip(&b) {
        let rel = (x.loss - y.loss).abs() / x.loss;
        println!(
            "step {}: one device {:.5}, two {:.5} (rel {rel:.3}); shares {:?}",
            x.step, x.loss, y.loss, y.shares
        );
        // Batch norm over 2 samples instead of 4 changes each activation's normalisation by
        // the spread between the two halves' statistics: a few percent of the loss here, the
        // rest (weights, data, gradient combination) being equal; 15% leaves room for the
        // curves to drift apart as the steps compound it.
        assert!(rel < 0.15, "step {}: {} vs {}", x.step, x.loss, y.loss);
        if x.step == 1 {
            // The same initial weights (drawn on the first device in the same order): only
            // the batch norm statistics differ yet (0.3% here; other weights would give
            // another loss altogether).
            assert!(rel < 0.02, "step 1: {} vs {}", x.loss, y.loss);
        }
        assert_eq!(y.shares.len(), 2);
        assert_eq!(y.shares.iter().map(|s| s.samples).sum::<usize>(), 4);
        assert!(y.shares.iter().all(|s| s.seconds > 0.0));
        assert!(x.shares.is_empty(), "one device logs no shares");
    }
    assert!(b.last().unwrap().loss < b[0].loss, "two devices train");
    // The log keeps the shares; a one-device log has none (its lines are unchanged).
    let log = std::fs::read_to_string(tmp.path().join("two/metrics.jsonl")).unwrap();
    let first: LogLine = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(matches!(first, LogLine::Step(s) if s.shares.len() == 2));
    let log = std::fs::read_to_string(tmp.path().join("one/metrics.jsonl")).unwrap();
    assert!(!log.contains("shares"));
    // The run's config records the devices, so a resume trains on them again.
    let written = TrainConfig::read(&tmp.path().join("two/config.toml")).unwrap();
    assert_eq!(written.devices, two.devices);

    // A two-device run stopped after its first epoch and resumed follows the whole run.
    let whole = TrainConfig {
        epochs: 2,
        steps_per_epoch: Some(3),
        ..two.clone()
    };
    let (_, w) = run(&whole, &dataset, &tmp.path().join("whole"));
    let dir = tmp.path().join("killed");
    run(
        &TrainConfig {
            epochs: 1,
            ..whole.clone()
        },
        &dataset,
        &dir,
    );
    let mut again = Vec::new();
    synthscope::train::resume(
        &whole,
        &dataset,
        &dir,
        &cpu(),
        &Control::default(),
        &mut |e| {
            if let TrainEvent::Step(s) = e {
                again.push(s)
            }
        },
    )
    .expect("a two-device run resumes");
    assert_eq!(again.len(), 3);
    for (x, y) in w[3..].iter().zip(&again) {
        assert_eq!(x.step, y.step);
        assert!(
            (x.loss - y.loss).abs() <= 1e-3 * x.loss,
            "resumed step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
    }
}

fn write_patients(root: &Path, n: usize) {
    for k in 0..n {
        let d = root.join(format!("p{k}"));
        std::fs::create_dir_all(&d).unwrap();
        let (ct, mr) = phantom_patient_varied(&PhantomConfig::small(), k);
        write_nifti(&ct, &d.join("ct.nii")).unwrap();
        write_nifti(&mr, &d.join("mr.nii")).unwrap();
    }
}

#[test]
fn a_streamed_run_takes_the_in_memory_runs_batches_and_resumes() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("patients");
    write_patients(&root, 4);
    let base = TrainConfig {
        data: DataSource::Folder { path: root.clone() },
        // Whole slices and no augmentation: the crops draw no random numbers, so the two runs'
        // random streams (the shuffles) stay in step.
        patch: 0,
        augment: Augment {
            rot90: false,
            flip: false,
        },
        batch_size: 2,
        epochs: 2,
        steps_per_epoch: Some(4),
        validation_fraction: 0.25,
        learning_rate: 1e-2,
        ..tiny("stream")
    };
    let memory = TrainConfig {
        stream: Some(false),
        ..base.clone()
    };
    let streamed = TrainConfig {
        stream: Some(true),
        ..base.clone()
    };
    let dm = load_dataset(&memory, &Default::default()).unwrap();
    let ds = load_dataset(&streamed, &Default::default()).unwrap();
    assert!(dm.stream.is_none() && ds.stream.is_some());
    assert_eq!(dm.train.len(), ds.train_len());
    assert_eq!(
        ds.cases.len(),
        2,
        "only the validation slices are in memory"
    );
    let (sm, a) = run(&memory, &dm, &tmp.path().join("memory"));
    let (ss, b) = run(&streamed, &ds, &tmp.path().join("streamed"));
    assert_eq!(a.len(), 8);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        println!(
            "step {}: in memory {:.6}, streamed {:.6}",
            x.step, x.loss, y.loss
        );
        // The same batches and weights: equal but for kernel scheduling noise.
        assert!(
            (x.loss - y.loss).abs() <= 1e-5 * x.loss.abs().max(1e-3),
            "step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
    }
    let (vm, vs) = (sm.last.unwrap(), ss.last.clone().unwrap());
    assert!(
        (vm.val_psnr - vs.val_psnr).abs() < 1e-3,
        "{} vs {}",
        vm.val_psnr,
        vs.val_psnr
    );
    assert!(
        b.last().unwrap().loss < b[0].loss,
        "the streamed run trains"
    );

    // Killed after its first epoch, then resumed: the second epoch as in the whole run.
    let one_epoch = TrainConfig {
        epochs: 1,
        ..streamed.clone()
    };
    let dir = tmp.path().join("resumed");
    run(&one_epoch, &ds, &dir);
    let mut again = Vec::new();
    synthscope::train::resume(
        &streamed,
        &ds,
        &dir,
        &cpu(),
        &Control::default(),
        &mut |e| {
            if let TrainEvent::Step(s) = e {
                again.push(s)
            }
        },
    )
    .expect("the streamed run resumes");
    assert_eq!(again.len(), 4);
    for (x, y) in b[4..].iter().zip(&again) {
        assert_eq!(x.step, y.step);
        // As tests/train_resume.rs: the weights and optimiser come back from their files.
        assert!(
            (x.loss - y.loss).abs() <= 1e-3 * x.loss.abs().max(1e-3),
            "resumed step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
    }
}

/// `synthscope serve` on 127.0.0.1 (burn-flex) with `token`; its URL. Killed on drop.
#[cfg(feature = "remote")]
struct Server(std::process::Child, String);

#[cfg(feature = "remote")]
impl Server {
    fn start(token: &Path) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = common::synthscope()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--device",
                "cpu",
                "--token-file",
            ])
            .arg(token)
            .env("RAYON_NUM_THREADS", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start synthscope serve");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("synthscope serve prints its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self(child, url)
    }
}

#[cfg(feature = "remote")]
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(feature = "remote")]
#[test]
fn a_run_over_this_machine_and_a_server_follows_the_two_cpu_run() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "multi device token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(&token);
    let cfg = TrainConfig {
        model: ModelChoice::Unet {
            base_width: 8,
            levels: 2,
        },
        steps_per_epoch: Some(3),
        ..tiny("mixed")
    };
    let cfg_path = tmp.path().join("mixed.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).unwrap();
    let train = |out: &Path, devices: &str| {
        let mut cmd = common::synthscope();
        cmd.args(["train", "--config"])
            .arg(&cfg_path)
            .arg("--out")
            .arg(out)
            .args(["--devices", devices, "--token-file"])
            .arg(&token)
            .env("RAYON_NUM_THREADS", "1");
        common::run_ok(&mut cmd)
    };
    let (mixed, local) = (tmp.path().join("mixed"), tmp.path().join("local"));
    let said = train(&mixed, &format!("cpu,{}", server.1));
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("data-parallel"), "{said}");
    train(&local, "cpu,cpu");
    let steps = |run: &Path| -> Vec<StepReport> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| match serde_json::from_str(l) {
                Ok(LogLine::Step(s)) => Some(s),
                _ => None,
            })
            .collect()
    };
    let (m, l) = (steps(&mixed), steps(&local));
    assert_eq!(m.len(), 3);
    assert_eq!(l.len(), 3);
    for (a, b) in m.iter().zip(&l) {
        // The same split and batch norm shares; the server's half runs burn-flex's own
        // convolutions where the local CPU runs ours: float rounding apart (as tests/remote.rs).
        let rel = (a.loss - b.loss).abs() / b.loss;
        assert!(rel <= 1e-3, "step {}: {} vs {}", a.step, a.loss, b.loss);
        assert_eq!(a.shares.len(), 2);
        assert!(
            a.shares[1].device.starts_with("ws://127.0.0.1:"),
            "{:?}",
            a.shares
        );
    }
    let summary = std::fs::read_to_string(mixed.join("summary.json")).unwrap();
    assert!(summary.contains("data-parallel"), "{summary}");
    assert!(
        mixed.join("checkpoints/best.bpk").exists(),
        "weights come back here"
    );
}
