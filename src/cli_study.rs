//! `synthscope study ...`: make a demo study, read one (GUI), answer one from a key script,
//! summarise logs.

use crate::io::Progress;
use crate::study::session::{Session, StudyKey};
use crate::study::{self, Design, Study, StudyCase, Truth};
use crate::volume::Volume;
use anyhow::{anyhow, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Load case `i` of `study` (read from `study_file`).
pub fn load_case(study: &Study, study_file: &Path, i: usize) -> Result<Arc<Volume>, String> {
    let c = &study.cases[i];
    let path = study.case_path(study_file, c);
    if !path.exists() {
        return Err(format!(
            "case {:?}: {}: no such file or folder",
            c.id,
            path.display()
        ));
    }
    let out = crate::io::load_paths(std::slice::from_ref(&path), &Progress::default())
        .map_err(|e| format!("case {:?}: {e}", c.id))?;
    out.volumes
        .into_iter()
        .next()
        .map(Arc::new)
        .ok_or_else(|| match out.errors.first() {
            Some(e) => format!("case {:?}: {e}", c.id),
            None => format!("case {:?}: {}: no images found", c.id, path.display()),
        })
}

/// Case `i`'s slices: its fixed indices (checked against the volume), or `slices_per_case`
/// sampled inside the head with the study's seed (the same for every reader).
pub fn case_slices(study: &Study, i: usize, v: &Volume) -> Result<Vec<usize>, String> {
    let c = &study.cases[i];
    let nz = v.geometry.dims[2];
    if !c.slices.is_empty() {
        if let Some(z) = c.slices.iter().find(|z| **z >= nz) {
            return Err(format!(
                "case {:?}: slice {z} does not exist (the volume has {nz} slices, 0..{})",
                c.id,
                nz.saturating_sub(1)
            ));
        }
        return Ok(c.slices.clone());
    }
    let threshold = if v.meta.modality.eq_ignore_ascii_case("CT") {
        -500.0
    } else {
        0.1 * v.robust_range(1.0, 99.0).1
    };
    let head = study::head_slices(&v.data, v.geometry.dims, threshold);
    if head.is_empty() {
        return Err(format!("case {:?}: no slice shows a head", c.id));
    }
    let seed = study.seed ^ study::fnv(c.id.as_bytes());
    Ok(study::sample_slices(&head, study.slices_per_case, seed))
}

/// Every case's slices (loading each case once, with progress and cancel), after checking
/// that each A/B pair shares a grid.
pub fn resolve_slices(
    study: &Study,
    study_file: &Path,
    progress: &Progress,
) -> Result<Vec<Vec<usize>>, String> {
    progress.start("Checking the cases", study.cases.len());
    let mut out = Vec::new();
    let mut dims = Vec::new();
    for i in 0..study.cases.len() {
        progress.check().map_err(|e| e.to_string())?;
        let v = load_case(study, study_file, i)?;
        dims.push(v.geometry.dims);
        out.push(case_slices(study, i, &v)?);
        progress.step();
    }
    if study.design == Design::Pair {
        for (i, c) in study.cases.iter().enumerate() {
            if let Some(p) = c
                .pair
                .as_ref()
                .and_then(|p| study.cases.iter().position(|r| &r.id == p))
                && dims[i] != dims[p]
            {
                return Err(format!(
                    "pair {:?} / {:?}: the volumes differ in size ({:?} vs {:?}); pairs must share a grid",
                    c.id, study.cases[p].id, dims[i], dims[p]
                ));
            }
        }
    }
    Ok(out)
}

/// `study demo`: phantom patients' real CTs and the demo model's synthetic CTs of them, and a
/// study file over them.
pub fn demo(out: &Path, patients: usize, slab: usize, design: Design) -> anyhow::Result<()> {
    use crate::io::phantom::{PhantomConfig, phantom_patient};
    std::fs::create_dir_all(out)?;
    let g = crate::gpu::shared()?;
    let (model, _, _) = crate::model::demo::load_demo_model(&g.device).map_err(|e| anyhow!(e))?;
    let mut cases = Vec::new();
    for k in 0..patients.max(1) {
        let t = std::time::Instant::now();
        // Patients 10+ were never seen in training (the demo model saw 0..2).
        let (ct, mr) = phantom_patient(&PhantomConfig::default(), 10 + k);
        let crop = |v: &Volume| {
            let [nx, ny, nz] = v.geometry.dims;
            let n = slab.clamp(1, nz);
            let z0 = (nz - n) / 2;
            let mut geometry = v.geometry.clone();
            geometry.origin = v.geometry.world_from_voxel([0.0, 0.0, z0 as f64]);
            geometry.dims = [nx, ny, n];
            Volume::new(
                geometry,
                v.data[z0 * nx * ny..(z0 + n) * nx * ny].to_vec(),
                v.meta.clone(),
            )
        };
        let (ct, mr) = (crop(&ct), crop(&mr));
        let synth = crate::synth::synthesize(
            &model,
            crate::model::Direction::MrToCt,
            &mr,
            4,
            &g.device,
            &Progress::default(),
        )?;
        let real_name = format!("patient{k}_ct.nii.gz");
        let synth_name = format!("patient{k}_synthetic_ct.nii.gz");
        crate::io::nifti_io::write_nifti(&ct, &out.join(&real_name))?;
        crate::io::nifti_io::write_nifti(&synth, &out.join(&synth_name))?;
        println!(
            "patient {k}: real and synthetic CT, {} slices ({:.1} s)",
            ct.geometry.dims[2],
            t.elapsed().as_secs_f64()
        );
        cases.push(StudyCase {
            id: format!("p{k}-real"),
            path: real_name.into(),
            truth: Truth::Real,
            source: "scanner (phantom)".into(),
            slices: Vec::new(),
            pair: None,
        });
        cases.push(StudyCase {
            id: format!("p{k}-synth"),
            path: synth_name.into(),
            truth: Truth::Synthetic,
            source: "demo U-Net MR to CT".into(),
            slices: Vec::new(),
            pair: (design == Design::Pair).then(|| format!("p{k}-real")),
        });
    }
    let s = Study {
        version: study::STUDY_VERSION,
        name: format!(
            "demo-{}",
            if design == Design::Pair {
                "ab"
            } else {
                "single"
            }
        ),
        design,
        allow_back: true,
        time_limit_s: None,
        slices_per_case: 3,
        seed: 1,
        window: Default::default(),
        questions: Default::default(),
        cases,
    };
    let file = out.join("study.toml");
    s.write(&file).map_err(|e| anyhow!(e))?;
    println!(
        "{}: {} cases; read it with: synthscope study read {} --reader YOUR-ID",
        file.display(),
        s.cases.len(),
        file.display()
    );
    Ok(())
}

/// `study answer`: answer a study from a key script (the reading view's keys), appending to
/// the reader's log as the GUI does. For scripted sessions and tests.
pub fn answer(
    study_file: &Path,
    reader: &str,
    keys: &str,
    delay_ms: u64,
    log: Option<PathBuf>,
) -> anyhow::Result<()> {
    let s = Study::read(study_file).map_err(|e| anyhow!(e))?;
    let slices = resolve_slices(&s, study_file, &Progress::default()).map_err(|e| anyhow!(e))?;
    let log = log.unwrap_or_else(|| study::log_path(study_file, reader));
    let mut session =
        Session::start(s, study_file, &slices, reader, &log).map_err(|e| anyhow!(e))?;
    println!(
        "reader {}: {} images, {} answered before; log {}",
        session.reader,
        session.trials.len(),
        session.resumed,
        log.display()
    );
    for k in keys.split_whitespace() {
        if session.done() {
            break;
        }
        let Some(key) = StudyKey::parse(k) else {
            bail!("unknown key {k:?} (keys: r s a b 1-5 next back bs)");
        };
        if delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
        if session.key(key).map_err(|e| anyhow!(e))? {
            println!(
                "answered {}/{}",
                session.answers.len(),
                session.trials.len()
            );
        }
    }
    println!(
        "{} of {} images answered{}",
        session.answers.len(),
        session.trials.len(),
        if session.done() { " (done)" } else { "" }
    );
    Ok(())
}

/// Logs named on the command line: files, or folders of `*.jsonl`.
fn log_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            v.sort();
            if v.is_empty() {
                bail!("{}: no reader logs (*.jsonl) in this folder", p.display());
            }
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Read logs and their Likert question order (first appearance).
pub fn read_logs(paths: &[PathBuf]) -> anyhow::Result<(Vec<study::ReaderLog>, Vec<String>)> {
    let mut logs = Vec::new();
    for f in log_files(paths)? {
        let l = study::read_log(&f).map_err(|e| anyhow!(e))?;
        if l.torn_tail {
            eprintln!(
                "warning: {}: the last line was cut off (a crash while writing); it is ignored",
                f.display()
            );
        }
        logs.push(l);
    }
    // The study's order (from the log headers), then any question only answers name.
    let mut questions: Vec<String> = Vec::new();
    for q in logs.iter().flat_map(|l| l.likert.iter()) {
        if !questions.contains(q) {
            questions.push(q.clone());
        }
    }
    for a in logs.iter().flat_map(|l| l.answers.iter()) {
        for q in a.likert.keys() {
            if !questions.contains(q) {
                questions.push(q.clone());
            }
        }
    }
    Ok((logs, questions))
}

/// `study summary`.
pub fn summary(paths: &[PathBuf], json: bool, csv: Option<PathBuf>) -> anyhow::Result<()> {
    let (logs, questions) = read_logs(paths)?;
    let s = study::stats::summarise(&logs).map_err(|e| anyhow!(e))?;
    if let Some(c) = csv {
        std::fs::write(&c, study::answers_csv(&logs, &questions))
            .map_err(|e| anyhow!("{}: cannot write: {e}", c.display()))?;
        eprintln!("{}: one row per answer", c.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.to_text());
    }
    Ok(())
}
