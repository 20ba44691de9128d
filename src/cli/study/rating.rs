//! `study mrmc`, `study size` and the rating demo: MRMC analysis of LABMRMC files, study
//! sizing from pilot logs or files, and a demo rating study of phantom lesions read as real and
//! as synthetic CT by simulated observers (through the same session the reading view drives).

use crate::io::Progress;
use crate::io::phantom::{
    MrContrast, PhantomConfig, phantom_ct_on_mr_grid, phantom_mr, varied_patient_config,
};
use crate::study::mrmc::{self, CovMethod, lrc, sizing};
use crate::study::session::{Session, StudyKey};
use crate::study::{self, Design, RatingTask, ReadingOrder, Scale, Study, StudyCase, Truth};
use crate::train::data::Rng;
use anyhow::{Context, anyhow, bail};
use std::path::{Path, PathBuf};

/// The rating table of `input`: an `.lrc` file, or reader logs (files or folders).
fn ratings_of(input: &[PathBuf]) -> anyhow::Result<crate::study::roc::Ratings> {
    if let [one] = input
        && one.extension().is_some_and(|e| e == "lrc")
    {
        return Ok(lrc::read_lrc(one)?);
    }
    let set = study::read_logs(input)?;
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    let (r, incomplete) = study::rating_summary::ratings_from_logs(&set.logs);
    if !incomplete.is_empty() {
        eprintln!(
            "warning: {} subject(s) not rated by every reader in every modality are left out",
            incomplete.len()
        );
    }
    r.ok_or_else(|| {
        anyhow!(
            "no rating-design answers in {}",
            input
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// `study mrmc`: OR, DBM and iMRMC analysis of an `.lrc` file or rating logs.
pub(crate) fn mrmc_cmd(input: &[PathBuf], delong: bool, json: bool) -> anyhow::Result<()> {
    let r = ratings_of(input)?;
    let method = if delong {
        CovMethod::DeLong
    } else {
        CovMethod::Jackknife
    };
    let rep = mrmc::analyse(&r, method)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", rep.to_text());
    }
    Ok(())
}

/// `study size`: readers and cases for a difference `delta` at `power`, from a pilot (an `.lrc`
/// file, rating logs, or a JSON file of OR components).
pub(crate) fn size_cmd(
    pilot: &[PathBuf],
    delta: f64,
    power: f64,
    alpha: f64,
    readers: (usize, usize),
    json: bool,
) -> anyhow::Result<()> {
    if !(delta > 0.0 && delta < 1.0) {
        bail!("--delta must be an AUC difference in (0, 1), got {delta}");
    }
    let unit = |x: f64| x > 0.0 && x < 1.0;
    if !unit(power) || !unit(alpha) {
        bail!("--power and --alpha must lie in (0, 1)");
    }
    let p: sizing::Pilot = match pilot {
        [one] if one.extension().is_some_and(|e| e == "json") => {
            let t = std::fs::read_to_string(one)
                .with_context(|| format!("{}: cannot read", one.display()))?;
            serde_json::from_str(&t).with_context(|| {
                format!("{}: expected {{\"var_tr\", \"var_error\", \"cov1\", \"cov2\", \"cov3\", \"cases\"}}", one.display())
            })?
        }
        _ => {
            let r = ratings_of(pilot)?;
            let rep = mrmc::analyse(&r, CovMethod::Jackknife)?;
            sizing::Pilot::from(&rep.or)
        }
    };
    let table = sizing::cases_needed(
        &p,
        delta,
        power,
        alpha,
        readers.0.max(2)..=readers.1.max(readers.0.max(2)),
        100_000,
    );
    if json {
        let rows: Vec<serde_json::Value> = table
            .iter()
            .map(|(j, pw)| serde_json::json!({"readers": j, "design": pw}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"pilot": p, "delta": delta, "power": power, "alpha": alpha, "rows": rows})
            )?
        );
        return Ok(());
    }
    println!(
        "Pilot (OR, jackknife, {} cases): Var(TR) {:.3e}, Var(error) {:.3e}, Cov1 {:.3e}, Cov2 {:.3e}, Cov3 {:.3e}",
        p.cases, p.var_tr, p.var_error, p.cov1, p.cov2, p.cov3
    );
    println!(
        "Cases needed for an AUC difference of {delta} with power {power} (two-sided alpha {alpha}; random readers and cases, Hillis df):"
    );
    println!(
        "  {:>7} {:>8} {:>8} {:>8} {:>14}",
        "readers", "cases", "power", "ddf", "power (FRRC)"
    );
    for (j, pw) in &table {
        match pw {
            Some(pw) => println!(
                "  {j:>7} {:>8} {:>8.3} {:>8.1} {:>14.3}",
                pw.cases, pw.rrrc, pw.ddf, pw.frrc
            ),
            None => println!("  {j:>7} {:>8}", "> 100000"),
        }
    }
    Ok(())
}

/// The subject of a demo study: its lesion's place (voxel x, y on its slice) and radius.
struct Planned {
    x: f64,
    y: f64,
    radius_vox: f64,
}

/// `study demo --design rating`: `subjects` phantom patients (every other one with a lesion),
/// each read as real CT and as the demo model's synthetic CT, a rating study over them, and
/// the logs of `readers` simulated observers (signal-known-exactly: lesion-disc minus
/// surround contrast at the planned site, plus each observer's internal noise and bias).
pub(crate) fn demo_rating(
    out: &Path,
    subjects: usize,
    readers: usize,
    slab: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let subjects = subjects.max(4);
    let g = crate::gpu::compute()?;
    let (model, _, _) = crate::model::demo::load_demo_model(&g.device).map_err(|e| anyhow!(e))?;
    let base = PhantomConfig::default();
    let mut cases = Vec::new();
    let mut images = Vec::new();
    let mut planned = Vec::new();
    for k in 0..subjects {
        let t = std::time::Instant::now();
        let abnormal = k % 2 == 0;
        let mut cfg = varied_patient_config(&base, 10 + k);
        let v = cfg
            .variation
            .as_mut()
            .ok_or_else(|| anyhow!("varied patient without variation"))?;
        let (c, r) = v
            .lesions
            .first()
            .copied()
            .unwrap_or(([24.0 - 4.0 * (k % 3) as f64, -20.0, 24.0], 5.0));
        let lesion = (c, r.max(4.0));
        v.lesions = if abnormal { vec![lesion] } else { Vec::new() };
        let (ct, mr) = rayon::join(
            || phantom_ct_on_mr_grid(&cfg),
            || phantom_mr(&cfg, MrContrast::T1),
        );
        let p = ct
            .geometry
            .voxel_from_world(cfg.moving_from_fixed.apply(lesion.0));
        let nz = ct.geometry.dims[2];
        let n = slab.clamp(1, nz);
        let z = (p[2].round().max(0.0) as usize).min(nz - 1);
        let z0 = z.saturating_sub(n / 2).min(nz - n);
        let (ct, mr) = (
            super::super::data::slab(&ct, z0, n),
            super::super::data::slab(&mr, z0, n),
        );
        let synth = crate::synth::synthesize(
            &model,
            crate::model::Direction::MrToCt,
            &mr,
            4,
            &g.device,
            &Progress::default(),
        )?;
        let spacing = ct.geometry.spacing[0];
        planned.push(Planned {
            x: p[0],
            y: p[1],
            radius_vox: lesion.1 / spacing,
        });
        for (name, vol, truth, modality) in [
            ("ct", &ct, Truth::Real, "real CT"),
            ("synthetic_ct", &synth, Truth::Synthetic, "synthetic CT"),
        ] {
            let file = format!("s{k}_{name}.nii.gz");
            crate::io::nifti::write_nifti(vol, &out.join(&file))?;
            cases.push(StudyCase {
                id: format!(
                    "s{k}-{}",
                    if truth == Truth::Real {
                        "real"
                    } else {
                        "synth"
                    }
                ),
                path: file.into(),
                truth,
                source: if truth == Truth::Real {
                    "scanner (phantom)".into()
                } else {
                    "demo U-Net MR to CT".into()
                },
                slices: vec![z - z0],
                pair: None,
                modality: Some(modality.into()),
                subject: Some(format!("s{k}")),
                abnormal: Some(abnormal),
            });
            images.push(vol.clone());
        }
        println!(
            "subject {k} ({}): real and synthetic CT ({:.1} s)",
            if abnormal { "lesion" } else { "no lesion" },
            t.elapsed().as_secs_f64()
        );
    }
    let s = Study {
        version: study::STUDY_VERSION,
        name: "demo-rating".into(),
        design: Design::Rating,
        allow_back: false,
        time_limit_s: None,
        slices_per_case: 1,
        seed: 1,
        window: Default::default(),
        questions: Default::default(),
        rating: RatingTask {
            question: "Is there a lesion?".into(),
            scale: Scale::Five,
            order: ReadingOrder::Interleaved,
            washout: 3,
        },
        view: None,
        test_pattern: true,
        cases,
    };
    let file = out.join("study.toml");
    s.write(&file)?;
    // The observers' decision variable per case: disc minus surround at the planned site.
    let dv: Vec<f64> = s
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let pl = &planned[i / 2];
            disc_contrast(&images[i], c.slices[0], pl)
        })
        .collect();
    let spread = {
        let mut a: Vec<f64> = dv.iter().step_by(2).copied().collect();
        a.sort_by(f64::total_cmp);
        (a[a.len() * 3 / 4] - a[a.len() / 4]).abs().max(1.0)
    };
    let slices: Vec<Vec<usize>> = s.cases.iter().map(|c| c.slices.clone()).collect();
    for j in 0..readers.max(2) {
        let reader = format!("observer-{}", j + 1);
        let log = study::log_path(&file, &reader);
        if log.exists() {
            std::fs::remove_file(&log)?;
        }
        let mut session = Session::start(s.clone(), &file, &slices, &reader, &log)?;
        let mut rng = Rng::new(0xD00D + j as u64);
        let bias = (uniform(&mut rng) - 0.5) * 0.4 * spread;
        let noise = spread * (0.5 + 0.3 * uniform(&mut rng));
        while let Some(t) = session.current().cloned() {
            let d = dv[t.case] + bias + noise * gauss(&mut rng);
            // Thresholds at fixed fractions of the spread: a 5-point scale.
            let rating = 1 + [0.1, 0.35, 0.6, 0.85]
                .iter()
                .filter(|f| d > **f * spread * 1.6)
                .count() as u8;
            session.key(StudyKey::Digit(rating))?;
            if !session.key(StudyKey::Next)? {
                bail!("the simulated observer's answer was not accepted");
            }
        }
        println!(
            "{}: {} answers (simulated observer)",
            log.display(),
            session.answers.len()
        );
    }
    println!(
        "{}: {} images; see the results with: synthscope study summary {}",
        file.display(),
        s.cases.len(),
        study::answers_dir(&file).display()
    );
    Ok(())
}

/// Mean HU in the planned lesion disc minus the mean in the ring around it (1.5 to 2.5 radii).
fn disc_contrast(v: &crate::volume::Volume, z: usize, p: &Planned) -> f64 {
    let [nx, ny, _] = v.geometry.dims;
    let plane = &v.data[z * nx * ny..(z + 1) * nx * ny];
    let (mut din, mut nin, mut dout, mut nout) = (0.0, 0usize, 0.0, 0usize);
    let r = p.radius_vox.max(1.0);
    let reach = (2.5 * r).ceil() as i64;
    for dy in -reach..=reach {
        for dx in -reach..=reach {
            let (x, y) = (p.x.round() as i64 + dx, p.y.round() as i64 + dy);
            if x < 0 || y < 0 || x >= nx as i64 || y >= ny as i64 {
                continue;
            }
            let d = ((dx * dx + dy * dy) as f64).sqrt();
            let val = plane[x as usize + nx * y as usize] as f64;
            if d <= 0.8 * r {
                din += val;
                nin += 1;
            } else if d >= 1.5 * r && d <= 2.5 * r {
                dout += val;
                nout += 1;
            }
        }
    }
    (din / nin.max(1) as f64 - dout / nout.max(1) as f64).abs()
}

fn uniform(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn gauss(rng: &mut Rng) -> f64 {
    let (u1, u2) = (uniform(rng), uniform(rng));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
