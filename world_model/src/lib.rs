//! The world model: action-conditioned latent dynamics in candle. It ranks
//! a policy's proposed action chunks by imagined outcome (progress minus
//! risk) and notices when what the robot sees stops matching what it
//! expected (the anomaly monitor).

pub mod bench;
pub mod model;
pub mod monitor;
pub mod run;
pub mod train;

pub use model::{WorldModel, WorldModelConfig};
pub use monitor::{
    Calibration, ColourBins, Following, Monitor, Parts, Registration, Response, Senses, Tint, Traced, Verdict,
};
pub use run::{Anchor, Score, WorldModelRun};
