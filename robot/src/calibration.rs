//! Servo calibration: converting STS3215 encoder ticks to joint angles and
//! back, stored in LeRobot's calibration file format.
//!
//! A calibration records, per motor, the servo ID, the drive mode (1 inverts
//! the direction), the homing offset written to the servo's EEPROM and the
//! range of `Present_Position` seen while the joint was swept. The joint
//! angle is zero in the middle of that range (the calibration pose), so
//!
//! * body joints: `q = direction · (ticks − (min + max) / 2) · 2π / 4096`;
//! * gripper: the calibrated range maps linearly onto the model's gripper
//!   range, so a fully open real gripper is a fully open twin gripper.
//!
//! Files look like LeRobot's (`{"shoulder_pan": {"id": 1, "drive_mode": 0,
//! "homing_offset": -1024, "range_min": 800, "range_max": 3300}, ...}`), so a
//! LeRobot user's calibration works here and ours works in LeRobot.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::joint::{Joint, JointVector, NUM_JOINTS};
use crate::{Error, Result};

/// Encoder ticks in one turn of an STS3215.
pub const TICKS_PER_TURN: u32 = 4096;
/// Largest position register value.
pub const MAX_TICK: u16 = 4095;
/// Joint radians per encoder tick.
pub const RAD_PER_TICK: f64 = 2.0 * PI / TICKS_PER_TURN as f64;
/// Largest homing offset the servo can store (sign-magnitude, 11 bits).
pub const MAX_HOMING_OFFSET: i32 = 2047;

/// Direction of each servo relative to the model's joint axis (+1: ticks
/// grow with the joint angle). All +1 as in LeRobot's SO-100 calibration
/// with drive_mode 0; not yet checked against a real arm, so this table is
/// the one place to change if a real arm shows a joint turning backwards.
pub const SERVO_DIRECTION: [f64; NUM_JOINTS] = [1.0; NUM_JOINTS];

/// Calibration of one motor, LeRobot's fields and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MotorCalibration {
    /// Servo ID on the bus.
    pub id: u8,
    /// 0: ticks grow with the joint angle; 1: inverted.
    pub drive_mode: u8,
    /// Homing_Offset register value (`Present_Position = raw − offset`).
    pub homing_offset: i32,
    /// Lowest `Present_Position` of the joint's range.
    pub range_min: u16,
    /// Highest `Present_Position` of the joint's range.
    pub range_max: u16,
}

impl MotorCalibration {
    /// Checks that the values can be right for `joint`, and says what to do if not.
    pub fn validate(&self, joint: Joint) -> Result<()> {
        let fail = |reason: String| {
            Err(Error::Calibration {
                motor: joint.name().to_owned(),
                reason,
            })
        };
        if self.id != joint.motor_id() {
            return fail(format!(
                "servo ID is {}, but {} is ID {} on an SO-100: run `sponge motors setup` to set IDs",
                self.id,
                joint,
                joint.motor_id()
            ));
        }
        if self.drive_mode > 1 {
            return fail(format!("drive_mode is {}, expected 0 or 1", self.drive_mode));
        }
        if self.homing_offset.abs() > MAX_HOMING_OFFSET {
            return fail(format!(
                "homing offset {} is beyond ±{MAX_HOMING_OFFSET}, which the servo cannot store: \
                 the joint was not near the middle of its range during homing, or the servo horn \
                 is mounted a half turn off. Move the joint to the middle of its travel and \
                 calibrate again; if it persists, remount the horn",
                self.homing_offset
            ));
        }
        if self.range_min >= self.range_max || self.range_max > MAX_TICK {
            return fail(format!(
                "range {}..{} is empty or beyond 0..{MAX_TICK}: sweep the joint through its full travel",
                self.range_min, self.range_max
            ));
        }
        Ok(())
    }

    fn mid_ticks(&self) -> f64 {
        0.5 * (f64::from(self.range_min) + f64::from(self.range_max))
    }

    /// +1 if ticks grow with the joint angle, −1 if not (drive mode and servo direction).
    pub fn direction(&self, joint: Joint) -> f64 {
        let drive = if self.drive_mode == 1 { -1.0 } else { 1.0 };
        drive * SERVO_DIRECTION[joint.index()]
    }

    /// Joint angle (radians) for a `Present_Position` reading.
    pub fn ticks_to_rad(&self, joint: Joint, ticks: u16) -> f64 {
        let direction = self.direction(joint);
        if joint == Joint::Gripper {
            let limits = joint.limits();
            let span = f64::from(self.range_max - self.range_min);
            let mut fraction = (f64::from(ticks) - f64::from(self.range_min)) / span;
            if direction < 0.0 {
                fraction = 1.0 - fraction;
            }
            limits.min_rad + fraction * limits.span_rad()
        } else {
            direction * (f64::from(ticks) - self.mid_ticks()) * RAD_PER_TICK
        }
    }

    /// `Goal_Position` for a joint angle, clamped to the calibrated range.
    pub fn rad_to_ticks(&self, joint: Joint, q_rad: f64) -> u16 {
        let direction = self.direction(joint);
        let ticks = if joint == Joint::Gripper {
            let limits = joint.limits();
            let mut fraction = (q_rad - limits.min_rad) / limits.span_rad();
            if direction < 0.0 {
                fraction = 1.0 - fraction;
            }
            f64::from(self.range_min) + fraction * f64::from(self.range_max - self.range_min)
        } else {
            self.mid_ticks() + direction * q_rad / RAD_PER_TICK
        };
        let clamped = ticks
            .round()
            .clamp(f64::from(self.range_min), f64::from(self.range_max));
        // In range 0..=4095 after the clamp, so the cast is exact.
        clamped as u16
    }
}

/// Calibration of a whole arm: one [`MotorCalibration`] per joint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmCalibration {
    /// Per joint, in [`Joint::ALL`] order.
    pub motors: [MotorCalibration; NUM_JOINTS],
}

impl ArmCalibration {
    /// The calibration of an ideal arm whose range middles read 2048 and
    /// whose ranges are the model's joint limits (wrist_roll: the full turn).
    /// The servo emulator and the twin use it.
    pub fn nominal() -> ArmCalibration {
        ArmCalibration {
            motors: Joint::ALL.map(|joint| {
                let (range_min, range_max) = if joint == Joint::WristRoll {
                    (0, MAX_TICK)
                } else {
                    let half = (joint.limits().max_rad / RAD_PER_TICK).round() as u16;
                    (2048 - half, 2048 + half)
                };
                MotorCalibration {
                    id: joint.motor_id(),
                    drive_mode: 0,
                    homing_offset: 0,
                    range_min,
                    range_max,
                }
            }),
        }
    }

    /// The calibration of `joint`.
    pub fn motor(&self, joint: Joint) -> &MotorCalibration {
        &self.motors[joint.index()]
    }

    /// Validates every motor.
    pub fn validate(&self) -> Result<()> {
        for joint in Joint::ALL {
            self.motor(joint).validate(joint)?;
        }
        Ok(())
    }

    /// Joint angles for six `Present_Position` readings.
    pub fn ticks_to_rad(&self, ticks: &[u16; NUM_JOINTS]) -> JointVector {
        std::array::from_fn(|i| self.motors[i].ticks_to_rad(Joint::ALL[i], ticks[i]))
    }

    /// Goal positions for six joint angles, each clamped to its range.
    pub fn rad_to_ticks(&self, q_rad: &JointVector) -> [u16; NUM_JOINTS] {
        std::array::from_fn(|i| self.motors[i].rad_to_ticks(Joint::ALL[i], q_rad[i]))
    }

    /// Parses and validates LeRobot-format JSON.
    pub fn from_json(json: &str) -> Result<ArmCalibration> {
        let calibration: ArmCalibration = serde_json::from_str(json).map_err(|e| Error::CalibrationFile {
            path: "<json>".to_owned(),
            reason: e.to_string(),
        })?;
        calibration.validate()?;
        Ok(calibration)
    }

    /// Reads and validates a calibration file.
    pub fn load(path: &Path) -> Result<ArmCalibration> {
        let file_error = |reason: String| Error::CalibrationFile {
            path: path.display().to_string(),
            reason,
        };
        let json = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let calibration: ArmCalibration =
            serde_json::from_str(&json).map_err(|e| file_error(e.to_string()))?;
        calibration.validate()?;
        Ok(calibration)
    }

    /// Writes the calibration as pretty JSON, atomically (a temporary file
    /// renamed over the target), creating parent folders.
    pub fn save(&self, path: &Path) -> Result<()> {
        let file_error = |reason: String| Error::CalibrationFile {
            path: path.display().to_string(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| file_error(e.to_string()))?;
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| file_error(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json + "\n").map_err(|e| file_error(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| file_error(e.to_string()))
    }
}

impl Serialize for ArmCalibration {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(NUM_JOINTS))?;
        for joint in Joint::ALL {
            map.serialize_entry(joint.name(), self.motor(joint))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ArmCalibration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut by_name = BTreeMap::<String, MotorCalibration>::deserialize(deserializer)?;
        let mut motors = Vec::with_capacity(NUM_JOINTS);
        for joint in Joint::ALL {
            let motor = by_name
                .remove(joint.name())
                .ok_or_else(|| D::Error::custom(format!("motor {:?} is missing", joint.name())))?;
            motors.push(motor);
        }
        if let Some(extra) = by_name.keys().next() {
            return Err(D::Error::custom(format!("unknown motor {extra:?}")));
        }
        let motors = motors
            .try_into()
            .map_err(|_| D::Error::custom("expected six motors"))?;
        Ok(ArmCalibration { motors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_calibration_is_valid_and_covers_the_limits() {
        let calibration = ArmCalibration::nominal();
        calibration.validate().unwrap();
        for joint in Joint::ALL {
            let motor = calibration.motor(joint);
            let lo = motor.ticks_to_rad(joint, motor.range_min);
            let hi = motor.ticks_to_rad(joint, motor.range_max);
            let limits = joint.limits();
            // Within a tick of the model's limits (wrist_roll: 4095 of 4096 ticks).
            assert!((lo - limits.min_rad).abs() <= 1.5 * RAD_PER_TICK, "{joint}: {lo}");
            assert!((hi - limits.max_rad).abs() <= 1.5 * RAD_PER_TICK, "{joint}: {hi}");
        }
    }

    #[test]
    fn ticks_round_trip_exactly() {
        let calibration = ArmCalibration {
            motors: Joint::ALL.map(|j| MotorCalibration {
                id: j.motor_id(),
                drive_mode: u8::from(j == Joint::ElbowFlex || j == Joint::Gripper),
                homing_offset: -300,
                range_min: 700,
                range_max: 3100,
            }),
        };
        for joint in Joint::ALL {
            let motor = calibration.motor(joint);
            for ticks in motor.range_min..=motor.range_max {
                let q = motor.ticks_to_rad(joint, ticks);
                assert_eq!(motor.rad_to_ticks(joint, q), ticks, "{joint} at {ticks}");
            }
        }
    }

    #[test]
    fn goals_are_clamped_to_the_calibrated_range() {
        let calibration = ArmCalibration::nominal();
        let motor = calibration.motor(Joint::ElbowFlex);
        assert_eq!(motor.rad_to_ticks(Joint::ElbowFlex, 10.0), motor.range_max);
        assert_eq!(motor.rad_to_ticks(Joint::ElbowFlex, -10.0), motor.range_min);
    }

    #[test]
    fn drive_mode_inverts_direction() {
        let mut motor = *ArmCalibration::nominal().motor(Joint::ShoulderLift);
        let q = motor.ticks_to_rad(Joint::ShoulderLift, 2100);
        motor.drive_mode = 1;
        assert!((motor.ticks_to_rad(Joint::ShoulderLift, 2100) + q).abs() < 1e-12);
    }

    #[test]
    fn reads_lerobot_json_and_writes_it_back() {
        let json = r#"{
            "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": 1436, "range_min": 744, "range_max": 3346},
            "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": -1017, "range_min": 857, "range_max": 3254},
            "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": 1042, "range_min": 899, "range_max": 3093},
            "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": -1385, "range_min": 838, "range_max": 3187},
            "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": 95, "range_min": 0, "range_max": 4095},
            "gripper": {"id": 6, "drive_mode": 0, "homing_offset": -1265, "range_min": 2021, "range_max": 3400}
        }"#;
        let calibration = ArmCalibration::from_json(json).unwrap();
        assert_eq!(calibration.motor(Joint::WristFlex).homing_offset, -1385);
        assert_eq!(calibration.motor(Joint::Gripper).range_min, 2021);
        let dir = std::env::temp_dir().join(format!("sponge-calib-{}", std::process::id()));
        let path = dir.join("follower.json");
        calibration.save(&path).unwrap();
        assert_eq!(ArmCalibration::load(&path).unwrap(), calibration);
        let written = std::fs::read_to_string(&path).unwrap();
        // Motors in bus order, as LeRobot writes them.
        assert!(written.find("shoulder_pan").unwrap() < written.find("gripper").unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let mut calibration = ArmCalibration::nominal();
        calibration.motors[1].homing_offset = 2300;
        let json = serde_json::to_string(&calibration).unwrap();
        let err = ArmCalibration::from_json(&json).unwrap_err().to_string();
        assert!(
            err.contains("shoulder_lift") && err.contains("2300") && err.contains("middle"),
            "{err}"
        );

        let missing = json.replace("\"gripper\"", "\"grip\"");
        let err = ArmCalibration::from_json(&missing).unwrap_err().to_string();
        assert!(err.contains("gripper") && err.contains("missing"), "{err}");

        let err = ArmCalibration::load(Path::new("/nonexistent/so100.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/so100.json"), "{err}");
    }
}
