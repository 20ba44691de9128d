//! A private Orthanc on loopback for tests (as tests/pacs_orthanc.rs starts its own): a temporary
//! config with storage and index in a temp dir, its own DICOM and HTTP ports, our storage SCP
//! registered in DicomModalities, the DICOMweb plugin; uploads through its REST API; killed on
//! drop. Include with `#[path = "common/orthanc.rs"] mod orthanc;`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Orthanc's binary (Debian's package).
pub const ORTHANC: &str = "/usr/sbin/Orthanc";
/// Its DICOMweb plugin (Debian's orthanc-dicomweb).
pub const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";
/// The AE title Orthanc knows us by.
pub const OUR_AET: &str = "SYNTHSCOPE";

/// None when Orthanc and its DICOMweb plugin are installed, else why the test cannot run
/// (.ci/run installs them).
pub fn missing() -> Option<String> {
    for p in [ORTHANC, DICOMWEB_PLUGIN] {
        if !Path::new(p).exists() {
            return Some(format!(
                "{p} is not installed (apt-get install orthanc orthanc-dicomweb)"
            ));
        }
    }
    None
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Orthanc.
pub struct Orthanc {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its DICOM port (AE title ORTHANC).
    pub dicom_port: u16,
    /// Its HTTP port (REST API, DICOMweb under /dicom-web).
    pub http_port: u16,
    /// The port of our storage SCP as registered in DicomModalities (for C-MOVE).
    pub scp_port: u16,
}

impl Orthanc {
    /// Start one and wait until its REST API answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (dicom_port, http_port, scp_port) = (free_port(), free_port(), free_port());
        let cfg = serde_json::json!({
            "Name": "synthscope-test",
            "StorageDirectory": dir.path().join("storage"),
            "IndexDirectory": dir.path().join("index"),
            "DicomAet": "ORTHANC",
            "DicomPort": dicom_port,
            "HttpPort": http_port,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomCheckCalledAet": true,
            "DicomModalities": { "synthscope": [OUR_AET, "127.0.0.1", scp_port] },
            "DicomAlwaysAllowEcho": true,
            "DicomAlwaysAllowStore": true,
            "DicomAlwaysAllowFind": true,
            "DicomAlwaysAllowGet": true,
            "DicomAlwaysAllowMove": true,
            "DicomAssociationCloseDelay": 0,
            "SaveJobs": false,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
        });
        let cfg_path = dir.path().join("orthanc.json");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("orthanc.log")).unwrap();
        let child = Command::new(ORTHANC)
            .arg(&cfg_path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start Orthanc");
        let o = Self {
            child: Some(child),
            dir,
            dicom_port,
            http_port,
            scp_port,
        };
        let t0 = Instant::now();
        loop {
            let last = match o.get("/system") {
                Ok(_) => break,
                Err(e) => e,
            };
            if t0.elapsed() > Duration::from_secs(30) {
                let log =
                    std::fs::read_to_string(o.dir.path().join("orthanc.log")).unwrap_or_default();
                panic!(
                    "Orthanc did not answer on port {http_port} within 30 s ({last}); its log:\n{log}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        o
    }

    /// Its REST root, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Its DICOMweb root.
    pub fn dicomweb(&self) -> String {
        format!("{}/dicom-web", self.url())
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// GET `path` of the REST API as JSON.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        let mut r = Self::agent()
            .get(format!("{}{path}", self.url()))
            .call()
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 200 {
            return Err(format!("HTTP {}", r.status()));
        }
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// POST each file to /instances (Orthanc's REST upload).
    pub fn upload(&self, files: &[PathBuf]) {
        let agent = Self::agent();
        for f in files {
            let bytes = std::fs::read(f).unwrap();
            let r = agent
                .post(format!("{}/instances", self.url()))
                .header("Content-Type", "application/dicom")
                .send(&bytes[..])
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "upload of {}", f.display());
        }
    }

    /// Instances stored.
    pub fn instance_count(&self) -> usize {
        self.get("/instances")
            .unwrap()
            .as_array()
            .map_or(0, |a| a.len())
    }

    /// The instances of series `series_uid` (its Orthanc id looked up by UID), as Orthanc's
    /// JSON per instance (with `MainDicomTags`), or empty.
    pub fn series_instances(&self, series_uid: &str) -> Vec<serde_json::Value> {
        let r = Self::agent()
            .post(format!("{}/tools/lookup", self.url()))
            .send(series_uid)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let hits: serde_json::Value = serde_json::from_str(&r).unwrap();
        let Some(id) = hits
            .as_array()
            .and_then(|a| a.iter().find(|h| h["Type"] == "Series"))
            .and_then(|h| h["ID"].as_str())
        else {
            return Vec::new();
        };
        self.get(&format!("/series/{id}/instances"))
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
