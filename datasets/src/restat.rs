//! Recomputing a dataset's statistics from its frames (`sponge dataset stats`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::commit::Commit;
use crate::layout;
use crate::meta::{self, EpisodeMeta};
use crate::reader::Dataset;
use crate::stats::{self, EpisodeColumns, FeatureStats};
use crate::table;
use crate::{Error, Result};

/// Recomputes every episode's statistics and the dataset's, and rewrites
/// the episode metadata and `meta/stats.json` (in one commit). Returns the
/// dataset's statistics. `progress` sees (episodes done, episodes in all).
pub fn recompute_stats(
    root: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<BTreeMap<String, FeatureStats>> {
    let dataset = Dataset::open(root)?;
    let cameras: Vec<String> = dataset
        .info()
        .cameras()?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut episodes: Vec<EpisodeMeta> = dataset.episodes().to_vec();
    let total = episodes.len();
    for (i, meta) in episodes.iter_mut().enumerate() {
        let episode = dataset.read_episode(i)?;
        let dims = episode.state.first().map_or(0, Vec::len);
        let state: Vec<f32> = episode.state.concat();
        let action: Vec<f32> = episode.action.concat();
        let samples: Vec<(String, Vec<Vec<u8>>)> = cameras
            .iter()
            .map(|camera| {
                let frames = episode.images.get(camera).map(Vec::as_slice).unwrap_or_default();
                let sampled = frames
                    .iter()
                    .step_by(stats::SAMPLE_EVERY as usize)
                    .map(|f| stats::sample_pixels(f))
                    .collect();
                (camera.clone(), sampled)
            })
            .collect();
        let environment_state: Option<Vec<f32>> = episode
            .environment_state
            .as_ref()
            .map(|rows| rows.iter().flatten().copied().collect());
        meta.stats = stats::episode_stats(&EpisodeColumns {
            dims,
            state: &state,
            action: &action,
            reward: episode.reward.as_deref(),
            environment_state: environment_state.as_deref(),
            fps: dataset.info().fps,
            episode_index: meta.episode_index,
            from: meta.dataset_from_index,
            task_index: episode.task_index,
            camera_samples: samples.iter().map(|(name, s)| (name.clone(), s)).collect(),
        });
        progress(i + 1, total);
    }

    let mut commit = Commit::new(root);
    let mut by_file: BTreeMap<layout::FileId, Vec<EpisodeMeta>> = BTreeMap::new();
    for episode in &episodes {
        by_file
            .entry(episode.meta_file)
            .or_default()
            .push(episode.clone());
    }
    for (file, rows) in by_file {
        let path = layout::episodes_path(root, file);
        let batch = meta::episodes_batch(&rows)?;
        commit.stage_bytes(&path, &table::to_parquet(batch.schema(), &[batch], &path)?)?;
    }
    let mut combined = BTreeMap::new();
    let mut json = serde_json::Map::new();
    if let Some(first) = episodes.first() {
        for feature in first.stats.keys() {
            let parts: Vec<&FeatureStats> = episodes.iter().filter_map(|e| e.stats.get(feature)).collect();
            if let Some(all) = FeatureStats::combine(&parts) {
                json.insert(feature.clone(), all.to_json(cameras.contains(feature)));
                combined.insert(feature.clone(), all);
            }
        }
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Usage(e.to_string()))? + "\n";
    commit.stage_bytes(&layout::stats_path(root), text.as_bytes())?;
    commit.apply()?;
    Ok(combined)
}
