//! DIMSE services over a dicom-ul association: the message loop (commands and data sets split
//! across P-DATA fragments) and C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE as an SCU.

use super::command::{self, Command, StatusClass, el, field, status_class, status_text};
use super::{
    AeAddress, Control, DimseOptions, FindResult, Level, PacsError, QUERY_TRANSFER_SYNTAXES, Query,
    STORAGE_SOP_CLASSES, STORAGE_TRANSFER_SYNTAXES, STUDY_ROOT_FIND, STUDY_ROOT_GET,
    STUDY_ROOT_MOVE, TransferProgress, TransferStats, VERIFICATION, chain,
};
use dicom::core::{DataElement, PrimitiveValue, Tag, VR};
use dicom::dictionary_std::tags;
use dicom::object::{FileMetaTableBuilder, InMemDicomObject};
use dicom::transfer_syntax::{TransferSyntaxIndex, TransferSyntaxRegistry};
use dicom::ul::association::SyncAssociation;
use dicom::ul::pdu::{
    PDataValue, PDataValueType, Pdu, PresentationContextNegotiated, PresentationContextResultReason,
};
use dicom::ul::{ClientAssociation, ClientAssociationOptions};
use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest query identifier (one C-FIND match) we accept.
const MAX_IDENTIFIER_BYTES: u64 = 1 << 20;
/// Most C-FIND matches we collect before giving up.
const MAX_MATCHES: usize = 100_000;

/// One association and the P-DATA fragments received but not yet consumed.
pub(crate) struct Channel<A> {
    assoc: A,
    queue: VecDeque<PDataValue>,
    contexts: Vec<PresentationContextNegotiated>,
    /// host:port of the peer, for messages.
    pub addr: String,
    /// The operation under way, for messages.
    pub op: &'static str,
    /// ", after N of M images" while a transfer runs.
    pub progress: String,
    /// Set once the peer asked for release (and we answered).
    pub released: bool,
}

impl<A: SyncAssociation<TcpStream>> Channel<A> {
    pub(crate) fn new(assoc: A, addr: String) -> Self {
        let contexts = assoc
            .presentation_contexts()
            .iter()
            .filter(|c| c.reason == PresentationContextResultReason::Acceptance)
            .cloned()
            .collect();
        Self {
            assoc,
            queue: VecDeque::new(),
            contexts,
            addr,
            op: "association",
            progress: String::new(),
            released: false,
        }
    }

    fn lost(&self, reason: impl Into<String>) -> PacsError {
        PacsError::Lost {
            addr: self.addr.clone(),
            op: self.op,
            progress: self.progress.clone(),
            reason: reason.into(),
        }
    }

    /// The accepted presentation context for `abstract_syntax` (preferring `ts` when given).
    pub(crate) fn context(&self, abstract_syntax: &str, ts: Option<&str>) -> Option<(u8, String)> {
        let matching = |c: &&PresentationContextNegotiated| {
            c.abstract_syntax.trim_end_matches('\0') == abstract_syntax
        };
        let trim = |s: &str| s.trim_end_matches('\0').to_string();
        ts.and_then(|ts| {
            self.contexts
                .iter()
                .filter(matching)
                .find(|c| c.transfer_syntax.trim_end_matches('\0') == ts)
        })
        .or_else(|| self.contexts.iter().find(matching))
        .map(|c| (c.id, trim(&c.transfer_syntax)))
    }

    /// The transfer syntax negotiated for context `id`.
    pub(crate) fn context_ts(&self, id: u8) -> Option<(String, String)> {
        self.contexts.iter().find(|c| c.id == id).map(|c| {
            (
                c.abstract_syntax.trim_end_matches('\0').to_string(),
                c.transfer_syntax.trim_end_matches('\0').to_string(),
            )
        })
    }

    fn next_pdv(&mut self) -> Result<PDataValue, PacsError> {
        loop {
            if let Some(p) = self.queue.pop_front() {
                return Ok(p);
            }
            quick_ack(SyncAssociation::inner_stream(&mut self.assoc));
            match SyncAssociation::receive(&mut self.assoc) {
                Ok(Pdu::PData { data }) => self.queue.extend(data),
                Ok(Pdu::ReleaseRQ) => {
                    let _ = SyncAssociation::send(&mut self.assoc, &Pdu::ReleaseRP);
                    self.released = true;
                    return Err(self.lost("the peer released the association"));
                }
                Ok(Pdu::AbortRQ { source }) => {
                    return Err(self.lost(format!("the peer aborted the association ({source:?})")));
                }
                Ok(other) => {
                    return Err(PacsError::Protocol(format!(
                        "unexpected {} from {} during {}",
                        other.short_description(),
                        self.addr,
                        self.op
                    )));
                }
                Err(e) => return Err(self.lost(chain(&e))),
            }
        }
    }

    /// Receive the next command set: (presentation context id, command).
    pub(crate) fn read_command(&mut self) -> Result<(u8, Command), PacsError> {
        let mut buf = Vec::new();
        let mut pc = None;
        loop {
            let p = self.next_pdv()?;
            if p.value_type != PDataValueType::Command {
                return Err(PacsError::Protocol(format!(
                    "{} sent a data fragment where a command was expected",
                    self.addr
                )));
            }
            if *pc.get_or_insert(p.presentation_context_id) != p.presentation_context_id {
                return Err(PacsError::Protocol(
                    "command fragments on different presentation contexts".into(),
                ));
            }
            if buf.len() + p.data.len() > command::MAX_COMMAND_BYTES {
                return Err(PacsError::Protocol(format!(
                    "command set from {} exceeds {} bytes",
                    self.addr,
                    command::MAX_COMMAND_BYTES
                )));
            }
            buf.extend_from_slice(&p.data);
            if p.is_last {
                break;
            }
        }
        Ok((pc.unwrap_or(0), Command::decode(&buf)?))
    }

    /// Receive a data set into `sink`, at most `limit` bytes; returns its size. A sink error
    /// stops writing but the fragments are still drained, so the association stays usable.
    pub(crate) fn read_data(
        &mut self,
        limit: u64,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(u64, Option<std::io::Error>), PacsError> {
        let mut total = 0u64;
        let mut sink_err = None;
        loop {
            let p = self.next_pdv()?;
            if p.value_type != PDataValueType::Data {
                return Err(PacsError::Protocol(format!(
                    "{} sent a command fragment inside a data set",
                    self.addr
                )));
            }
            total += p.data.len() as u64;
            if total > limit {
                return Err(PacsError::Protocol(format!(
                    "data set from {} is larger than the {limit} bytes allowed",
                    self.addr
                )));
            }
            if sink_err.is_none()
                && let Err(e) = sink(&p.data)
            {
                sink_err = Some(e);
            }
            if p.is_last {
                return Ok((total, sink_err));
            }
        }
    }

    /// Send a command set in one fragment.
    pub(crate) fn send_command(&mut self, pc: u8, cmd: &Command) -> Result<(), PacsError> {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: cmd.encode(),
            }],
        };
        SyncAssociation::send(&mut self.assoc, &pdu).map_err(|e| self.lost(chain(&e)))
    }

    /// Send a data set, split into PDUs the peer accepts.
    pub(crate) fn send_data(&mut self, pc: u8, data: &mut dyn Read) -> Result<u64, PacsError> {
        let mut w = SyncAssociation::send_pdata(&mut self.assoc, pc);
        let n = std::io::copy(data, &mut w);
        let fin = w.finish();
        match (n, fin) {
            (Ok(n), Ok(())) => Ok(n),
            (Err(e), _) | (_, Err(e)) => Err(self.lost(e.to_string())),
        }
    }

    /// Release the association (errors ignored: the work is done).
    pub(crate) fn release(self) {
        let _ = SyncAssociation::release(self.assoc);
    }

    /// Abort the association.
    pub(crate) fn abort(self) {
        let _ = SyncAssociation::abort(self.assoc);
    }
}

/// Ask Linux to acknowledge the next segments at once. A peer that writes a command and a data
/// set without TCP_NODELAY otherwise waits for our delayed ACK (tens of ms) before each instance:
/// measured on Orthanc's C-GET of 256 x 256 slices. The flag is not sticky, so it is set before
/// every receive.
fn quick_ack(stream: &mut TcpStream) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = stream;
}

/// Open an association with `peer`, proposing `contexts` and, for C-GET, the SCP role for
/// `scp_roles`.
fn connect(
    peer: &AeAddress,
    opts: &DimseOptions,
    contexts: &[(&str, Vec<&str>)],
    scp_roles: &[&str],
) -> Result<Channel<ClientAssociation<TcpStream>>, PacsError> {
    super::check_ae_title(&opts.calling_ae_title).map_err(PacsError::Invalid)?;
    if contexts.len() > 128 {
        return Err(PacsError::Invalid(format!(
            "{} presentation contexts proposed, an association holds 128",
            contexts.len()
        )));
    }
    let mut o = ClientAssociationOptions::new()
        .calling_ae_title(opts.calling_ae_title.clone())
        .called_ae_title(peer.ae_title.clone())
        .max_pdu_length(opts.max_pdu)
        .read_timeout(opts.timeout)
        .write_timeout(opts.timeout)
        .connection_timeout(opts.timeout.min(Duration::from_secs(15)));
    for (a, ts) in contexts {
        o = o.with_presentation_context(*a, ts.clone());
    }
    for c in scp_roles {
        o = o.with_role_selection(*c, false, true);
    }
    use dicom::ul::association::Error as E;
    let addr = peer.socket();
    let mut assoc = o.establish(addr.as_str()).map_err(|e| match &e {
        E::Rejected { association_rj, .. } => PacsError::Rejected {
            addr: addr.clone(),
            called: peer.ae_title.clone(),
            calling: opts.calling_ae_title.clone(),
            reason: association_rj.source.to_string(),
        },
        E::Connect { source, .. } => PacsError::Connect {
            addr: addr.clone(),
            reason: format!("{source} (is a DICOM server listening there?)"),
        },
        E::NoAcceptedPresentationContexts { .. } => PacsError::Protocol(format!(
            "{} accepted none of the proposed presentation contexts ({})",
            addr,
            contexts.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
        )),
        _ => PacsError::Connect {
            addr: addr.clone(),
            reason: chain(&e),
        },
    })?;
    // Commands and responses are small writes: do not let Nagle hold them for the peer's ACK.
    let _ = assoc.inner_stream().set_nodelay(true);
    Ok(Channel::new(assoc, addr))
}

fn check_final(op: &'static str, cmd: &Command) -> Result<StatusClass, PacsError> {
    let status = cmd.status().ok_or_else(|| {
        PacsError::Protocol(format!("{op} response without a Status (0000,0900)"))
    })?;
    match status_class(status) {
        StatusClass::Failure => {
            let c = cmd.text(el::ERROR_COMMENT);
            Err(PacsError::Status {
                op,
                status,
                text: status_text(status),
                comment: if c.is_empty() { c } else { format!(": {c}") },
            })
        }
        StatusClass::Cancel => Err(PacsError::Cancelled),
        c => Ok(c),
    }
}

/// C-ECHO: is `peer` there and does it accept us? Returns the round-trip time.
pub fn echo(peer: &AeAddress, opts: &DimseOptions) -> Result<Duration, PacsError> {
    let t0 = Instant::now();
    let mut ch = connect(
        peer,
        opts,
        &[(VERIFICATION, QUERY_TRANSFER_SYNTAXES.to_vec())],
        &[],
    )?;
    ch.op = "C-ECHO";
    let (pc, _) = ch
        .context(VERIFICATION, None)
        .ok_or_else(|| PacsError::Protocol(format!("{} does not accept C-ECHO", ch.addr)))?;
    let mut rq = Command::new(field::C_ECHO_RQ, false);
    rq.set_uid(el::AFFECTED_SOP_CLASS_UID, VERIFICATION)
        .set_u16(el::MESSAGE_ID, 1);
    ch.send_command(pc, &rq)?;
    let (_, rsp) = ch.read_command()?;
    if rsp.command_field() != field::C_ECHO_RSP {
        return Err(PacsError::Protocol(format!(
            "expected C-ECHO-RSP, got command 0x{:04X}",
            rsp.command_field()
        )));
    }
    check_final("C-ECHO", &rsp)?;
    ch.release();
    Ok(t0.elapsed())
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    let v = if value.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(value.to_string())
    };
    obj.put(DataElement::new(tag, vr, v));
}

/// The C-FIND identifier of `q`: its filters and the return keys of its level.
pub fn find_identifier(q: &Query) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut o, tags::QUERY_RETRIEVE_LEVEL, VR::CS, q.level.code());
    put(&mut o, tags::PATIENT_NAME, VR::PN, &q.patient_name);
    put(&mut o, tags::PATIENT_ID, VR::LO, &q.patient_id);
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &q.study_uid);
    put(&mut o, tags::STUDY_DATE, VR::DA, &q.study_date);
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, &q.accession);
    match q.level {
        Level::Study => {
            put(&mut o, tags::STUDY_DESCRIPTION, VR::LO, "");
            put(&mut o, tags::MODALITIES_IN_STUDY, VR::CS, &q.modality);
            put(&mut o, tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, "");
        }
        Level::Series => {
            put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &q.series_uid);
            put(&mut o, tags::MODALITY, VR::CS, &q.modality);
            put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, "");
            put(&mut o, tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, "");
        }
    }
    o
}

fn text(o: &InMemDicomObject, tag: Tag) -> String {
    o.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// A C-FIND match as a [`FindResult`].
pub fn find_result(level: Level, o: &InMemDicomObject) -> FindResult {
    let (modality, description, images) = match level {
        Level::Study => (
            text(o, tags::MODALITIES_IN_STUDY),
            text(o, tags::STUDY_DESCRIPTION),
            text(o, tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
        ),
        Level::Series => (
            text(o, tags::MODALITY),
            text(o, tags::SERIES_DESCRIPTION),
            text(o, tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
        ),
    };
    FindResult {
        level,
        patient_name: text(o, tags::PATIENT_NAME),
        patient_id: text(o, tags::PATIENT_ID),
        study_uid: text(o, tags::STUDY_INSTANCE_UID),
        series_uid: if level == Level::Series {
            text(o, tags::SERIES_INSTANCE_UID)
        } else {
            String::new()
        },
        modality,
        study_date: text(o, tags::STUDY_DATE),
        description,
        images: images.trim().parse().ok(),
        accession: text(o, tags::ACCESSION_NUMBER),
    }
}

fn encode_identifier(o: &InMemDicomObject, ts_uid: &str) -> Result<Vec<u8>, PacsError> {
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| PacsError::Protocol(format!("unknown transfer syntax {ts_uid}")))?;
    let mut buf = Vec::new();
    o.write_dataset_with_ts(&mut buf, ts)
        .map_err(|e| PacsError::Protocol(format!("cannot encode query: {}", chain(&e))))?;
    Ok(buf)
}

fn decode_identifier(bytes: &[u8], ts_uid: &str) -> Result<InMemDicomObject, PacsError> {
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| PacsError::Protocol(format!("unknown transfer syntax {ts_uid}")))?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| PacsError::Protocol(format!("cannot decode a C-FIND match: {}", chain(&e))))
}

fn send_cancel<A: SyncAssociation<TcpStream>>(
    ch: &mut Channel<A>,
    pc: u8,
    msg_id: u16,
) -> Result<(), PacsError> {
    let mut c = Command::new(field::C_CANCEL_RQ, false);
    c.set_u16(el::MESSAGE_ID_RESPONDED_TO, msg_id);
    ch.send_command(pc, &c)
}

/// C-FIND (study root) at the query's level. Cancel sends C-CANCEL and ends with `Cancelled`.
pub fn find(
    peer: &AeAddress,
    opts: &DimseOptions,
    q: &Query,
    ctl: &mut Control,
) -> Result<Vec<FindResult>, PacsError> {
    q.validate()?;
    let mut ch = connect(
        peer,
        opts,
        &[(STUDY_ROOT_FIND, QUERY_TRANSFER_SYNTAXES.to_vec())],
        &[],
    )?;
    ch.op = "C-FIND";
    let (pc, ts) = ch
        .context(STUDY_ROOT_FIND, None)
        .ok_or_else(|| PacsError::Protocol(format!("{} does not accept C-FIND", ch.addr)))?;
    let ident = encode_identifier(&find_identifier(q), &ts)?;
    let mut rq = Command::new(field::C_FIND_RQ, true);
    rq.set_uid(el::AFFECTED_SOP_CLASS_UID, STUDY_ROOT_FIND)
        .set_u16(el::MESSAGE_ID, 1)
        .set_u16(el::PRIORITY, 0);
    ch.send_command(pc, &rq)?;
    ch.send_data(pc, &mut ident.as_slice())?;
    let mut out = Vec::new();
    let mut cancel_sent = false;
    loop {
        if ctl.cancelled() && !cancel_sent {
            send_cancel(&mut ch, pc, 1)?;
            cancel_sent = true;
        }
        let (_, rsp) = ch.read_command()?;
        if rsp.command_field() != field::C_FIND_RSP {
            return Err(PacsError::Protocol(format!(
                "expected C-FIND-RSP, got command 0x{:04X}",
                rsp.command_field()
            )));
        }
        let status = rsp.status().unwrap_or(0xFFFF);
        if status_class(status) == StatusClass::Pending {
            if !rsp.has_data_set() {
                continue;
            }
            let mut buf = Vec::new();
            ch.read_data(MAX_IDENTIFIER_BYTES, &mut |b| {
                buf.extend_from_slice(b);
                Ok(())
            })?;
            if out.len() >= MAX_MATCHES {
                ch.abort();
                return Err(PacsError::Protocol(format!(
                    "more than {MAX_MATCHES} matches: narrow the search"
                )));
            }
            out.push(find_result(q.level, &decode_identifier(&buf, &ts)?));
            (ctl.progress)(TransferProgress {
                done: out.len(),
                total: None,
                bytes: 0,
            });
            continue;
        }
        if rsp.has_data_set() {
            ch.read_data(MAX_IDENTIFIER_BYTES, &mut |_| Ok(()))?;
        }
        let r = check_final("C-FIND", &rsp);
        ch.release();
        r?;
        if cancel_sent {
            return Err(PacsError::Cancelled);
        }
        return Ok(out);
    }
}

/// Which series to retrieve.
#[derive(Clone, Debug, Default)]
pub struct SeriesKey {
    /// StudyInstanceUID (found by a C-FIND when empty).
    pub study_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
}

/// Find the study of `series_uid` and its instance count; a clear error when no such series.
pub fn locate_series(
    peer: &AeAddress,
    opts: &DimseOptions,
    series_uid: &str,
) -> Result<(String, Option<u32>), PacsError> {
    let q = Query {
        level: Level::Series,
        series_uid: series_uid.to_string(),
        ..Default::default()
    };
    let found = super::without_control(|c| find(peer, opts, &q, c))?;
    let hit = found
        .into_iter()
        .find(|r| r.series_uid == series_uid)
        .ok_or_else(|| {
            PacsError::NotFound(format!(
                "no series with SeriesInstanceUID {series_uid} on {peer}"
            ))
        })?;
    Ok((hit.study_uid, hit.images))
}

fn retrieve_identifier(key: &SeriesKey) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::QUERY_RETRIEVE_LEVEL, VR::CS, "SERIES");
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &key.study_uid);
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &key.series_uid);
    o
}

/// A file name for an instance: its UID when it is a plain UID, else a hash of it.
pub(crate) fn instance_file_name(sop_instance_uid: &str) -> String {
    let ok = !sop_instance_uid.is_empty()
        && sop_instance_uid.len() <= 64
        && sop_instance_uid
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.');
    if ok {
        format!("{sop_instance_uid}.dcm")
    } else {
        format!(
            "{}.dcm",
            crate::io::dicom::write::uid_from(&format!("instance:{sop_instance_uid}"))
        )
    }
}

/// Our implementation class UID, written in the file meta of what we store.
pub(crate) fn implementation_class_uid() -> String {
    crate::io::dicom::write::uid_from("synthscope implementation class")
}

/// Receive the data set of the C-STORE-RQ `cmd` (on context `pc`) into a Part-10 file in
/// `out_dir`, as sent: preamble, file meta, then the data set bytes in the negotiated transfer
/// syntax. Returns (file, data set bytes) or the error to answer with a failure status; the
/// data set is always drained.
pub(crate) fn store_incoming<A: SyncAssociation<TcpStream>>(
    ch: &mut Channel<A>,
    pc: u8,
    cmd: &Command,
    out_dir: &Path,
    limit: u64,
) -> Result<Result<(PathBuf, u64), PacsError>, PacsError> {
    let sop_class = cmd.text(el::AFFECTED_SOP_CLASS_UID);
    let sop_instance = cmd.text(el::AFFECTED_SOP_INSTANCE_UID);
    let ts = ch.context_ts(pc).map(|c| c.1).unwrap_or_default();
    let path = out_dir.join(instance_file_name(&sop_instance));
    let part = path.with_extension("dcm.part");
    let mut writer: Option<BufWriter<std::fs::File>> = None;
    let mut open_err: Option<String> = None;
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class.as_str())
        .media_storage_sop_instance_uid(sop_instance.as_str())
        .transfer_syntax(ts.as_str())
        .implementation_class_uid(implementation_class_uid())
        .implementation_version_name("SYNTHSCOPE")
        .build();
    match (meta, std::fs::File::create(&part)) {
        (Ok(meta), Ok(f)) => {
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let head = w
                .write_all(&[0u8; 128])
                .and_then(|_| w.write_all(b"DICM"))
                .map_err(|e| e.to_string())
                .and_then(|_| meta.write(&mut w).map_err(|e| chain(&e)));
            match head {
                Ok(()) => writer = Some(w),
                Err(e) => open_err = Some(e),
            }
        }
        (Err(e), _) => open_err = Some(format!("bad file meta: {}", chain(&e))),
        (_, Err(e)) => open_err = Some(e.to_string()),
    }
    let (n, sink_err) = ch.read_data(limit, &mut |b| match writer.as_mut() {
        Some(w) => w.write_all(b),
        None => Ok(()),
    })?;
    let result = match (open_err, sink_err, writer) {
        (Some(e), _, _) => Err(e),
        (None, Some(e), _) => Err(e.to_string()),
        (None, None, Some(w)) => w
            .into_inner()
            .map_err(|e| e.to_string())
            .and_then(|_| std::fs::rename(&part, &path).map_err(|e| e.to_string())),
        (None, None, None) => Err("no file".into()),
    };
    Ok(match result {
        Ok(()) => Ok((path, n)),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(PacsError::file(
                &path,
                format!("cannot write received instance: {e}"),
            ))
        }
    })
}

/// Answer a C-STORE-RQ.
pub(crate) fn send_store_rsp<A: SyncAssociation<TcpStream>>(
    ch: &mut Channel<A>,
    pc: u8,
    rq: &Command,
    status: u16,
) -> Result<(), PacsError> {
    let mut rsp = Command::new(field::C_STORE_RSP, false);
    rsp.set_uid(
        el::AFFECTED_SOP_CLASS_UID,
        &rq.text(el::AFFECTED_SOP_CLASS_UID),
    )
    .set_u16(
        el::MESSAGE_ID_RESPONDED_TO,
        rq.u16(el::MESSAGE_ID).unwrap_or(0),
    )
    .set_u16(el::STATUS, status)
    .set_uid(
        el::AFFECTED_SOP_INSTANCE_UID,
        &rq.text(el::AFFECTED_SOP_INSTANCE_UID),
    );
    ch.send_command(pc, &rsp)
}

fn sub_ops(cmd: &Command) -> (usize, usize, usize, usize) {
    let g = |e| cmd.u16(e).unwrap_or(0) as usize;
    (
        g(el::REMAINING),
        g(el::COMPLETED),
        g(el::FAILED),
        g(el::WARNING),
    )
}

fn create_out_dir(out_dir: &Path) -> Result<(), PacsError> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| PacsError::file(out_dir, format!("cannot create folder: {e}")))
}

/// C-GET one series into `out_dir` (the PACS sends C-STORE sub-operations on our association).
pub fn get_series(
    peer: &AeAddress,
    opts: &DimseOptions,
    key: &SeriesKey,
    out_dir: &Path,
    ctl: &mut Control,
) -> Result<TransferStats, PacsError> {
    let t0 = Instant::now();
    let mut key = key.clone();
    let mut total = None;
    if key.study_uid.is_empty() {
        let (study, n) = locate_series(peer, opts, &key.series_uid)?;
        key.study_uid = study;
        total = n.map(|n| n as usize);
    }
    create_out_dir(out_dir)?;
    let mut contexts: Vec<(&str, Vec<&str>)> =
        vec![(STUDY_ROOT_GET, QUERY_TRANSFER_SYNTAXES.to_vec())];
    for class in STORAGE_SOP_CLASSES {
        for ts in STORAGE_TRANSFER_SYNTAXES {
            contexts.push((class, vec![ts]));
        }
    }
    let mut ch = connect(peer, opts, &contexts, &STORAGE_SOP_CLASSES)?;
    ch.op = "C-GET";
    let (pc, ts) = ch
        .context(STUDY_ROOT_GET, None)
        .ok_or_else(|| PacsError::Protocol(format!("{} does not accept C-GET", ch.addr)))?;
    let ident = encode_identifier(&retrieve_identifier(&key), &ts)?;
    let mut rq = Command::new(field::C_GET_RQ, true);
    rq.set_uid(el::AFFECTED_SOP_CLASS_UID, STUDY_ROOT_GET)
        .set_u16(el::MESSAGE_ID, 1)
        .set_u16(el::PRIORITY, 0);
    ch.send_command(pc, &rq)?;
    ch.send_data(pc, &mut ident.as_slice())?;
    let mut stats = TransferStats::default();
    let mut cancel_sent = false;
    let mut first_error: Option<PacsError> = None;
    loop {
        if ctl.cancelled() && !cancel_sent {
            send_cancel(&mut ch, pc, 1)?;
            cancel_sent = true;
        }
        ch.progress = format!(
            ", after {} of {} images",
            stats.images,
            total.map_or("?".to_string(), |t| t.to_string())
        );
        let (rpc, cmd) = ch.read_command()?;
        match cmd.command_field() {
            field::C_STORE_RQ => {
                match store_incoming(&mut ch, rpc, &cmd, out_dir, opts.max_instance_bytes)? {
                    Ok((path, n)) => {
                        send_store_rsp(&mut ch, rpc, &cmd, 0x0000)?;
                        stats.images += 1;
                        stats.bytes += n;
                        stats.files.push(path);
                        (ctl.progress)(TransferProgress {
                            done: stats.images,
                            total,
                            bytes: stats.bytes,
                        });
                    }
                    Err(e) => {
                        send_store_rsp(&mut ch, rpc, &cmd, 0xA700)?;
                        first_error.get_or_insert(e);
                    }
                }
            }
            field::C_GET_RSP => {
                if cmd.has_data_set() {
                    ch.read_data(MAX_IDENTIFIER_BYTES, &mut |_| Ok(()))?;
                }
                let status = cmd.status().unwrap_or(0xFFFF);
                let (rem, done, failed, warn) = sub_ops(&cmd);
                if status_class(status) == StatusClass::Pending {
                    total = Some(rem + done + failed + warn);
                    continue;
                }
                stats.failed = failed;
                let r = check_final("C-GET", &cmd);
                ch.release();
                stats.seconds = t0.elapsed().as_secs_f64();
                if let Some(e) = first_error {
                    return Err(e);
                }
                r?;
                if cancel_sent {
                    return Err(PacsError::Cancelled);
                }
                if stats.images == 0 {
                    return Err(PacsError::NotFound(format!(
                        "C-GET of series {} from {peer} returned no images{}",
                        key.series_uid,
                        if failed > 0 {
                            format!(" ({failed} failed sub-operations)")
                        } else {
                            String::new()
                        }
                    )));
                }
                return Ok(stats);
            }
            other => {
                ch.abort();
                return Err(PacsError::Protocol(format!(
                    "unexpected command 0x{other:04X} during C-GET"
                )));
            }
        }
    }
}

/// C-MOVE one series to `destination` (an AE the PACS knows, e.g. our [`super::scp::StorageScp`]).
/// Returns the sub-operation counts (completed, failed); the files arrive at the destination.
pub fn move_series(
    peer: &AeAddress,
    opts: &DimseOptions,
    key: &SeriesKey,
    destination: &str,
    ctl: &mut Control,
) -> Result<(usize, usize), PacsError> {
    super::check_ae_title(destination).map_err(PacsError::Invalid)?;
    let mut key = key.clone();
    if key.study_uid.is_empty() {
        key.study_uid = locate_series(peer, opts, &key.series_uid)?.0;
    }
    let mut ch = connect(
        peer,
        opts,
        &[(STUDY_ROOT_MOVE, QUERY_TRANSFER_SYNTAXES.to_vec())],
        &[],
    )?;
    ch.op = "C-MOVE";
    let (pc, ts) = ch
        .context(STUDY_ROOT_MOVE, None)
        .ok_or_else(|| PacsError::Protocol(format!("{} does not accept C-MOVE", ch.addr)))?;
    let ident = encode_identifier(&retrieve_identifier(&key), &ts)?;
    let mut rq = Command::new(field::C_MOVE_RQ, true);
    rq.set_uid(el::AFFECTED_SOP_CLASS_UID, STUDY_ROOT_MOVE)
        .set_u16(el::MESSAGE_ID, 1)
        .set_u16(el::PRIORITY, 0)
        .set_text(el::MOVE_DESTINATION, destination);
    ch.send_command(pc, &rq)?;
    ch.send_data(pc, &mut ident.as_slice())?;
    let mut cancel_sent = false;
    loop {
        if ctl.cancelled() && !cancel_sent {
            send_cancel(&mut ch, pc, 1)?;
            cancel_sent = true;
        }
        let (_, cmd) = ch.read_command()?;
        if cmd.command_field() != field::C_MOVE_RSP {
            ch.abort();
            return Err(PacsError::Protocol(format!(
                "expected C-MOVE-RSP, got command 0x{:04X}",
                cmd.command_field()
            )));
        }
        if cmd.has_data_set() {
            ch.read_data(MAX_IDENTIFIER_BYTES, &mut |_| Ok(()))?;
        }
        let (rem, done, failed, warn) = sub_ops(&cmd);
        ch.progress = format!(", after {done} of {} images", rem + done + failed + warn);
        let status = cmd.status().unwrap_or(0xFFFF);
        if status_class(status) == StatusClass::Pending {
            (ctl.progress)(TransferProgress {
                done,
                total: Some(rem + done + failed + warn),
                bytes: 0,
            });
            continue;
        }
        let r = check_final("C-MOVE", &cmd);
        ch.release();
        r?;
        if cancel_sent {
            return Err(PacsError::Cancelled);
        }
        if done + warn == 0 {
            return Err(PacsError::NotFound(format!(
                "C-MOVE of series {} from {peer} moved no images{}",
                key.series_uid,
                if failed > 0 {
                    format!(" ({failed} failed sub-operations)")
                } else {
                    String::new()
                }
            )));
        }
        return Ok((done + warn, failed));
    }
}

/// A Part-10 file to send: its meta and where its data set starts.
struct Outgoing {
    path: PathBuf,
    sop_class: String,
    sop_instance: String,
    ts: String,
    data_offset: u64,
}

fn read_outgoing(path: &Path) -> Result<Outgoing, PacsError> {
    use crate::io::dicom::bounds;
    if let Err(crate::io::LoadError::File { problem, .. }) =
        bounds::check_file(path, bounds::Extent::Meta)
    {
        return Err(PacsError::file(path, problem));
    }
    let f = std::fs::File::open(path).map_err(|e| PacsError::file(path, e))?;
    let mut r = BufReader::new(f);
    let mut pre = [0u8; 128];
    r.read_exact(&mut pre).map_err(|_| {
        PacsError::file(path, "not a DICOM Part-10 file (shorter than its preamble)")
    })?;
    let meta = dicom::object::FileMetaTable::from_reader(&mut r)
        .map_err(|e| PacsError::file(path, format!("not a DICOM Part-10 file: {}", chain(&e))))?;
    let data_offset = r.stream_position().map_err(|e| PacsError::file(path, e))?;
    Ok(Outgoing {
        path: path.to_path_buf(),
        sop_class: meta.media_storage_sop_class_uid().to_string(),
        sop_instance: meta.media_storage_sop_instance_uid().to_string(),
        ts: meta.transfer_syntax().to_string(),
        data_offset,
    })
}

/// Files under `paths` (folders recursively, in name order).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PacsError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PacsError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| PacsError::file(dir, format!("cannot list folder: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(PacsError::file(p, "no such file or folder"));
        }
    }
    Ok(out)
}

/// The Part-10 files among `files`: named files must be DICOM; files found in folders that are
/// not DICOM (no "DICM" after the preamble) are skipped.
fn outgoing(paths: &[PathBuf]) -> Result<Vec<Outgoing>, PacsError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            for f in collect_files(std::slice::from_ref(p))? {
                if let Ok(o) = read_outgoing(&f) {
                    out.push(o);
                }
            }
        } else {
            out.push(read_outgoing(p)?);
        }
    }
    if out.is_empty() {
        return Err(PacsError::Invalid("no DICOM files to send".into()));
    }
    Ok(out)
}

fn is_native(ts: &str) -> bool {
    ts == "1.2.840.10008.1.2" || ts == "1.2.840.10008.1.2.1"
}

/// C-STORE files (Part-10 files, or folders of them) to `peer`. Each is sent in its own transfer
/// syntax when the PACS accepts it; uncompressed ones are re-encoded when the PACS wants the other
/// little-endian syntax.
pub fn store(
    peer: &AeAddress,
    opts: &DimseOptions,
    paths: &[PathBuf],
    ctl: &mut Control,
) -> Result<TransferStats, PacsError> {
    let t0 = Instant::now();
    let files = outgoing(paths)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for f in &files {
        let pair = (f.sop_class.clone(), f.ts.clone());
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    if pairs.len() > 127 {
        return Err(PacsError::Invalid(format!(
            "{} different SOP class / transfer syntax pairs: send them in smaller groups",
            pairs.len()
        )));
    }
    let contexts: Vec<(&str, Vec<&str>)> = pairs
        .iter()
        .map(|(c, t)| {
            let mut ts = vec![t.as_str()];
            for n in QUERY_TRANSFER_SYNTAXES {
                if n != t {
                    ts.push(n);
                }
            }
            (c.as_str(), ts)
        })
        .collect();
    let mut ch = connect(peer, opts, &contexts, &[])?;
    ch.op = "C-STORE";
    let total = files.len();
    let mut stats = TransferStats::default();
    let mut failures: Vec<String> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if ctl.cancelled() {
            ch.release();
            return Err(PacsError::Cancelled);
        }
        ch.progress = format!(", after {i} of {total} images");
        let Some((pc, ts)) = ch.context(&f.sop_class, Some(&f.ts)) else {
            failures.push(format!(
                "{}: the PACS accepts no context for SOP class {}",
                f.path.display(),
                f.sop_class
            ));
            continue;
        };
        let mut data: Box<dyn Read> = if ts == f.ts {
            let mut file = std::fs::File::open(&f.path).map_err(|e| PacsError::file(&f.path, e))?;
            file.seek(SeekFrom::Start(f.data_offset))
                .map_err(|e| PacsError::file(&f.path, e))?;
            Box::new(BufReader::with_capacity(1 << 20, file))
        } else if is_native(&ts) && is_native(&f.ts) {
            if let Err(crate::io::LoadError::File { problem, .. }) =
                crate::io::dicom::bounds::check_file(
                    &f.path,
                    crate::io::dicom::bounds::Extent::Whole,
                )
            {
                return Err(PacsError::file(&f.path, problem));
            }
            let obj = dicom::object::open_file(&f.path)
                .map_err(|e| PacsError::file(&f.path, chain(&e)))?;
            Box::new(std::io::Cursor::new(encode_identifier(&obj, &ts)?))
        } else {
            failures.push(format!(
                "{}: the PACS does not accept its transfer syntax {}",
                f.path.display(),
                f.ts
            ));
            continue;
        };
        let msg_id = (i % 65535 + 1) as u16;
        let mut rq = Command::new(field::C_STORE_RQ, true);
        rq.set_uid(el::AFFECTED_SOP_CLASS_UID, &f.sop_class)
            .set_u16(el::MESSAGE_ID, msg_id)
            .set_u16(el::PRIORITY, 0)
            .set_uid(el::AFFECTED_SOP_INSTANCE_UID, &f.sop_instance);
        ch.send_command(pc, &rq)?;
        let n = ch.send_data(pc, &mut data)?;
        let (_, rsp) = ch.read_command()?;
        if rsp.command_field() != field::C_STORE_RSP {
            ch.abort();
            return Err(PacsError::Protocol(format!(
                "expected C-STORE-RSP, got command 0x{:04X}",
                rsp.command_field()
            )));
        }
        match check_final("C-STORE", &rsp) {
            Ok(_) => {
                stats.images += 1;
                stats.bytes += n;
                (ctl.progress)(TransferProgress {
                    done: stats.images,
                    total: Some(total),
                    bytes: stats.bytes,
                });
            }
            Err(e) => failures.push(format!("{}: {e}", f.path.display())),
        }
    }
    ch.release();
    stats.seconds = t0.elapsed().as_secs_f64();
    stats.failed = failures.len();
    if let Some(first) = failures.first() {
        return Err(PacsError::Status {
            op: "C-STORE",
            status: 0xA700,
            text: "some instances were not stored",
            comment: format!(": {} of {total} failed; first: {first}", failures.len()),
        });
    }
    Ok(stats)
}
