//! CycleGAN training on unpaired phantom MR/CT: a few steps of a tiny configuration move both
//! generators and lower the cycle loss, the run folder holds what `runs compare`, the Synthesis
//! panel and `study demo --source cyclegan` read, and the histogram-matching baseline maps
//! quantiles to quantiles.

use burn::tensor::{Device, Tensor, TensorData};
use synthscope::model::Direction;
use synthscope::model::checkpoint::{self, AnyModel};
use synthscope::model::cyclegan::generator_direction;
use synthscope::train::cyclegan::{
    CycleganConfig, HistogramMatch, Trainer, Unpaired, load_unpaired, train_cyclegan,
};
use synthscope::train::{Control, DataSource, TrainEvent};

fn tiny(name: &str) -> CycleganConfig {
    let mut c = CycleganConfig::new(
        name,
        DataSource::Varied {
            patients: 3,
            small: true,
        },
    );
    c.generator.ngf = 4;
    c.generator.blocks = 1;
    c.discriminator.ndf = 4;
    c.discriminator.layers = 2;
    c.image_size = 32;
    c.epochs = 1;
    c.decay_epochs = 1;
    c.steps_per_epoch = 6;
    c.pool_size = 4;
    c
}

fn output(g: &synthscope::model::cyclegan::ResnetGenerator) -> Vec<f32> {
    let d = Device::flex();
    let x: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32 / 32.0).collect();
    let t = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 32, 32]), &d);
    synthscope::model::tensor_values(g.forward_synth(t)).unwrap()
}

#[test]
fn unpaired_split_keeps_patients_apart() {
    let cfg = tiny("split");
    let u = load_unpaired(&cfg, &Default::default()).unwrap();
    // 3 patients: one MR-only, one CT-only, one held out with both.
    assert_eq!(u.mr_patients.len(), 1);
    assert_eq!(u.ct_patients.len(), 1);
    assert_ne!(u.mr_patients, u.ct_patients);
    assert_eq!(u.held_out.len(), 1);
    assert!(!u.mr.is_empty() && !u.ct.is_empty());
    let mut few = cfg.clone();
    few.data = DataSource::Varied {
        patients: 2,
        small: true,
    };
    let e = load_unpaired(&few, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 3 patients"), "{e}");
}

#[test]
fn steps_train_both_generators_and_the_run_folder_is_complete() {
    let cfg = tiny("tiny-cyclegan");
    let data: Unpaired = load_unpaired(&cfg, &Default::default()).unwrap();
    let d = Device::flex();
    // The generators move (their output changes) and the cycle loss comes down.
    let mut t = Trainer::new(&cfg, &d).unwrap();
    let (a0, b0) = t.generators();
    let (a0, b0) = (output(&a0), output(&b0));
    let first = t.step(&cfg, &data, 2e-3).unwrap();
    let mut last = first;
    for _ in 0..15 {
        last = t.step(&cfg, &data, 2e-3).unwrap();
    }
    let (a1, b1) = t.generators();
    let moved = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    };
    assert!(moved(&a0, &output(&a1)) > 1e-3, "G_A did not change");
    assert!(moved(&b0, &output(&b1)) > 1e-3, "G_B did not change");
    assert!(
        last.cycle < first.cycle,
        "cycle loss {} -> {}",
        first.cycle,
        last.cycle
    );
    assert!(first.identity > 0.0 && first.disc > 0.0 && first.gan > 0.0);

    // A whole (tiny) run: events, files, checkpoints in both directions.
    let dir = tempfile::tempdir().unwrap();
    let (mut steps, mut epochs, mut grids) = (0, 0, 0);
    let s = train_cyclegan(
        &cfg,
        &data,
        dir.path(),
        &d,
        &Control::default(),
        &mut |e| match e {
            TrainEvent::Step(s) => {
                assert_eq!(s.terms.len(), 4);
                steps += 1
            }
            TrainEvent::Epoch(_) => epochs += 1,
            _ => {}
        },
        &mut |g| {
            assert_eq!(g.rows[0][0].len(), g.nx * g.ny);
            grids += 1
        },
    )
    .unwrap();
    assert_eq!((steps, epochs, grids), (12, 2, 2));
    assert_eq!(s.run.epochs_done, 2);
    // Baseline, CycleGAN; every figure finite.
    assert_eq!(s.scores.len(), 2);
    for sc in &s.scores {
        assert!(
            sc.mae_hu.is_finite() && sc.psnr.is_finite() && sc.vif.is_finite(),
            "{sc:?}"
        );
        assert!(sc.slices > 0);
        // The FID-style distance on the classifier's features: measured, and positive for a
        // translation that is not the real CT.
        let fd = sc.feature_fd.expect("feature distance measured");
        assert!(fd.is_finite() && fd > 0.0, "{sc:?}");
    }
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "scores.json",
        "samples/epoch_002.png",
        "checkpoints/G_A_epoch_002.bpk",
        "checkpoints/G_B_epoch_001.json",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    for (name, want) in [("last", Direction::MrToCt), ("last_G_B", Direction::CtToMr)] {
        let (m, meta) = checkpoint::load(&dir.path().join("checkpoints").join(name), &d).unwrap();
        assert!(matches!(m, AnyModel::ResnetGenerator(_)));
        assert_eq!(generator_direction(&meta), want, "{name}");
    }
    // `runs compare` reads it beside paired runs.
    let run = synthscope::train::runs::Run::read(dir.path()).unwrap();
    let row = run.row();
    assert!(row.model.contains("CycleGAN") && row.epochs == 2, "{row:?}");
    assert!(run.checkpoint().is_some());
    // The config round-trips and is recognised as a CycleGAN run's.
    let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(CycleganConfig::is_cyclegan(&text));
    assert_eq!(toml::from_str::<CycleganConfig>(&text).unwrap(), cfg);
}

#[test]
fn histogram_matching_maps_quantiles() {
    // MR uniform on 0..1, CT uniform on 0.2..0.6: the map is 0.2 + 0.4 v.
    let mr: Vec<f32> = (0..1000).map(|i| i as f32 / 999.0).collect();
    let ct: Vec<f32> = (0..1000).map(|i| 0.2 + 0.4 * i as f32 / 999.0).collect();
    let h = HistogramMatch::fit(&[&mr], &[&ct], 256);
    for v in [0.0f32, 0.1, 0.5, 0.77, 1.0] {
        assert!(
            (h.map(v) - (0.2 + 0.4 * v)).abs() < 2e-3,
            "{v} -> {}",
            h.map(v)
        );
    }
    // Outside the MR range: the ends of the CT range.
    assert!((h.map(-1.0) - 0.2).abs() < 1e-6 && (h.map(2.0) - 0.6).abs() < 1e-6);
    // A config with a bad size is refused with the field named.
    let mut c = tiny("bad");
    c.image_size = 30;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("image_size"), "{e}");
}
