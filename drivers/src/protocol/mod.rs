//! Feetech's SCS/STS serial-bus protocol, as the STS3215 speaks it.

pub mod packet;
pub mod parser;
pub mod register;

pub use packet::{BROADCAST_ID, Instruction, InstructionPacket, ServoStatus, StatusPacket};
pub use parser::{Frame, FrameParser, Parsed, SkipReason};
pub use register::Register;
