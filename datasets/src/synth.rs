//! Synthetic episodes: a moving test pattern and smooth joint curves, for
//! trying the dataset tools, for benchmarks and for crash tests, before the
//! twin generates real ones.

use crate::Result;
use crate::writer::{DatasetWriter, FrameInput};

/// A smooth, scene-like RGB8 picture that moves with `frame`.
pub fn picture(width: u32, height: u32, frame: u64, seed: u64) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    let t = frame as f32 + seed as f32 * 7.0;
    let (sx, sy) = (96.0 / width as f32, 96.0 / height as f32);
    for y in 0..height {
        for x in 0..width {
            let (xf, yf) = (x as f32 * sx, y as f32 * sy);
            rgb.push((120.0 + 100.0 * ((xf + 2.0 * t) / 23.0).sin()) as u8);
            rgb.push((120.0 + 90.0 * ((yf - t) / 19.0).cos()) as u8);
            rgb.push((128.0 + 60.0 * ((xf + yf) / 31.0 + t / 9.0).sin()) as u8);
        }
    }
    rgb
}

/// Joint values (dataset units) of a synthetic episode at `frame`.
pub fn joints(episode: u64, frame: u64, dims: usize) -> Vec<f32> {
    (0..dims)
        .map(|j| 30.0 * ((frame as f32 / 20.0) + j as f32 + episode as f32 * 0.3).sin())
        .collect()
}

/// Records one synthetic episode of `frames` frames into `writer`.
pub fn write_episode(writer: &mut DatasetWriter, episode: u64, frames: u64, task: &str) -> Result<()> {
    let dims = writer.spec().joint_names.len();
    let cameras: Vec<(u32, u32)> = writer
        .spec()
        .cameras
        .iter()
        .map(|c| (c.width, c.height))
        .collect();
    writer.start_episode(task)?;
    let entries = writer.spec().environment_state.len();
    for f in 0..frames {
        // What a twin would know of the scene: here, how far along the episode is.
        let scene = vec![f as f32 / frames as f32; entries];
        let state = joints(episode, f, dims);
        let action = joints(episode, f + 1, dims);
        let images: Vec<Vec<u8>> = cameras
            .iter()
            .enumerate()
            .map(|(c, (w, h))| picture(*w, *h, f, episode * 10 + c as u64))
            .collect();
        let views: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
        writer.add_frame(&FrameInput {
            state: &state,
            action: &action,
            images: &views,
            reward: f as f32 / frames as f32,
            done: f + 1 == frames,
            environment_state: &scene,
        })?;
    }
    writer.finish_episode()?;
    Ok(())
}

/// A small SO-100 dataset at 30 fps with one square `front` camera of
/// `size` pixels stored as PNG: one synthetic episode per `(frames, task)`.
pub fn write_small_dataset(root: &std::path::Path, size: u32, episodes: &[(u64, &str)]) -> Result<()> {
    let mut spec = crate::DatasetSpec::so100(30);
    spec.cameras = vec![crate::CameraSpec {
        name: "front".into(),
        width: size,
        height: size,
    }];
    spec.storage = crate::CameraStorage::Png;
    let mut writer = DatasetWriter::create(root, spec)?;
    for (episode, (frames, task)) in episodes.iter().enumerate() {
        write_episode(&mut writer, episode as u64, *frames, task)?;
    }
    writer.close()
}
