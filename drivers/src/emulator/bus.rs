//! The emulated bus: six (or any number of) servos answering instructions
//! as STS3215s do.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fault::Faults;
use super::servo::EmulatedServo;
use crate::protocol::{BROADCAST_ID, Frame, Instruction, StatusPacket};

/// Counters of what the emulator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmulatorStats {
    /// Valid instruction packets received.
    pub packets: u64,
    /// Bytes skipped as garbage.
    pub garbage_bytes: u64,
    /// Status packets sent.
    pub replies: u64,
    /// Replies dropped by fault injection.
    pub dropped: u64,
    /// Replies corrupted by fault injection.
    pub corrupted: u64,
    /// Reply batches delayed by fault injection.
    pub late: u64,
}

/// Replies to one instruction.
#[derive(Debug, Default)]
pub struct Response {
    /// The bytes to send back (several status packets back to back).
    pub bytes: Vec<u8>,
    /// Servo-side delay before sending (return delay, plus late faults), seconds.
    pub delay_s: f64,
}

/// A bus of emulated servos.
pub struct EmulatedBus {
    /// The servos, in ID order at start.
    pub servos: Vec<EmulatedServo>,
    faults: Faults,
    rng: StdRng,
    /// Counters.
    pub stats: EmulatorStats,
}

impl EmulatedBus {
    /// Servos with `ids`, all at mid-range (2048), with `faults` and a seed for them.
    pub fn new(ids: &[u8], faults: Faults, seed: u64) -> EmulatedBus {
        let mut bus = EmulatedBus {
            servos: ids.iter().map(|id| EmulatedServo::new(*id, 2048)).collect(),
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(seed),
            stats: EmulatorStats::default(),
        };
        bus.set_faults(faults);
        bus
    }

    /// Replaces the injected faults.
    pub fn set_faults(&mut self, faults: Faults) {
        for servo in &mut self.servos {
            let bits = faults
                .error_bits
                .iter()
                .filter(|(id, _)| *id == servo.id())
                .fold(0, |acc, (_, bits)| acc | bits);
            servo.force_status(bits);
        }
        self.faults = faults;
    }

    /// The injected faults.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The servo with `id`, if present.
    pub fn servo_mut(&mut self, id: u8) -> Option<&mut EmulatedServo> {
        self.servos.iter_mut().find(|s| s.id() == id)
    }

    /// Advances every servo's motion.
    pub fn step(&mut self, dt_s: f64) {
        for servo in &mut self.servos {
            servo.step(dt_s);
        }
    }

    /// Handles one instruction heard at `host_baud`; servos set to another
    /// baud rate hear only noise and stay silent.
    pub fn handle(&mut self, frame: &Frame, host_baud: u32) -> Response {
        self.stats.packets += 1;
        let mut replies: Vec<StatusPacket> = Vec::new();
        let mut delay_s: f64 = 0.0;
        let broadcast = frame.id == BROADCAST_ID;
        let params = &frame.params;
        let listening = |s: &EmulatedServo| s.baud() == host_baud;
        let reply = |s: &EmulatedServo, params: Vec<u8>| StatusPacket {
            id: s.id(),
            status: s.status(),
            params,
        };
        match Instruction::from_code(frame.kind) {
            Some(Instruction::Ping) => {
                let mut targets: Vec<&EmulatedServo> = self
                    .servos
                    .iter()
                    .filter(|s| listening(s) && (broadcast || s.id() == frame.id))
                    .collect();
                targets.sort_by_key(|s| s.id());
                for servo in targets {
                    delay_s = delay_s.max(servo.return_delay_s());
                    replies.push(reply(servo, Vec::new()));
                }
            }
            Some(Instruction::Read) if !broadcast && params.len() == 2 => {
                if let Some(servo) = self
                    .servos
                    .iter_mut()
                    .find(|s| s.id() == frame.id && listening(s))
                    && let Some(data) = servo.read(params[0], params[1])
                {
                    delay_s = servo.return_delay_s();
                    replies.push(reply(servo, data));
                }
            }
            Some(kind @ (Instruction::Write | Instruction::RegWrite)) if !params.is_empty() => {
                for servo in self.servos.iter_mut().filter(|s| s.baud() == host_baud) {
                    if !broadcast && servo.id() != frame.id {
                        continue;
                    }
                    // The reply comes from the ID the packet was sent to, before the write.
                    let status = reply(servo, Vec::new());
                    let written = if kind == Instruction::Write {
                        servo.write(params[0], &params[1..])
                    } else {
                        servo.reg_write(params[0], &params[1..]);
                        true
                    };
                    if written && !broadcast && servo.replies_to_writes() {
                        delay_s = servo.return_delay_s();
                        replies.push(status);
                    }
                }
            }
            Some(kind @ (Instruction::Action | Instruction::Reboot | Instruction::Reset)) => {
                for servo in self.servos.iter_mut().filter(|s| s.baud() == host_baud) {
                    if !broadcast && servo.id() != frame.id {
                        continue;
                    }
                    if !broadcast && servo.replies_to_writes() {
                        delay_s = servo.return_delay_s();
                        replies.push(reply(servo, Vec::new()));
                    }
                    match kind {
                        Instruction::Action => servo.action(),
                        Instruction::Reboot => servo.reboot(),
                        _ => servo.reset(),
                    }
                }
            }
            Some(Instruction::SyncRead) if broadcast && params.len() >= 2 => {
                let (addr, len) = (params[0], params[1]);
                for id in &params[2..] {
                    let Some(servo) = self
                        .servos
                        .iter_mut()
                        .find(|s| s.id() == *id && s.baud() == host_baud)
                    else {
                        continue;
                    };
                    if let Some(data) = servo.read(addr, len) {
                        delay_s = delay_s.max(servo.return_delay_s());
                        replies.push(reply(servo, data));
                    }
                }
            }
            Some(Instruction::SyncWrite) if broadcast && params.len() >= 2 => {
                let (addr, len) = (params[0], usize::from(params[1]));
                let body = &params[2..];
                if len > 0 && body.len().is_multiple_of(len + 1) {
                    for chunk in body.chunks(len + 1) {
                        let listening_servo = self
                            .servos
                            .iter_mut()
                            .find(|s| s.id() == chunk[0] && s.baud() == host_baud);
                        if let Some(servo) = listening_servo {
                            servo.write(addr, &chunk[1..]);
                        }
                    }
                }
            }
            // Unknown instructions and malformed parameters get no reply.
            _ => {}
        }
        self.encode_replies(replies, delay_s)
    }

    fn encode_replies(&mut self, replies: Vec<StatusPacket>, mut delay_s: f64) -> Response {
        let mut bytes = Vec::new();
        for packet in replies {
            if self.rng.random_bool(self.faults.drop_rate) {
                self.stats.dropped += 1;
                continue;
            }
            let start = bytes.len();
            // Payloads here are at most 128 bytes: framing cannot fail.
            if packet.write_into(&mut bytes).is_err() {
                continue;
            }
            if self.rng.random_bool(self.faults.corrupt_rate) {
                let at = self.rng.random_range(start..bytes.len());
                bytes[at] ^= self.rng.random_range(1..=255u8);
                self.stats.corrupted += 1;
            }
            self.stats.replies += 1;
        }
        if !bytes.is_empty() && self.rng.random_bool(self.faults.late_rate) {
            delay_s += self.faults.late_by_s();
            self.stats.late += 1;
        }
        Response { bytes, delay_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::register as reg;
    use crate::protocol::{FrameParser, InstructionPacket, Parsed};

    fn frame(packet: &InstructionPacket) -> Frame {
        let mut parser = FrameParser::new();
        parser.push(&packet.to_bytes().unwrap());
        match parser.poll() {
            Some(Parsed::Frame(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    fn replies(bytes: &[u8]) -> Vec<Frame> {
        let mut parser = FrameParser::new();
        parser.push(bytes);
        std::iter::from_fn(|| parser.poll_at_end())
            .filter_map(|p| if let Parsed::Frame(f) = p { Some(f) } else { None })
            .collect()
    }

    #[test]
    fn sync_read_replies_in_request_order() {
        let mut bus = EmulatedBus::new(&[1, 2, 3], Faults::default(), 0);
        let response = bus.handle(
            &frame(&InstructionPacket::sync_read(56, 2, &[3, 1, 9, 2])),
            1_000_000,
        );
        let ids: Vec<u8> = replies(&response.bytes).iter().map(|f| f.id).collect();
        assert_eq!(ids, [3, 1, 2]);
    }

    #[test]
    fn wrong_baud_hears_nothing() {
        let mut bus = EmulatedBus::new(&[1], Faults::default(), 0);
        assert!(
            bus.handle(&frame(&InstructionPacket::ping(1)), 115_200)
                .bytes
                .is_empty()
        );
        assert!(
            !bus.handle(&frame(&InstructionPacket::ping(1)), 1_000_000)
                .bytes
                .is_empty()
        );
    }

    #[test]
    fn broadcast_write_is_silent_and_unicast_write_acknowledged() {
        let mut bus = EmulatedBus::new(&[1, 2], Faults::default(), 0);
        let write = InstructionPacket::write(BROADCAST_ID, reg::TORQUE_ENABLE.address, &[1]);
        assert!(bus.handle(&frame(&write), 1_000_000).bytes.is_empty());
        assert!(bus.servos.iter().all(|s| s.get(reg::TORQUE_ENABLE) == 1));
        let write = InstructionPacket::write(2, reg::TORQUE_ENABLE.address, &[0]);
        let got = replies(&bus.handle(&frame(&write), 1_000_000).bytes);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, 2);
    }

    #[test]
    fn dropped_replies_follow_the_rate() {
        let faults = Faults {
            drop_rate: 0.3,
            ..Faults::default()
        };
        let mut bus = EmulatedBus::new(&[1], faults, 42);
        let ping = frame(&InstructionPacket::ping(1));
        let answered = (0..2000)
            .filter(|_| !bus.handle(&ping, 1_000_000).bytes.is_empty())
            .count();
        assert!((1300..1500).contains(&answered), "{answered} of 2000 answered");
    }
}
