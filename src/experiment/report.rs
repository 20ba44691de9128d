//! The experiment's outputs: a CSV table per metric (mean +/- sd over folds, whole head and
//! bone), the pairwise tests between arms, the figures as PNG, and one self-contained HTML
//! report with the figures embedded.

use super::figures::{self, base64, png};
use super::{
    ExperimentConfig, FoldResult, METRICS, Patient, REGIONS, fold_value, read_folds, run_dir, slab,
};
use crate::analysis::stats::{TestResult, mean_sd, ttest_ind, wilcoxon};
use crate::train::TrainError;
use burn::tensor::Device;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Colours of the arms in the plots (and their legend in the report).
pub const COLOURS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [23, 190, 207],
    [140, 86, 75],
    [127, 127, 127],
];

/// Per-fold values of `metric` in `region`, in (seed, fold) order.
pub fn values(folds: &[FoldResult], region: &str, metric: &str) -> Vec<f64> {
    folds
        .iter()
        .map(|f| fold_value(&f.rows, region, metric))
        .collect()
}

/// One pairwise comparison.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// Region.
    pub region: String,
    /// Metric.
    pub metric: String,
    /// First arm.
    pub a: String,
    /// Second arm.
    pub b: String,
    /// Welch's t-test.
    pub welch: TestResult,
    /// Student's t-test.
    pub student: TestResult,
    /// Wilcoxon signed-rank on the paired folds.
    pub wilcoxon: TestResult,
}

/// One arm's value of one metric in one region over its folds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stat {
    /// Arm.
    pub arm: String,
    /// "head" or "bone".
    pub region: String,
    /// Metric (see [`METRICS`]).
    pub metric: String,
    /// Mean over the folds.
    pub mean: f64,
    /// Sample standard deviation over the folds.
    pub sd: f64,
    /// Each fold's value, in (seed, fold) order.
    pub values: Vec<f64>,
}

/// What the tables and the tests of a finished grid say: the report's numbers, the panel's
/// table and `summary.json` are all this.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Experiment name.
    pub name: String,
    /// Arms, in grid order.
    pub arms: Vec<String>,
    /// Every arm x region x metric.
    pub stats: Vec<Stat>,
    /// Every pair of arms x region x metric.
    pub comparisons: Vec<Comparison>,
}

impl Summary {
    /// The stat of `arm` / `region` / `metric`.
    pub fn stat(&self, arm: &str, region: &str, metric: &str) -> Option<&Stat> {
        self.stats
            .iter()
            .find(|s| s.arm == arm && s.region == region && s.metric == metric)
    }
}

/// Read every fold of a finished grid in `out` and compute the tables and the tests.
pub fn summarise(
    cfg: &ExperimentConfig,
    out: &Path,
) -> Result<(Summary, Vec<Vec<FoldResult>>), TrainError> {
    let arms = cfg.arms();
    let mut results = Vec::new();
    for a in &arms {
        results.push(read_folds(cfg, out, &a.name)?);
    }
    let mut stats = Vec::new();
    for m in METRICS {
        for (a, folds) in arms.iter().zip(&results) {
            for r in REGIONS {
                let v = values(folds, r, m);
                let (mean, sd) = mean_sd(&v);
                stats.push(Stat {
                    arm: a.name.clone(),
                    region: r.into(),
                    metric: m.into(),
                    mean,
                    sd,
                    values: v,
                });
            }
        }
    }
    let mut comparisons = Vec::new();
    for i in 0..arms.len() {
        for j in i + 1..arms.len() {
            for r in REGIONS {
                for m in METRICS {
                    let (va, vb) = (values(&results[i], r, m), values(&results[j], r, m));
                    comparisons.push(Comparison {
                        region: r.into(),
                        metric: m.into(),
                        a: arms[i].name.clone(),
                        b: arms[j].name.clone(),
                        welch: ttest_ind(&va, &vb, false),
                        student: ttest_ind(&va, &vb, true),
                        wilcoxon: wilcoxon(&va, &vb),
                    });
                }
            }
        }
    }
    let summary = Summary {
        name: cfg.name.clone(),
        arms: arms.iter().map(|a| a.name.clone()).collect(),
        stats,
        comparisons,
    };
    Ok((summary, results))
}

fn err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::file(path, e.to_string())
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), TrainError> {
    crate::atomic::write(path, bytes).map_err(|e| err(path, e))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "NaN".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.2}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

fn img_tag(bytes: &[u8], alt: &str) -> String {
    format!(
        "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
        html_escape(alt),
        base64(bytes)
    )
}

/// Write the tables, tests, figures and `report.html` of a finished grid; returns the report's path.
pub fn write_all(
    cfg: &ExperimentConfig,
    out: &Path,
    patients: &[Patient],
    device: &Device,
) -> Result<PathBuf, TrainError> {
    let arms = cfg.arms();
    let (summary, results) = summarise(cfg, out)?;
    let tables = out.join("tables");
    let figs = out.join("figures");
    for d in [&tables, &figs] {
        std::fs::create_dir_all(d).map_err(|e| err(d, format!("cannot create: {e}")))?;
    }
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{name}</title><style>\
         body{{font-family:sans-serif;margin:24px;max-width:1400px}} table{{border-collapse:collapse;margin:8px 0 20px}}\
         td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}} th{{background:#eee}} td.l,th.l{{text-align:left}}\
         .sig{{font-weight:bold;color:#b00}} img{{image-rendering:pixelated;border:1px solid #ccc;margin:4px}} .sw{{display:inline-block;width:14px;height:14px;margin-right:4px;vertical-align:middle}}\
         </style></head><body><h1>Experiment: {name}</h1>",
        name = html_escape(&cfg.name)
    );
    let _ = write!(
        html,
        "<p>{} varied phantom patients, {}-fold cross-validation by patient (patient i held out in fold i mod {}), \
         seeds {:?}: {} folds per arm. Each fold trains {} epochs ({}), then the held-out patients' CTs are synthesised \
         from their T1 MR with the final checkpoint and measured against the real CT on the head slices {}. \
         Values are mean &plusmn; sd over the folds (each fold: the mean over its held-out patients).</p>",
        cfg.patients,
        cfg.folds,
        cfg.folds,
        cfg.seeds,
        cfg.folds * cfg.seeds.len(),
        cfg.epochs,
        html_escape(
            &cfg.networks
                .iter()
                .map(|n| n.model.label())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        if cfg.eval_slices == 0 {
            "(all)".to_string()
        } else {
            format!("({} evenly spaced)", cfg.eval_slices)
        }
    );
    html.push_str("<p>Arms: ");
    for (i, a) in arms.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let terms: Vec<String> = a
            .losses
            .iter()
            .map(|t| format!("{} x{}", t.kind.label(), t.weight))
            .collect();
        let _ = write!(
            html,
            "<span class=\"sw\" style=\"background:rgb({},{},{})\"></span><b>{}</b> ({}; {}) &nbsp; ",
            c[0],
            c[1],
            c[2],
            html_escape(&a.name),
            html_escape(&terms.join(" + ")),
            html_escape(&a.model.label())
        );
    }
    html.push_str("</p>");
    // Tables: one per metric, both regions.
    html.push_str(
        "<h2>Held-out metrics (mean &plusmn; sd over folds)</h2><p>PSNR, SSIM, MAE and RMSE are measured inside the \
         head mask and inside bone (real CT above 300 HU). Tenengrad (sharpness of the synthetic CT) and UQI are \
         computed on whole slices, so their two columns are the same.</p>",
    );
    let mut long = String::from("arm,region,metric,mean,sd,n,fold_values\n");
    for m in METRICS {
        let mut csv = String::from("arm,head_mean,head_sd,bone_mean,bone_sd,n\n");
        let _ = write!(
            html,
            "<h3>{}</h3><table><tr><th class=\"l\">arm</th><th>head</th><th>bone</th></tr>",
            metric_title(m)
        );
        for (a, folds) in arms.iter().zip(&results) {
            let mut cells = Vec::new();
            let mut row = a.name.clone();
            for r in REGIONS {
                let Some(st) = summary.stat(&a.name, r, m) else {
                    continue;
                };
                let (mean, sd, v) = (st.mean, st.sd, &st.values);
                let _ = write!(row, ",{mean},{sd}");
                cells.push(format!(
                    "<span class=\"v\" data-arm=\"{}\" data-region=\"{r}\" data-metric=\"{m}\">{} &plusmn; {}</span>",
                    html_escape(&a.name),
                    num(mean),
                    num(sd)
                ));
                let vals: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                let _ = writeln!(
                    long,
                    "{},{r},{m},{mean},{sd},{},{}",
                    a.name,
                    v.len(),
                    vals.join(";")
                );
            }
            let _ = writeln!(csv, "{row},{}", folds.len());
            let _ = write!(
                html,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(&a.name),
                cells[0],
                cells[1]
            );
        }
        html.push_str("</table>");
        write(&tables.join(format!("{m}.csv")), csv)?;
    }
    write(&tables.join("metrics_long.csv"), long)?;
    // Pairwise tests.
    let comps = &summary.comparisons;
    let mut csv = String::from(
        "region,metric,arm_a,arm_b,welch_t,welch_df,welch_p,student_t,student_p,wilcoxon_w,wilcoxon_p\n",
    );
    for c in comps {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{}",
            c.region,
            c.metric,
            c.a,
            c.b,
            c.welch.statistic,
            c.welch.df,
            c.welch.p,
            c.student.statistic,
            c.student.p,
            c.wilcoxon.statistic,
            c.wilcoxon.p
        );
    }
    write(&tables.join("tests.csv"), csv)?;
    let json = serde_json::to_string_pretty(&summary).map_err(|e| err(out, e))?;
    write(&out.join("summary.json"), json)?;
    html.push_str(
        "<h2>Pairwise tests between arms</h2><p>Independent-samples t-test (Welch; Student's in tests.csv) over the folds, and \
         Wilcoxon signed-rank on the folds paired by seed and fold (exact distribution; with n folds the smallest \
         two-sided p it can reach is 2/2<sup>n</sup>). p &lt; 0.05 in bold red. Positive t: the first arm is higher.</p>\
         <table><tr><th class=\"l\">region</th><th class=\"l\">metric</th><th class=\"l\">A</th><th class=\"l\">B</th><th>Welch t</th><th>p</th><th>Wilcoxon W</th><th>p</th></tr>",
    );
    for c in comps {
        let p = |v: f64| {
            if v < 0.05 {
                format!("<td class=\"sig\">{}</td>", num(v))
            } else {
                format!("<td>{}</td>", num(v))
            }
        };
        let _ = write!(
            html,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td>{}<td>{}</td>{}</tr>",
            c.region,
            c.metric,
            html_escape(&c.a),
            html_escape(&c.b),
            num(c.welch.statistic),
            p(c.welch.p),
            num(c.wilcoxon.statistic),
            p(c.wilcoxon.p)
        );
    }
    html.push_str("</table>");
    // Loss curves: per arm, mean over folds of the training and validation loss per epoch.
    html.push_str(
        "<h2>Training and validation loss</h2><p>Mean over folds per epoch: solid = training loss, dashed = loss on the \
         held-out patients (each arm in its own loss's units, so each plot has its own scale; the tick labels give it).</p>",
    );
    for (i, (a, folds)) in arms.iter().zip(&results).enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let mut train = Vec::new();
        let mut val = Vec::new();
        for e in 1..=cfg.epochs {
            let ep: Vec<_> = folds
                .iter()
                .filter_map(|f| f.run.epochs.iter().find(|x| x.epoch == e))
                .collect();
            if !ep.is_empty() {
                train.push((
                    e as f64,
                    ep.iter().map(|x| x.train_loss).sum::<f64>() / ep.len() as f64,
                ));
                val.push((
                    e as f64,
                    ep.iter().map(|x| x.val_loss).sum::<f64>() / ep.len() as f64,
                ));
            }
        }
        let img = figures::line_plot(&[(train, c, false), (val, c, true)], 320, 200);
        let bytes = png(&img);
        write(&figs.join(format!("loss_{}.png", a.name)), &bytes)?;
        let _ = write!(
            html,
            "<figure style=\"display:inline-block\">{}<figcaption>{}</figcaption></figure>",
            img_tag(&bytes, &a.name),
            html_escape(&a.name)
        );
    }
    // Real / synthetic / difference on the same slices across arms.
    let seed = cfg.seeds[0];
    let held = cfg.held_out(0);
    let p = &patients[held[0]];
    let zs = super::eval_slices(&p.ct, 3);
    let limit = 400.0;
    let _ = write!(
        html,
        "<h2>Real, synthetic and difference</h2><p>Held-out patient {} (fold 0, seed {seed}), slices {:?}: real CT, synthetic CT \
         (window -200..1600 HU), synthetic - real (colour bar &plusmn;{limit} HU, red = synthetic too bright), then the \
         outlined region enlarged 3x: real, synthetic. The same patient and slices for every arm.</p>",
        p.index, zs
    );
    let ct = slab(&p.ct, &zs);
    let [nx, ny, nz] = ct.geometry.dims;
    let plane = nx * ny;
    let region = ((nx / 3) as u32, 0u32, (nx / 3) as u32, (ny / 3) as u32);
    let bar = figures::colour_bar(limit, (ny as u32 * 2).max(60));
    for (i, a) in arms.iter().enumerate() {
        let dir = run_dir(out, &a.name, seed, 0);
        let ckpt = dir.join("checkpoints").join("last.bpk");
        let (model, _) = crate::model::checkpoint::load(&ckpt, device)?;
        let synth = super::synthesize_ct(&model, &p.mr, device)
            .map_err(|e| err(&ckpt, format!("synthesis failed: {e}")))?;
        let synth = slab(&synth, &zs);
        let mut rows = Vec::new();
        for z in 0..nz {
            let r = &ct.data[z * plane..(z + 1) * plane];
            let s = &synth.data[z * plane..(z + 1) * plane];
            let d: Vec<f32> = s.iter().zip(r).map(|(a, b)| a - b).collect();
            let mut real_img = figures::scale(&figures::grey(r, nx, ny, -200.0, 1600.0), 2);
            let mut synth_img = figures::scale(&figures::grey(s, nx, ny, -200.0, 1600.0), 2);
            let real_zoom = figures::zoom(&figures::grey(r, nx, ny, -200.0, 1600.0), region, 6);
            let synth_zoom = figures::zoom(&figures::grey(s, nx, ny, -200.0, 1600.0), region, 6);
            let reg2 = (region.0 * 2, region.1 * 2, region.2 * 2, region.3 * 2);
            let mut diff_img = figures::scale(&figures::diverging(&d, nx, ny, limit), 2);
            figures::outline(&mut real_img, reg2, [255, 200, 0]);
            figures::outline(&mut synth_img, reg2, [255, 200, 0]);
            figures::outline(&mut diff_img, reg2, [60, 60, 60]);
            rows.push(figures::hstack(
                &[
                    real_img,
                    synth_img,
                    diff_img,
                    bar.clone(),
                    real_zoom,
                    synth_zoom,
                ],
                6,
            ));
        }
        let h: u32 = rows.iter().map(|r| r.height() + 6).sum();
        let w = rows.iter().map(|r| r.width()).max().unwrap_or(1);
        let mut sheet = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
        let mut y = 0;
        for r in &rows {
            image::imageops::replace(&mut sheet, r, 0, y as i64);
            y += r.height() + 6;
        }
        let bytes = png(&sheet);
        write(&figs.join(format!("slices_{}.png", a.name)), &bytes)?;
        let c = COLOURS[i % COLOURS.len()];
        let _ = write!(
            html,
            "<h3><span class=\"sw\" style=\"background:rgb({},{},{})\"></span>{}</h3>{}",
            c[0],
            c[1],
            c[2],
            html_escape(&a.name),
            img_tag(&bytes, &a.name)
        );
        // First-layer filters.
        if let Ok((filters, k)) = crate::analysis::features::first_filters(&model) {
            let img = figures::filter_grid(&filters, k, 8);
            let bytes = png(&img);
            write(&figs.join(format!("filters_{}.png", a.name)), &bytes)?;
            let _ = write!(
                html,
                "<p>First-layer filters ({} of {k}x{k}, blue negative, red positive, each to its own maximum):</p>{}",
                filters.len(),
                img_tag(&bytes, "filters")
            );
        }
        // Feature maps of the first layer for the middle slice shown.
        let z_mid = zs[zs.len() / 2];
        if let Ok(maps) = crate::analysis::features::slice_features(
            &model,
            crate::model::Direction::MrToCt,
            &p.mr,
            z_mid,
            0,
            8,
            device,
        ) {
            let img = figures::feature_grid(&maps.channels, maps.width, maps.height, 4, 2);
            let bytes = png(&img);
            write(&figs.join(format!("features_{}.png", a.name)), &bytes)?;
            let _ = write!(
                html,
                "<p>Feature maps of layer {} (the first block's output; {} of its {} channels, each grey from its own \
                 minimum to maximum) for MR slice {z_mid}:</p>{}",
                html_escape(&maps.layer),
                maps.channels.len(),
                maps.total_channels,
                img_tag(&bytes, "feature maps")
            );
        }
    }
    html.push_str("<h2>Files</h2><p>tables/*.csv (one per metric, metrics_long.csv with every fold's value, tests.csv), figures/*.png, runs/ARM-sSEED-fFOLD/ (each a training run folder with evaluation.json).</p></body></html>");
    let path = out.join("report.html");
    write(&path, html)?;
    Ok(path)
}

fn metric_title(m: &str) -> &'static str {
    match m {
        "psnr" => "PSNR (dB)",
        "ssim" => "SSIM",
        "mae" => "MAE (HU)",
        "rmse" => "RMSE (HU)",
        "tenengrad" => "Tenengrad of the synthetic CT",
        "uqi" => "UQI",
        _ => "?",
    }
}
