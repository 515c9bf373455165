//! The servo bus over a serial port: acknowledged reads and writes, sync
//! read and sync write, with timeouts from the baud rate and packet sizes,
//! bounded retries, and errors that name the servo, the register and what
//! went wrong.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort};

use crate::protocol::packet::OVERHEAD;
use crate::protocol::{BROADCAST_ID, Frame, FrameParser, InstructionPacket, Parsed, Register, ServoStatus};
use crate::{Error, Result};

/// Bits per byte on the wire.
const BITS_PER_BYTE: u64 = 10;

/// How long to collect replies to a broadcast ping at `baud`: 32 replies of
/// 6 bytes (far more servos than an arm has), plus adapter latency.
pub fn broadcast_window(baud: u32) -> Duration {
    Duration::from_micros(32 * 6 * BITS_PER_BYTE * 1_000_000 / u64::from(baud.max(1)))
        + Duration::from_millis(10)
}

/// Counters of the bus's work and troubles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Packets sent (retries included).
    pub sent: u64,
    /// Status packets accepted.
    pub replies: u64,
    /// Retries after a missing or corrupt reply.
    pub retries: u64,
    /// Expected replies that never came in time.
    pub timeouts: u64,
    /// Bytes skipped as garbage, and frames that were not the reply expected.
    pub corrupt: u64,
    /// Bytes that came after their request had timed out, discarded before
    /// the next request (see [`BusConfig::settle`]).
    pub stale: u64,
}

/// Tuning of the bus.
#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    /// Bit rate, baud.
    pub baud: u32,
    /// Attempts after the first for a transaction that failed.
    pub retries: u32,
    /// Added to the wire time of request and reply to get the timeout:
    /// USB adapter latency and the servo's turn-around.
    pub latency_margin: Duration,
    /// After a request timed out with its reply short of bytes (missing,
    /// not garbled), how long the line must stay quiet before a different
    /// request is sent. A status packet does not say which
    /// request it answers, so a reply that comes after its timeout would
    /// otherwise be taken as the answer to the next request: a wrong
    /// position or limit, read from the wrong register.
    pub settle: Duration,
}

/// The longest the bus waits for a chattering line to go quiet, in
/// multiples of [`BusConfig::settle`], before it sends anyway.
const SETTLE_LIMIT: u32 = 10;

impl Default for BusConfig {
    fn default() -> BusConfig {
        BusConfig {
            baud: 1_000_000,
            retries: 3,
            latency_margin: Duration::from_millis(5),
            settle: Duration::from_millis(20),
        }
    }
}

/// A Feetech servo bus on a serial port.
pub struct Bus {
    port: Box<dyn SerialPort>,
    path: String,
    config: BusConfig,
    parser: FrameParser,
    tx: Vec<u8>,
    /// The last packet sent.
    last_tx: Vec<u8>,
    /// A reply fell short of its bytes since the line last settled: the rest
    /// may still come.
    unsettled: bool,
    last_status: [ServoStatus; 256],
    /// Counters.
    pub stats: BusStats,
}

impl Bus {
    /// Opens the serial port at `path`.
    pub fn open(path: &str, config: BusConfig) -> Result<Bus> {
        let port = serialport::new(path, config.baud)
            .timeout(Duration::from_millis(10))
            .open()
            .map_err(|e| Error::Port {
                port: path.to_owned(),
                reason: match e.kind() {
                    serialport::ErrorKind::NoDevice | serialport::ErrorKind::Io(ErrorKind::NotFound) => {
                        format!("{e} (is the adapter plugged in? `ls /dev/ttyACM* /dev/ttyUSB*` lists serial ports)")
                    }
                    _ => e.to_string(),
                },
            })?;
        Ok(Bus {
            port,
            path: path.to_owned(),
            config,
            parser: FrameParser::new(),
            tx: Vec::with_capacity(64),
            last_tx: Vec::with_capacity(64),
            unsettled: false,
            last_status: [ServoStatus::default(); 256],
            stats: BusStats::default(),
        })
    }

    /// The port's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current bit rate.
    pub fn baud(&self) -> u32 {
        self.config.baud
    }

    /// Changes the bit rate of the port (the servos' own rate is a register).
    pub fn set_baud(&mut self, baud: u32) -> Result<()> {
        self.port.set_baud_rate(baud).map_err(|e| self.port_error(e))?;
        self.config.baud = baud;
        Ok(())
    }

    /// The error bits of the last status packet from servo `id`.
    pub fn last_status(&self, id: u8) -> ServoStatus {
        self.last_status[usize::from(id)]
    }

    fn port_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Port {
            port: self.path.clone(),
            reason: format!("{e} (adapter unplugged?)"),
        }
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        Duration::from_micros(bytes as u64 * BITS_PER_BYTE * 1_000_000 / u64::from(self.config.baud.max(1)))
    }

    /// Sends a packet, discarding anything unread before it. After a
    /// timeout, a different request that `expects_reply` first waits for the
    /// line to settle; a retry of the same request does not, since a late
    /// reply answers it too, and neither does a packet that no servo answers.
    fn send(&mut self, packet: &InstructionPacket, expects_reply: bool) -> Result<()> {
        self.tx.clear();
        packet.write_into(&mut self.tx)?;
        if expects_reply && self.unsettled && self.tx != self.last_tx {
            self.settle()?;
        }
        self.port
            .clear(ClearBuffer::Input)
            .map_err(|e| self.port_error(format!("clearing input failed: {e}")))?;
        self.parser.clear();
        self.stats.sent += 1;
        std::mem::swap(&mut self.tx, &mut self.last_tx);
        let result = self
            .port
            .write_all(&self.last_tx)
            .and_then(|()| self.port.flush());
        result.map_err(|e| self.port_error(format!("write failed: {e}")))
    }

    /// Reads and discards until nothing has come for [`BusConfig::settle`]
    /// (or, on a line that never goes quiet, [`SETTLE_LIMIT`] times that).
    fn settle(&mut self) -> Result<()> {
        let quiet = self.config.settle;
        let started = Instant::now();
        let mut last_byte = started;
        let mut buf = [0u8; 256];
        loop {
            let now = Instant::now();
            let quiet_for = now - last_byte;
            if quiet_for >= quiet || now - started >= quiet * SETTLE_LIMIT {
                break;
            }
            self.port
                .set_timeout(quiet - quiet_for)
                .map_err(|e| self.port_error(e))?;
            match self.port.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(1)),
                Ok(n) => {
                    self.stats.stale += n as u64;
                    last_byte = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(self.port_error(format!("read failed: {e}"))),
            }
        }
        self.unsettled = false;
        Ok(())
    }

    /// Collects status packets from `expected` (ID, parameter bytes) until all
    /// came or `deadline` passed. Frames that are not an expected reply are
    /// taken back and rescanned. Returns the replies by position in `expected`,
    /// and how many bytes came.
    fn receive(
        &mut self,
        expected: &[(u8, usize)],
        deadline: Instant,
    ) -> Result<(Vec<Option<Frame>>, usize)> {
        let mut got: Vec<Option<Frame>> = vec![None; expected.len()];
        let mut received = 0;
        let mut missing = expected.len();
        let mut buf = [0u8; 256];
        let mut at_end = false;
        while missing > 0 {
            let parsed = if at_end {
                self.parser.poll_at_end()
            } else {
                self.parser.poll()
            };
            match parsed {
                Some(Parsed::Frame(frame)) => {
                    let slot = expected.iter().enumerate().position(|(i, (id, len))| {
                        got[i].is_none() && frame.id == *id && frame.params.len() == *len
                    });
                    match slot {
                        Some(i) => {
                            self.last_status[usize::from(frame.id)] = ServoStatus(frame.kind);
                            self.stats.replies += 1;
                            got[i] = Some(frame);
                            missing -= 1;
                        }
                        None => {
                            self.stats.corrupt += 1;
                            self.parser.reject_last();
                        }
                    }
                    continue;
                }
                Some(Parsed::Skipped { bytes, .. }) => {
                    self.stats.corrupt += bytes as u64;
                    continue;
                }
                None if at_end => break,
                None => {}
            }
            let now = Instant::now();
            if now >= deadline {
                at_end = true;
                continue;
            }
            self.port
                .set_timeout(deadline - now)
                .map_err(|e| self.port_error(e))?;
            match self.port.read(&mut buf) {
                Ok(0) => at_end = true,
                Ok(n) => {
                    received += n;
                    self.parser.push(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => at_end = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.port_error(format!("read failed: {e}"))),
            }
        }
        Ok((got, received))
    }

    /// After a reply went missing: if fewer than the `expected` bytes were
    /// `received`, part of the reply may still come, late, and the line must
    /// settle before the next request. (All the bytes having come, the reply
    /// was garbled, not late.)
    fn note_short_reply(&mut self, received: usize, expected: usize) {
        if received < expected {
            self.unsettled = true;
        }
    }

    /// Sends `packet` and waits for one reply of `reply_len` parameter bytes
    /// from `id`, retrying on timeouts and corrupt replies.
    fn transact(
        &mut self,
        packet: &InstructionPacket,
        reply_len: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Frame> {
        let timeout = self.wire_time(packet.params.len() + OVERHEAD + reply_len + OVERHEAD)
            + self.config.latency_margin;
        let attempts = self.config.retries + 1;
        for attempt in 0..attempts {
            if attempt > 0 {
                self.stats.retries += 1;
            }
            self.send(packet, true)?;
            let corrupt_before = self.stats.corrupt;
            let (mut got, received) = self.receive(&[(packet.id, reply_len)], Instant::now() + timeout)?;
            if let Some(frame) = got.pop().flatten() {
                return Ok(frame);
            }
            self.stats.timeouts += 1;
            self.note_short_reply(received, reply_len + OVERHEAD);
            if attempt + 1 == attempts {
                return Err(if self.stats.corrupt > corrupt_before {
                    Error::Corrupt {
                        id: packet.id,
                        what: what(),
                        detail: "garbled or unexpected bytes instead of a reply".into(),
                        attempts,
                    }
                } else {
                    Error::Timeout {
                        id: packet.id,
                        what: what(),
                        timeout_ms: timeout.as_secs_f64() * 1e3,
                        attempts,
                    }
                });
            }
        }
        unreachable!("the last attempt returns")
    }

    /// PING servo `id`: `Ok(true)` if it answered, `Ok(false)` if nothing did.
    pub fn ping(&mut self, id: u8) -> Result<bool> {
        match self.transact(&InstructionPacket::ping(id), 0, &|| "PING".into()) {
            Ok(_) => Ok(true),
            Err(Error::Timeout { .. } | Error::Corrupt { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Broadcast PING: the IDs of every servo that answers within `window`.
    pub fn broadcast_ping(&mut self, window: Duration) -> Result<Vec<u8>> {
        self.send(&InstructionPacket::ping(BROADCAST_ID), true)?;
        let deadline = Instant::now() + window;
        let mut ids = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let now = Instant::now();
            let at_end = now >= deadline;
            while let Some(parsed) = if at_end {
                self.parser.poll_at_end()
            } else {
                self.parser.poll()
            } {
                if let Parsed::Frame(frame) = parsed
                    && frame.params.is_empty()
                    && !ids.contains(&frame.id)
                {
                    self.last_status[usize::from(frame.id)] = ServoStatus(frame.kind);
                    ids.push(frame.id);
                }
            }
            if at_end {
                break;
            }
            self.port
                .set_timeout(deadline - now)
                .map_err(|e| self.port_error(e))?;
            match self.port.read(&mut buf) {
                Ok(n) => self.parser.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(self.port_error(format!("read failed: {e}"))),
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads `len` bytes at `addr` of servo `id`.
    pub fn read_bytes(&mut self, id: u8, addr: u8, len: u8) -> Result<Vec<u8>> {
        let what = || format!("READ of {len} bytes at address {addr}");
        let frame = self.transact(&InstructionPacket::read(id, addr, len), usize::from(len), &what)?;
        Ok(frame.params)
    }

    /// Reads a register of servo `id`.
    pub fn read(&mut self, id: u8, register: Register) -> Result<i32> {
        let what = || format!("READ of {register}");
        let packet = InstructionPacket::read(id, register.address, register.size);
        let frame = self.transact(&packet, usize::from(register.size), &what)?;
        register.decode(&frame.params)
    }

    /// Writes a register of servo `id` and waits for the acknowledgement.
    pub fn write(&mut self, id: u8, register: Register, value: i32) -> Result<()> {
        if !register.writable {
            return Err(Error::Register {
                register,
                reason: "is read-only".into(),
            });
        }
        let data = register.encode(value)?;
        let what = || format!("WRITE of {value} to {register}");
        let packet = InstructionPacket::write(id, register.address, &data);
        if id == BROADCAST_ID {
            return self.send(&packet, false);
        }
        let frame = self.transact(&packet, 0, &what)?;
        let status = ServoStatus(frame.kind);
        if status.is_dangerous() {
            return Err(Error::Servo {
                id,
                status,
                what: what(),
            });
        }
        Ok(())
    }

    /// Reads one register from several servos (their replies, in order).
    /// Missing replies are asked for again, up to the retry limit.
    pub fn sync_read(&mut self, register: Register, ids: &[u8]) -> Result<Vec<i32>> {
        let len = usize::from(register.size);
        let mut values: Vec<Option<i32>> = vec![None; ids.len()];
        let attempts = self.config.retries + 1;
        for attempt in 0..attempts {
            let pending: Vec<usize> = (0..ids.len()).filter(|i| values[*i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                self.stats.retries += 1;
            }
            let pending_ids: Vec<u8> = pending.iter().map(|i| ids[*i]).collect();
            let packet = InstructionPacket::sync_read(register.address, register.size, &pending_ids);
            let reply_bytes = pending.len() * (len + OVERHEAD);
            let timeout =
                self.wire_time(packet.params.len() + OVERHEAD + reply_bytes) + self.config.latency_margin;
            self.send(&packet, true)?;
            let expected: Vec<(u8, usize)> = pending_ids.iter().map(|id| (*id, len)).collect();
            let (got, received) = self.receive(&expected, Instant::now() + timeout)?;
            let mut complete = true;
            for (slot, frame) in pending.iter().zip(got) {
                match frame {
                    Some(frame) => values[*slot] = Some(register.decode(&frame.params)?),
                    None => {
                        self.stats.timeouts += 1;
                        complete = false;
                    }
                }
            }
            if !complete {
                self.note_short_reply(received, reply_bytes);
            }
        }
        values
            .iter()
            .zip(ids)
            .map(|(value, id)| {
                value.ok_or_else(|| Error::Timeout {
                    id: *id,
                    what: format!("SYNC_READ of {register}"),
                    timeout_ms: self.config.latency_margin.as_secs_f64() * 1e3,
                    attempts,
                })
            })
            .collect()
    }

    /// Writes one register of several servos in one packet (no replies).
    pub fn sync_write(&mut self, register: Register, values: &[(u8, i32)]) -> Result<()> {
        if !register.writable {
            return Err(Error::Register {
                register,
                reason: "is read-only".into(),
            });
        }
        let encoded = values
            .iter()
            .map(|(id, value)| Ok((*id, register.encode(*value)?)))
            .collect::<Result<Vec<_>>>()?;
        let writes: Vec<(u8, &[u8])> = encoded.iter().map(|(id, data)| (*id, data.as_slice())).collect();
        let packet = InstructionPacket::sync_write(register.address, register.size, &writes)?;
        self.send(&packet, false)
    }
}
