//! Our storage SCP: the destination of C-MOVE. It listens on a port, accepts C-ECHO and
//! C-STORE for any storage SOP class in the transfer syntaxes our decoders read, and writes
//! each instance as sent into a folder.

use super::command::{Command, el, field};
use super::dimse::{Channel, send_store_rsp, store_incoming};
use super::{DimseOptions, PacsError, STORAGE_TRANSFER_SYNTAXES, VERIFICATION};
use dicom::ul::ServerAssociationOptions;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the SCP has received so far.
#[derive(Debug, Default)]
pub struct Received {
    /// Files written, in arrival order.
    pub files: Mutex<Vec<PathBuf>>,
    /// Bytes of data sets received.
    pub bytes: AtomicU64,
    /// Problems (one line each): failed writes, broken associations.
    pub errors: Mutex<Vec<String>>,
}

/// A running storage SCP; stops when dropped.
pub struct StorageScp {
    ae_title: String,
    port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<Received>,
    thread: Option<JoinHandle<()>>,
}

impl StorageScp {
    /// Listen on `bind:port` (port 0: any free port) as `ae_title`, writing into `out_dir`.
    pub fn start(
        ae_title: &str,
        bind: &str,
        port: u16,
        out_dir: &Path,
        opts: &DimseOptions,
    ) -> Result<Self, PacsError> {
        super::check_ae_title(ae_title).map_err(PacsError::Invalid)?;
        std::fs::create_dir_all(out_dir)
            .map_err(|e| PacsError::file(out_dir, format!("cannot create folder: {e}")))?;
        let listener = TcpListener::bind((bind, port)).map_err(|e| {
            PacsError::Invalid(format!(
                "cannot listen on {bind}:{port} for the storage SCP: {e}"
            ))
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        listener
            .set_nonblocking(true)
            .map_err(|e| PacsError::Invalid(format!("cannot listen on port {port}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Received::default());
        let (s, r, dir, o, aet) = (
            stop.clone(),
            received.clone(),
            out_dir.to_path_buf(),
            opts.clone(),
            ae_title.to_string(),
        );
        let thread = std::thread::Builder::new()
            .name("storage-scp".into())
            .spawn(move || accept_loop(listener, &aet, &dir, &o, &s, &r))
            .map_err(|e| PacsError::Invalid(format!("cannot start the storage SCP: {e}")))?;
        Ok(Self {
            ae_title: ae_title.to_string(),
            port,
            stop,
            received,
            thread: Some(thread),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its AE title.
    pub fn ae_title(&self) -> &str {
        &self.ae_title
    }

    /// What arrived so far.
    pub fn received(&self) -> &Received {
        &self.received
    }

    /// Take the list of files written so far.
    pub fn take_files(&self) -> Vec<PathBuf> {
        self.received
            .files
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    /// Stop listening and wait for the open associations to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StorageScp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: TcpListener,
    aet: &str,
    dir: &Path,
    opts: &DimseOptions,
    stop: &AtomicBool,
    received: &Arc<Received>,
) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (a, d, o, r) = (
                    aet.to_string(),
                    dir.to_path_buf(),
                    opts.clone(),
                    received.clone(),
                );
                if let Ok(h) = std::thread::Builder::new()
                    .name("storage-scp-assoc".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, &a, &d, &o, &r)
                            && let Ok(mut errs) = r.errors.lock()
                        {
                            errs.push(e.to_string());
                        }
                    })
                {
                    workers.push(h);
                }
                workers.retain(|h| !h.is_finished());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    for h in workers {
        let _ = h.join();
    }
}

fn serve(
    stream: TcpStream,
    aet: &str,
    dir: &Path,
    opts: &DimseOptions,
    received: &Received,
) -> Result<(), PacsError> {
    stream
        .set_nonblocking(false)
        .map_err(|e| PacsError::Protocol(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut o = ServerAssociationOptions::new()
        .accept_called_ae_title()
        .ae_title(aet.to_string())
        .promiscuous(true)
        .with_abstract_syntax(VERIFICATION)
        .max_pdu_length(opts.max_pdu)
        .read_timeout(opts.timeout)
        .write_timeout(opts.timeout);
    for ts in STORAGE_TRANSFER_SYNTAXES {
        o = o.with_transfer_syntax(ts);
    }
    let assoc = o.establish(stream).map_err(|e| {
        PacsError::Protocol(format!("association from {peer}: {}", super::chain(&e)))
    })?;
    let mut ch = Channel::new(assoc, peer);
    ch.op = "C-STORE (as SCP)";
    loop {
        let (pc, cmd) = match ch.read_command() {
            Ok(c) => c,
            Err(_) if ch.released => return Ok(()),
            Err(e) => return Err(e),
        };
        match cmd.command_field() {
            field::C_ECHO_RQ => {
                let mut rsp = Command::new(field::C_ECHO_RSP, false);
                rsp.set_uid(el::AFFECTED_SOP_CLASS_UID, VERIFICATION)
                    .set_u16(
                        el::MESSAGE_ID_RESPONDED_TO,
                        cmd.u16(el::MESSAGE_ID).unwrap_or(0),
                    )
                    .set_u16(el::STATUS, 0);
                ch.send_command(pc, &rsp)?;
            }
            field::C_STORE_RQ => {
                match store_incoming(&mut ch, pc, &cmd, dir, opts.max_instance_bytes)? {
                    Ok((path, n)) => {
                        send_store_rsp(&mut ch, pc, &cmd, 0x0000)?;
                        received.bytes.fetch_add(n, Ordering::Relaxed);
                        if let Ok(mut f) = received.files.lock() {
                            f.push(path);
                        }
                    }
                    Err(e) => {
                        send_store_rsp(&mut ch, pc, &cmd, 0xA700)?;
                        if let Ok(mut errs) = received.errors.lock() {
                            errs.push(e.to_string());
                        }
                    }
                }
            }
            other => {
                if cmd.has_data_set() {
                    ch.read_data(1 << 20, &mut |_| Ok(()))?;
                }
                let mut rsp = Command::new(other | 0x8000, false);
                rsp.set_uid(
                    el::AFFECTED_SOP_CLASS_UID,
                    &cmd.text(el::AFFECTED_SOP_CLASS_UID),
                )
                .set_u16(
                    el::MESSAGE_ID_RESPONDED_TO,
                    cmd.u16(el::MESSAGE_ID).unwrap_or(0),
                )
                .set_u16(el::STATUS, 0x0211);
                ch.send_command(pc, &rsp)?;
            }
        }
    }
}
