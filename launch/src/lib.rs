//! The node runtime and launch files.
//!
//! * [`session`]: typed publishers and subscribers over an embedded Zenoh
//!   session, carrying CDR payloads of the ROS 2 message types under the
//!   keys of the design (`<namespace>/<topic>`, e.g. `so100/joint_states`);
//! * [`nodes`]: the twin, the arms, cameras, teleop, the executor, a
//!   stand-in policy and the recorder;
//! * [`file`]: launch files (TOML), checked with file:line:column errors;
//! * [`supervisor`]: runs a launch file, one process per node, with restart
//!   policies and an orderly stop.

pub mod bench;
pub mod file;
pub mod nodes;
pub mod params;
pub mod session;
pub mod supervisor;
pub mod topics;

pub use file::{Diagnostic, LaunchError, LaunchFile, NodeSpec, Restart};
pub use session::{Error, Node, Publisher, SessionConfig, Subscriber};

/// The Zenoh crate, for what the typed API does not cover.
pub use zenoh;
