//! The six joints of the SO-100: names, motor IDs, order and limits.
//!
//! # Zero pose and signs
//!
//! Joint angles in `sponge` are the angles of the MuJoCo Menagerie
//! `trs_so_arm100` model, shifted so that **zero is the middle of each
//! joint's range**. That middle-of-range pose is the pose a person holds the
//! arm in during calibration (LeRobot's half-turn homing), so a calibrated
//! real arm and the twin agree on what `q = 0` means without any extra
//! offset. Limits are therefore symmetric about zero. Positive rotation is the
//! right-handed rotation about the joint axis of the model (see
//! [`crate::model`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Number of joints, the gripper included.
pub const NUM_JOINTS: usize = 6;

/// Number of arm joints that move the tool (all but the gripper).
pub const NUM_ARM_JOINTS: usize = 5;

/// Joint angles in radians, in [`Joint::ALL`] order.
pub type JointVector = [f64; NUM_JOINTS];

/// One joint of the SO-100, in bus and dataset order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joint {
    /// Base yaw (servo ID 1).
    ShoulderPan,
    /// Shoulder pitch (servo ID 2).
    ShoulderLift,
    /// Elbow pitch (servo ID 3).
    ElbowFlex,
    /// Wrist pitch (servo ID 4).
    WristFlex,
    /// Wrist roll about the tool axis (servo ID 5).
    WristRoll,
    /// Moving jaw of the gripper (servo ID 6).
    Gripper,
}

/// Range of a joint in `sponge`'s convention (radians, zero at mid-range).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JointLimits {
    /// Lowest allowed angle, radians.
    pub min_rad: f64,
    /// Highest allowed angle, radians.
    pub max_rad: f64,
}

impl JointLimits {
    /// Whether `q_rad` lies inside the range, with `tol_rad` of slack.
    pub fn contains(&self, q_rad: f64, tol_rad: f64) -> bool {
        q_rad >= self.min_rad - tol_rad && q_rad <= self.max_rad + tol_rad
    }

    /// `q_rad` clamped into the range.
    pub fn clamp(&self, q_rad: f64) -> f64 {
        q_rad.clamp(self.min_rad, self.max_rad)
    }

    /// Width of the range, radians.
    pub fn span_rad(&self) -> f64 {
        self.max_rad - self.min_rad
    }
}

/// Range of each joint in the Menagerie model's own angles (radians).
/// The middle of each is `sponge`'s zero.
const MENAGERIE_RANGE_RAD: [(f64, f64); NUM_JOINTS] = [
    (-2.2, 2.2),
    (-std::f64::consts::PI, 0.2),
    (0.0, std::f64::consts::PI),
    (-2.0, 1.8),
    (-std::f64::consts::PI, std::f64::consts::PI),
    (-0.2, 2.0),
];

impl Joint {
    /// All joints in bus, dataset and vector order.
    pub const ALL: [Joint; NUM_JOINTS] = [
        Joint::ShoulderPan,
        Joint::ShoulderLift,
        Joint::ElbowFlex,
        Joint::WristFlex,
        Joint::WristRoll,
        Joint::Gripper,
    ];

    /// The arm joints (all but the gripper).
    pub const ARM: [Joint; NUM_ARM_JOINTS] = [
        Joint::ShoulderPan,
        Joint::ShoulderLift,
        Joint::ElbowFlex,
        Joint::WristFlex,
        Joint::WristRoll,
    ];

    /// Position of the joint in [`JointVector`]s.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// LeRobot's motor name, also the URDF and ROS 2 joint name.
    pub const fn name(self) -> &'static str {
        match self {
            Joint::ShoulderPan => "shoulder_pan",
            Joint::ShoulderLift => "shoulder_lift",
            Joint::ElbowFlex => "elbow_flex",
            Joint::WristFlex => "wrist_flex",
            Joint::WristRoll => "wrist_roll",
            Joint::Gripper => "gripper",
        }
    }

    /// Servo ID on the bus (LeRobot's convention, 1..=6).
    pub const fn motor_id(self) -> u8 {
        self as u8 + 1
    }

    /// The joint driven by servo `id`, if any.
    pub fn from_motor_id(id: u8) -> Option<Joint> {
        Joint::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    /// Middle of the joint's range in the Menagerie model's angles: the
    /// offset between `sponge`'s angle and the model's
    /// (`q_menagerie = q + mid`).
    pub fn menagerie_mid_rad(self) -> f64 {
        let (lo, hi) = MENAGERIE_RANGE_RAD[self.index()];
        0.5 * (lo + hi)
    }

    /// The joint's range in `sponge`'s convention.
    pub fn limits(self) -> JointLimits {
        let (lo, hi) = MENAGERIE_RANGE_RAD[self.index()];
        let half = 0.5 * (hi - lo);
        JointLimits {
            min_rad: -half,
            max_rad: half,
        }
    }
}

impl fmt::Display for Joint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Joint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Joint::ALL
            .into_iter()
            .find(|j| j.name() == s)
            .ok_or_else(|| Error::UnknownJoint(s.to_owned()))
    }
}

/// Converts Menagerie model angles to `sponge` angles.
pub fn from_menagerie(q_menagerie_rad: &JointVector) -> JointVector {
    std::array::from_fn(|i| q_menagerie_rad[i] - Joint::ALL[i].menagerie_mid_rad())
}

/// Converts `sponge` angles to Menagerie model angles.
pub fn to_menagerie(q_rad: &JointVector) -> JointVector {
    std::array::from_fn(|i| q_rad[i] + Joint::ALL[i].menagerie_mid_rad())
}

/// The calibration pose: every joint in the middle of its range.
pub const CALIBRATION_POSE: JointVector = [0.0; NUM_JOINTS];

/// The folded rest pose (the Menagerie model's `home` keyframe), in
/// `sponge` angles: upper arm up, forearm forward, tool pointing down,
/// gripper closed.
pub fn home_pose() -> JointVector {
    use std::f64::consts::FRAC_PI_2;
    from_menagerie(&[0.0, -FRAC_PI_2, FRAC_PI_2, FRAC_PI_2, -FRAC_PI_2, 0.0])
}

/// `q_rad` brought within every joint's limits; a value that is not a
/// number becomes 0 (the middle of the range).
pub fn clamp_to_limits(q_rad: &JointVector) -> JointVector {
    std::array::from_fn(|i| {
        let q = if q_rad[i].is_finite() { q_rad[i] } else { 0.0 };
        Joint::ALL[i].limits().clamp(q)
    })
}

/// Checks every joint of `q_rad` against its limits (with `tol_rad` slack).
pub fn check_limits(q_rad: &JointVector, tol_rad: f64) -> Result<()> {
    for joint in Joint::ALL {
        let q = q_rad[joint.index()];
        let limits = joint.limits();
        if !q.is_finite() || !limits.contains(q, tol_rad) {
            return Err(Error::JointLimit {
                joint,
                value_rad: q,
                limits,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_brings_every_joint_within_its_limits() {
        let q = clamp_to_limits(&[10.0, -10.0, f64::NAN, 0.1, f64::INFINITY, -0.2]);
        assert!(check_limits(&q, 0.0).is_ok(), "{q:?}");
        assert_eq!(q[0], Joint::ShoulderPan.limits().max_rad);
        assert_eq!(q[1], Joint::ShoulderLift.limits().min_rad);
        assert_eq!(
            (q[2], q[3], q[5]),
            (0.0, 0.1, -0.2),
            "NaN to the middle, values inside kept"
        );
    }

    #[test]
    fn motor_ids_follow_lerobot_order() {
        let ids: Vec<u8> = Joint::ALL.iter().map(|j| j.motor_id()).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert_eq!(Joint::from_motor_id(6), Some(Joint::Gripper));
        assert_eq!(Joint::from_motor_id(0), None);
        assert_eq!(Joint::from_motor_id(7), None);
    }

    #[test]
    fn limits_are_symmetric_about_the_calibration_pose() {
        // shoulder_lift spans [-pi, 0.2] in the model: half-width (pi + 0.2) / 2.
        let lift = Joint::ShoulderLift.limits();
        assert!((lift.max_rad - (std::f64::consts::PI + 0.2) / 2.0).abs() < 1e-12);
        assert!((lift.min_rad + lift.max_rad).abs() < 1e-12);
        check_limits(&CALIBRATION_POSE, 0.0).unwrap();
        check_limits(&home_pose(), 1e-9).unwrap();
    }

    #[test]
    fn names_parse_back() {
        for j in Joint::ALL {
            assert_eq!(j.name().parse::<Joint>().unwrap(), j);
        }
        assert!("elbow".parse::<Joint>().is_err());
    }

    #[test]
    fn out_of_range_joint_is_named() {
        let mut q = CALIBRATION_POSE;
        q[Joint::ElbowFlex.index()] = 2.0;
        let err = check_limits(&q, 0.0).unwrap_err();
        assert!(err.to_string().contains("elbow_flex"), "{err}");
    }
}
