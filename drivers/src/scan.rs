//! Finding servos on a port: every baud rate, every ID.

use crate::protocol::register::{self as reg, BAUD_RATES};
use crate::{Bus, BusConfig, Result};

/// A servo found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundServo {
    /// Bit rate it answered at.
    pub baud: u32,
    /// Its ID.
    pub id: u8,
    /// Its model number (777 for an STS3215), if it could be read.
    pub model: Option<i32>,
    /// Firmware major.minor, if it could be read.
    pub firmware: Option<(i32, i32)>,
}

/// Broadcast-pings at every baud rate the servos support: `(id, baud)` of
/// each servo that answers. Leaves the bus at the last baud rate tried.
pub fn find_servos(bus: &mut Bus) -> Result<Vec<(u8, u32)>> {
    let mut found = Vec::new();
    for baud in BAUD_RATES {
        bus.set_baud(baud)?;
        let window = crate::bus::broadcast_window(baud);
        found.extend(bus.broadcast_ping(window)?.into_iter().map(|id| (id, baud)));
    }
    Ok(found)
}

/// Finds every servo on the port, at every baud rate, and reads the model
/// and firmware of each.
pub fn scan(path: &str) -> Result<Vec<FoundServo>> {
    let mut bus = Bus::open(path, BusConfig::default())?;
    let mut found = Vec::new();
    for (id, baud) in find_servos(&mut bus)? {
        bus.set_baud(baud)?;
        let model = bus.read(id, reg::MODEL_NUMBER).ok();
        let firmware = match (
            bus.read(id, reg::FIRMWARE_MAJOR),
            bus.read(id, reg::FIRMWARE_MINOR),
        ) {
            (Ok(major), Ok(minor)) => Some((major, minor)),
            _ => None,
        };
        found.push(FoundServo {
            baud,
            id,
            model,
            firmware,
        });
    }
    Ok(found)
}
