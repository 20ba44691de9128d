//! Training through a compute server: a real `synthscope serve` process on 127.0.0.1 (burn-flex,
//! CI has no GPU) and `synthscope train --device ws://...` children. The loss curve through the
//! server follows the local run of the same seed; a wrong token is refused with a clear
//! message; killing the server mid-run leaves a checkpoint that `train --resume` continues.
#![cfg(feature = "remote")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use synthscope::train::{DataSource, LogLine, LossKind, LossTerm, ModelChoice, TrainConfig};

/// A running `synthscope serve`, killed on drop.
struct Server {
    child: Child,
    url: String,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(token: Option<&Path>) -> Server {
        let mut cmd = common::synthscope();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--device", "cpu"])
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.arg("--token-file").arg(t);
        }
        let mut child = cmd.spawn().expect("start synthscope serve");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let t0 = Instant::now();
        let url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60).saturating_sub(t0.elapsed()))
                .expect("synthscope serve printed its address within 60 s");
            if let Some(rest) = line.strip_prefix("serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
        Server {
            child,
            url,
            lines: rx,
        }
    }

    /// Every line the server printed so far.
    fn said(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_file(dir: &Path, name: &str, token: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn config(dir: &Path, epochs: usize, steps: usize) -> PathBuf {
    let cfg = TrainConfig {
        name: "remote".into(),
        seed: 5,
        data: DataSource::Demo {
            patients: 3,
            small: true,
        },
        model: ModelChoice::Unet {
            base_width: 8,
            levels: 2,
        },
        epochs,
        batch_size: 2,
        learning_rate: 3e-3,
        patch: 48,
        steps_per_epoch: Some(steps),
        validation_slices: 1,
        losses: vec![LossTerm::new(LossKind::Mse, 1.0)],
        ..TrainConfig::default()
    };
    let p = dir.join(format!("remote_{epochs}_{steps}.toml"));
    std::fs::write(&p, cfg.to_toml()).unwrap();
    p
}

fn lines(run: &Path) -> Vec<LogLine> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn step_losses(run: &Path) -> Vec<f64> {
    lines(run)
        .into_iter()
        .filter_map(|l| match l {
            LogLine::Step(s) => Some(s.loss),
            LogLine::Epoch(_) => None,
        })
        .collect()
}

fn train_cmd(cfg: &Path, out: &Path, device: &str, token: Option<&Path>) -> std::process::Command {
    let mut cmd = common::synthscope();
    cmd.args(["train", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(["--device", device])
        .env("RAYON_NUM_THREADS", "1");
    if let Some(t) = token {
        cmd.arg("--token-file").arg(t);
    }
    cmd
}

#[test]
fn training_through_a_server_follows_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "token", "correct horse battery", 0o600);
    let server = Server::start(Some(&token));
    let cfg = config(dir.path(), 2, 3);
    let (remote, local) = (dir.path().join("remote"), dir.path().join("local"));

    let t = Instant::now();
    let out = common::run_ok(&mut train_cmd(&cfg, &remote, &server.url, Some(&token)));
    let remote_s = t.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("device: remote (ws://127.0.0.1:"), "{said}");
    let t = Instant::now();
    common::run_ok(&mut train_cmd(&cfg, &local, "cpu", None));
    let local_s = t.elapsed().as_secs_f64();

    let (r, l) = (step_losses(&remote), step_losses(&local));
    assert_eq!(r.len(), 6, "2 epochs of 3 steps through the server");
    assert_eq!(l.len(), 6);
    // Same seed, same data order, same initial weights (the server's burn-flex draws them from
    // the same seeded generator). The local CPU device runs our own convolution kernels and the
    // server burn-flex's: they sum in different orders, so the curves agree to float rounding
    // grown over six Adam steps, not bit for bit.
    let worst = r
        .iter()
        .zip(&l)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-12))
        .fold(0.0, f64::max);
    eprintln!(
        "remote {remote_s:.1} s vs local {local_s:.1} s (whole processes); worst relative step-loss difference {worst:.2e}; losses remote {r:?} local {l:?}"
    );
    assert!(
        worst <= 1e-3,
        "remote curve {r:?} vs local {l:?}: {worst:.2e}"
    );
    assert!(r[0] != r[5], "the loss moved: {r:?}");
    // The weights and the log came back into the run folder here.
    assert!(remote.join("checkpoints/best.bpk").exists());
    let summary = std::fs::read_to_string(remote.join("summary.json")).unwrap();
    assert!(summary.contains("remote (ws://127.0.0.1:"), "{summary}");
    let log = server.said().join("\n");
    assert!(
        log.contains("session on device 0 opened"),
        "server log: {log}"
    );
}

#[test]
fn a_wrong_or_missing_token_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let good = token_file(dir.path(), "good", "the-right-one", 0o600);
    let bad = token_file(dir.path(), "bad", "a-wrong-one", 0o600);
    let server = Server::start(Some(&good));
    let cfg = config(dir.path(), 1, 1);
    for (token, name) in [(Some(bad.as_path()), "wrong"), (None, "none")] {
        let out = train_cmd(&cfg, &dir.path().join(name), &server.url, token)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot connect to the compute server ws://127.0.0.1:")
                && err.contains("refused the token"),
            "{name}: {err}"
        );
        assert!(!dir.path().join(name).join("metrics.jsonl").exists());
    }
    let log = server.said().join("\n");
    assert!(log.contains("refused"), "server log: {log}");

    // A token file others can read is refused by both ends.
    let open = token_file(dir.path(), "open", "the-right-one", 0o644);
    let out = train_cmd(&cfg, &dir.path().join("open"), &server.url, Some(&open))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    let out = common::synthscope()
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&open)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("readable or writable by every user"),
        "{err}"
    );
    // No token: loopback only.
    let out = common::synthscope()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
}

#[test]
fn killing_the_server_mid_run_leaves_a_resumable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "token", "s3cret-token", 0o600);
    let mut server = Server::start(Some(&token));
    let cfg = config(dir.path(), 3, 3);
    let run = dir.path().join("run");
    let mut child = train_cmd(&cfg, &run, &server.url, Some(&token))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once epoch 1 is complete and epoch 2 has begun.
    let t0 = Instant::now();
    loop {
        let l = lines(&run);
        let epochs = l.iter().filter(|l| matches!(l, LogLine::Epoch(_))).count();
        let after = l
            .iter()
            .skip_while(|l| matches!(l, LogLine::Step(_)))
            .filter(|l| matches!(l, LogLine::Step(_)))
            .count();
        if epochs == 1 && after >= 1 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(t0.elapsed() < Duration::from_secs(300), "training too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let t_kill = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t_kill.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the client did not stop within 120 s of losing its server");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    eprintln!(
        "client stopped {:.1} s after the server was killed: {err}",
        t_kill.elapsed().as_secs_f64()
    );
    assert!(!status.success());
    assert!(
        err.contains("connection to the compute server ws://127.0.0.1:")
            && err.contains("resumable checkpoint of epoch 1")
            && err.contains("synthscope train --resume"),
        "{err}"
    );
    assert!(!run.join("summary.json").exists());
    // The checkpoint resumes (here on the local CPU): epochs 2 and 3 follow epoch 1.
    let out = common::run_ok(
        common::synthscope()
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--device", "cpu"])
            .env("RAYON_NUM_THREADS", "1"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Resuming after epoch 1"));
    let epochs: Vec<usize> = lines(&run)
        .into_iter()
        .filter_map(|l| match l {
            LogLine::Epoch(e) => Some(e.epoch),
            LogLine::Step(_) => None,
        })
        .collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    assert_eq!(
        step_losses(&run).len(),
        9,
        "steps contiguous after the resume"
    );
}
