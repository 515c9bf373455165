//! The node runtime: typed publishers and subscribers over an embedded
//! Zenoh session, carrying CDR payloads of the ROS 2 message types under
//! the keys of the design (`<namespace>/<topic>`, e.g. `so100/joint_states`).
//!
//! This is the first part of the `launch` crate; the nodes, the ROS 2
//! bridge and the launch files build on it.

pub mod bench;
pub mod nodes;
pub mod session;
pub mod topics;

pub use session::{Error, Node, Publisher, SessionConfig, Subscriber};

/// The Zenoh crate, for what the typed API does not cover.
pub use zenoh;
