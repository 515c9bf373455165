//! Merging datasets with the same features into a new one.
//!
//! Camera videos are copied, not encoded again, where the input's codec is
//! the output's: each episode's segment is cut out of its file without
//! re-encoding and checked frame for frame against the decoded original.
//! Where that cannot be done (another codec, a segment not starting on a
//! keyframe), the frames are encoded again.

use std::path::{Path, PathBuf};

use crate::layout;
use crate::reader::{Dataset, Episode};
use crate::video;
use crate::writer::{DatasetSpec, DatasetWriter, FrameInput};
use crate::{Error, Result};

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Episodes written.
    pub episodes: usize,
    /// Of those, episodes whose videos were encoded again rather than copied
    /// (0 for datasets without videos).
    pub reencoded: usize,
}

/// Writes every episode of `inputs`, in order, into a new dataset at `out`.
/// The inputs must share fps, joints and cameras. `progress` sees
/// (episodes done, episodes in all).
pub fn merge(inputs: &[&Path], out: &Path, mut progress: impl FnMut(usize, usize)) -> Result<Merged> {
    let datasets: Vec<Dataset> = inputs.iter().map(|p| Dataset::open(p)).collect::<Result<_>>()?;
    let Some(first) = datasets.first() else {
        return Err(Error::Usage("nothing to merge".into()));
    };
    let (spec, _) = DatasetSpec::from_info(first.info())?;
    for (dataset, path) in datasets.iter().zip(inputs).skip(1) {
        let (other, _) = DatasetSpec::from_info(dataset.info())?;
        let same = other.fps == spec.fps
            && other.joint_names == spec.joint_names
            && other.cameras == spec.cameras
            && other.reward_done == spec.reward_done
            && other.environment_state == spec.environment_state;
        if !same {
            return Err(Error::Usage(format!(
                "{} does not match {}: fps {} vs {}, joints {:?} vs {:?}, cameras {:?} vs {:?}, environment state {:?} vs {:?}",
                path.display(),
                inputs[0].display(),
                other.fps,
                spec.fps,
                other.joint_names,
                spec.joint_names,
                other
                    .cameras
                    .iter()
                    .map(|c| (&c.name, c.width, c.height))
                    .collect::<Vec<_>>(),
                spec.cameras
                    .iter()
                    .map(|c| (&c.name, c.width, c.height))
                    .collect::<Vec<_>>(),
                other.environment_state,
                spec.environment_state
            )));
        }
    }
    let total: usize = datasets.iter().map(|d| d.episodes().len()).sum();
    let mut writer = DatasetWriter::create(out, spec.clone())?;
    let out_codec = writer.codec();
    let has_videos = out_codec.is_some() && !spec.cameras.is_empty();
    let mut merged = Merged::default();
    for dataset in &datasets {
        let (_, codec) = DatasetSpec::from_info(dataset.info())?;
        let copy_videos = has_videos && codec == out_codec;
        for index in 0..dataset.episodes().len() {
            let copied = copy_episode(dataset, index, &spec, copy_videos, &mut writer)?;
            if has_videos && !copied {
                merged.reencoded += 1;
            }
            merged.episodes += 1;
            progress(merged.episodes, total);
        }
    }
    writer.close()?;
    Ok(merged)
}

/// Cuts episode `index`'s segment out of each camera's video without
/// re-encoding. `None` when a copy does not decode to exactly the frames
/// read (then the caller encodes them again).
fn copied_videos(
    dataset: &Dataset,
    index: usize,
    episode: &Episode,
    spec: &DatasetSpec,
    writer: &DatasetWriter,
) -> Result<Option<Vec<PathBuf>>> {
    let meta = &dataset.episodes()[index];
    let frames = episode.state.len();
    let mut copies: Vec<PathBuf> = Vec::new();
    for camera in &spec.cameras {
        let key = camera.key();
        let exact = match (meta.videos.get(&key), episode.images.get(&key)) {
            (Some(span), Some(read)) => {
                let source = layout::video_path(dataset.root(), &key, span.file);
                let copy = writer.scratch_path(&format!("merge-{index:06}-{}.mp4", camera.name))?;
                copies.push(copy.clone());
                video::extract(&source, span.from_timestamp, frames as u64, spec.fps, &copy)
                    .and_then(|()| video::decode(&copy, 0.0, frames, camera.width, camera.height, spec.fps))
                    .is_ok_and(|decoded| &decoded == read)
            }
            _ => false,
        };
        if !exact {
            for copy in copies {
                let _ = std::fs::remove_file(copy);
            }
            return Ok(None);
        }
    }
    Ok(Some(copies))
}

/// Copies episode `index` of `dataset` into `writer` (whose cameras are
/// `spec`'s), its videos as they are when `copy_videos` and the copy is
/// exact. Returns whether the videos were copied (rather than encoded again).
pub fn copy_episode(
    dataset: &Dataset,
    index: usize,
    spec: &DatasetSpec,
    copy_videos: bool,
    writer: &mut DatasetWriter,
) -> Result<bool> {
    let episode = dataset.read_episode(index)?;
    let copies = if copy_videos {
        copied_videos(dataset, index, &episode, spec, writer)?
    } else {
        None
    };
    let copied = copies.is_some();
    match copies {
        Some(videos) => writer.start_episode_with_videos(&episode.task, videos)?,
        None => writer.start_episode(&episode.task)?,
    }
    for f in 0..episode.state.len() {
        let images: Vec<&[u8]> = spec
            .cameras
            .iter()
            .map(|c| {
                episode
                    .images
                    .get(&c.key())
                    .and_then(|frames| frames.get(f))
                    .map(Vec::as_slice)
                    .ok_or_else(|| Error::Usage(format!("episode {index} has no {} frame {f}", c.key())))
            })
            .collect::<Result<_>>()?;
        writer.add_frame(&FrameInput {
            state: &episode.state[f],
            action: &episode.action[f],
            images: &images,
            reward: episode.reward.as_ref().map_or(0.0, |r| r[f]),
            done: episode.done.as_ref().is_some_and(|d| d[f]),
            environment_state: episode
                .environment_state
                .as_ref()
                .and_then(|rows| rows.get(f))
                .map_or(&[], Vec::as_slice),
        })?;
    }
    writer.finish_episode()?;
    Ok(copied)
}
