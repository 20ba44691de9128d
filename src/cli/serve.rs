//! `serve`: this machine's compute device as a burn remote server (burn-remote over WebSocket),
//! for `train --device ws://HOST:PORT` and `synthesize --device ws://HOST:PORT` on another one.

use crate::gpu::remote::{RemoteError, read_token_file};
use crate::gpu::{DeviceChoice, DeviceSpec};
use anyhow::{anyhow, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `serve` arguments.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Token clients must present (one line; the file must not be readable by every user).
    /// Required unless ADDR is a loopback address.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The devices to serve, comma-separated: auto (measured once, cached), cpu (burn-flex),
    /// gpu (the default wgpu adapter), wgpu:N (the N-th discrete GPU), cuda:N (needs a build
    /// with burn's cuda feature). A client picks one with ws://HOST:PORT/N (default 0).
    #[arg(long, value_name = "auto|cpu|gpu|wgpu:N", default_value = "auto")]
    pub device: String,
}

/// The devices named by `--device` (one backend for all: burn-remote serves one).
fn server_devices(list: &str) -> anyhow::Result<Vec<(burn::tensor::Device, String)>> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let lower = item.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("wgpu:") {
            let n: usize = n
                .parse()
                .map_err(|_| anyhow!("--device {item}: wgpu:N takes a GPU number (0, 1, ...)"))?;
            out.push((
                burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(n)),
                format!("wgpu discrete GPU {n}"),
            ));
        } else if lower.starts_with("cuda") {
            bail!(
                "--device {item}: this synthscope is built without burn's CUDA backend; serve \
                 the GPU through wgpu (--device gpu or wgpu:N)"
            );
        } else {
            let choice: DeviceChoice = lower.parse()?;
            let c = crate::gpu::init_compute(choice)?;
            out.push((c.device.clone(), c.describe()));
        }
    }
    if out.is_empty() {
        bail!("--device names no device");
    }
    Ok(out)
}

/// `serve`: listen on `--listen` until Ctrl+C or SIGTERM, logging each client.
pub(super) fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    let token = a.token_file.as_deref().map(read_token_file).transpose()?;
    if token.is_none() && !a.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {} without a token: anyone who reaches that address could \
             compute on this machine and read what it computes. Give --token-file FILE (chmod \
             600), or listen on 127.0.0.1 and reach it through an ssh tunnel (ssh -L)",
            a.listen
        );
    }
    if !cfg!(feature = "remote") {
        return Err(RemoteError::NotBuilt.into());
    }
    let devices = server_devices(&a.device)?;
    let listener = std::net::TcpListener::bind(a.listen)
        .map_err(|e| anyhow!("cannot listen on {}: {e}", a.listen))?;
    let bound = listener.local_addr()?;
    for (i, (_, what)) in devices.iter().enumerate() {
        println!("device {i}: {what}");
    }
    println!(
        "serving on ws://{bound} ({}); websocket traffic is unencrypted: across an untrusted \
         network, tunnel it (ssh -L {}:localhost:{} THIS-HOST)",
        if token.is_some() {
            "clients must present the token"
        } else {
            "no token: loopback clients only"
        },
        bound.port(),
        bound.port()
    );
    run_server(
        devices.into_iter().map(|(d, _)| d).collect(),
        token,
        listener,
    )
}

#[cfg(feature = "remote")]
fn run_server(
    devices: Vec<burn::tensor::Device>,
    token: Option<String>,
    listener: std::net::TcpListener,
) -> anyhow::Result<()> {
    use burn::server::{AuthorizationRequest, PeerAuthorizer, RemoteServer, TokenAuthorizer};
    use burn::server::{ServeError, WebSocketTransport};
    let check = token
        .map(TokenAuthorizer::new)
        .transpose()
        .map_err(|e| anyhow!("{e}"))?;
    let authorize = move |r: AuthorizationRequest<'_>| {
        let (client, index) = (r.client, r.device_index);
        let verdict = match &check {
            Some(t) => t.authorize(r),
            None => Ok(()),
        };
        match &verdict {
            Ok(()) => println!("{client}: session on device {index} opened"),
            Err(why) => println!("{client}: refused ({why})"),
        }
        verdict
    };
    RemoteServer::new(devices)
        .with_authorizer(authorize)
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e: ServeError| anyhow!("the compute server stopped: {e}"))?;
    println!("compute server stopped");
    Ok(())
}

#[cfg(not(feature = "remote"))]
fn run_server(
    _devices: Vec<burn::tensor::Device>,
    _token: Option<String>,
    _listener: std::net::TcpListener,
) -> anyhow::Result<()> {
    Err(RemoteError::NotBuilt.into())
}

/// The error of a training run whose server connection dropped: what happened, and how to
/// continue from the last completed epoch's checkpoint (when there is one).
pub(super) fn lost_run_message(
    lost: &str,
    out: &Path,
    spec: &DeviceSpec,
    token_file: Option<&Path>,
) -> anyhow::Error {
    match crate::train::ResumeState::read(out) {
        Ok(state) => anyhow!(
            "{lost}. The run stopped; {} holds the resumable checkpoint of epoch {} (step {}). \
             Continue once the server is back: synthscope train --resume {} --device {spec}{}",
            out.display(),
            state.epoch,
            state.step,
            out.display(),
            token_file.map_or(String::new(), |t| format!(" --token-file {}", t.display()))
        ),
        Err(_) => anyhow!(
            "{lost}. The run stopped before its first epoch finished, so {} holds nothing to \
             resume: start it again",
            out.display()
        ),
    }
}
