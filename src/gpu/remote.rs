//! Remote compute devices: networks running on another machine's device through burn's remote
//! backend (crate burn-remote, WebSocket transport), served there by `synthscope serve`.
//!
//! A remote device is a plain burn [`Device`]: the training loop takes its autodiff twin as it
//! does a local one (the autodiff graph lives here, the tensors and kernels on the server), so
//! nothing in `train` or `synth` knows where it computes. Our CPU convolution kernels
//! (`model::cpu_conv*`) run only on the local CPU device; on a remote device every operation is
//! burn's own, executed by the server's backend.
//!
//! Traffic over `ws://` is unencrypted: the token keeps stray clients out on a trusted network,
//! nothing more; tunnel it (`ssh -L`) across one you do not trust.

use super::GpuError;
use super::compute::{ComputeDevice, ComputeKind, DeviceChoice, Probe};
use burn::tensor::Device;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a remote device could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The token file is missing, unreadable, empty or readable by everyone.
    #[error("{}: {problem}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A `--device` that names no remote server we can reach.
    #[error("{0}")]
    Url(String),
    /// The connection dropped while a job ran on the server.
    #[error("the connection to the compute server {url} was lost ({detail})")]
    Lost {
        /// The server.
        url: String,
        /// burn-remote's own words (its panic message).
        detail: String,
    },
    /// The server refused or could not be reached.
    #[error("cannot connect to the compute server {url}: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// burn-remote's reason, with what to do about it.
        reason: String,
    },
    /// This build has no remote backend.
    #[error(
        "this synthscope was built without the remote backend: rebuild with the default features (`cargo build --release`; `remote` is on unless `--no-default-features`)"
    )]
    NotBuilt,
}

impl From<RemoteError> for GpuError {
    fn from(e: RemoteError) -> Self {
        GpuError::Choice(e.to_string())
    }
}

/// Where a job computes: a local device (as chosen by [`DeviceChoice`]) or a remote server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// This machine.
    Local(DeviceChoice),
    /// A `synthscope serve` process: `ws://HOST:PORT`, device 0 of the server unless the URL
    /// ends in `/N`.
    Remote {
        /// `ws://HOST:PORT` (without the device index).
        url: String,
        /// Which of the server's devices.
        index: u32,
    },
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec::Local(DeviceChoice::Auto)
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = GpuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("wss://") || lower.starts_with("https://") {
            return Err(RemoteError::Url(format!(
                "{t:?}: burn's remote backend speaks plain ws:// only; reach a server across an \
                 untrusted network through an ssh tunnel (ssh -L 3000:localhost:3000 HOST, then \
                 --device ws://localhost:3000)"
            ))
            .into());
        }
        if let Some(rest) = lower.strip_prefix("ws://") {
            let rest = &t[t.len() - rest.len()..];
            let (hostport, index) = match rest.split_once('/') {
                None | Some((_, "")) => (rest, 0),
                Some((h, i)) => (
                    h,
                    i.parse::<u32>().map_err(|_| {
                        RemoteError::Url(format!(
                            "{t:?}: after ws://HOST:PORT/ comes the server's device number (0, 1, ...)"
                        ))
                    })?,
                ),
            };
            let port_ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(RemoteError::Url(format!(
                    "{t:?}: a remote device is ws://HOST:PORT (e.g. ws://gpu-server:3000)"
                ))
                .into());
            }
            return Ok(DeviceSpec::Remote {
                url: format!("ws://{hostport}"),
                index,
            });
        }
        t.parse::<DeviceChoice>()
            .map(DeviceSpec::Local)
            .map_err(|_| {
                GpuError::Choice(format!(
                    "unknown compute device {t:?}: auto, cpu, gpu or ws://HOST:PORT"
                ))
            })
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Local(c) => write!(f, "{c}"),
            DeviceSpec::Remote { url, index: 0 } => f.write_str(url),
            DeviceSpec::Remote { url, index } => write!(f, "{url}/{index}"),
        }
    }
}

/// The token in `path`: its first line, trimmed. Refused when the file is readable or writable
/// by everyone (a token others can read authorises them too) or holds no token.
pub fn read_token_file(path: &Path) -> Result<String, RemoteError> {
    let err = |problem: String| RemoteError::TokenFile {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read the token: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o006 != 0 {
            return Err(err(format!(
                "the token file is readable or writable by every user (mode {:o}); \
                 restrict it: chmod 600 {}",
                mode & 0o777,
                path.display()
            )));
        }
    }
    if meta.len() > 4096 {
        return Err(err(format!(
            "{} bytes: a token file holds one line",
            meta.len()
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("cannot read the token: {e}")))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(err("the token file is empty".into()));
    }
    Ok(token)
}

/// The remote devices this process connected, with their URLs (for labels and messages).
static CONNECTED: Mutex<Vec<(Device, String)>> = Mutex::new(Vec::new());

/// The `ws://` URL of `device` when it is a remote device this process connected.
pub fn url_of(device: &Device) -> Option<String> {
    let list = CONNECTED.lock().unwrap_or_else(|p| p.into_inner());
    list.iter()
        .find(|(d, _)| d == device)
        .map(|(_, url)| url.clone())
}

/// Connect device `index` of the server at `url` with `token` (None: no credential, which
/// a server with a token refuses).
#[cfg(feature = "remote")]
pub fn connect(url: &str, index: u32, token: Option<&str>) -> Result<Device, RemoteError> {
    use burn::remote::{ConnectError, RemoteHost};
    let mut host = RemoteHost::websocket(url);
    if let Some(t) = token {
        host = host.with_credential(t);
    }
    let device = Device::remote_options(&host)
        .device_index(index as usize)
        .init()
        .map_err(|e| RemoteError::Connect {
            url: url.to_string(),
            reason: match e {
                ConnectError::Unauthorized => {
                    "the server refused the token (wrong --token-file, or none given to a server \
                     that has one)"
                        .to_string()
                }
                ConnectError::Unreachable { reason } => {
                    format!("nothing answered ({reason}); is `synthscope serve` running there?")
                }
                ConnectError::IncompatibleProtocol { .. } => format!(
                    "{e}: build the server and this client from the same synthscope version"
                ),
                other => other.to_string(),
            },
        })?;
    let shown = if index == 0 {
        url.to_string()
    } else {
        format!("{url}/{index}")
    };
    CONNECTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((device.clone(), shown));
    Ok(device)
}

/// Without the `remote` feature there is no remote backend to connect with.
#[cfg(not(feature = "remote"))]
pub fn connect(_url: &str, _index: u32, _token: Option<&str>) -> Result<Device, RemoteError> {
    Err(RemoteError::NotBuilt)
}

/// The compute device for `spec`: the process-wide local choice, or a fresh connection to a
/// remote server with the token in `token_file`.
pub fn choose_spec(
    spec: Option<&DeviceSpec>,
    token_file: Option<&Path>,
) -> Result<ComputeDevice, GpuError> {
    match spec {
        None => Ok(super::compute()?.clone()),
        Some(DeviceSpec::Local(c)) => {
            if token_file.is_some() {
                log::warn!("--token-file is only read for a remote (ws://) device");
            }
            Ok(super::init_compute(*c)?.clone())
        }
        Some(DeviceSpec::Remote { url, index }) => {
            let token = token_file.map(read_token_file).transpose()?;
            let device = connect(url, *index, token.as_deref())?;
            Ok(ComputeDevice {
                device,
                kind: ComputeKind::Remote,
                asked: DeviceChoice::Auto,
                reason: format!(
                    "asked for (--device {}); unencrypted websocket traffic",
                    DeviceSpec::Remote {
                        url: url.clone(),
                        index: *index
                    }
                ),
                probe: Probe::default(),
                cached: false,
            })
        }
    }
}

/// Run `job` on a remote device: a connection that drops mid-job makes burn-remote panic on the
/// next read; that panic becomes an error naming the server (with the panic's own words)
/// instead of tearing the process down, so a training run ends with its last epoch's
/// resumable checkpoint and a message saying how to continue.
/// The outer error is the lost connection; the inner result is the job's own.
pub fn guard_connection<T>(url: &str, job: impl FnOnce() -> T) -> Result<T, RemoteError> {
    let quiet = std::panic::take_hook();
    // burn-remote's runner threads panic too when the socket closes: their messages would
    // interleave with ours, so they go to the debug log while the job runs.
    std::panic::set_hook(Box::new(|info| {
        log::debug!("panic during a remote job: {info}")
    }));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    std::panic::set_hook(quiet);
    match out {
        Ok(r) => Ok(r),
        Err(payload) => Err(RemoteError::Lost {
            url: url.into(),
            detail: crate::panic_text(payload.as_ref()).unwrap_or_else(|| "no detail".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "cpu".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Local(DeviceChoice::Cpu)
        );
        assert_eq!(
            "ws://gpu-host:3000".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Remote {
                url: "ws://gpu-host:3000".into(),
                index: 0
            }
        );
        assert_eq!(
            "WS://10.0.0.2:3000/1".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Remote {
                url: "ws://10.0.0.2:3000".into(),
                index: 1
            }
        );
        assert!("ws://gpu-host".parse::<DeviceSpec>().is_err());
        assert!("ws://gpu-host:0".parse::<DeviceSpec>().is_err());
        assert!("ws://h:3000/x".parse::<DeviceSpec>().is_err());
        let e = "wss://h:3000"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssh -L"), "{e}");
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert_eq!(
            "ws://h:3000/2".parse::<DeviceSpec>().unwrap().to_string(),
            "ws://h:3000/2"
        );
    }

    #[cfg(unix)]
    #[test]
    fn token_files_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "s3cret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token_file(&p).unwrap_err().to_string();
        assert!(e.contains("readable or writable by every user") && e.contains("chmod 600"));
        std::fs::write(&p, "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            read_token_file(&p)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(read_token_file(&dir.path().join("missing")).is_err());
    }
}
