//! DICOMweb client: QIDO-RS (study and series search), WADO-RS (a series as multipart/related
//! application/dicom, streamed to files) and STOW-RS, with basic or bearer authentication,
//! over HTTPS or HTTP.
//!
//! Built on `ureq` 3 (blocking, rustls) rather than the `dicom-web` crate: `dicom-web` is async
//! (reqwest + tokio), has no STOW-RS, and each of its releases pins one dicom-rs minor, so it
//! trails the dicom 0.10 we build on; a blocking client fits the app's worker threads and the
//! multipart framing is a small, bounded parser below.

use super::dimse::{collect_files, instance_file_name};
use super::{Control, FindResult, Level, PacsError, Query, TransferProgress, TransferStats};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to authenticate.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// No Authorization header.
    #[default]
    None,
    /// HTTP basic.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
}

/// A DICOMweb service root, e.g. `http://localhost:8042/dicom-web`.
#[derive(Clone)]
pub struct WebClient {
    base: String,
    auth: Auth,
    agent: ureq::Agent,
    /// Largest single instance accepted in a WADO-RS response.
    pub max_instance_bytes: u64,
}

/// Largest QIDO-RS JSON response we read.
const MAX_JSON_BYTES: u64 = 256 << 20;
/// Largest part header block in a multipart response.
const MAX_PART_HEADERS: usize = 16 * 1024;
/// STOW-RS requests are split so that none holds more than this in memory.
const STOW_BATCH_BYTES: usize = 64 << 20;

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

impl WebClient {
    /// A client for the service root `base` (http or https). `ca_file`: extra PEM roots to
    /// trust (a hospital's own CA); the Mozilla roots otherwise.
    pub fn new(
        base: &str,
        auth: Auth,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, PacsError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PacsError::Invalid(format!(
                "DICOMweb URL '{base}' must start with http:// or https://"
            )));
        }
        let mut cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout.min(Duration::from_secs(15))))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(None)
            .user_agent("SynthScope");
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| PacsError::file(ca, e))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(PacsError::file(ca, "no PEM certificate in the CA file"));
            }
            cfg = cfg.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Self {
            base,
            auth,
            agent: cfg.build().new_agent(),
            max_instance_bytes: 4 << 30,
        })
    }

    /// The service root.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn authorize<B>(&self, rq: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Auth::None => rq,
            Auth::Basic { user, password } => rq.header(
                "Authorization",
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            ),
            Auth::Bearer(t) => rq.header("Authorization", format!("Bearer {}", t.trim())),
        }
    }

    fn transport_error(&self, url: &str, e: ureq::Error) -> PacsError {
        PacsError::Connect {
            addr: url.to_string(),
            reason: super::chain(&e),
        }
    }

    /// An error for a non-2xx response (401/403 as authentication failures).
    fn status_error(&self, url: &str, mut resp: ureq::http::Response<ureq::Body>) -> PacsError {
        let code = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .lossy_utf8(true)
            .read_to_string()
            .unwrap_or_default();
        let body: String = body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(200)
            .collect();
        let detail = if body.is_empty() {
            String::new()
        } else {
            format!(": {body}")
        };
        match code {
            401 | 403 => PacsError::Auth(format!(
                "HTTP {code} from {url}: the server refused our credentials (wrong token or password?){detail}"
            )),
            _ => PacsError::Http(format!("HTTP {code} from {url}{detail}")),
        }
    }

    fn get_json(&self, url: &str, params: &[(&str, String)]) -> Result<Vec<Value>, PacsError> {
        let mut rq = self
            .agent
            .get(url)
            .header("Accept", "application/dicom+json");
        for (k, v) in params {
            rq = rq.query_raw(k, query_value(v));
        }
        let mut resp = self
            .authorize(rq)
            .call()
            .map_err(|e| self.transport_error(url, e))?;
        match resp.status().as_u16() {
            204 => return Ok(Vec::new()),
            200..=299 => {}
            _ => return Err(self.status_error(url, resp)),
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON_BYTES)
            .read_to_string()
            .map_err(|e| PacsError::Http(format!("reading {url}: {}", super::chain(&e))))?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(a)) => Ok(a),
            Ok(_) => Err(PacsError::Http(format!(
                "{url} answered JSON that is not an array"
            ))),
            Err(e) => Err(PacsError::Http(format!("{url} answered invalid JSON: {e}"))),
        }
    }

    /// QIDO-RS search at the query's level.
    pub fn find(&self, q: &Query) -> Result<Vec<FindResult>, PacsError> {
        q.validate()?;
        let mut p: Vec<(&str, String)> = Vec::new();
        let mut add = |k: &'static str, v: &str| {
            if !v.is_empty() {
                p.push((k, v.to_string()));
            }
        };
        add("PatientName", &q.patient_name);
        add("PatientID", &q.patient_id);
        add("StudyDate", &q.study_date);
        add("AccessionNumber", &q.accession);
        add("StudyInstanceUID", &q.study_uid);
        let url = match q.level {
            Level::Study => {
                add("ModalitiesInStudy", &q.modality);
                format!("{}/studies", self.base)
            }
            Level::Series => {
                add("Modality", &q.modality);
                add("SeriesInstanceUID", &q.series_uid);
                format!("{}/series", self.base)
            }
        };
        for f in [
            "00081030", "0008103E", "00201208", "00201209", "00080061", "00080050", "00100010",
            "00100020", "00080020",
        ] {
            p.push(("includefield", f.to_string()));
        }
        let rows = self.get_json(&url, &p)?;
        Ok(rows.iter().map(|r| json_result(q.level, r)).collect())
    }

    /// The study of `series_uid` and its instance count; a clear error when it does not exist.
    pub fn locate_series(&self, series_uid: &str) -> Result<(String, Option<u32>), PacsError> {
        let q = Query {
            level: Level::Series,
            series_uid: series_uid.to_string(),
            ..Default::default()
        };
        self.find(&q)?
            .into_iter()
            .find(|r| r.series_uid == series_uid)
            .map(|r| (r.study_uid, r.images))
            .ok_or_else(|| {
                PacsError::NotFound(format!(
                    "no series with SeriesInstanceUID {series_uid} at {}",
                    self.base
                ))
            })
    }

    /// WADO-RS: retrieve a series (instances as stored) into `out_dir`.
    pub fn get_series(
        &self,
        study_uid: Option<&str>,
        series_uid: &str,
        out_dir: &Path,
        ctl: &mut Control,
    ) -> Result<TransferStats, PacsError> {
        let t0 = Instant::now();
        let (study, total) = match study_uid {
            Some(s) if !s.is_empty() => (s.to_string(), None),
            _ => self.locate_series(series_uid)?,
        };
        std::fs::create_dir_all(out_dir)
            .map_err(|e| PacsError::file(out_dir, format!("cannot create folder: {e}")))?;
        let url = format!("{}/studies/{study}/series/{series_uid}", self.base);
        let mut resp = None;
        for accept in [
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
            "multipart/related; type=\"application/dicom\"",
        ] {
            let r = self
                .authorize(self.agent.get(&url).header("Accept", accept))
                .call()
                .map_err(|e| self.transport_error(&url, e))?;
            match r.status().as_u16() {
                200..=299 => {
                    resp = Some(r);
                    break;
                }
                400 | 406 => continue,
                404 => {
                    return Err(PacsError::NotFound(format!(
                        "no series {series_uid} in study {study} at {}",
                        self.base
                    )));
                }
                _ => return Err(self.status_error(&url, r)),
            }
        }
        let mut resp = resp.ok_or_else(|| {
            PacsError::Http(format!(
                "{url} refused to send multipart/related application/dicom"
            ))
        })?;
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let boundary = boundary_of(&ctype).ok_or_else(|| {
            PacsError::Http(format!(
                "{url} answered '{ctype}', not multipart/related with a boundary"
            ))
        })?;
        let total = total.map(|n| n as usize);
        let mut stats = TransferStats::default();
        let mut reader = resp.body_mut().as_reader();
        let mut on_part = |tmp: &Path, n: u64| -> Result<(), PacsError> {
            let name = part_name(tmp);
            let dest = out_dir.join(name);
            std::fs::rename(tmp, &dest).map_err(|e| PacsError::file(&dest, e))?;
            stats.images += 1;
            stats.bytes += n;
            stats.files.push(dest);
            (ctl.progress)(TransferProgress {
                done: stats.images,
                total,
                bytes: stats.bytes,
            });
            if ctl.cancelled() {
                return Err(PacsError::Cancelled);
            }
            Ok(())
        };
        read_multipart(
            &mut reader,
            &boundary,
            out_dir,
            self.max_instance_bytes,
            &mut on_part,
        )
        .map_err(|e| match e {
            PacsError::Protocol(m) => PacsError::Lost {
                addr: url.clone(),
                op: "WADO-RS",
                progress: String::new(),
                reason: m,
            },
            e => e,
        })?;
        stats.seconds = t0.elapsed().as_secs_f64();
        if stats.images == 0 {
            return Err(PacsError::NotFound(format!(
                "WADO-RS of series {series_uid} returned no instances"
            )));
        }
        Ok(stats)
    }

    /// STOW-RS: store Part-10 files (or folders of them), in batches of at most 64 MB.
    pub fn store(&self, paths: &[PathBuf], ctl: &mut Control) -> Result<TransferStats, PacsError> {
        let t0 = Instant::now();
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                for f in collect_files(std::slice::from_ref(p))? {
                    if is_part10(&f) {
                        files.push(f);
                    }
                }
            } else if is_part10(p) {
                files.push(p.clone());
            } else {
                return Err(PacsError::file(p, "not a DICOM Part-10 file"));
            }
        }
        if files.is_empty() {
            return Err(PacsError::Invalid("no DICOM files to send".into()));
        }
        let boundary = format!(
            "synthscope-{:x}",
            t0.elapsed().as_nanos() ^ 0x5eed_cafe_f00d
        );
        let url = format!("{}/studies", self.base);
        let mut stats = TransferStats::default();
        let mut i = 0;
        while i < files.len() {
            if ctl.cancelled() {
                return Err(PacsError::Cancelled);
            }
            let mut body = Vec::new();
            let start = i;
            while i < files.len() && (i == start || body.len() < STOW_BATCH_BYTES) {
                let bytes = std::fs::read(&files[i]).map_err(|e| PacsError::file(&files[i], e))?;
                write!(
                    body,
                    "--{boundary}\r\nContent-Type: application/dicom\r\n\r\n"
                )
                .map_err(|e| PacsError::Http(e.to_string()))?;
                body.extend_from_slice(&bytes);
                body.extend_from_slice(b"\r\n");
                stats.bytes += bytes.len() as u64;
                i += 1;
            }
            write!(body, "--{boundary}--\r\n").map_err(|e| PacsError::Http(e.to_string()))?;
            let rq = self
                .agent
                .post(&url)
                .header(
                    "Content-Type",
                    format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                )
                .header("Accept", "application/dicom+json");
            let mut resp = self
                .authorize(rq)
                .send(&body[..])
                .map_err(|e| self.transport_error(&url, e))?;
            let code = resp.status().as_u16();
            if !(200..=299).contains(&code) && code != 409 {
                return Err(self.status_error(&url, resp));
            }
            let text = resp
                .body_mut()
                .with_config()
                .limit(MAX_JSON_BYTES)
                .read_to_string()
                .unwrap_or_default();
            let failed = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("00081198")
                        .and_then(|f| f.get("Value"))
                        .and_then(|f| f.as_array())
                        .map(|a| a.len())
                })
                .unwrap_or(0);
            if failed > 0 || code == 409 {
                return Err(PacsError::Http(format!(
                    "STOW-RS to {url}: the server refused {} of {} instances (HTTP {code})",
                    failed.max(1),
                    i - start
                )));
            }
            stats.images += i - start;
            (ctl.progress)(TransferProgress {
                done: stats.images,
                total: Some(files.len()),
                bytes: stats.bytes,
            });
        }
        stats.seconds = t0.elapsed().as_secs_f64();
        Ok(stats)
    }
}

/// A query value percent-encoded except for the characters DICOM matching uses (`^*?-.`):
/// some servers (Orthanc's DICOMweb plugin 1.x) match on the raw query string, so `%5E` for `^`
/// would never match a name.
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"^*?-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_part10(p: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

/// The file name of a received part: its SOP instance UID when its meta says.
fn part_name(tmp: &Path) -> String {
    let bounded = crate::io::dicom::bounds::check_file(tmp, crate::io::dicom::bounds::Extent::Meta);
    let uid = std::fs::File::open(tmp)
        .ok()
        .filter(|_| bounded.is_ok())
        .and_then(|f| {
            let mut r = std::io::BufReader::new(f);
            let mut pre = [0u8; 128];
            r.read_exact(&mut pre).ok()?;
            dicom::object::FileMetaTable::from_reader(&mut r)
                .ok()
                .map(|m| m.media_storage_sop_instance_uid().to_string())
        });
    match uid {
        Some(u) => instance_file_name(&u),
        None => tmp
            .file_name()
            .map(|n| n.to_string_lossy().replace(".part", ".dcm"))
            .unwrap_or_else(|| "instance.dcm".into()),
    }
}

/// The boundary parameter of a multipart content type.
fn boundary_of(ctype: &str) -> Option<String> {
    if !ctype.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    ctype
        .split(';')
        .skip(1)
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim().eq_ignore_ascii_case("boundary"))
                .then(|| v.trim().trim_matches('"').to_string())
        })
        .filter(|b| !b.is_empty() && b.len() <= 200)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Stream a multipart body: each part's body goes to a temporary file in `dir`, then
/// `on_part(file, bytes)`. Part headers and bodies are bounded.
fn read_multipart(
    r: &mut dyn Read,
    boundary: &str,
    dir: &Path,
    max_part: u64,
    on_part: &mut dyn FnMut(&Path, u64) -> Result<(), PacsError>,
) -> Result<(), PacsError> {
    let delim = format!("\r\n--{boundary}").into_bytes();
    // The body starts with "--boundary" (no CRLF before it); prepend one so every delimiter
    // looks the same.
    let mut buf: Vec<u8> = b"\r\n".to_vec();
    let mut chunk = vec![0u8; 1 << 20];
    let mut eof = false;
    let mut fill = |buf: &mut Vec<u8>, eof: &mut bool| -> Result<(), PacsError> {
        if *eof {
            return Ok(());
        }
        let n = loop {
            match r.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PacsError::Protocol(format!("reading the response: {e}"))),
            }
        };
        if n == 0 {
            *eof = true;
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    let mut index = 0usize;
    loop {
        // Find the next delimiter (skipping any preamble).
        let pos = loop {
            if let Some(p) = find(&buf, &delim) {
                break p;
            }
            if eof {
                return Err(PacsError::Protocol(
                    "the multipart response ended before its closing boundary".into(),
                ));
            }
            if buf.len() > MAX_PART_HEADERS + delim.len() {
                let keep = buf.len() - delim.len();
                buf.drain(..keep);
            }
            fill(&mut buf, &mut eof)?;
        };
        buf.drain(..pos + delim.len());
        while buf.len() < 2 && !eof {
            fill(&mut buf, &mut eof)?;
        }
        if buf.starts_with(b"--") {
            return Ok(());
        }
        // Part headers up to the blank line.
        let hdr_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p;
            }
            if buf.len() > MAX_PART_HEADERS {
                return Err(PacsError::Protocol(format!(
                    "multipart part headers longer than {MAX_PART_HEADERS} bytes"
                )));
            }
            if eof {
                return Err(PacsError::Protocol(
                    "the multipart response ended inside part headers".into(),
                ));
            }
            fill(&mut buf, &mut eof)?;
        };
        let headers = String::from_utf8_lossy(&buf[..hdr_end]).to_ascii_lowercase();
        buf.drain(..hdr_end + 4);
        if let Some(ct) = headers
            .lines()
            .find_map(|l| l.trim().strip_prefix("content-type:"))
            && !ct.trim().starts_with("application/dicom")
        {
            return Err(PacsError::Protocol(format!(
                "part {} is '{}', not application/dicom",
                index + 1,
                ct.trim()
            )));
        }
        index += 1;
        let tmp = dir.join(format!("wado-{index:06}.part"));
        let file = std::fs::File::create(&tmp).map_err(|e| PacsError::file(&tmp, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut written = 0u64;
        let werr = |e: std::io::Error| PacsError::file(&tmp, e);
        loop {
            if let Some(p) = find(&buf, &delim) {
                w.write_all(&buf[..p]).map_err(werr)?;
                written += p as u64;
                // keep the delimiter for the outer loop
                buf.drain(..p);
                break;
            }
            let safe = buf.len().saturating_sub(delim.len());
            w.write_all(&buf[..safe]).map_err(werr)?;
            written += safe as u64;
            buf.drain(..safe);
            if written > max_part {
                drop(w);
                let _ = std::fs::remove_file(&tmp);
                return Err(PacsError::Protocol(format!(
                    "an instance in the response is larger than {max_part} bytes"
                )));
            }
            if eof {
                drop(w);
                let _ = std::fs::remove_file(&tmp);
                return Err(PacsError::Protocol(format!(
                    "the response ended inside instance {index}"
                )));
            }
            fill(&mut buf, &mut eof)?;
        }
        w.flush().map_err(werr)?;
        drop(w);
        if written > max_part {
            let _ = std::fs::remove_file(&tmp);
            return Err(PacsError::Protocol(format!(
                "an instance in the response is larger than {max_part} bytes"
            )));
        }
        on_part(&tmp, written)?;
    }
}

fn json_str(row: &Value, tag: &str) -> String {
    let Some(v) = row
        .get(tag)
        .and_then(|e| e.get("Value"))
        .and_then(|v| v.as_array())
    else {
        return String::new();
    };
    v.iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Object(o) => o
                .get("Alphabetic")
                .and_then(|a| a.as_str())
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\\")
}

fn json_result(level: Level, row: &Value) -> FindResult {
    let (modality, description, images) = match level {
        Level::Study => (
            json_str(row, "00080061"),
            json_str(row, "00081030"),
            json_str(row, "00201208"),
        ),
        Level::Series => (
            json_str(row, "00080060"),
            json_str(row, "0008103E"),
            json_str(row, "00201209"),
        ),
    };
    FindResult {
        level,
        patient_name: json_str(row, "00100010"),
        patient_id: json_str(row, "00100020"),
        study_uid: json_str(row, "0020000D"),
        series_uid: if level == Level::Series {
            json_str(row, "0020000E")
        } else {
            String::new()
        },
        modality,
        study_date: json_str(row, "00080020"),
        description,
        images: images.parse().ok(),
        accession: json_str(row, "00080050"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn multipart_parts_split_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\nAAAA\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nB\r\n--B\r\n--XyZ--\r\n";
        // A reader that returns 3 bytes at a time.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(3).min(b.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut got = Vec::new();
        read_multipart(&mut Slow(body), "XyZ", dir.path(), 1000, &mut |p, n| {
            got.push((std::fs::read(p).unwrap(), n));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(b"AAAA".to_vec(), 4), (b"B\r\n--B".to_vec(), 6)]);
        // truncated: an error, not a panic
        let e = read_multipart(
            &mut Slow(&body[..50]),
            "XyZ",
            dir.path(),
            1000,
            &mut |_, _| Ok(()),
        );
        assert!(e.is_err());
        assert_eq!(
            boundary_of("multipart/related; type=\"application/dicom\"; boundary=\"ab\""),
            Some("ab".into())
        );
    }
}
