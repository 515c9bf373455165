//! Merging datasets with the same features into a new one.

use std::path::Path;

use crate::reader::Dataset;
use crate::writer::{DatasetSpec, DatasetWriter, FrameInput};
use crate::{Error, Result};

/// Writes every episode of `inputs`, in order, into a new dataset at `out`.
/// The inputs must share fps, joints and cameras. `progress` sees
/// (episodes done, episodes in all).
pub fn merge(inputs: &[&Path], out: &Path, mut progress: impl FnMut(usize, usize)) -> Result<()> {
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
    let mut done = 0;
    for dataset in &datasets {
        for index in 0..dataset.episodes().len() {
            copy_episode(dataset, index, &spec, &mut writer)?;
            done += 1;
            progress(done, total);
        }
    }
    writer.close()
}

/// Copies episode `index` of `dataset` into `writer` (whose cameras are `spec`'s).
pub fn copy_episode(
    dataset: &Dataset,
    index: usize,
    spec: &DatasetSpec,
    writer: &mut DatasetWriter,
) -> Result<()> {
    let episode = dataset.read_episode(index)?;
    writer.start_episode(&episode.task)?;
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
    Ok(())
}
