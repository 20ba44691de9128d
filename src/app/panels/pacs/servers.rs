//! The PACS servers the app knows (File > PACS servers): a DIMSE node (called AE title,
//! host, port, our AE title, the port of our storage SCP for C-MOVE) or a DICOMweb service
//! (URL, basic or bearer authentication with the secret in a file), saved as JSON beside the
//! workspace settings. Each server answers the four things the app asks of a PACS: test the
//! connection, search, retrieve a series into a folder, and send files. Plain Rust, no egui:
//! the windows in `settings.rs` and `query.rs` only draw and edit these values.

use crate::pacs::dimse::{self, SeriesKey};
use crate::pacs::scp::StorageScp;
use crate::pacs::web::{Auth, WebClient};
use crate::pacs::{
    AeAddress, Control, DimseOptions, FindResult, Level, PacsError, Query, TransferStats,
    check_ae_title,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How a DICOMweb server wants us to authenticate. Secrets stay in their own files (readable
/// by the user only, as the command line's `--token-file` / `--password-file`), never in the
/// settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WebAuth {
    /// No Authorization header.
    #[default]
    None,
    /// HTTP basic: the user, and the file holding the password.
    Basic {
        /// User name.
        user: String,
        /// File holding the password.
        password_file: PathBuf,
    },
    /// `Authorization: Bearer`, the token read from this file.
    Bearer {
        /// File holding the token.
        token_file: PathBuf,
    },
}

/// Where a server is and how to talk to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Endpoint {
    /// DICOM networking (C-ECHO, C-FIND, C-GET or C-MOVE, C-STORE).
    Dimse {
        /// The PACS's (called) AE title.
        called_ae: String,
        /// Host name or IP.
        host: String,
        /// Its DICOM port.
        port: u16,
        /// Our (calling) AE title.
        our_ae: String,
        /// Retrieve by C-MOVE to our storage SCP on this port (the PACS must know our AE
        /// title, host and this port); None: C-GET.
        move_port: Option<u16>,
    },
    /// DICOMweb (QIDO-RS, WADO-RS, STOW-RS).
    Web {
        /// Service root, e.g. `http://localhost:8042/dicom-web`.
        url: String,
        /// Authentication.
        auth: WebAuth,
    },
}

/// One configured PACS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacsServer {
    /// The name the menus show.
    pub name: String,
    /// Address and protocol.
    pub endpoint: Endpoint,
}

/// Seconds a silent server is waited for.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What [`PacsServer::retrieve`] did: the transfer and how it went over the wire.
pub struct Retrieval {
    /// Images, bytes, time.
    pub stats: TransferStats,
    /// "C-GET", "C-MOVE" or "WADO-RS".
    pub how: &'static str,
}

impl PacsServer {
    /// A DIMSE server with the usual defaults (Orthanc's AE title and port on this machine).
    pub fn new_dimse() -> Self {
        Self {
            name: "New DICOM server".into(),
            endpoint: Endpoint::Dimse {
                called_ae: "ORTHANC".into(),
                host: "localhost".into(),
                port: 4242,
                our_ae: "SYNTHSCOPE".into(),
                move_port: None,
            },
        }
    }

    /// A DICOMweb server with the usual defaults (Orthanc's plugin on this machine).
    pub fn new_web() -> Self {
        Self {
            name: "New DICOMweb server".into(),
            endpoint: Endpoint::Web {
                url: "http://localhost:8042/dicom-web".into(),
                auth: WebAuth::None,
            },
        }
    }

    /// Check the settings before any traffic: one line naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the server needs a name".into());
        }
        match &self.endpoint {
            Endpoint::Dimse {
                called_ae,
                host,
                port,
                our_ae,
                move_port,
            } => {
                check_ae_title(called_ae).map_err(|e| format!("{}: called {e}", self.name))?;
                check_ae_title(our_ae).map_err(|e| format!("{}: our {e}", self.name))?;
                if host.trim().is_empty() {
                    return Err(format!("{}: the host is empty", self.name));
                }
                if *port == 0 {
                    return Err(format!("{}: the port must be 1..65535", self.name));
                }
                if *move_port == Some(0) {
                    return Err(format!("{}: the C-MOVE port must be 1..65535", self.name));
                }
            }
            Endpoint::Web { url, auth } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "{}: the DICOMweb URL '{url}' must start with http:// or https://",
                        self.name
                    ));
                }
                match auth {
                    WebAuth::None => {}
                    WebAuth::Basic {
                        user,
                        password_file,
                    } => {
                        if user.is_empty() {
                            return Err(format!(
                                "{}: basic authentication needs a user",
                                self.name
                            ));
                        }
                        if password_file.as_os_str().is_empty() {
                            return Err(format!(
                                "{}: basic authentication needs a password file",
                                self.name
                            ));
                        }
                    }
                    WebAuth::Bearer { token_file } => {
                        if token_file.as_os_str().is_empty() {
                            return Err(format!(
                                "{}: bearer authentication needs a token file",
                                self.name
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// "DIMSE ORTHANC@localhost:4242" or the DICOMweb URL.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Dimse {
                called_ae,
                host,
                port,
                move_port,
                ..
            } => {
                let how = match move_port {
                    Some(p) => format!(", C-MOVE to our port {p}"),
                    None => ", C-GET".into(),
                };
                format!("DIMSE {called_ae}@{host}:{port}{how}")
            }
            Endpoint::Web { url, auth } => {
                let a = match auth {
                    WebAuth::None => "",
                    WebAuth::Basic { .. } => ", basic auth",
                    WebAuth::Bearer { .. } => ", bearer token",
                };
                format!("DICOMweb {url}{a}")
            }
        }
    }

    fn dimse(&self) -> Result<(AeAddress, DimseOptions, Option<u16>), PacsError> {
        self.validate().map_err(PacsError::Invalid)?;
        let Endpoint::Dimse {
            called_ae,
            host,
            port,
            our_ae,
            move_port,
        } = &self.endpoint
        else {
            return Err(PacsError::Invalid(format!(
                "{} is not a DIMSE server",
                self.name
            )));
        };
        let peer = AeAddress {
            ae_title: called_ae.clone(),
            host: host.trim().to_string(),
            port: *port,
        };
        let opts = DimseOptions {
            calling_ae_title: our_ae.clone(),
            timeout: TIMEOUT,
            ..Default::default()
        };
        Ok((peer, opts, *move_port))
    }

    fn web(&self) -> Result<WebClient, PacsError> {
        self.validate().map_err(PacsError::Invalid)?;
        let Endpoint::Web { url, auth } = &self.endpoint else {
            return Err(PacsError::Invalid(format!(
                "{} is not a DICOMweb server",
                self.name
            )));
        };
        let auth = match auth {
            WebAuth::None => Auth::None,
            WebAuth::Basic {
                user,
                password_file,
            } => Auth::Basic {
                user: user.clone(),
                password: read_secret(password_file, "password")?,
            },
            WebAuth::Bearer { token_file } => Auth::Bearer(read_secret(token_file, "token")?),
        };
        WebClient::new(url, auth, None, TIMEOUT)
    }

    fn is_web(&self) -> bool {
        matches!(self.endpoint, Endpoint::Web { .. })
    }

    /// Test the connection: C-ECHO (DIMSE) or a QIDO-RS search that asks for one study
    /// (DICOMweb). The one-line answer names what was done and how long it took.
    pub fn test(&self) -> Result<String, PacsError> {
        let t0 = Instant::now();
        if self.is_web() {
            let c = self.web()?;
            let n = c.find(&Query::default())?.len();
            return Ok(format!(
                "QIDO-RS {}: answered in {:.0} ms ({n} studies)",
                c.base(),
                t0.elapsed().as_secs_f64() * 1e3
            ));
        }
        let (peer, opts, _) = self.dimse()?;
        let rtt = dimse::echo(&peer, &opts)?;
        Ok(format!(
            "C-ECHO {peer} as {}: success in {:.1} ms",
            opts.calling_ae_title,
            rtt.as_secs_f64() * 1e3
        ))
    }

    /// Search (C-FIND or QIDO-RS).
    pub fn find(&self, q: &Query, ctl: &mut Control) -> Result<Vec<FindResult>, PacsError> {
        q.validate()?;
        if self.is_web() {
            return self.web()?.find(q);
        }
        let (peer, opts, _) = self.dimse()?;
        dimse::find(&peer, &opts, q, ctl)
    }

    /// Retrieve series `series_uid` (of study `study_uid`, looked up when empty) into
    /// `out_dir`: WADO-RS, C-MOVE to our own storage SCP when a C-MOVE port is set, else C-GET.
    pub fn retrieve(
        &self,
        study_uid: &str,
        series_uid: &str,
        out_dir: &Path,
        ctl: &mut Control,
    ) -> Result<Retrieval, PacsError> {
        if self.is_web() {
            let study = (!study_uid.is_empty()).then_some(study_uid);
            let stats = self.web()?.get_series(study, series_uid, out_dir, ctl)?;
            return Ok(Retrieval {
                stats,
                how: "WADO-RS",
            });
        }
        let (peer, opts, move_port) = self.dimse()?;
        let key = SeriesKey {
            study_uid: study_uid.to_string(),
            series_uid: series_uid.to_string(),
        };
        let Some(port) = move_port else {
            let stats = dimse::get_series(&peer, &opts, &key, out_dir, ctl)?;
            return Ok(Retrieval {
                stats,
                how: "C-GET",
            });
        };
        let t0 = Instant::now();
        let scp = StorageScp::start(&opts.calling_ae_title, "0.0.0.0", port, out_dir, &opts)?;
        let moved = dimse::move_series(&peer, &opts, &key, &opts.calling_ae_title, ctl);
        let bytes = scp.received().bytes.load(Ordering::Relaxed);
        let errors = scp
            .received()
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        // The last sub-operation's file may still be being written: stop (which waits for the
        // open associations) before counting the files.
        let files = {
            let f = scp.take_files();
            scp.stop();
            f
        };
        let (done, failed) = moved?;
        if let Some(e) = errors.first() {
            return Err(PacsError::Protocol(format!("our storage SCP: {e}")));
        }
        if files.len() != done {
            return Err(PacsError::Protocol(format!(
                "C-MOVE reported {done} images moved but our storage SCP stored {}",
                files.len()
            )));
        }
        Ok(Retrieval {
            stats: TransferStats {
                images: files.len(),
                bytes,
                seconds: t0.elapsed().as_secs_f64(),
                failed,
                files,
            },
            how: "C-MOVE",
        })
    }

    /// Send files or folders of them (C-STORE or STOW-RS); returns how it went and what was used.
    pub fn send(
        &self,
        paths: &[PathBuf],
        ctl: &mut Control,
    ) -> Result<(TransferStats, &'static str), PacsError> {
        if self.is_web() {
            return Ok((self.web()?.store(paths, ctl)?, "STOW-RS"));
        }
        let (peer, opts, _) = self.dimse()?;
        Ok((dimse::store(&peer, &opts, paths, ctl)?, "C-STORE"))
    }

    /// A series-level search for the series of study `study_uid`.
    pub fn series_query(study_uid: &str) -> Query {
        Query {
            level: Level::Series,
            study_uid: study_uid.to_string(),
            ..Default::default()
        }
    }
}

fn read_secret(path: &Path, what: &str) -> Result<String, PacsError> {
    let s = crate::io::read_text(path, 1 << 20)
        .map_err(|e| PacsError::file(path, format!("cannot read the {what} file: {e}")))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(PacsError::file(path, format!("the {what} file is empty")));
    }
    Ok(s)
}

/// What is saved.
#[derive(Serialize, Deserialize, Default)]
struct Saved {
    servers: Vec<PacsServer>,
}

/// The servers file: `pacs-servers.json` beside the workspace settings
/// ([`crate::app::workspace::settings_path`]).
pub fn servers_path() -> Option<PathBuf> {
    let s = crate::app::workspace::settings_path()?;
    Some(s.with_file_name("pacs-servers.json"))
}

/// Read the servers saved in `path` (none when the file does not exist); the error names the
/// file.
pub fn read_servers(path: &Path) -> Result<Vec<PacsServer>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
        .map_err(|e| format!("{}: cannot read the PACS servers: {e}", path.display()))?;
    serde_json::from_str::<Saved>(&text)
        .map(|s| s.servers)
        .map_err(|e| format!("{}: not a PACS server list ({e})", path.display()))
}

/// Save `servers` to `path` (atomically: a crash leaves the old list or the new one).
pub fn write_servers(path: &Path, servers: &[PacsServer]) -> Result<(), String> {
    let json = serde_json::to_string_pretty(&Saved {
        servers: servers.to_vec(),
    })
    .map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create folder: {e}", dir.display()))?;
    }
    crate::atomic::write(path, json.as_bytes()).map_err(|e| format!("Saving the PACS servers: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pacs-servers.json");
        assert_eq!(read_servers(&path).unwrap(), Vec::new());
        let mut web = PacsServer::new_web();
        web.endpoint = Endpoint::Web {
            url: "https://pacs.example/dicom-web".into(),
            auth: WebAuth::Bearer {
                token_file: "/home/u/.pacs-token".into(),
            },
        };
        let servers = vec![PacsServer::new_dimse(), web];
        write_servers(&path, &servers).unwrap();
        assert_eq!(read_servers(&path).unwrap(), servers);
        std::fs::write(&path, "{\"servers\": 3}").unwrap();
        let e = read_servers(&path).unwrap_err();
        assert!(
            e.contains("pacs-servers.json") && e.contains("not a PACS server list"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_are_named_before_any_traffic() {
        let mut s = PacsServer::new_dimse();
        assert!(s.validate().is_ok());
        if let Endpoint::Dimse { called_ae, .. } = &mut s.endpoint {
            *called_ae = "A_TITLE_FAR_TOO_LONG".into();
        }
        let e = s.test().unwrap_err().to_string();
        assert!(e.contains("called AE title"), "{e}");
        let mut w = PacsServer::new_web();
        w.endpoint = Endpoint::Web {
            url: "ftp://x".into(),
            auth: WebAuth::None,
        };
        assert!(w.validate().unwrap_err().contains("http://"));
        w.endpoint = Endpoint::Web {
            url: "http://127.0.0.1:9/dicom-web".into(),
            auth: WebAuth::Bearer {
                token_file: "/nonexistent/token".into(),
            },
        };
        let e = w.test().unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/token") && e.contains("token file"),
            "{e}"
        );
    }

    #[test]
    fn nothing_listening_is_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = PacsServer::new_dimse();
        if let Endpoint::Dimse { host, port: p, .. } = &mut s.endpoint {
            *host = "127.0.0.1".into();
            *p = port;
        }
        let e = s.test().unwrap_err().to_string();
        assert!(e.contains("cannot connect") && !e.contains('\n'), "{e}");
    }
}
