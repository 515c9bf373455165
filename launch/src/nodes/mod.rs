//! The nodes. Each sees messages, never the other nodes' devices.

pub mod twin;
