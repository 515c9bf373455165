//! The crate's error type.

use crate::joint::{Joint, JointLimits};

/// Everything that can go wrong in `sponge-robot`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A joint name that is not one of the SO-100's six.
    #[error(
        "unknown joint {0:?}: expected one of shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper"
    )]
    UnknownJoint(String),

    /// A joint angle outside the joint's range (or not a number).
    #[error(
        "{joint} = {value_rad:.4} rad is outside its range [{:.4}, {:.4}] rad",
        limits.min_rad,
        limits.max_rad
    )]
    JointLimit {
        /// The offending joint.
        joint: Joint,
        /// Its requested angle.
        value_rad: f64,
        /// Its range.
        limits: JointLimits,
    },

    /// An IK target that no arm configuration reaches.
    #[error("target out of reach: {0}")]
    Unreachable(String),

    /// An IK target that is reachable only with a joint beyond its limits.
    #[error("target reachable only beyond joint limits: {0}")]
    OutsideLimits(String),

    /// A calibration that cannot be right for an STS3215.
    #[error("invalid calibration for {motor}: {reason}")]
    Calibration {
        /// Motor name.
        motor: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A calibration file that could not be read or parsed.
    #[error("calibration file {path}: {reason}")]
    CalibrationFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// A message that could not be encoded or decoded as CDR.
    #[error("CDR {0}")]
    Cdr(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
