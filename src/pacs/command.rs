//! DIMSE command sets: group 0000 elements in implicit VR little endian (PS3.7 section 6.3.1, E.1).
//!
//! dicom-ul moves bytes (associations, P-DATA); the command layer is ours. A command set is a
//! short list of group 0000 elements, kept here as element number -> raw value so one type serves
//! every message; typed getters decode on demand and every length is checked against the bytes.

use super::PacsError;
use std::collections::BTreeMap;

/// Largest command set we accept from a peer (real ones are a few hundred bytes).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// CommandField (0000,0100) values.
pub mod field {
    /// C-STORE-RQ.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE-RSP.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-GET-RQ.
    pub const C_GET_RQ: u16 = 0x0010;
    /// C-GET-RSP.
    pub const C_GET_RSP: u16 = 0x8010;
    /// C-FIND-RQ.
    pub const C_FIND_RQ: u16 = 0x0020;
    /// C-FIND-RSP.
    pub const C_FIND_RSP: u16 = 0x8020;
    /// C-MOVE-RQ.
    pub const C_MOVE_RQ: u16 = 0x0021;
    /// C-MOVE-RSP.
    pub const C_MOVE_RSP: u16 = 0x8021;
    /// C-ECHO-RQ.
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO-RSP.
    pub const C_ECHO_RSP: u16 = 0x8030;
    /// C-CANCEL-RQ.
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// Element numbers (group 0000) used by the services we speak.
pub mod el {
    /// CommandGroupLength (UL).
    pub const GROUP_LENGTH: u16 = 0x0000;
    /// AffectedSOPClassUID (UI).
    pub const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
    /// CommandField (US).
    pub const COMMAND_FIELD: u16 = 0x0100;
    /// MessageID (US).
    pub const MESSAGE_ID: u16 = 0x0110;
    /// MessageIDBeingRespondedTo (US).
    pub const MESSAGE_ID_RESPONDED_TO: u16 = 0x0120;
    /// MoveDestination (AE).
    pub const MOVE_DESTINATION: u16 = 0x0600;
    /// Priority (US).
    pub const PRIORITY: u16 = 0x0700;
    /// CommandDataSetType (US): 0x0101 means no data set follows.
    pub const DATA_SET_TYPE: u16 = 0x0800;
    /// Status (US).
    pub const STATUS: u16 = 0x0900;
    /// ErrorComment (LO).
    pub const ERROR_COMMENT: u16 = 0x0902;
    /// AffectedSOPInstanceUID (UI).
    pub const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
    /// NumberOfRemainingSuboperations (US).
    pub const REMAINING: u16 = 0x1020;
    /// NumberOfCompletedSuboperations (US).
    pub const COMPLETED: u16 = 0x1021;
    /// NumberOfFailedSuboperations (US).
    pub const FAILED: u16 = 0x1022;
    /// NumberOfWarningSuboperations (US).
    pub const WARNING: u16 = 0x1023;
}

/// CommandDataSetType value meaning "no data set".
pub const NO_DATA_SET: u16 = 0x0101;

/// One DIMSE command set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Command {
    elements: BTreeMap<u16, Vec<u8>>,
}

impl Command {
    /// A command with its CommandField and whether a data set follows.
    pub fn new(command_field: u16, has_data_set: bool) -> Self {
        let mut c = Self::default();
        c.set_u16(el::COMMAND_FIELD, command_field);
        c.set_u16(
            el::DATA_SET_TYPE,
            if has_data_set { 0x0000 } else { NO_DATA_SET },
        );
        c
    }

    /// Set an US element.
    pub fn set_u16(&mut self, element: u16, v: u16) -> &mut Self {
        self.elements.insert(element, v.to_le_bytes().to_vec());
        self
    }

    /// Set a UI element (NUL-padded to even length).
    pub fn set_uid(&mut self, element: u16, uid: &str) -> &mut Self {
        self.set_padded(element, uid, 0)
    }

    /// Set an AE or LO element (space-padded to even length).
    pub fn set_text(&mut self, element: u16, text: &str) -> &mut Self {
        self.set_padded(element, text, b' ')
    }

    fn set_padded(&mut self, element: u16, s: &str, pad: u8) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(pad);
        }
        self.elements.insert(element, v);
        self
    }

    /// An US element, if present and two bytes long.
    pub fn u16(&self, element: u16) -> Option<u16> {
        let v = self.elements.get(&element)?;
        (v.len() == 2).then(|| u16::from_le_bytes([v[0], v[1]]))
    }

    /// A text element without its padding (empty when absent).
    pub fn text(&self, element: u16) -> String {
        self.elements
            .get(&element)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .trim_end_matches(['\0', ' '])
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// CommandField, 0 when missing.
    pub fn command_field(&self) -> u16 {
        self.u16(el::COMMAND_FIELD).unwrap_or(0)
    }

    /// True when a data set follows this command.
    pub fn has_data_set(&self) -> bool {
        self.u16(el::DATA_SET_TYPE)
            .is_some_and(|t| t != NO_DATA_SET)
    }

    /// Status, if this is a response.
    pub fn status(&self) -> Option<u16> {
        self.u16(el::STATUS)
    }

    /// Encode in implicit VR little endian, CommandGroupLength first.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(256);
        for (&e, v) in self
            .elements
            .iter()
            .filter(|(e, _)| **e != el::GROUP_LENGTH)
        {
            body.extend_from_slice(&0u16.to_le_bytes());
            body.extend_from_slice(&e.to_le_bytes());
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
            body.extend_from_slice(v);
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decode a command set; every element length is checked against the bytes left.
    pub fn decode(bytes: &[u8]) -> Result<Self, PacsError> {
        if bytes.len() > MAX_COMMAND_BYTES {
            return Err(PacsError::Protocol(format!(
                "command set of {} bytes is larger than the {MAX_COMMAND_BYTES} allowed",
                bytes.len()
            )));
        }
        let mut c = Self::default();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let Some(head) = bytes.get(pos..pos + 8) else {
                return Err(PacsError::Protocol(format!(
                    "command set truncated at byte {pos} of {}",
                    bytes.len()
                )));
            };
            let group = u16::from_le_bytes([head[0], head[1]]);
            let element = u16::from_le_bytes([head[2], head[3]]);
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            pos += 8;
            if group != 0x0000 {
                return Err(PacsError::Protocol(format!(
                    "command set holds element ({group:04X},{element:04X}) outside group 0000"
                )));
            }
            if len > bytes.len() - pos {
                return Err(PacsError::Protocol(format!(
                    "command element (0000,{element:04X}) declares {len} bytes, only {} remain",
                    bytes.len() - pos
                )));
            }
            c.elements.insert(element, bytes[pos..pos + len].to_vec());
            pos += len;
        }
        if !c.elements.contains_key(&el::COMMAND_FIELD) {
            return Err(PacsError::Protocol(
                "command set has no CommandField (0000,0100)".into(),
            ));
        }
        Ok(c)
    }
}

/// Status classes of PS3.7 annex C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    /// 0x0000.
    Success,
    /// 0xFF00 / 0xFF01.
    Pending,
    /// 0xFE00.
    Cancel,
    /// 0x0001, 0x0107, 0x0116, 0xB000-0xBFFF.
    Warning,
    /// Anything else.
    Failure,
}

/// Classify a status value.
pub fn status_class(s: u16) -> StatusClass {
    match s {
        0x0000 => StatusClass::Success,
        0xFF00 | 0xFF01 => StatusClass::Pending,
        0xFE00 => StatusClass::Cancel,
        0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusClass::Warning,
        _ => StatusClass::Failure,
    }
}

/// A readable name for a failure status.
pub fn status_text(s: u16) -> &'static str {
    match s {
        0x0000 => "success",
        0xFE00 => "cancelled",
        0x0122 => "SOP class not supported",
        0x0124 => "not authorised",
        0x0211 => "unrecognised operation",
        0xA701 => "out of resources (number of matches)",
        0xA702 => "out of resources (sub-operations)",
        0xA700..=0xA7FF => "out of resources",
        0xA801 => "move destination unknown",
        0xA900..=0xA9FF => "identifier does not match SOP class",
        0xC000..=0xCFFF => "unable to process",
        0xB000 => "sub-operations completed with failures",
        _ => "failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_group_length() {
        let mut c = Command::new(field::C_ECHO_RQ, false);
        c.set_uid(el::AFFECTED_SOP_CLASS_UID, "1.2.840.10008.1.1")
            .set_u16(el::MESSAGE_ID, 7);
        let bytes = c.encode();
        // group length value = bytes after the first element
        let gl = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!(gl, bytes.len() - 12);
        let d = Command::decode(&bytes).unwrap();
        assert_eq!(d.command_field(), field::C_ECHO_RQ);
        assert_eq!(d.u16(el::MESSAGE_ID), Some(7));
        assert_eq!(d.text(el::AFFECTED_SOP_CLASS_UID), "1.2.840.10008.1.1");
        assert!(!d.has_data_set());
        // UI padded with NUL to even length
        assert_eq!(bytes.len() % 2, 0);
    }

    #[test]
    fn lying_lengths_are_errors_not_panics() {
        let mut c = Command::new(field::C_STORE_RSP, false);
        c.set_u16(el::STATUS, 0);
        let mut bytes = c.encode();
        // make the last element claim a huge length
        let n = bytes.len();
        bytes[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = Command::decode(&bytes).unwrap_err().to_string();
        assert!(e.contains("declares"), "{e}");
        assert!(Command::decode(&bytes[..5]).is_err());
        assert!(Command::decode(&vec![0u8; MAX_COMMAND_BYTES + 2]).is_err());
    }
}
