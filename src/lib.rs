//! SynthScope: a DICOM-aware viewer for cross-modality MR <-> CT synthesis.
//!
//! Data flows as plain values: `io` decodes files into [`volume::Volume`]s, the `app` shows
//! them on the one shared GPU device of [`gpu`], and the command line (`cli`) runs the same
//! code paths headless.

// Index loops over 3-vectors read like the maths they implement.
#![allow(clippy::needless_range_loop)]

pub mod analysis;
pub mod app;
pub mod atomic;
pub mod cli;
pub mod db;
pub mod experiment;
pub mod fuzzing;
pub mod gpu;
pub mod io;
pub mod ldct;
pub mod model;
pub mod pacs;
pub mod register;
pub mod study;
pub mod synth;
pub mod train;
pub mod volume;

/// The message a caught panic carried (`panic!` with a literal or a formatted string), if any.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}
