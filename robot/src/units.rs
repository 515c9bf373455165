//! LeRobot's dataset units for the SO-100: body joints in degrees, the
//! gripper in 0..100 (0 = closed).
//!
//! LeRobot computes body-joint degrees from ticks as
//! `(ticks − (min + max) / 2) · 360 / 4095` (note 4095, not 4096), and the
//! gripper as `(ticks − min) / (max − min) · 100`. The conversions here give
//! exactly those numbers from `sponge`'s radians, so datasets recorded by
//! either stack train the other's policies.

use crate::calibration::{RAD_PER_TICK, SERVO_DIRECTION};
use crate::joint::{Joint, JointVector, NUM_JOINTS};

/// LeRobot's degrees per encoder tick.
pub const LEROBOT_DEG_PER_TICK: f64 = 360.0 / 4095.0;

/// Dataset feature names of the six joints (`observation.state` and `action`).
pub const FEATURE_NAMES: [&str; NUM_JOINTS] = [
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
];

/// A joint angle (radians) in dataset units.
pub fn rad_to_dataset(joint: Joint, q_rad: f64) -> f64 {
    let direction = SERVO_DIRECTION[joint.index()];
    if joint == Joint::Gripper {
        let limits = joint.limits();
        let fraction = (q_rad - limits.min_rad) / limits.span_rad();
        let fraction = if direction < 0.0 { 1.0 - fraction } else { fraction };
        100.0 * fraction
    } else {
        direction * q_rad / RAD_PER_TICK * LEROBOT_DEG_PER_TICK
    }
}

/// A dataset value back to radians.
pub fn dataset_to_rad(joint: Joint, value: f64) -> f64 {
    let direction = SERVO_DIRECTION[joint.index()];
    if joint == Joint::Gripper {
        let limits = joint.limits();
        let fraction = value / 100.0;
        let fraction = if direction < 0.0 { 1.0 - fraction } else { fraction };
        limits.min_rad + fraction * limits.span_rad()
    } else {
        direction * value / LEROBOT_DEG_PER_TICK * RAD_PER_TICK
    }
}

/// All six joints to dataset units.
pub fn joints_to_dataset(q_rad: &JointVector) -> [f64; NUM_JOINTS] {
    std::array::from_fn(|i| rad_to_dataset(Joint::ALL[i], q_rad[i]))
}

/// All six dataset values to radians.
pub fn dataset_to_joints(values: &[f64; NUM_JOINTS]) -> JointVector {
    std::array::from_fn(|i| dataset_to_rad(Joint::ALL[i], values[i]))
}

/// All six joints to dataset units as stored (f32).
pub fn joints_to_dataset_f32(q_rad: &JointVector) -> [f32; NUM_JOINTS] {
    joints_to_dataset(q_rad).map(|v| v as f32)
}

/// Six stored dataset values (f32) to radians; none unless there are exactly six.
pub fn dataset_f32_to_joints(values: &[f32]) -> Option<JointVector> {
    let values: &[f32; NUM_JOINTS] = values.try_into().ok()?;
    Some(dataset_to_joints(&values.map(f64::from)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::{ArmCalibration, MotorCalibration};

    #[test]
    fn stored_values_round_trip_and_need_six_joints() {
        let q = [0.3, -0.5, 0.9, -1.1, 0.2, 0.4];
        let back = dataset_f32_to_joints(&joints_to_dataset_f32(&q)).expect("six values");
        assert!(q.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-5), "{back:?}");
        assert!(dataset_f32_to_joints(&[0.0; 5]).is_none());
        assert!(dataset_f32_to_joints(&[0.0; 7]).is_none());
    }

    #[test]
    fn matches_lerobot_formulas_from_ticks() {
        let calibration = ArmCalibration {
            motors: Joint::ALL.map(|j| MotorCalibration {
                id: j.motor_id(),
                drive_mode: 0,
                homing_offset: 0,
                range_min: 1000,
                range_max: 3001,
            }),
        };
        for joint in Joint::ALL {
            let motor = calibration.motor(joint);
            for ticks in [1000u16, 1234, 2000, 2001, 2999, 3001] {
                let t = f64::from(ticks);
                let lerobot = if joint == Joint::Gripper {
                    (t - 1000.0) / (3001.0 - 1000.0) * 100.0
                } else {
                    (t - (1000.0 + 3001.0) / 2.0) * 360.0 / 4095.0
                };
                let ours = rad_to_dataset(joint, motor.ticks_to_rad(joint, ticks));
                assert!(
                    (ours - lerobot).abs() < 1e-9,
                    "{joint} at {ticks}: {ours} vs {lerobot}"
                );
            }
        }
    }

    #[test]
    fn round_trips() {
        let q = [0.1, -0.2, 0.3, -0.4, 0.5, 0.6];
        let back = dataset_to_joints(&joints_to_dataset(&q));
        for i in 0..NUM_JOINTS {
            assert!((q[i] - back[i]).abs() < 1e-12);
        }
        // The gripper's range ends are 0 (closed) and 100 (open).
        let limits = Joint::Gripper.limits();
        assert!(rad_to_dataset(Joint::Gripper, limits.min_rad).abs() < 1e-12);
        assert!((rad_to_dataset(Joint::Gripper, limits.max_rad) - 100.0).abs() < 1e-12);
    }
}
