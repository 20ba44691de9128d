//! The command line: `synthscope [PATH...]` opens the GUI; subcommands run the same code headless.
//!
//! One file per command family, each holding its arguments and its commands: [`data`] (info,
//! convert, phantom), [`register`], [`model`] (synthesize, evaluate, model, self-test),
//! [`train`] (train, runs), [`study`] and [`bench`](mod@bench).

pub mod bench;
pub mod cyclegan;
pub mod data;
pub mod db;
pub mod experiment;
pub mod ldct;
pub mod model;
pub mod pacs;
pub mod register;
pub mod serve;
pub mod study;
pub mod train;
pub mod usmr;

use crate::app::{self, AppOptions};
use crate::gpu::{ComputeDevice, DeviceChoice};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// SynthScope: cross-modality MR <-> CT synthesis viewer.
#[derive(Parser, Debug)]
#[command(name = "synthscope", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// DICOM folders or files, or NIfTI files, to open in the viewer (default: the demo pair).
    pub paths: Vec<PathBuf>,
    /// Open the demo pair on small grids (quick start, tests).
    #[arg(long, hide = true)]
    pub small_demo: bool,
    /// Benchmark: scroll one slice per frame for N frames, print frame times and exit.
    #[arg(long, value_name = "N")]
    pub autoscroll: Option<usize>,
    /// Open the Training panel with this run config (TOML/JSON) and start it.
    #[arg(long, value_name = "CONFIG")]
    pub train: Option<PathBuf>,
    /// Save the three panes as PNG once the data is shown, then quit.
    #[arg(long, value_name = "PNG", conflicts_with = "autoscroll")]
    pub screenshot: Option<PathBuf>,
    /// Where the viewer's networks run: auto (measured once, cached), cpu (burn-flex) or gpu
    /// (wgpu); default: $SYNTHSCOPE_DEVICE, else auto. The views always draw on wgpu.
    #[arg(long, value_name = "auto|cpu|gpu")]
    pub device: Option<DeviceChoice>,
    /// Subcommand.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the series found under PATHs (dims, spacing, geometry, value range, warnings).
    Info {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Convert the series found in IN (folders or files) to NIfTI (OUT.nii or OUT.nii.gz).
    Convert {
        /// Inputs, then the output file last.
        #[arg(required = true, num_args = 2..)]
        args: Vec<PathBuf>,
    },
    /// Write the demo phantom (CT, T1 and T2 MR) as DICOM series and NIfTI files.
    Phantom(data::PhantomArgs),
    /// Align MOVING (e.g. MR) to FIXED (e.g. CT): rigid then affine, Mattes mutual information.
    Register(register::RegisterArgs),
    /// Metrics of a prediction against a reference (same grid): MAE, RMSE, PSNR, SSIM, Tenengrad,
    /// UQI over all voxels, inside the mask, and in bone (CT > 300 HU).
    Evaluate(model::EvaluateArgs),
    /// Synthesise the other modality of INPUT with a checkpoint (OUT: .nii/.nii.gz, or a folder for a DICOM series).
    Synthesize(model::SynthesizeArgs),
    /// Networks: parameter counts and encoder shapes.
    Model {
        /// What to show.
        #[command(subcommand)]
        what: model::ModelCmd,
    },
    /// Run the burn self-test on the shared GPU device and print the adapter.
    SelfTest {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        what: bench::Bench,
        /// Where the networks run: auto (measured once, cached), cpu (burn-flex) or gpu (wgpu);
        /// default: $SYNTHSCOPE_DEVICE, else auto.
        #[arg(long, global = true, value_name = "auto|cpu|gpu")]
        device: Option<DeviceChoice>,
    },
    /// Train a synthesis network headless (the Training panel's loop) and write a run folder.
    Train(train::TrainArgs),
    /// Low-dose CT denoising (method 4): the two-step experiment, low-dose simulation.
    Ldct {
        /// What to do.
        #[command(subcommand)]
        what: ldct::LdctCmd,
    },
    /// Train the unpaired US -> MR networks (shared latent, adversarial losses, cross-modal
    /// attention) on simulated phantom ultrasound; evaluate against the phantom's own MR.
    TrainUsMr(usmr::UsMrArgs),
    /// Serve this machine's compute device to other machines (burn's remote backend over
    /// WebSocket): `train`/`synthesize --device ws://HOST:PORT` compute here.
    Serve(serve::ServeArgs),
    /// An experiment: a grid of arms x seeds x folds by patient, tables, tests and an HTML report.
    Experiment(experiment::ExperimentArgs),
    /// Training runs.
    Runs {
        /// What to do.
        #[command(subcommand)]
        what: train::RunsCmd,
    },
    /// Reader studies: blinded, randomised scoring of real against synthetic images.
    Study {
        /// What to do.
        #[command(subcommand)]
        what: study::StudyCmd,
    },
    /// The local study database: import, list, remove, reindex.
    Db(db::DbArgs),
    /// PACS: C-ECHO, search, retrieve and send over DIMSE or DICOMweb.
    Pacs {
        /// What to do.
        #[command(subcommand)]
        what: pacs::PacsCmd,
    },
}

/// The compute device for networks: `asked` (a `--device` flag) when given, else
/// `$SYNTHSCOPE_DEVICE`, else auto (measured once per machine and cached).
pub(crate) fn compute_device(
    asked: Option<DeviceChoice>,
) -> anyhow::Result<&'static ComputeDevice> {
    Ok(match asked {
        Some(c) => crate::gpu::init_compute(c)?,
        None => crate::gpu::compute()?,
    })
}

/// Entry point of the binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        if let Some(c) = cli.device {
            crate::gpu::init_compute(c)?;
        }
        return app::run(AppOptions {
            paths: cli.paths,
            small_demo: cli.small_demo,
            self_test: true,
            autoscroll_frames: cli.autoscroll,
            train_config: cli.train,
            study: None,
            screenshot: cli.screenshot,
        });
    };
    match command {
        Command::Info { paths, json } => data::info(&paths, json),
        Command::Convert { args } => data::convert(args),
        Command::Phantom(a) => data::phantom(&a),
        Command::Register(a) => register::run(&a),
        Command::Evaluate(a) => model::evaluate(&a),
        Command::Synthesize(a) => model::synthesize(&a),
        Command::Model { what } => model::model_cmd(what),
        Command::SelfTest { json } => model::self_test(json),
        Command::Bench { what, device } => bench::run(what, device),
        Command::Train(a) => train::train(&a),
        Command::Ldct { what } => ldct::run(what),
        Command::TrainUsMr(a) => usmr::train(&a),
        Command::Serve(a) => serve::serve(&a),
        Command::Experiment(a) => experiment::experiment(&a),
        Command::Runs { what } => train::runs(what),
        Command::Study { what } => study::run(what),
        Command::Pacs { what } => pacs::run(what),
        Command::Db(a) => db::run(&a),
    }
}
