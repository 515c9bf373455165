//! LeRobotDataset v3.0: writer, reader, video, statistics and tools.

pub mod bench;
pub mod commit;
pub mod convert;
mod error;
pub mod info;
pub mod layout;
pub mod loader;
pub mod merge;
pub mod meta;
pub mod plot;
pub mod reader;
pub mod restat;
pub mod stats;
pub mod synth;
pub mod table;
pub mod validate;
pub mod video;
pub mod writer;

pub use error::{Error, Result};
pub use reader::{Dataset, Episode};
pub use writer::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter, FrameInput};
