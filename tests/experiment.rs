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
