//! The vision-language-action policy in candle: camera images, the
//! instruction and the robot state in, a chunk of future joint targets out
//! (flow matching, as π0 and SmolVLA do).
//!
//! This is the model; training, evaluation in the twin and the policy node
//! build on it.

pub mod agent;
pub mod augment;
pub mod bench;
pub mod bert;
pub mod layers;
pub mod model;
pub mod place;
pub mod plot;
pub mod pretrained;
pub mod tokenizer;
pub mod train;

pub use model::{ActionFrame, Head, Memory, Observation, Policy, PolicyConfig};
