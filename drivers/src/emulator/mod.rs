//! A servo-bus emulator: STS3215 servos behind a pseudo-terminal.
//!
//! Programs open the pty (through the symlink the emulator puts at the path
//! you choose) exactly as they would open a USB serial adapter, at the baud
//! rate the servos are set to, and talk Feetech's protocol to it. Servos
//! set to another baud rate hear nothing, as on a real bus. Replies take
//! the time the bytes would take on the wire.

mod bus;
mod fault;
mod servo;

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

pub use bus::{EmulatedBus, EmulatorStats, Response};
pub use fault::Faults;
pub use servo::{EmulatedServo, MAX_SPEED_TICKS_S};

use crate::protocol::packet::OVERHEAD;
use crate::protocol::{FrameParser, Parsed};
use crate::{Error, Result};

/// Bits per byte on the wire (start, 8 data, stop).
const BITS_PER_BYTE: f64 = 10.0;

/// How to set up the emulated servos.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Servo IDs on the bus.
    pub ids: Vec<u8>,
    /// Injected faults.
    pub faults: Faults,
    /// Seed of the fault injection.
    pub seed: u64,
    /// Delay replies by the time their bytes take on the wire.
    pub wire_time: bool,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            ids: vec![1, 2, 3, 4, 5, 6],
            faults: Faults::default(),
            seed: 0,
            wire_time: true,
        }
    }
}

/// A running emulator. Stops, and removes its link, when dropped.
pub struct Emulator {
    bus: Arc<Mutex<EmulatedBus>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    link: PathBuf,
    pty: String,
}

fn port_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Port {
        port: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Emulator {
    /// Opens a pty, links it at `link` (replacing an old link there, never a
    /// regular file) and starts serving.
    pub fn start(link: &Path, config: EmulatorConfig) -> Result<Emulator> {
        let (mut master, slave) = TTYPort::pair().map_err(|e| port_error(link, e))?;
        let pty = slave
            .name()
            .ok_or_else(|| port_error(link, "the pseudo-terminal has no name"))?;
        // Clients open the pty by name; holding it here would keep it busy.
        drop(slave);
        match std::fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(link).map_err(|e| port_error(link, e))?;
            }
            Ok(_) => {
                return Err(port_error(
                    link,
                    "exists and is not a symlink; refusing to replace it",
                ));
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&pty, link).map_err(|e| port_error(link, e))?;
        master
            .set_timeout(Duration::from_millis(1))
            .map_err(|e| port_error(link, e))?;

        let bus = Arc::new(Mutex::new(EmulatedBus::new(
            &config.ids,
            config.faults.clone(),
            config.seed,
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bus, stop, link_path, pty) = (bus.clone(), stop.clone(), link.to_path_buf(), pty.clone());
            std::thread::Builder::new()
                .name("servo-emulator".into())
                .spawn(move || serve(master, &bus, &stop, &link_path, &pty, config.wire_time))
                .map_err(|e| port_error(link, e))?
        };
        Ok(Emulator {
            bus,
            stop,
            thread: Some(thread),
            link: link.to_path_buf(),
            pty,
        })
    }

    /// The symlink clients open.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The pty device behind the link.
    pub fn pty(&self) -> &str {
        &self.pty
    }

    /// The emulated bus, for tests and tools to move servos by hand, read
    /// registers or change faults while it runs.
    pub fn bus(&self) -> MutexGuard<'_, EmulatedBus> {
        lock(&self.bus)
    }

    /// Whether the emulator still serves (false once the port has vanished).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Pulls the plug: the pty closes and the link disappears, as when a
    /// USB adapter is unplugged.
    pub fn vanish(&mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A panic in the serving thread has already been reported by it.
            let _ = thread.join();
        }
        remove_link(&self.link, &self.pty);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Removes `link` if it still points at `pty`.
fn remove_link(link: &Path, pty: &str) {
    if std::fs::read_link(link).is_ok_and(|target| target == Path::new(pty)) {
        // Best effort: the link may already be gone.
        let _ = std::fs::remove_file(link);
    }
}

fn serve(
    mut master: TTYPort,
    bus: &Mutex<EmulatedBus>,
    stop: &AtomicBool,
    link: &Path,
    pty: &str,
    wire_time: bool,
) {
    let started = Instant::now();
    let mut last_step = started;
    let mut wire_free_at = started;
    let mut parser = FrameParser::new();
    let mut buf = [0u8; 1024];
    let vanish_after = lock(bus).faults().vanish_after_s.map(Duration::from_secs_f64);
    while !stop.load(Ordering::SeqCst) {
        if vanish_after.is_some_and(|after| started.elapsed() >= after) {
            break;
        }
        match master.read(&mut buf) {
            Ok(n) => parser.push(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            // No client has the pty open: wait for one.
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
        let baud = master.baud_rate().unwrap_or(0);
        let byte_time = |bytes: usize| {
            if wire_time && baud > 0 {
                Duration::from_secs_f64(bytes as f64 * BITS_PER_BYTE / f64::from(baud))
            } else {
                Duration::ZERO
            }
        };
        let mut responses = Vec::new();
        {
            let mut bus = lock(bus);
            let now = Instant::now();
            bus.step((now - last_step).as_secs_f64());
            last_step = now;
            while let Some(parsed) = parser.poll() {
                match parsed {
                    Parsed::Frame(frame) => {
                        // Half-duplex wire: the request occupies it from when it is free,
                        // then the servos' replies follow.
                        let request_done = wire_free_at.max(now) + byte_time(frame.params.len() + OVERHEAD);
                        let response = bus.handle(&frame, baud);
                        wire_free_at = request_done;
                        if !response.bytes.is_empty() {
                            let send_at = request_done + Duration::from_secs_f64(response.delay_s);
                            wire_free_at = send_at + byte_time(response.bytes.len());
                            responses.push((wire_free_at, response));
                        }
                    }
                    Parsed::Skipped { bytes, .. } => bus.stats.garbage_bytes += bytes as u64,
                }
            }
        }
        for (ready_at, response) in responses {
            std::thread::sleep(ready_at.saturating_duration_since(Instant::now()));
            // A client that went away mid-reply is not an emulator error.
            let _ = master.write_all(&response.bytes);
        }
    }
    remove_link(link, pty);
}

fn lock(bus: &Mutex<EmulatedBus>) -> MutexGuard<'_, EmulatedBus> {
    bus.lock().unwrap_or_else(PoisonError::into_inner)
}
