//! The SO-100 digital twin: rapier3d physics of the arm, the table and a
//! held sponge; analytic spills that wiping removes; the language task; a
//! scripted expert; batched environments; and headless Bevy rendering.
//!
//! Physics ([`physics`], [`spill`], [`task`], [`env`], [`expert`]) does
//! not depend on Bevy; only [`render`] does.

pub mod batch;
pub mod env;
pub mod expert;
pub mod fault;
pub mod perturb;
pub mod physics;
pub mod render;
pub mod spill;
pub mod task;
#[cfg(feature = "viewer")]
pub mod viewer;

pub use batch::VecEnv;
pub use env::{Env, EnvConfig, Observation, Step, StepInfo};
pub use fault::Fault;
