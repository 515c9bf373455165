//! Motor setup: give a factory-fresh servo its SO-100 ID and the bus baud
//! rate, one motor at a time (only that motor on the bus).

use sponge_robot::joint::Joint;

use crate::protocol::register::{self as reg, BAUD_RATES, STS3215_MODEL};
use crate::{Bus, BusConfig, Error, Result};

/// What setup found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// The ID the motor had.
    pub old_id: u8,
    /// The baud rate it was at.
    pub old_baud: u32,
    /// The joint it now serves (its ID is the joint's).
    pub joint: Joint,
}

/// Finds the single servo on `port` (at any baud rate), checks it is an
/// STS3215, and writes `joint`'s ID and 1 Mbaud to its EEPROM.
pub fn setup_motor(port: &str, joint: Joint) -> Result<SetupReport> {
    let mut bus = Bus::open(port, BusConfig::default())?;
    let found = crate::scan::find_servos(&mut bus)?;
    let (old_id, old_baud) = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Arm(format!(
                "no servo answers on {port}: connect the {joint} motor alone, powered, and try again"
            )));
        }
        many => {
            return Err(Error::Arm(format!(
                "{} servos answer on {port} ({}): connect only the {joint} motor",
                many.len(),
                many.iter()
                    .map(|(id, baud)| format!("ID {id} at {baud} baud"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    bus.set_baud(old_baud)?;
    let model = bus.read(old_id, reg::MODEL_NUMBER)?;
    if model != i32::from(STS3215_MODEL) {
        return Err(Error::Arm(format!(
            "the servo on {port} is model {model}, not an STS3215 ({STS3215_MODEL})"
        )));
    }
    let new_id = joint.motor_id();
    bus.write(old_id, reg::TORQUE_ENABLE, 0)?;
    bus.write(old_id, reg::LOCK, 0)?;
    bus.write(old_id, reg::ID, i32::from(new_id))?;
    bus.write(new_id, reg::BAUD_RATE, 0)?;
    bus.set_baud(BAUD_RATES[0])?;
    if !bus.ping(new_id)? {
        return Err(Error::Arm(format!(
            "the {joint} motor does not answer as ID {new_id} at 1 Mbaud after setup: power-cycle it and retry"
        )));
    }
    bus.write(new_id, reg::LOCK, 1)?;
    Ok(SetupReport {
        old_id,
        old_baud,
        joint,
    })
}
