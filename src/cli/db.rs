//! `db ...`: the local study database (import, list, remove, reindex).

use crate::db::{Database, default_dir};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `db` and its options.
#[derive(Args, Debug)]
pub struct DbArgs {
    /// The database folder (default: $SYNTHSCOPE_DATA_DIR/dicom, else
    /// $XDG_DATA_HOME/synthscope/dicom, else ~/.local/share/synthscope/dicom).
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub what: DbCmd,
}

/// Database subcommands.
#[derive(Subcommand, Debug)]
pub enum DbCmd {
    /// Copy the DICOM files under PATHs (folders recursively) into the database and index them.
    Import {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the series in the database.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a series (its rows and its files).
    Remove {
        /// SeriesInstanceUID.
        series_uid: String,
    },
    /// Rebuild the index from the files in the database folder.
    Reindex,
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}") {
        bar.set_style(style);
    }
    bar
}

/// Run `db ...`.
pub fn run(a: &DbArgs) -> anyhow::Result<()> {
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    let mut db = Database::open(&dir)?;
    match &a.what {
        DbCmd::Import { paths, json } => {
            let bar = bar();
            let progress = |stage: &str, done: usize, total: usize| {
                bar.set_message(stage.to_string());
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let r = db.import(paths, &progress, &|| false)?;
            bar.finish_and_clear();
            if *json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} files: {} instances added in {} series, {} already in the database, \
                     {} not DICOM, {} unreadable",
                    r.files,
                    r.instances_added,
                    r.series.len(),
                    r.already_present,
                    r.not_dicom,
                    r.skipped.len()
                );
                for s in &r.skipped {
                    println!("skipped {s}");
                }
            }
        }
        DbCmd::List { json } => {
            let list = db.list_series()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for s in &list {
                    let size = match (s.cols, s.rows) {
                        (Some(c), Some(r)) => format!("{c}x{r}"),
                        _ => "-".into(),
                    };
                    println!(
                        "{}  {}  {}  {}  {:<3} {:>5} images {:>9}  \"{}\"  {}",
                        s.patient_name,
                        s.patient_id,
                        s.study_date,
                        s.date,
                        s.modality,
                        s.images,
                        size,
                        s.description,
                        s.series_uid
                    );
                }
                println!("{} series in {}", list.len(), dir.display());
            }
        }
        DbCmd::Remove { series_uid } => {
            let n = db.remove_series(series_uid)?;
            println!("removed series {series_uid} ({n} instances)");
        }
        DbCmd::Reindex => {
            let bar = bar();
            let progress = |stage: &str, done: usize, total: usize| {
                bar.set_message(stage.to_string());
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let (n, problems) = db.reindex(&progress, &|| false)?;
            bar.finish_and_clear();
            for p in &problems {
                println!("skipped {p}");
            }
            println!(
                "indexed {n} instances in {} series ({} files skipped)",
                db.list_series()?.len(),
                problems.len()
            );
        }
    }
    Ok(())
}
