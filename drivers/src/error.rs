//! The crate's error type.

use crate::protocol::{Register, ServoStatus};

/// Everything that can go wrong talking to servos.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A packet or value that breaks the protocol's rules.
    #[error("protocol: {0}")]
    Protocol(String),

    /// The arm is not as it must be (motors missing, wrong calibration, set-up needed); says what to do.
    #[error("{0}")]
    Arm(String),

    /// A camera that is missing, failing or sending frames that do not decode.
    #[error("camera {0}")]
    Camera(String),

    /// No reply in time, after every retry.
    #[error("servo {id}: no reply to {what} within {timeout_ms:.1} ms ({attempts} attempts)")]
    Timeout {
        /// The servo.
        id: u8,
        /// What was asked (instruction and register).
        what: String,
        /// The per-attempt timeout.
        timeout_ms: f64,
        /// Attempts made.
        attempts: u32,
    },

    /// Replies came but were never valid, after every retry.
    #[error("servo {id}: corrupt reply to {what} ({detail}) after {attempts} attempts")]
    Corrupt {
        /// The servo.
        id: u8,
        /// What was asked.
        what: String,
        /// What was wrong with the last reply.
        detail: String,
        /// Attempts made.
        attempts: u32,
    },

    /// The servo replied with error bits set.
    #[error("servo {id} reports {status} (while {what})")]
    Servo {
        /// The servo.
        id: u8,
        /// Its error bits.
        status: ServoStatus,
        /// What was being done.
        what: String,
    },

    /// A write to a register that cannot be written, or a value out of range.
    #[error("{register}: {reason}")]
    Register {
        /// The register.
        register: Register,
        /// What is wrong.
        reason: String,
    },

    /// The serial port failed or disappeared (unplugged adapter).
    #[error("serial port {port}: {reason}")]
    Port {
        /// The port's path.
        port: String,
        /// What happened.
        reason: String,
    },

    /// An error from the robot model (calibration, limits).
    #[error(transparent)]
    Robot(#[from] sponge_robot::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
