//! A tiny experiment (2 arms, 2 folds, 1 epoch, tiny U-Net): the CSV tables equal the values
//! recomputed from the run folders (and one fold re-measured from its checkpoint), the tests
//! equal our statistics on those values, the report embeds its images, and a second run with
//! resume skips every finished fold.

use std::path::Path;
use synthscope::analysis::metrics::{Region, evaluate_volumes};
use synthscope::analysis::stats::{mean_sd, ttest_ind, wilcoxon};
use synthscope::experiment::{
    ExperimentConfig, METRICS, REGIONS, eval_slices, fold_value, patient, read_folds, run_dir,
    run_experiment, slab,
};
use synthscope::train::Control;

const TOML: &str = r#"
name = "tiny"
patients = 4
small = true
folds = 2
seeds = [3]
epochs = 1
batch_size = 2
patch = 32
steps_per_epoch = 3
validation_slices = 2
eval_slices = 3
networks = [{ name = "u", model = { kind = "unet", base_width = 4, levels = 1 } }]
[[losses]]
name = "mse"
losses = [{ kind = "mse" }]
[[losses]]
name = "l1"
losses = [{ kind = "l1" }]
"#;

fn csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0) || (a.is_nan() && b.is_nan())
}

#[test]
fn tiny_experiment_tables_match_run_folders() {
    let cfg: ExperimentConfig = toml::from_str(TOML).unwrap();
    cfg.validate().unwrap();
    let out = std::env::temp_dir().join(format!("synthscope-exp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let device = synthscope::gpu::compute_device().unwrap();
    let control = Control::default();
    let mut lines = Vec::new();
    let report = run_experiment(&cfg, &out, &device, &control, &mut |l| {
        println!("{l}");
        lines.push(l)
    })
    .unwrap();
    // Every metric table row: mean and sd of the fold values read back from the run folders.
    for m in METRICS {
        let rows = csv(&out.join("tables").join(format!("{m}.csv")));
        assert_eq!(rows.len(), 2);
        for (row, arm) in rows.iter().zip(["mse", "l1"]) {
            assert_eq!(row[0], arm);
            let folds = read_folds(&cfg, &out, arm).unwrap();
            assert_eq!(folds.len(), 2);
            for (k, region) in REGIONS.iter().enumerate() {
                let v: Vec<f64> = folds
                    .iter()
                    .map(|f| fold_value(&f.rows, region, m))
                    .collect();
                let (mean, sd) = mean_sd(&v);
                let (cm, cs): (f64, f64) = (
                    row[1 + 2 * k].parse().unwrap(),
                    row[2 + 2 * k].parse().unwrap(),
                );
                assert!(
                    close(cm, mean) && close(cs, sd),
                    "{m} {arm} {region}: csv {cm} {cs} vs {mean} {sd}"
                );
            }
        }
    }
    // One fold re-measured independently from its checkpoint.
    let dir = run_dir(&out, "mse", 3, 1);
    let (model, _) =
        synthscope::model::checkpoint::load(&dir.join("checkpoints/last.bpk"), &device).unwrap();
    let folds = read_folds(&cfg, &out, "mse").unwrap();
    for k in cfg.held_out(1) {
        let p = patient(&cfg, k);
        let zs = eval_slices(&p.ct, cfg.eval_slices);
        // The whole MR through the network (its own normalisation), then the evaluated slices.
        let synth = synthscope::synth::synthesize(
            &model,
            synthscope::model::Direction::MrToCt,
            &p.mr,
            4,
            &device,
            &Default::default(),
        )
        .unwrap();
        let (ct, synth) = (slab(&p.ct, &zs), slab(&synth, &zs));
        let mut mask = ct.clone();
        mask.data
            .iter_mut()
            .for_each(|v| *v = if *v > -500.0 { 1.0 } else { 0.0 });
        let r = evaluate_volumes(&synth, &ct, Some(&mask), None).unwrap();
        let head = r.iter().find(|r| r.region == Region::Head).unwrap();
        let bone = r.iter().find(|r| r.region == Region::Bone).unwrap();
        let stored = &folds[1].rows;
        let s_head = stored
            .iter()
            .find(|s| s.patient == k && s.region == "head")
            .unwrap();
        let s_bone = stored
            .iter()
            .find(|s| s.patient == k && s.region == "bone")
            .unwrap();
        assert!(
            close(head.mae, s_head.mae)
                && close(head.psnr, s_head.psnr)
                && close(head.ssim, s_head.ssim)
        );
        assert!(close(bone.mae, s_bone.mae) && close(bone.uqi, s_bone.uqi));
    }
    // The tests in tests.csv are ours on the same fold values.
    let tests = csv(&out.join("tables/tests.csv"));
    assert_eq!(tests.len(), REGIONS.len() * METRICS.len());
    let (fa, fb) = (
        read_folds(&cfg, &out, "mse").unwrap(),
        read_folds(&cfg, &out, "l1").unwrap(),
    );
    for t in &tests {
        let va: Vec<f64> = fa
            .iter()
            .map(|f| fold_value(&f.rows, &t[0], &t[1]))
            .collect();
        let vb: Vec<f64> = fb
            .iter()
            .map(|f| fold_value(&f.rows, &t[0], &t[1]))
            .collect();
        let w = ttest_ind(&va, &vb, false);
        let x = wilcoxon(&va, &vb);
        assert!(close(t[4].parse().unwrap(), w.statistic) && close(t[6].parse().unwrap(), w.p));
        assert!(close(t[9].parse().unwrap(), x.statistic) && close(t[10].parse().unwrap(), x.p));
    }
    // The report is one file with its images inside.
    let html = std::fs::read_to_string(&report).unwrap();
    let imgs = html
        .matches("src=\"data:image/png;base64,iVBORw0KGgo")
        .count();
    assert!(imgs >= 2 * 3, "{imgs} embedded PNGs");
    assert!(!html.contains("src=\"figures/") && !html.contains("http"));
    for f in ["loss_mse.png", "slices_l1.png", "filters_mse.png"] {
        assert!(out.join("figures").join(f).exists(), "{f}");
    }
    // The report's numbers are the run folders': every mean +/- sd cell, to its printed digits.
    let cells = report_cells(&html);
    assert_eq!(cells.len(), 2 * METRICS.len() * REGIONS.len(), "{cells:?}");
    for (arm, region, metric, mean, sd) in &cells {
        let folds = read_folds(&cfg, &out, arm).unwrap();
        let v: Vec<f64> = folds
            .iter()
            .map(|f| fold_value(&f.rows, region, metric))
            .collect();
        let (m, d) = mean_sd(&v);
        assert!(
            printed_equal(mean, m) && printed_equal(sd, d),
            "{arm} {region} {metric}: report {mean} +/- {sd}, run folders {m} +/- {d}"
        );
    }
    for f in ["features_mse.png", "features_l1.png"] {
        assert!(out.join("figures").join(f).exists(), "{f}");
    }
    assert!(out.join("summary.json").exists());
    // Resume: every fold is finished, so nothing trains again.
    let mut again = Vec::new();
    run_experiment(&cfg, &out, &device, &control, &mut |l| again.push(l)).unwrap();
    assert_eq!(
        again.iter().filter(|l| l.contains("skipped")).count(),
        4,
        "{again:?}"
    );
    assert!(!again.iter().any(|l| l.contains("training on")));
    let _ = std::fs::remove_dir_all(&out);
}

/// (arm, region, metric, mean, sd) of every table cell of the report.
fn report_cells(html: &str) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for part in html.split("<span class=\"v\" ").skip(1) {
        let attr = |name: &str| {
            let k = format!("{name}=\"");
            let i = part.find(&k).unwrap() + k.len();
            part[i..i + part[i..].find('"').unwrap()].to_string()
        };
        let text = &part[part.find('>').unwrap() + 1..part.find("</span>").unwrap()];
        let (mean, sd) = text.split_once(" &plusmn; ").unwrap();
        out.push((
            attr("data-arm"),
            attr("data-region"),
            attr("data-metric"),
            mean.to_string(),
            sd.to_string(),
        ));
    }
    out
}

/// Whether `printed` is `value` rounded to the digits printed.
fn printed_equal(printed: &str, value: f64) -> bool {
    if printed == "NaN" {
        return value.is_nan();
    }
    let decimals = printed.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let p: f64 = printed.parse().unwrap();
    (p - value).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-12
}

/// Stopped in the middle of a fold (as Cancel in the app and Ctrl-C do), the experiment keeps
/// its finished folds and continues the stopped one; a different experiment is refused in the
/// same folder.
#[test]
fn a_stopped_experiment_resumes_where_it_stopped() {
    use synthscope::experiment::{ExperimentEvent, finished_folds, run_experiment_with};
    let text = TOML
        .replace("epochs = 1", "epochs = 2")
        .replace("name = \"tiny\"", "name = \"tiny-stop\"");
    let cfg: ExperimentConfig = toml::from_str(&text).unwrap();
    let out = std::env::temp_dir().join(format!("synthscope-exp-stop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let device = synthscope::gpu::compute_device().unwrap();
    let control = Control::default();
    let mut fractions = Vec::new();
    // Stop once the second fold has finished its first epoch.
    let r = run_experiment_with(&cfg, &out, &device, &control, &mut |e| match e {
        ExperimentEvent::Line(l) => {
            println!("{l}");
            if l.contains("epoch 1:") && fractions.iter().any(|(f, _)| *f == 1) {
                control.stop();
            }
        }
        ExperimentEvent::Progress(p) => {
            assert_eq!(p.total, 4);
            fractions.push((p.fold, p.fraction));
        }
    });
    let e = r.unwrap_err().to_string();
    assert!(e.contains("stopped") && e.contains("--resume"), "{e}");
    assert!(
        fractions.windows(2).all(|w| w[1].1 >= w[0].1 - 1e-12),
        "progress never goes back: {fractions:?}"
    );
    assert_eq!(finished_folds(&cfg, &out), 1);
    let stopped = run_dir(&out, "mse", 3, 1);
    assert!(stopped.join("checkpoints/resume_state.json").exists());
    // Another experiment in the same folder is refused, naming the file.
    let other: ExperimentConfig =
        toml::from_str(&text.replace("epochs = 2", "epochs = 3")).unwrap();
    let e = run_experiment(&other, &out, &device, &Control::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("experiment.toml") && e.contains("other settings"),
        "{e}"
    );
    // Run again: fold 0 is kept, fold 1 continues from its first epoch, the rest train.
    let mut lines = Vec::new();
    run_experiment(&cfg, &out, &device, &Control::default(), &mut |l| {
        println!("{l}");
        lines.push(l)
    })
    .unwrap();
    assert_eq!(
        lines.iter().filter(|l| l.contains("skipped")).count(),
        1,
        "{lines:?}"
    );
    assert_eq!(finished_folds(&cfg, &out), 4);
    let run = synthscope::train::runs::Run::read(&stopped).unwrap();
    let epochs: Vec<usize> = run.epochs.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, [1, 2], "the stopped fold has each epoch once");
    // Resumed, fold 1 logged only its second epoch this time.
    let i = lines
        .iter()
        .position(|l| l.contains("mse seed 3 fold 1"))
        .unwrap();
    assert!(lines[i + 1].contains("epoch 2:"), "{:?}", &lines[i..i + 2]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_experiment_files_are_refused_with_the_file_named() {
    let dir = std::env::temp_dir().join(format!("synthscope-exp-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, TOML.replace("folds = 2", "folds = 9")).unwrap();
    let e = ExperimentConfig::read(&f).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml") && e.contains("fewer than folds"),
        "{e}"
    );
    std::fs::write(&f, "name = 3").unwrap();
    let e = ExperimentConfig::read(&f).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml") && e.contains("not a valid experiment"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `data = { kind = "varied" }` (the demo model's training data) gives the varied phantom
/// patients: as many as asked, each of its own anatomy (different head masks, not only poses).
#[test]
fn varied_data_source_gives_distinct_patients() {
    use synthscope::train::{DataSource, TrainConfig, data::load_cases};
    let cfg: TrainConfig = toml::from_str(
        r#"
        name = "v"
        data = { kind = "varied", patients = 2, small = true }
        model = { kind = "unet", base_width = 4, levels = 1 }
        "#,
    )
    .unwrap();
    assert_eq!(
        cfg.data,
        DataSource::Varied {
            patients: 2,
            small: true
        }
    );
    let cases = load_cases(&cfg, &Default::default()).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[1].name, "varied phantom 1");
    let head = |c: &synthscope::train::Case| c.mask.iter().filter(|m| **m).count();
    let (a, b) = (head(&cases[0]), head(&cases[1]));
    assert!(a != b && a > 1000 && b > 1000, "head voxels {a} and {b}");
    // The same as the experiment's patients 0 and 1.
    let p1 = synthscope::io::phantom::phantom_patient_varied(
        &synthscope::io::phantom::PhantomConfig::small(),
        1,
    );
    let mask1 = p1.0.data.iter().filter(|v| **v > -500.0).count();
    assert_eq!(mask1, b);
}
