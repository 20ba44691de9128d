//! `pacs ...`: C-ECHO, search, retrieve and send, over DIMSE (`AET@HOST:PORT`) or DICOMweb
//! (`--dicomweb URL`).

use crate::pacs::dimse::{self, SeriesKey};
use crate::pacs::scp::StorageScp;
use crate::pacs::web::{Auth, WebClient};
use crate::pacs::{
    AeAddress, Control, DimseOptions, FindResult, Level, Query, TransferProgress, TransferStats,
};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Our side of a DIMSE association.
#[derive(Args, Debug, Clone)]
pub struct AeArgs {
    /// Our (calling) AE title.
    #[arg(long, default_value = "SYNTHSCOPE")]
    pub aet: String,
    /// Seconds a silent peer is waited for.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

impl AeArgs {
    fn options(&self) -> DimseOptions {
        DimseOptions {
            calling_ae_title: self.aet.clone(),
            timeout: Duration::from_secs(self.timeout.max(1)),
            ..Default::default()
        }
    }
}

/// A DICOMweb server instead of a DIMSE peer.
#[derive(Args, Debug, Clone, Default)]
pub struct WebArgs {
    /// DICOMweb service root (http:// or https://), e.g. http://localhost:8042/dicom-web.
    #[arg(long, value_name = "URL")]
    pub dicomweb: Option<String>,
    /// Bearer token, read from this file.
    #[arg(long, value_name = "F", conflicts_with = "user")]
    pub token_file: Option<PathBuf>,
    /// Basic-auth user (with --password-file).
    #[arg(long, value_name = "U", requires = "password_file")]
    pub user: Option<String>,
    /// Basic-auth password, read from this file.
    #[arg(long, value_name = "F", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// Extra PEM CA certificates to trust for https.
    #[arg(long, value_name = "F")]
    pub ca_file: Option<PathBuf>,
}

fn read_secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(s)
}

impl WebArgs {
    fn client(&self, timeout: u64) -> anyhow::Result<Option<WebClient>> {
        let Some(url) = &self.dicomweb else {
            if self.token_file.is_some() || self.user.is_some() {
                bail!("--token-file, --user and --password-file go with --dicomweb URL");
            }
            return Ok(None);
        };
        let auth = match (&self.token_file, &self.user, &self.password_file) {
            (Some(t), _, _) => Auth::Bearer(read_secret(t, "token")?),
            (None, Some(u), Some(p)) => Auth::Basic {
                user: u.clone(),
                password: read_secret(p, "password")?,
            },
            _ => Auth::None,
        };
        Ok(Some(WebClient::new(
            url,
            auth,
            self.ca_file.as_deref(),
            Duration::from_secs(timeout.max(1)),
        )?))
    }
}

/// PACS subcommands.
#[derive(Subcommand, Debug)]
pub enum PacsCmd {
    /// C-ECHO: check that a DICOM node answers and accepts our AE title.
    Echo {
        /// The peer, AET@HOST:PORT.
        peer: String,
        #[command(flatten)]
        ae: AeArgs,
    },
    /// Search studies or series (C-FIND, or QIDO-RS with --dicomweb).
    Find {
        /// The peer, AET@HOST:PORT (not with --dicomweb).
        peer: Option<String>,
        /// PatientID.
        #[arg(long)]
        patient_id: Option<String>,
        /// PatientName; * and ? are wildcards.
        #[arg(long)]
        patient_name: Option<String>,
        /// Modality (CT, MR...).
        #[arg(long)]
        modality: Option<String>,
        /// StudyDate or range: YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD, YYYYMMDD-.
        #[arg(long, value_name = "A-B")]
        study_date: Option<String>,
        /// AccessionNumber.
        #[arg(long)]
        accession: Option<String>,
        /// StudyInstanceUID (e.g. to list one study's series).
        #[arg(long)]
        study: Option<String>,
        /// study or series.
        #[arg(long, default_value = "study")]
        level: Level,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ae: AeArgs,
        #[command(flatten)]
        web: WebArgs,
    },
    /// Retrieve a series into a folder (C-GET; C-MOVE to our own storage SCP with --move; WADO-RS
    /// with --dicomweb). Prints images/s and MB/s at the end.
    Get {
        /// The peer, AET@HOST:PORT (not with --dicomweb).
        peer: Option<String>,
        /// SeriesInstanceUID.
        #[arg(long)]
        series: String,
        /// StudyInstanceUID (looked up when not given).
        #[arg(long)]
        study: Option<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// C-MOVE to our storage SCP (the PACS must know our AE title, host and --port).
        #[arg(long = "move", requires = "port")]
        use_move: bool,
        /// Port of our storage SCP for --move.
        #[arg(long)]
        port: Option<u16>,
        /// Address our storage SCP listens on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ae: AeArgs,
        #[command(flatten)]
        web: WebArgs,
    },
    /// Send DICOM files or folders (C-STORE, or STOW-RS with --dicomweb).
    Send {
        /// AET@HOST:PORT then PATHs (only PATHs with --dicomweb).
        #[arg(required = true)]
        args: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ae: AeArgs,
        #[command(flatten)]
        web: WebArgs,
    },
}

fn peer_of(peer: Option<&str>) -> anyhow::Result<AeAddress> {
    match peer {
        Some(p) => Ok(AeAddress::parse(p)?),
        None => bail!("give the PACS as AET@HOST:PORT, or --dicomweb URL"),
    }
}

/// Progress on stderr: a line every 10% (or every 50 images when the total is unknown).
fn progress_printer(label: &'static str) -> impl FnMut(TransferProgress) {
    let mut last = 0usize;
    move |p: TransferProgress| {
        let step = p.total.map_or(50, |t| (t / 10).max(1));
        if p.done >= last + step || Some(p.done) == p.total {
            last = p.done;
            match p.total {
                Some(t) => eprintln!(
                    "{label}: {}/{t} images, {:.1} MB",
                    p.done,
                    p.bytes as f64 / 1e6
                ),
                None => eprintln!("{label}: {} images, {:.1} MB", p.done, p.bytes as f64 / 1e6),
            }
        }
    }
}

fn print_results(results: &[FindResult], json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "results": results }))?
        );
        return Ok(());
    }
    if results.is_empty() {
        println!("no matches");
        return Ok(());
    }
    println!(
        "{:<6} {:<24} {:<14} {:<8} {:<8} {:>6}  {:<28} UID",
        "level", "patient", "patient ID", "date", "modality", "images", "description"
    );
    for r in results {
        let uid = if r.series_uid.is_empty() {
            &r.study_uid
        } else {
            &r.series_uid
        };
        println!(
            "{:<6} {:<24} {:<14} {:<8} {:<8} {:>6}  {:<28} {uid}",
            match r.level {
                Level::Study => "study",
                Level::Series => "series",
            },
            r.patient_name,
            r.patient_id,
            r.study_date,
            r.modality,
            r.images.map_or("?".into(), |n| n.to_string()),
            r.description.chars().take(28).collect::<String>(),
        );
    }
    Ok(())
}

fn print_stats(what: &str, s: &TransferStats, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "images": s.images, "bytes": s.bytes, "seconds": s.seconds,
                "images_per_s": s.images_per_s(), "mb_per_s": s.mb_per_s(), "failed": s.failed,
            }))?
        );
    } else {
        println!("{what}: {}", s.summary());
    }
    Ok(())
}

/// Run a `pacs` subcommand.
pub fn run(cmd: PacsCmd) -> anyhow::Result<()> {
    let cancel = AtomicBool::new(false);
    match cmd {
        PacsCmd::Echo { peer, ae } => {
            let peer = AeAddress::parse(&peer)?;
            let rtt = dimse::echo(&peer, &ae.options())?;
            println!(
                "C-ECHO {peer}: success in {:.1} ms",
                rtt.as_secs_f64() * 1e3
            );
            Ok(())
        }
        PacsCmd::Find {
            peer,
            patient_id,
            patient_name,
            modality,
            study_date,
            accession,
            study,
            level,
            json,
            ae,
            web,
        } => {
            let q = Query {
                level,
                patient_name: patient_name.unwrap_or_default(),
                patient_id: patient_id.unwrap_or_default(),
                study_date: study_date.unwrap_or_default(),
                modality: modality.unwrap_or_default(),
                accession: accession.unwrap_or_default(),
                study_uid: study.unwrap_or_default(),
                series_uid: String::new(),
            };
            let results = match web.client(ae.timeout)? {
                Some(c) => {
                    if peer.is_some() {
                        bail!("give either AET@HOST:PORT or --dicomweb URL, not both");
                    }
                    c.find(&q)?
                }
                None => {
                    let peer = peer_of(peer.as_deref())?;
                    let mut nop = |_: TransferProgress| {};
                    dimse::find(
                        &peer,
                        &ae.options(),
                        &q,
                        &mut Control {
                            progress: &mut nop,
                            cancel: &cancel,
                        },
                    )?
                }
            };
            print_results(&results, json)
        }
        PacsCmd::Get {
            peer,
            series,
            study,
            out,
            use_move,
            port,
            bind,
            json,
            ae,
            web,
        } => {
            let mut prog = progress_printer("get");
            let mut ctl = Control {
                progress: &mut prog,
                cancel: &cancel,
            };
            if let Some(c) = web.client(ae.timeout)? {
                if peer.is_some() || use_move {
                    bail!("--dicomweb retrieves over WADO-RS: no AET@HOST:PORT or --move");
                }
                let s = c.get_series(study.as_deref(), &series, &out, &mut ctl)?;
                return print_stats(
                    &format!("WADO-RS {} -> {}", series, out.display()),
                    &s,
                    json,
                );
            }
            let peer = peer_of(peer.as_deref())?;
            let opts = ae.options();
            let key = SeriesKey {
                study_uid: study.unwrap_or_default(),
                series_uid: series.clone(),
            };
            let s = if use_move {
                let port = port.unwrap_or(0);
                let t0 = std::time::Instant::now();
                let scp = StorageScp::start(&opts.calling_ae_title, &bind, port, &out, &opts)?;
                let moved =
                    dimse::move_series(&peer, &opts, &key, &opts.calling_ae_title, &mut ctl);
                let files = scp.take_files();
                let bytes = scp
                    .received()
                    .bytes
                    .load(std::sync::atomic::Ordering::Relaxed);
                let errors = scp
                    .received()
                    .errors
                    .lock()
                    .map(|e| e.clone())
                    .unwrap_or_default();
                scp.stop();
                let (done, failed) = moved?;
                if let Some(e) = errors.first() {
                    bail!("storage SCP: {e}");
                }
                if files.len() != done {
                    bail!(
                        "C-MOVE reported {done} images moved but our SCP stored {}",
                        files.len()
                    );
                }
                TransferStats {
                    images: files.len(),
                    bytes,
                    seconds: t0.elapsed().as_secs_f64(),
                    failed,
                    files,
                }
            } else {
                dimse::get_series(&peer, &opts, &key, &out, &mut ctl)?
            };
            let how = if use_move { "C-MOVE" } else { "C-GET" };
            print_stats(&format!("{how} {series} -> {}", out.display()), &s, json)
        }
        PacsCmd::Send {
            args,
            json,
            ae,
            web,
        } => {
            let mut prog = progress_printer("send");
            let mut ctl = Control {
                progress: &mut prog,
                cancel: &cancel,
            };
            if let Some(c) = web.client(ae.timeout)? {
                let paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
                let s = c.store(&paths, &mut ctl)?;
                return print_stats("STOW-RS", &s, json);
            }
            let Some((peer, paths)) = args.split_first() else {
                bail!("give AET@HOST:PORT then the files or folders to send");
            };
            if paths.is_empty() {
                bail!("give the files or folders to send after {peer}");
            }
            let peer = AeAddress::parse(peer)?;
            let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            let s = dimse::store(&peer, &ae.options(), &paths, &mut ctl)?;
            print_stats(&format!("C-STORE to {peer}"), &s, json)
        }
    }
}
