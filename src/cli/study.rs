//! `study ...`: read a study (GUI), make a demo study, check one, answer one from a key
//! script, summarise logs.

use super::data::middle_slab;
use crate::app::{self, AppOptions};
use crate::io::Progress;
use crate::study::session::{Session, StudyKey};
use crate::study::{self, Design, Study, StudyCase, Truth};
use anyhow::{anyhow, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};

mod rating;

/// Reader-study subcommands.
#[derive(Subcommand, Debug)]
pub enum StudyCmd {
    /// Read a study full-screen (the blinded reading view); answers go to
    /// STUDY.answers/READER.jsonl beside the study file.
    Read {
        /// Study file (TOML or JSON).
        study: PathBuf,
        /// Reader ID (asked for in the window when not given).
        #[arg(long)]
        reader: Option<String>,
        /// Keep a normal window instead of full screen.
        #[arg(long)]
        windowed: bool,
        /// Feed these keys (as `study answer` takes them) to the window one at a time, then
        /// close it: automation and the crash test.
        #[arg(long, hide = true)]
        script_keys: Option<String>,
        /// Pause between scripted keys (ms).
        #[arg(long, hide = true, default_value_t = 100)]
        script_delay_ms: u64,
    },
    /// Print the summary of reader logs (files, or folders of *.jsonl): accuracy with 95% CI,
    /// Likert means by truth and source, Cohen's and Fleiss' kappa.
    Summary {
        /// Reader logs or folders of them.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also write one CSV row per answer here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Rating studies: write the ROC points and AUCs as CSV here.
        #[arg(long)]
        roc_csv: Option<PathBuf>,
        /// Rating studies: write the ROC figure (reader-averaged and per-reader curves) as PNG.
        #[arg(long)]
        roc_png: Option<PathBuf>,
        /// Rating studies: DeLong instead of jackknife covariances for the OR analysis.
        #[arg(long)]
        delong: bool,
    },
    /// MRMC analysis (Obuchowski-Rockette with Hillis df, DBM, iMRMC U-statistics) of a
    /// LABMRMC `.lrc` file or of rating-study logs.
    Mrmc {
        /// An `.lrc` file, or reader logs / folders of them.
        #[arg(required = true)]
        input: Vec<PathBuf>,
        /// DeLong instead of jackknife covariances.
        #[arg(long)]
        delong: bool,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Readers and cases needed for an AUC difference at a power, from a pilot: an `.lrc`
    /// file, rating logs, or a JSON file of OR components (var_tr, var_error, cov1-3, cases).
    Size {
        /// The pilot.
        #[arg(required = true)]
        pilot: Vec<PathBuf>,
        /// The AUC difference to detect.
        #[arg(long, default_value_t = 0.05)]
        delta: f64,
        /// The power wanted.
        #[arg(long, default_value_t = 0.8)]
        power: f64,
        /// Two-sided significance level.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Fewest readers in the table.
        #[arg(long, default_value_t = 3)]
        min_readers: usize,
        /// Most readers in the table.
        #[arg(long, default_value_t = 15)]
        max_readers: usize,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a demo study: phantom patients' real CT and the demo model's synthetic CT of them.
    Demo {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Phantom patients (each gives a real and a synthetic case).
        #[arg(long, default_value_t = 3)]
        patients: usize,
        /// Slices kept per volume (a slab around the middle).
        #[arg(long, default_value_t = 24)]
        slab: usize,
        /// A/B pairs ("which is real?") instead of single images.
        #[arg(long)]
        pairs: bool,
        /// The design: single, pair, or rating (lesion detection with 5-point confidence in
        /// real and synthetic CT, with simulated observers' logs for the Results window).
        #[arg(long)]
        design: Option<String>,
        /// Rating design: subjects (every other one with a lesion).
        #[arg(long, default_value_t = 16)]
        subjects: usize,
        /// Rating design: simulated observers.
        #[arg(long, default_value_t = 4)]
        readers: usize,
        /// Where the synthetic CTs come from: demo (the shipped U-Net) or cyclegan (a CycleGAN
        /// G_A checkpoint, --model, on varied phantom patients on small grids as it trained).
        #[arg(long, default_value = "demo")]
        source: String,
        /// The CycleGAN generator checkpoint for --source cyclegan.
        #[arg(long, default_value = "runs/cyclegan-scratch/checkpoints/last")]
        model: PathBuf,
    },
    /// Check a study file: its cases load and how many images each reader will see.
    Check {
        /// Study file.
        study: PathBuf,
    },
    /// Answer a study from a key script, as the reading view would (keys: r s a b 1-5 next
    /// back bs), appending to the reader's log. For scripted sessions and tests.
    Answer {
        /// Study file.
        study: PathBuf,
        /// Reader ID.
        #[arg(long)]
        reader: String,
        /// Keys, separated by spaces.
        #[arg(long)]
        keys: String,
        /// Pause before each key (ms).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Log file (default: STUDY.answers/READER.jsonl).
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

/// `study ...`.
pub(super) fn run(what: StudyCmd) -> anyhow::Result<()> {
    match what {
        StudyCmd::Read {
            study,
            reader,
            windowed,
            script_keys,
            script_delay_ms,
        } => read(study, reader, windowed, script_keys, script_delay_ms),
        StudyCmd::Summary {
            logs,
            json,
            csv,
            roc_csv,
            roc_png,
            delong,
        } => summary(&logs, json, csv, roc_csv, roc_png, delong),
        StudyCmd::Mrmc {
            input,
            delong,
            json,
        } => rating::mrmc_cmd(&input, delong, json),
        StudyCmd::Size {
            pilot,
            delta,
            power,
            alpha,
            min_readers,
            max_readers,
            json,
        } => rating::size_cmd(
            &pilot,
            delta,
            power,
            alpha,
            (min_readers, max_readers),
            json,
        ),
        StudyCmd::Demo {
            out,
            patients,
            slab,
            pairs,
            design,
            subjects,
            readers,
            source,
            model,
        } => {
            let design = match design.as_deref() {
                Some("rating") => {
                    return rating::demo_rating(&out, subjects, readers, slab.min(8));
                }
                Some("pair") => Design::Pair,
                Some("single") => Design::Single,
                Some(o) => bail!("unknown design {o:?} (single, pair, rating)"),
                None if pairs => Design::Pair,
                None => Design::Single,
            };
            match source.as_str() {
                "demo" => demo(&out, patients, slab, design),
                "cyclegan" => super::cyclegan::study_demo(&out, &model, patients, slab, design),
                o => bail!("unknown source {o:?} (demo, cyclegan)"),
            }
        }
        StudyCmd::Check { study } => check(&study),
        StudyCmd::Answer {
            study,
            reader,
            keys,
            delay_ms,
            log,
        } => answer(&study, &reader, &keys, delay_ms, log),
    }
}

/// `study read`: the blinded reading view, full screen unless `windowed`.
fn read(
    file: PathBuf,
    reader: Option<String>,
    windowed: bool,
    script_keys: Option<String>,
    script_delay_ms: u64,
) -> anyhow::Result<()> {
    let script = match script_keys {
        Some(k) => Some((
            k.split_whitespace()
                .map(|s| StudyKey::parse(s).ok_or_else(|| anyhow!("unknown key {s:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
            std::time::Duration::from_millis(script_delay_ms),
        )),
        None => None,
    };
    app::run(AppOptions {
        study: Some(app::StudyOptions {
            file,
            reader,
            fullscreen: !windowed,
            script,
        }),
        self_test: false,
        ..Default::default()
    })
}

/// `study check`: the study's cases load; how many images each reader will see.
fn check(file: &Path) -> anyhow::Result<()> {
    let s = Study::read(file)?;
    let slices = study::resolve_slices(&s, file, &Progress::default())?;
    let trials = study::trials(&s, &slices, "check");
    println!(
        "{}: study \"{}\" ({:?} design), {} cases, {} images per reader; digest {}",
        file.display(),
        s.name,
        s.design,
        s.cases.len(),
        trials.len(),
        s.digest()
    );
    for (c, z) in s.cases.iter().zip(&slices) {
        println!("  {:<20} {:<10} slices {:?}", c.id, c.truth.name(), z);
    }
    Ok(())
}

/// `study demo`: phantom patients' real CTs and the demo model's synthetic CTs of them, and a
/// study file over them.
pub(super) fn demo(out: &Path, patients: usize, slab: usize, design: Design) -> anyhow::Result<()> {
    use crate::io::phantom::{PhantomConfig, phantom_patient};
    let g = crate::gpu::compute()?;
    let (model, _, _) = crate::model::demo::load_demo_model(&g.device).map_err(|e| anyhow!(e))?;
    demo_with(out, patients, design, "demo U-Net MR to CT", &mut |k| {
        // Patients 10+ were never seen in training (the demo model saw 0..2).
        let (ct, mr) = phantom_patient(&PhantomConfig::default(), 10 + k);
        let (ct, mr) = (middle_slab(&ct, slab), middle_slab(&mr, slab));
        let synth = crate::synth::synthesize(
            &model,
            crate::model::Direction::MrToCt,
            &mr,
            4,
            &g.device,
            &Progress::default(),
        )?;
        Ok((ct, synth))
    })
}

/// A demo study over `patients` (real CT, synthetic CT) pairs that `make(k)` gives, the
/// synthetic ones labelled `source`.
pub(super) fn demo_with(
    out: &Path,
    patients: usize,
    design: Design,
    source: &str,
    make: &mut dyn FnMut(usize) -> anyhow::Result<(crate::volume::Volume, crate::volume::Volume)>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let mut cases = Vec::new();
    for k in 0..patients.max(1) {
        let t = std::time::Instant::now();
        let (ct, synth) = make(k)?;
        let real_name = format!("patient{k}_ct.nii.gz");
        let synth_name = format!("patient{k}_synthetic_ct.nii.gz");
        crate::io::nifti::write_nifti(&ct, &out.join(&real_name))?;
        crate::io::nifti::write_nifti(&synth, &out.join(&synth_name))?;
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
            modality: None,
            subject: None,
            abnormal: None,
        });
        cases.push(StudyCase {
            id: format!("p{k}-synth"),
            path: synth_name.into(),
            truth: Truth::Synthetic,
            source: source.into(),
            slices: Vec::new(),
            pair: (design == Design::Pair).then(|| format!("p{k}-real")),
            modality: None,
            subject: None,
            abnormal: None,
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
        rating: Default::default(),
        view: None,
        test_pattern: false,
        cases,
    };
    let file = out.join("study.toml");
    s.write(&file)?;
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
pub(super) fn answer(
    study_file: &Path,
    reader: &str,
    keys: &str,
    delay_ms: u64,
    log: Option<PathBuf>,
) -> anyhow::Result<()> {
    let s = Study::read(study_file)?;
    let slices = study::resolve_slices(&s, study_file, &Progress::default())?;
    let log = log.unwrap_or_else(|| study::log_path(study_file, reader));
    let mut session = Session::start(s, study_file, &slices, reader, &log)?;
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
        if session.key(key)? {
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

/// `study summary`: the summary of reader logs as tables or JSON (and the answers as CSV);
/// rating studies add ROC curves, AUCs and the MRMC analysis (and their CSV and PNG).
pub(super) fn summary(
    paths: &[PathBuf],
    json: bool,
    csv: Option<PathBuf>,
    roc_csv: Option<PathBuf>,
    roc_png: Option<PathBuf>,
    delong: bool,
) -> anyhow::Result<()> {
    let study::LogSet {
        logs,
        questions,
        warnings,
    } = study::read_logs(paths)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let s = study::stats::summarise(&logs)?;
    if let Some(c) = csv {
        crate::atomic::write(&c, study::answers_csv(&logs, &questions))?;
        eprintln!("{}: one row per answer", c.display());
    }
    let method = if delong {
        study::mrmc::CovMethod::DeLong
    } else {
        study::mrmc::CovMethod::Jackknife
    };
    let rating = study::rating_summary::summarise_ratings(&logs, method);
    if (roc_csv.is_some() || roc_png.is_some())
        && rating.as_ref().is_none_or(|r| r.curves.is_empty())
    {
        bail!("--roc-csv / --roc-png: these logs hold no rating-design answers");
    }
    if let Some(r) = &rating {
        if let Some(p) = &roc_csv {
            crate::atomic::write(p, r.roc_csv())?;
            eprintln!("{}: ROC points and AUCs", p.display());
        }
        if let Some(p) = &roc_png {
            crate::atomic::write(p, r.roc_png(480))?;
            eprintln!(
                "{}: ROC curves ({})",
                p.display(),
                r.average
                    .iter()
                    .zip(["blue", "orange", "green", "purple"].iter().cycle())
                    .map(|(a, c)| format!("{}: {c}", a.modality))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if json {
        let mut v = serde_json::to_value(&s)?;
        if let (Some(r), Some(o)) = (&rating, v.as_object_mut()) {
            o.insert("roc".into(), serde_json::to_value(r)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", s.to_text());
        if let Some(r) = &rating {
            print!("{}", r.to_text());
        }
    }
    Ok(())
}
