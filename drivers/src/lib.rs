#![doc = include_str!("../README.md")]

pub mod arm;
pub mod bench;
pub mod bus;
pub mod calibrate;
pub mod camera;
pub mod emulator;
mod error;
pub mod protocol;
pub mod scan;
pub mod setup;
pub mod teleop;

pub use bus::{Bus, BusConfig, BusStats};
pub use error::{Error, Result};
