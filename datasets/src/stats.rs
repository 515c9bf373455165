//! Feature statistics (`meta/stats.json` and per-episode `stats/...`):
//! min, max, mean, std, count and the quantiles q01, q10, q50, q90, q99,
//! per dimension. Camera statistics are per colour channel on values
//! scaled to [0, 1]. Episode statistics combine with count-weighted means
//! and pooled variances; quantiles combine as count-weighted means (an
//! approximation, as LeRobot's).

use serde::{Deserialize, Serialize};

/// Every `SAMPLE_EVERY`-th frame of an episode feeds the camera statistics.
pub const SAMPLE_EVERY: u64 = 5;
/// Every `PIXEL_STRIDE`-th pixel of a sampled frame feeds them.
pub const PIXEL_STRIDE: usize = 7;

/// The quantiles kept, and their names.
pub const QUANTILES: [(f64, &str); 5] = [
    (0.01, "q01"),
    (0.10, "q10"),
    (0.50, "q50"),
    (0.90, "q90"),
    (0.99, "q99"),
];

/// Statistics of one feature, one value per dimension (channel for cameras).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Minimum.
    pub min: Vec<f64>,
    /// Maximum.
    pub max: Vec<f64>,
    /// Mean.
    pub mean: Vec<f64>,
    /// Standard deviation (population).
    pub std: Vec<f64>,
    /// Values counted (frames, or pixels for cameras).
    pub count: u64,
    /// 1st percentile.
    pub q01: Vec<f64>,
    /// 10th percentile.
    pub q10: Vec<f64>,
    /// Median.
    pub q50: Vec<f64>,
    /// 90th percentile.
    pub q90: Vec<f64>,
    /// 99th percentile.
    pub q99: Vec<f64>,
}

/// Linear-interpolation quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let (low, frac) = (position.floor() as usize, position.fract());
    let high = (low + 1).min(sorted.len() - 1);
    sorted[low] + (sorted[high] - sorted[low]) * frac
}

impl FeatureStats {
    /// Statistics of `columns[d]` = the values of dimension `d`.
    pub fn from_columns(columns: &[Vec<f64>]) -> FeatureStats {
        let count = columns.first().map_or(0, Vec::len) as u64;
        let mut stats = FeatureStats {
            min: Vec::new(),
            max: Vec::new(),
            mean: Vec::new(),
            std: Vec::new(),
            count,
            q01: Vec::new(),
            q10: Vec::new(),
            q50: Vec::new(),
            q90: Vec::new(),
            q99: Vec::new(),
        };
        for column in columns {
            let mut sorted = column.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len().max(1) as f64;
            let mean = sorted.iter().sum::<f64>() / n;
            let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            stats.min.push(sorted.first().copied().unwrap_or(f64::NAN));
            stats.max.push(sorted.last().copied().unwrap_or(f64::NAN));
            stats.mean.push(mean);
            stats.std.push(variance.sqrt());
            let q: Vec<f64> = QUANTILES.iter().map(|(q, _)| quantile(&sorted, *q)).collect();
            stats.q01.push(q[0]);
            stats.q10.push(q[1]);
            stats.q50.push(q[2]);
            stats.q90.push(q[3]);
            stats.q99.push(q[4]);
        }
        stats
    }

    /// Statistics of RGB8 images per channel, on values scaled to [0, 1].
    /// Every `stride`-th pixel is used (images are large; statistics are estimates).
    pub fn from_images<'a>(images: impl Iterator<Item = &'a [u8]>, stride: usize) -> FeatureStats {
        let mut channels = vec![Vec::new(), Vec::new(), Vec::new()];
        for image in images {
            for pixel in image.chunks_exact(3).step_by(stride.max(1)) {
                for (c, value) in pixel.iter().enumerate() {
                    channels[c].push(f64::from(*value) / 255.0);
                }
            }
        }
        FeatureStats::from_columns(&channels)
    }

    /// Combines statistics of disjoint parts (episodes) into the whole's.
    pub fn combine(parts: &[&FeatureStats]) -> Option<FeatureStats> {
        let first = parts.first()?;
        let dims = first.mean.len();
        let total: u64 = parts.iter().map(|p| p.count).sum();
        let weight = |p: &FeatureStats| p.count as f64 / total.max(1) as f64;
        let weighted = |pick: fn(&FeatureStats) -> &Vec<f64>| -> Vec<f64> {
            (0..dims)
                .map(|d| parts.iter().map(|p| weight(p) * pick(p)[d]).sum())
                .collect()
        };
        let mean = weighted(|p| &p.mean);
        let std = (0..dims)
            .map(|d| {
                parts
                    .iter()
                    .map(|p| weight(p) * (p.std[d].powi(2) + (p.mean[d] - mean[d]).powi(2)))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        Some(FeatureStats {
            min: (0..dims)
                .map(|d| parts.iter().map(|p| p.min[d]).fold(f64::INFINITY, f64::min))
                .collect(),
            max: (0..dims)
                .map(|d| parts.iter().map(|p| p.max[d]).fold(f64::NEG_INFINITY, f64::max))
                .collect(),
            mean,
            std,
            count: total,
            q01: weighted(|p| &p.q01),
            q10: weighted(|p| &p.q10),
            q50: weighted(|p| &p.q50),
            q90: weighted(|p| &p.q90),
            q99: weighted(|p| &p.q99),
        })
    }

    /// The named statistic's values (`min`, `max`, `mean`, `std`, `q01` …).
    pub fn get(&self, name: &str) -> Option<&Vec<f64>> {
        match name {
            "min" => Some(&self.min),
            "max" => Some(&self.max),
            "mean" => Some(&self.mean),
            "std" => Some(&self.std),
            "q01" => Some(&self.q01),
            "q10" => Some(&self.q10),
            "q50" => Some(&self.q50),
            "q90" => Some(&self.q90),
            "q99" => Some(&self.q99),
            _ => None,
        }
    }

    /// Names of the vector statistics, in file order.
    pub const NAMES: [&'static str; 9] = ["min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"];

    /// JSON as `meta/stats.json` holds it; camera statistics get LeRobot's (3, 1, 1) shape.
    pub fn to_json(&self, camera: bool) -> serde_json::Value {
        let shape = |values: &Vec<f64>| -> serde_json::Value {
            if camera {
                values.iter().map(|v| serde_json::json!([[v]])).collect()
            } else {
                serde_json::json!(values)
            }
        };
        let mut map = serde_json::Map::new();
        for name in Self::NAMES {
            if let Some(values) = self.get(name) {
                map.insert(name.to_owned(), shape(values));
            }
        }
        map.insert("count".to_owned(), serde_json::json!([self.count]));
        serde_json::Value::Object(map)
    }

    /// Reads statistics written by [`to_json`](Self::to_json) (or LeRobot).
    pub fn from_json(value: &serde_json::Value) -> Option<FeatureStats> {
        let flat = |name: &str| -> Option<Vec<f64>> {
            fn collect(v: &serde_json::Value, out: &mut Vec<f64>) {
                match v {
                    serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
                    serde_json::Value::Number(n) => out.extend(n.as_f64()),
                    _ => {}
                }
            }
            let mut out = Vec::new();
            collect(value.get(name)?, &mut out);
            Some(out)
        };
        Some(FeatureStats {
            min: flat("min")?,
            max: flat("max")?,
            mean: flat("mean")?,
            std: flat("std")?,
            count: flat("count")?.first().copied().unwrap_or(0.0) as u64,
            q01: flat("q01").unwrap_or_default(),
            q10: flat("q10").unwrap_or_default(),
            q50: flat("q50").unwrap_or_default(),
            q90: flat("q90").unwrap_or_default(),
            q99: flat("q99").unwrap_or_default(),
        })
    }
}

/// One episode's values, as the statistics need them.
pub struct EpisodeColumns<'a> {
    /// Entries of the state and action vectors.
    pub dims: usize,
    /// States, frame after frame (`frames × dims`).
    pub state: &'a [f32],
    /// Actions, frame after frame.
    pub action: &'a [f32],
    /// Rewards, if the dataset has them.
    pub reward: Option<&'a [f32]>,
    /// `observation.environment_state`, frame after frame, if the dataset has it.
    pub environment_state: Option<&'a [f32]>,
    /// Frames per second.
    pub fps: u32,
    /// The episode's index.
    pub episode_index: u64,
    /// Its first global frame index.
    pub from: u64,
    /// Its task index.
    pub task_index: i64,
    /// Per camera feature: sampled pixels (every [`SAMPLE_EVERY`]-th frame,
    /// every [`PIXEL_STRIDE`]-th pixel), RGB8.
    pub camera_samples: Vec<(String, &'a Vec<Vec<u8>>)>,
}

/// The sampled pixels of one frame for [`EpisodeColumns::camera_samples`].
pub fn sample_pixels(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .step_by(PIXEL_STRIDE)
        .flatten()
        .copied()
        .collect()
}

/// Statistics of every numeric feature of one episode.
pub fn episode_stats(episode: &EpisodeColumns<'_>) -> std::collections::BTreeMap<String, FeatureStats> {
    let dims = episode.dims.max(1);
    let n = episode.state.len() / dims;
    let columns = |values: &[f32]| -> Vec<Vec<f64>> {
        (0..dims)
            .map(|d| (0..n).map(|i| f64::from(values[i * dims + d])).collect())
            .collect()
    };
    let scalar = |f: &dyn Fn(usize) -> f64| vec![(0..n).map(f).collect::<Vec<f64>>()];
    let fps = episode.fps as f32;
    let mut stats = std::collections::BTreeMap::new();
    stats.insert(
        "action".to_owned(),
        FeatureStats::from_columns(&columns(episode.action)),
    );
    stats.insert(
        "observation.state".to_owned(),
        FeatureStats::from_columns(&columns(episode.state)),
    );
    for (camera, samples) in &episode.camera_samples {
        stats.insert(
            camera.clone(),
            FeatureStats::from_images(samples.iter().map(Vec::as_slice), 1),
        );
    }
    stats.insert(
        "timestamp".into(),
        FeatureStats::from_columns(&scalar(&|i| f64::from(i as f32 / fps))),
    );
    stats.insert(
        "frame_index".into(),
        FeatureStats::from_columns(&scalar(&|i| i as f64)),
    );
    stats.insert(
        "episode_index".into(),
        FeatureStats::from_columns(&scalar(&|_| episode.episode_index as f64)),
    );
    stats.insert(
        "index".into(),
        FeatureStats::from_columns(&scalar(&|i| (episode.from + i as u64) as f64)),
    );
    stats.insert(
        "task_index".into(),
        FeatureStats::from_columns(&scalar(&|_| episode.task_index as f64)),
    );
    if let Some(values) = episode.environment_state.filter(|_| n > 0) {
        let width = values.len() / n;
        let columns: Vec<Vec<f64>> = (0..width)
            .map(|d| (0..n).map(|i| f64::from(values[i * width + d])).collect())
            .collect();
        stats.insert(
            crate::writer::ENVIRONMENT_STATE.to_owned(),
            FeatureStats::from_columns(&columns),
        );
    }
    if let Some(reward) = episode.reward {
        stats.insert(
            "next.reward".into(),
            FeatureStats::from_columns(&scalar(&|i| f64::from(reward[i]))),
        );
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1, 2, 3, 4], 0.1) = 1.3; 0.5 -> 2.5
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile(&sorted, 0.1) - 1.3).abs() < 1e-12);
        assert!((quantile(&sorted, 0.5) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn combined_stats_equal_stats_of_the_whole() {
        let a: Vec<f64> = (0..37).map(|i| f64::from(i) * 0.5).collect();
        let b: Vec<f64> = (0..61).map(|i| 10.0 - f64::from(i) * 0.1).collect();
        let whole: Vec<f64> = a.iter().chain(&b).copied().collect();
        let (sa, sb, sw) = (
            FeatureStats::from_columns(&[a]),
            FeatureStats::from_columns(&[b]),
            FeatureStats::from_columns(&[whole]),
        );
        let combined = FeatureStats::combine(&[&sa, &sb]).unwrap();
        assert_eq!(combined.count, 98);
        assert!((combined.mean[0] - sw.mean[0]).abs() < 1e-12);
        assert!((combined.std[0] - sw.std[0]).abs() < 1e-12);
        assert_eq!((combined.min[0], combined.max[0]), (sw.min[0], sw.max[0]));
    }

    #[test]
    fn json_round_trips_with_camera_shape() {
        let stats = FeatureStats::from_images([[10u8, 20, 30, 40, 50, 60].as_slice()].into_iter(), 1);
        let json = stats.to_json(true);
        assert_eq!(json["mean"][0], serde_json::json!([[25.0 / 255.0]]));
        assert_eq!(FeatureStats::from_json(&json).unwrap(), stats);
    }
}
