//! Feetech SCS/STS packets.
//!
//! Instruction: `FF FF ID LEN INST P1..Pn CHK`; status (reply):
//! `FF FF ID LEN ERR P1..Pn CHK`; `LEN = n + 2`;
//! `CHK = !(ID + LEN + INST/ERR + ΣP) & 0xFF`.

use std::fmt;

use crate::{Error, Result};

/// The two header bytes that start every packet.
pub const HEADER: [u8; 2] = [0xFF, 0xFF];
/// The broadcast ID: every servo acts, only sync read and ping get replies.
pub const BROADCAST_ID: u8 = 0xFE;
/// The highest ID a servo can have.
pub const MAX_ID: u8 = 0xFC;
/// The largest LEN byte accepted (as Feetech's SDK does).
pub const MAX_LEN: u8 = 250;
/// Bytes of a packet besides its parameters: header, ID, LEN, INST/ERR, CHK.
pub const OVERHEAD: usize = 6;

/// Instruction codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Instruction {
    /// Is anybody there? Replies with an empty status.
    Ping = 0x01,
    /// Read `len` bytes from `addr`.
    Read = 0x02,
    /// Write bytes at `addr`.
    Write = 0x03,
    /// Write bytes at `addr`, applied at the next ACTION.
    RegWrite = 0x04,
    /// Apply registered writes.
    Action = 0x05,
    /// Factory reset (keeps nothing but the ID on some firmwares).
    Reset = 0x06,
    /// Restart the servo.
    Reboot = 0x08,
    /// Read the same registers of several servos; each replies in turn.
    SyncRead = 0x82,
    /// Write the same registers of several servos in one packet; no reply.
    SyncWrite = 0x83,
}

impl Instruction {
    /// The instruction with this code, if known.
    pub fn from_code(code: u8) -> Option<Instruction> {
        use Instruction::*;
        [
            Ping, Read, Write, RegWrite, Action, Reset, Reboot, SyncRead, SyncWrite,
        ]
        .into_iter()
        .find(|i| *i as u8 == code)
    }
}

/// The checksum of a packet's ID, LEN, INST/ERR and parameter bytes.
pub fn checksum(bytes: &[u8]) -> u8 {
    !bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// Appends a framed packet (header, ID, LEN, `kind`, params, checksum) to `out`.
fn frame_into(out: &mut Vec<u8>, id: u8, kind: u8, params: &[u8]) -> Result<()> {
    let len = u8::try_from(params.len() + 2)
        .ok()
        .filter(|len| *len <= MAX_LEN)
        .ok_or_else(|| {
            Error::Protocol(format!(
                "{} parameter bytes do not fit in one packet",
                params.len()
            ))
        })?;
    let start = out.len();
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&[id, len, kind]);
    out.extend_from_slice(params);
    let chk = checksum(&out[start + 2..]);
    out.push(chk);
    Ok(())
}

/// An instruction packet, host to servo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionPacket {
    /// Target servo, or [`BROADCAST_ID`].
    pub id: u8,
    /// Instruction code (raw, so unknown codes survive parsing).
    pub instruction: u8,
    /// Parameters.
    pub params: Vec<u8>,
}

impl InstructionPacket {
    fn new(id: u8, instruction: Instruction, params: Vec<u8>) -> InstructionPacket {
        InstructionPacket {
            id,
            instruction: instruction as u8,
            params,
        }
    }

    /// PING `id`.
    pub fn ping(id: u8) -> InstructionPacket {
        Self::new(id, Instruction::Ping, Vec::new())
    }

    /// READ `len` bytes at `addr` of servo `id`.
    pub fn read(id: u8, addr: u8, len: u8) -> InstructionPacket {
        Self::new(id, Instruction::Read, vec![addr, len])
    }

    /// WRITE `data` at `addr` of servo `id`.
    pub fn write(id: u8, addr: u8, data: &[u8]) -> InstructionPacket {
        let mut params = Vec::with_capacity(data.len() + 1);
        params.push(addr);
        params.extend_from_slice(data);
        Self::new(id, Instruction::Write, params)
    }

    /// REG_WRITE `data` at `addr` of servo `id` (applied by ACTION).
    pub fn reg_write(id: u8, addr: u8, data: &[u8]) -> InstructionPacket {
        let mut packet = Self::write(id, addr, data);
        packet.instruction = Instruction::RegWrite as u8;
        packet
    }

    /// ACTION: apply registered writes (usually broadcast).
    pub fn action(id: u8) -> InstructionPacket {
        Self::new(id, Instruction::Action, Vec::new())
    }

    /// REBOOT servo `id`.
    pub fn reboot(id: u8) -> InstructionPacket {
        Self::new(id, Instruction::Reboot, Vec::new())
    }

    /// SYNC_READ `len` bytes at `addr` from each of `ids`.
    pub fn sync_read(addr: u8, len: u8, ids: &[u8]) -> InstructionPacket {
        let mut params = Vec::with_capacity(ids.len() + 2);
        params.extend_from_slice(&[addr, len]);
        params.extend_from_slice(ids);
        Self::new(BROADCAST_ID, Instruction::SyncRead, params)
    }

    /// SYNC_WRITE `len` bytes at `addr`: one `(id, data)` per servo, every
    /// `data` exactly `len` bytes.
    pub fn sync_write(addr: u8, len: u8, writes: &[(u8, &[u8])]) -> Result<InstructionPacket> {
        let mut params = Vec::with_capacity(2 + writes.len() * (usize::from(len) + 1));
        params.extend_from_slice(&[addr, len]);
        for (id, data) in writes {
            if data.len() != usize::from(len) {
                return Err(Error::Protocol(format!(
                    "sync write of {len} bytes got {} bytes for servo {id}",
                    data.len()
                )));
            }
            params.push(*id);
            params.extend_from_slice(data);
        }
        Ok(Self::new(BROADCAST_ID, Instruction::SyncWrite, params))
    }

    /// Appends the framed packet to `out`.
    pub fn write_into(&self, out: &mut Vec<u8>) -> Result<()> {
        frame_into(out, self.id, self.instruction, &self.params)
    }

    /// The framed packet.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.params.len() + OVERHEAD);
        self.write_into(&mut out)?;
        Ok(out)
    }
}

/// The error byte of a status packet: bits the servo sets when something is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServoStatus(pub u8);

impl ServoStatus {
    /// Input voltage out of range.
    pub const VOLTAGE: u8 = 0x01;
    /// Magnetic angle sensor fault.
    pub const ANGLE_SENSOR: u8 = 0x02;
    /// Temperature above its limit.
    pub const OVERHEAT: u8 = 0x04;
    /// Current above its limit.
    pub const OVERCURRENT: u8 = 0x08;
    /// Load above its limit for too long.
    pub const OVERLOAD: u8 = 0x20;

    const NAMES: [(u8, &'static str); 5] = [
        (Self::VOLTAGE, "input voltage out of range"),
        (Self::ANGLE_SENSOR, "angle sensor fault"),
        (Self::OVERHEAT, "overheating"),
        (Self::OVERCURRENT, "over-current"),
        (Self::OVERLOAD, "overload"),
    ];

    /// No bit set.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Overheat, over-current or overload: the arm must stop.
    pub fn is_dangerous(self) -> bool {
        self.0 & (Self::OVERHEAT | Self::OVERCURRENT | Self::OVERLOAD) != 0
    }

    /// Names of the bits set.
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Self::NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        let known = Self::NAMES.iter().fold(0, |acc, (bit, _)| acc | bit);
        if self.0 & !known != 0 {
            names.push("unknown error bit");
        }
        names
    }
}

impl fmt::Display for ServoStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return f.write_str("ok");
        }
        write!(f, "{} (0x{:02x})", self.names().join(", "), self.0)
    }
}

/// A status packet, servo to host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPacket {
    /// The replying servo.
    pub id: u8,
    /// Its error bits.
    pub status: ServoStatus,
    /// Returned data.
    pub params: Vec<u8>,
}

impl StatusPacket {
    /// Appends the framed packet to `out`.
    pub fn write_into(&self, out: &mut Vec<u8>) -> Result<()> {
        frame_into(out, self.id, self.status.0, &self.params)
    }

    /// The framed packet.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.params.len() + OVERHEAD);
        self.write_into(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_every_bit() {
        let status = ServoStatus(ServoStatus::OVERHEAT | ServoStatus::OVERLOAD);
        assert_eq!(status.to_string(), "overheating, overload (0x24)");
        assert!(status.is_dangerous());
        assert!(!ServoStatus(ServoStatus::VOLTAGE).is_dangerous());
        assert_eq!(ServoStatus(0x40).names(), ["unknown error bit"]);
    }

    #[test]
    fn oversized_packets_are_refused() {
        assert!(InstructionPacket::write(1, 0, &[0; 249]).to_bytes().is_err());
        assert!(InstructionPacket::write(1, 0, &[0; 247]).to_bytes().is_ok());
    }
}
