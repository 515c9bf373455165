//! Calibration by half-turn homing, as LeRobot does it: with the arm held
//! in the middle of every joint's range, each homing offset is set so that
//! pose reads 2047; then the person sweeps every joint through its travel
//! while the range is recorded. Offsets and ranges go to the motors' EEPROM
//! and into an [`ArmCalibration`] (LeRobot's file format).

use std::path::PathBuf;
use std::time::Duration;

use sponge_robot::calibration::{ArmCalibration, MAX_HOMING_OFFSET, MAX_TICK, MotorCalibration};
use sponge_robot::joint::{Joint, NUM_JOINTS};

use crate::protocol::register as reg;
use crate::{Bus, Error, Result};

/// The reading a joint gives in the middle of its range after homing.
pub const HOMED_MIDDLE: i32 = 2047;
/// Smallest sweep accepted for a body joint, ticks (about 9°).
pub const MIN_SWEEP_TICKS: i32 = 100;

/// How the person calibrating is guided (a terminal, or a test moving an emulator).
pub trait CalibrationGuide {
    /// Asks for every joint in the middle of its range; returns once it is.
    fn middle_pose(&mut self) -> Result<()>;
    /// Called while the joints are swept, with present positions and the
    /// range seen so far (ticks, joint order); returns true when done.
    fn sweeping(
        &mut self,
        present: &[i32; NUM_JOINTS],
        min: &[i32; NUM_JOINTS],
        max: &[i32; NUM_JOINTS],
    ) -> bool;
}

const IDS: [u8; NUM_JOINTS] = [1, 2, 3, 4, 5, 6];

fn write_eeprom(bus: &mut Bus, calibration: &ArmCalibration) -> Result<()> {
    for joint in Joint::ALL {
        let motor = calibration.motor(joint);
        let id = joint.motor_id();
        bus.write(id, reg::HOMING_OFFSET, motor.homing_offset)?;
        bus.write(id, reg::MIN_POSITION_LIMIT, i32::from(motor.range_min))?;
        bus.write(id, reg::MAX_POSITION_LIMIT, i32::from(motor.range_max))?;
    }
    Ok(())
}

/// Writes a calibration's homing offsets and ranges to the motors' EEPROM
/// (torque off, unlocked while writing, locked after).
pub fn write_calibration(bus: &mut Bus, calibration: &ArmCalibration) -> Result<()> {
    calibration.validate()?;
    bus.sync_write(reg::TORQUE_ENABLE, &IDS.map(|id| (id, 0)))?;
    bus.sync_write(reg::LOCK, &IDS.map(|id| (id, 0)))?;
    write_eeprom(bus, calibration)?;
    bus.sync_write(reg::LOCK, &IDS.map(|id| (id, 1)))
}

/// Calibrates the arm on `bus`, guided by `guide`.
pub fn calibrate(bus: &mut Bus, guide: &mut dyn CalibrationGuide) -> Result<ArmCalibration> {
    for joint in Joint::ALL {
        if !bus.ping(joint.motor_id())? {
            return Err(Error::Arm(format!(
                "{joint} (ID {}) does not answer: run `sponge motors setup` first",
                joint.motor_id()
            )));
        }
    }
    bus.sync_write(reg::TORQUE_ENABLE, &IDS.map(|id| (id, 0)))?;
    bus.sync_write(reg::LOCK, &IDS.map(|id| (id, 0)))?;
    let blank = ArmCalibration {
        motors: Joint::ALL.map(|j| MotorCalibration {
            id: j.motor_id(),
            drive_mode: 0,
            homing_offset: 0,
            range_min: 0,
            range_max: MAX_TICK,
        }),
    };
    write_eeprom(bus, &blank)?;

    guide.middle_pose()?;
    let middle = bus.sync_read(reg::PRESENT_POSITION, &IDS)?;
    let mut motors = blank.motors;
    for (i, joint) in Joint::ALL.iter().enumerate() {
        motors[i].homing_offset = middle[i] - HOMED_MIDDLE;
        if motors[i].homing_offset.abs() > MAX_HOMING_OFFSET {
            // Explains what to do.
            motors[i].validate(*joint)?;
        }
        bus.write(joint.motor_id(), reg::HOMING_OFFSET, motors[i].homing_offset)?;
    }

    let first = bus.sync_read(reg::PRESENT_POSITION, &IDS)?;
    let mut present: [i32; NUM_JOINTS] = std::array::from_fn(|i| first[i]);
    let (mut min, mut max) = (present, present);
    loop {
        if guide.sweeping(&present, &min, &max) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        // A dropped reading just waits for the next one.
        if let Ok(read) = bus.sync_read(reg::PRESENT_POSITION, &IDS) {
            for i in 0..NUM_JOINTS {
                present[i] = read[i];
                min[i] = min[i].min(read[i]);
                max[i] = max[i].max(read[i]);
            }
        }
    }

    for (i, joint) in Joint::ALL.iter().enumerate() {
        if *joint == Joint::WristRoll {
            // Rolls all the way round: the whole turn.
            continue;
        }
        if max[i] - min[i] < MIN_SWEEP_TICKS {
            return Err(Error::Arm(format!(
                "{joint} moved only {} ticks: sweep every joint through its full travel and calibrate again",
                max[i] - min[i]
            )));
        }
        motors[i].range_min = min[i].clamp(0, i32::from(MAX_TICK)) as u16;
        motors[i].range_max = max[i].clamp(0, i32::from(MAX_TICK)) as u16;
    }
    let calibration = ArmCalibration { motors };
    calibration.validate()?;
    write_eeprom(bus, &calibration)?;
    bus.sync_write(reg::LOCK, &IDS.map(|id| (id, 1)))?;
    Ok(calibration)
}

/// Which arm a calibration file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmKind {
    /// The driven arm.
    Follower,
    /// The hand-held arm.
    Leader,
}

impl ArmKind {
    fn folder(self) -> &'static str {
        match self {
            ArmKind::Follower => "so100_follower",
            ArmKind::Leader => "so100_leader",
        }
    }

    fn lerobot_folder(self) -> &'static str {
        match self {
            ArmKind::Follower => "robots/so100_follower",
            ArmKind::Leader => "teleoperators/so100_leader",
        }
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Where `sponge` keeps the calibration of arm `id`:
/// `$SPONGE_CALIBRATION_DIR/<so100_follower|so100_leader>/<id>.json`, by
/// default under `~/.local/share/sponge/calibration`.
pub fn calibration_path(kind: ArmKind, id: &str) -> PathBuf {
    let root = std::env::var_os("SPONGE_CALIBRATION_DIR")
        .map_or_else(|| home().join(".local/share/sponge/calibration"), PathBuf::from);
    root.join(kind.folder()).join(format!("{id}.json"))
}

/// LeRobot's file for the same arm, used when `sponge` has none.
pub fn lerobot_calibration_path(kind: ArmKind, id: &str) -> PathBuf {
    home()
        .join(".cache/huggingface/lerobot/calibration")
        .join(kind.lerobot_folder())
        .join(format!("{id}.json"))
}

/// Loads the calibration of arm `id`: `sponge`'s file, else LeRobot's.
pub fn load_calibration(kind: ArmKind, id: &str) -> Result<(ArmCalibration, PathBuf)> {
    let ours = calibration_path(kind, id);
    let lerobot = lerobot_calibration_path(kind, id);
    for path in [&ours, &lerobot] {
        if path.exists() {
            return Ok((ArmCalibration::load(path)?, path.clone()));
        }
    }
    Err(Error::Arm(format!(
        "no calibration for arm {id:?}: looked for {} and {}; run `sponge calibrate --arm {} --id {id}`",
        ours.display(),
        lerobot.display(),
        match kind {
            ArmKind::Follower => "follower",
            ArmKind::Leader => "leader",
        }
    )))
}
