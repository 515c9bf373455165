#![doc = include_str!("../README.md")]

pub mod calibration;
pub mod cdr;
mod error;
pub mod ik;
pub mod joint;
pub mod kinematics;
pub mod model;
pub mod msg;
pub mod units;
pub mod urdf;

pub use error::{Error, Result};
pub use ik::IkTarget;
pub use joint::{Joint, JointVector, NUM_JOINTS};
pub use model::{Link, Tool};
/// The linear-algebra crate of the public API (poses are `nalgebra::Isometry3<f64>`).
pub use nalgebra;
