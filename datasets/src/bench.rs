//! Dataset benchmarks: recording throughput and training-loader throughput.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::loader::{Loader, LoaderConfig};
use crate::writer::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter, FrameInput};
use crate::{Result, synth};

/// A recording benchmark case.
#[derive(Debug, Clone, Copy)]
pub struct WriteCase {
    /// Camera width and height, pixels.
    pub size: (u32, u32),
    /// Cameras recorded at once.
    pub cameras: usize,
    /// Camera storage.
    pub storage: CameraStorage,
    /// Episodes written.
    pub episodes: u64,
    /// Frames per episode.
    pub frames: u64,
}

/// Records `case` into a new dataset at `root` as fast as possible (frames
/// prepared beforehand, so only the writer is timed); returns frames/s,
/// episode commits included.
pub fn write_throughput(root: &Path, case: WriteCase) -> Result<f64> {
    let mut spec = DatasetSpec::so100(30);
    spec.storage = case.storage;
    spec.cameras = (0..case.cameras)
        .map(|i| CameraSpec {
            name: format!("cam{i}"),
            width: case.size.0,
            height: case.size.1,
        })
        .collect();
    let images: Vec<Vec<u8>> = (0..case.frames)
        .map(|f| synth::picture(case.size.0, case.size.1, f, 0))
        .collect();
    let state = synth::joints(0, 0, 6);
    let mut writer = DatasetWriter::create(root, spec)?;
    let started = Instant::now();
    for _ in 0..case.episodes {
        writer.start_episode("wipe the table")?;
        for image in &images {
            let views: Vec<&[u8]> = (0..case.cameras).map(|_| image.as_slice()).collect();
            writer.add_frame(&FrameInput {
                state: &state,
                action: &state,
                images: &views,
                reward: 0.0,
                done: false,
                environment_state: &[],
            })?;
        }
        writer.finish_episode()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    writer.close()?;
    Ok((case.episodes * case.frames) as f64 / elapsed)
}

/// Samples per second the loader delivers from the dataset at `root` over `duration`.
pub fn loader_throughput(root: &Path, config: LoaderConfig, duration: Duration) -> Result<f64> {
    let mut loader = Loader::new(root, config)?;
    // The first batch waits for decoding to start; time the steady state.
    loader.next_batch()?;
    let started = Instant::now();
    let mut samples = 0;
    while started.elapsed() < duration {
        samples += loader.next_batch()?.size;
    }
    Ok(samples as f64 / started.elapsed().as_secs_f64())
}
