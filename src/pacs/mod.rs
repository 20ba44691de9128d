//! PACS networking: DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) on dicom-ul's associations,
//! a storage SCP for C-MOVE, and a DICOMweb client (QIDO-RS, WADO-RS, STOW-RS).
//!
//! Every long operation takes a progress callback and a cancel flag, so the app can run it on a
//! worker with a Cancel button; every failure is one [`PacsError`] line. Retrieved instances are
//! written as Part-10 files into a folder the caller names (the bytes as the PACS sent them: a
//! JPEG 2000 image stays JPEG 2000), for the DICOM loader or the study database to pick up.

pub mod command;
pub mod dimse;
pub mod scp;
pub mod web;

use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What went wrong talking to a PACS, as one line.
#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    /// A malformed address or argument.
    #[error("{0}")]
    Invalid(String),
    /// Nothing answers at the address.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// host:port or URL.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The peer refused the association (wrong AE title, unknown calling AE...).
    #[error(
        "association rejected by {addr} (called AE '{called}', calling AE '{calling}'): {reason}"
    )]
    Rejected {
        /// host:port.
        addr: String,
        /// The AE title we called.
        called: String,
        /// Our AE title.
        calling: String,
        /// The reject reason.
        reason: String,
    },
    /// The peer broke the protocol, or sent something we bound.
    #[error("DICOM protocol error: {0}")]
    Protocol(String),
    /// The connection dropped in the middle of an operation.
    #[error("connection to {addr} lost during {op}{progress}: {reason}")]
    Lost {
        /// host:port or URL.
        addr: String,
        /// The operation, e.g. C-GET.
        op: &'static str,
        /// ", after N of M images" or empty.
        progress: String,
        /// Why.
        reason: String,
    },
    /// The operation answered a failure status.
    #[error("{op} failed: status 0x{status:04X} ({text}){comment}")]
    Status {
        /// The operation.
        op: &'static str,
        /// The DIMSE status.
        status: u16,
        /// Its meaning.
        text: &'static str,
        /// ": error comment" or empty.
        comment: String,
    },
    /// Nothing matched (a series UID that does not exist...).
    #[error("{0}")]
    NotFound(String),
    /// The server refused our credentials.
    #[error("{0}")]
    Auth(String),
    /// An HTTP failure (DICOMweb).
    #[error("{0}")]
    Http(String),
    /// Cancelled by the user.
    #[error("cancelled")]
    Cancelled,
    /// A local file problem.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl PacsError {
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// A DIMSE peer: `AET@HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AeAddress {
    /// Called AE title.
    pub ae_title: String,
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl AeAddress {
    /// Parse `AET@HOST:PORT`.
    pub fn parse(s: &str) -> Result<Self, PacsError> {
        let bad = |why: &str| {
            PacsError::Invalid(format!(
                "bad PACS address '{s}': {why} (expected AET@HOST:PORT, e.g. ORTHANC@localhost:4242)"
            ))
        };
        let (aet, rest) = s.split_once('@').ok_or_else(|| bad("no '@'"))?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no ':PORT'"))?;
        check_ae_title(aet).map_err(|e| bad(&e))?;
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("port is not a number in 1..65535"))?;
        Ok(Self {
            ae_title: aet.to_string(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }

    /// `host:port` for sockets and messages.
    pub fn socket(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for AeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.ae_title, self.socket())
    }
}

/// An AE title is 1-16 printable ASCII characters, not all spaces, no backslash.
pub fn check_ae_title(aet: &str) -> Result<(), String> {
    if aet.trim().is_empty() || aet.len() > 16 {
        return Err(format!("AE title '{aet}' must have 1 to 16 characters"));
    }
    if !aet.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        return Err(format!(
            "AE title '{aet}' may only hold printable ASCII without '\\'"
        ));
    }
    Ok(())
}

/// Settings of our side of an association.
#[derive(Clone, Debug)]
pub struct DimseOptions {
    /// Our (calling) AE title.
    pub calling_ae_title: String,
    /// Largest PDU we accept (strictly enforced on receive).
    pub max_pdu: u32,
    /// Socket read/write timeout: a silent peer fails after this long.
    pub timeout: Duration,
    /// Largest single instance we accept (bytes); a bigger one is an error, not an allocation.
    pub max_instance_bytes: u64,
}

impl Default for DimseOptions {
    fn default() -> Self {
        Self {
            calling_ae_title: "SYNTHSCOPE".into(),
            max_pdu: 1 << 20,
            timeout: Duration::from_secs(60),
            max_instance_bytes: 4 << 30,
        }
    }
}

/// Query/retrieve level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One result per study.
    #[default]
    Study,
    /// One result per series.
    Series,
}

impl Level {
    /// QueryRetrieveLevel value.
    pub fn code(self) -> &'static str {
        match self {
            Level::Study => "STUDY",
            Level::Series => "SERIES",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "study" => Ok(Level::Study),
            "series" => Ok(Level::Series),
            _ => Err(format!("level '{s}' is not study or series")),
        }
    }
}

/// A study or series search. Empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Study or series level.
    pub level: Level,
    /// PatientName, `*` and `?` wildcards allowed.
    pub patient_name: String,
    /// PatientID (exact, or with wildcards).
    pub patient_id: String,
    /// StudyDate range `YYYYMMDD-YYYYMMDD` (either end may be open) or one date.
    pub study_date: String,
    /// Modality (series level) or ModalitiesInStudy (study level).
    pub modality: String,
    /// AccessionNumber.
    pub accession: String,
    /// StudyInstanceUID (to list one study's series).
    pub study_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
}

impl Query {
    /// Check the filters' syntax before any network traffic.
    pub fn validate(&self) -> Result<(), PacsError> {
        if !self.study_date.is_empty() {
            let ok_date =
                |d: &str| d.is_empty() || (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
            let ok = match self.study_date.split_once('-') {
                Some((a, b)) => ok_date(a) && ok_date(b) && !(a.is_empty() && b.is_empty()),
                None => ok_date(&self.study_date) && !self.study_date.is_empty(),
            };
            if !ok {
                return Err(PacsError::Invalid(format!(
                    "study date '{}' is not YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-",
                    self.study_date
                )));
            }
        }
        for (name, v) in [
            ("patient name", &self.patient_name),
            ("patient ID", &self.patient_id),
            ("modality", &self.modality),
            ("accession number", &self.accession),
        ] {
            if v.contains('\\') || v.len() > 64 {
                return Err(PacsError::Invalid(format!(
                    "{name} '{v}' must be at most 64 characters without '\\'"
                )));
            }
        }
        Ok(())
    }
}

/// One study or series found.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FindResult {
    /// "study" or "series".
    pub level: Level,
    /// PatientName.
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// SeriesInstanceUID (empty at study level).
    pub series_uid: String,
    /// Modality, or ModalitiesInStudy joined by '\' at study level.
    pub modality: String,
    /// StudyDate.
    pub study_date: String,
    /// SeriesDescription (series level) or StudyDescription (study level).
    pub description: String,
    /// Number of instances, when the PACS says.
    pub images: Option<u32>,
    /// AccessionNumber.
    #[serde(skip)]
    pub accession: String,
}

/// How far a retrieval or a send has got.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TransferProgress {
    /// Instances done.
    pub done: usize,
    /// Instances in all, when known.
    pub total: Option<usize>,
    /// Bytes of instances so far.
    pub bytes: u64,
}

/// What a retrieval or a send did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TransferStats {
    /// Instances transferred.
    pub images: usize,
    /// Bytes of instances.
    pub bytes: u64,
    /// Wall time (s).
    pub seconds: f64,
    /// Instances the PACS reported as failed (or warnings).
    pub failed: usize,
    /// Files written (retrievals).
    pub files: Vec<PathBuf>,
}

impl TransferStats {
    /// Instances per second.
    pub fn images_per_s(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }
    /// Megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
    /// "N images, X MB in T s: A images/s, B MB/s".
    pub fn summary(&self) -> String {
        format!(
            "{} images, {:.1} MB in {:.2} s: {:.1} images/s, {:.1} MB/s",
            self.images,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.images_per_s(),
            self.mb_per_s()
        )
    }
}

/// The progress callback and cancel flag of a long operation.
pub struct Control<'a> {
    /// Called after each instance.
    pub progress: &'a mut dyn FnMut(TransferProgress),
    /// Set (by another thread) to stop.
    pub cancel: &'a AtomicBool,
}

impl Control<'_> {
    /// True once cancellation was asked for.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Run `f` with a do-nothing progress and a flag that is never set.
pub fn without_control<T>(f: impl FnOnce(&mut Control) -> T) -> T {
    let cancel = AtomicBool::new(false);
    let mut nop = |_: TransferProgress| {};
    let mut c = Control {
        progress: &mut nop,
        cancel: &cancel,
    };
    f(&mut c)
}

/// Transfer syntaxes we accept for images: what our decoders read, so a PACS hands compressed
/// images over as stored.
pub const STORAGE_TRANSFER_SYNTAXES: [&str; 12] = [
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.70", // JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.57", // JPEG lossless
    "1.2.840.10008.1.2.4.50", // JPEG baseline
    "1.2.840.10008.1.2.4.51", // JPEG extended
    "1.2.840.10008.1.2.5",    // RLE lossless
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
];

/// Transfer syntaxes for query identifiers.
pub const QUERY_TRANSFER_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"];

/// Storage SOP classes we ask a PACS to send us during C-GET (10 x 12 transfer syntaxes plus the
/// retrieve context fit the 128 presentation contexts an association may hold).
pub const STORAGE_SOP_CLASSES: [&str; 10] = [
    "1.2.840.10008.5.1.4.1.1.2",     // CT image
    "1.2.840.10008.5.1.4.1.1.2.1",   // enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",     // MR image
    "1.2.840.10008.5.1.4.1.1.4.1",   // enhanced MR
    "1.2.840.10008.5.1.4.1.1.128",   // PET
    "1.2.840.10008.5.1.4.1.1.7",     // secondary capture
    "1.2.840.10008.5.1.4.1.1.7.2",   // multi-frame grey byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",   // multi-frame grey word SC
    "1.2.840.10008.5.1.4.1.1.481.2", // RT dose
    "1.2.840.10008.5.1.4.1.1.20",    // NM
];

/// Verification SOP class.
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// Study Root Query/Retrieve - FIND.
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
/// Study Root Query/Retrieve - MOVE.
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// Study Root Query/Retrieve - GET.
pub const STUDY_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = AeAddress::parse("ORTHANC@127.0.0.1:4242").unwrap();
        assert_eq!(
            (a.ae_title.as_str(), a.host.as_str(), a.port),
            ("ORTHANC", "127.0.0.1", 4242)
        );
        assert_eq!(a.socket(), "127.0.0.1:4242");
        for bad in [
            "ORTHANC",
            "@h:1",
            "A@h",
            "A@h:0",
            "A@h:x",
            "A@:1",
            "ABCDEFGHIJKLMNOPQ@h:1",
        ] {
            let e = AeAddress::parse(bad).unwrap_err().to_string();
            assert!(e.contains("AET@HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn date_ranges() {
        for ok in ["20240101", "20240101-20241231", "-20240101", "20240101-"] {
            let q = Query {
                study_date: ok.into(),
                ..Default::default()
            };
            assert!(q.validate().is_ok(), "{ok}");
        }
        for bad in ["2024", "2024-01-01", "-", "x"] {
            let q = Query {
                study_date: bad.into(),
                ..Default::default()
            };
            assert!(q.validate().is_err(), "{bad}");
        }
    }
}
