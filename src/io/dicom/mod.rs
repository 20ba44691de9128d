//! DICOM: scan files into series ([`scan`]), decode a series into a volume ([`decode`]), write
//! a volume as a new series ([`write`]); attribute accessors shared by both sides.

mod attributes;
pub mod bounds;
pub mod codestream;
pub mod decode;
pub mod scan;
pub mod write;

pub use attributes::transfer_syntax_name;
pub use decode::decode_series;
pub use scan::{ScanResult, SeriesScan, SliceRef, scan, series_geometry};
