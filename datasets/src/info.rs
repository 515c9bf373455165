//! `meta/info.json`: the dataset's description.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layout::{self, CHUNKS_SIZE, CODEBASE_VERSION, DATA_FILE_SIZE_MB, VIDEO_FILE_SIZE_MB};
use crate::{Error, Result};

/// One feature (column) of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// `float32`, `int64`, `bool`, `string`, `video` or `image`.
    pub dtype: String,
    /// Shape of one frame's value.
    pub shape: Vec<usize>,
    /// Names of the dimensions or entries (a list, or a map, or null).
    #[serde(default)]
    pub names: Value,
    /// For videos: codec, size and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
}

impl Feature {
    /// Whether the feature is a camera stored as video.
    pub fn is_video(&self) -> bool {
        self.dtype == "video"
    }

    /// Whether the feature is a camera stored as PNG images in the parquet.
    pub fn is_image(&self) -> bool {
        self.dtype == "image"
    }
}

/// `meta/info.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// Format version, "v3.0".
    pub codebase_version: String,
    /// Robot that recorded it, e.g. `so100_follower`.
    pub robot_type: Option<String>,
    /// Frames per second.
    pub fps: u32,
    /// Episodes in the dataset.
    pub total_episodes: u64,
    /// Frames in the dataset.
    pub total_frames: u64,
    /// Distinct tasks.
    pub total_tasks: u64,
    /// Files per chunk folder.
    pub chunks_size: u64,
    /// Data file size limit, MB.
    pub data_files_size_in_mb: u64,
    /// Video file size limit, MB.
    pub video_files_size_in_mb: u64,
    /// Data path template.
    pub data_path: String,
    /// Video path template (null without video).
    pub video_path: Option<String>,
    /// Named episode ranges, e.g. `{"train": "0:50"}`.
    pub splits: BTreeMap<String, String>,
    /// The features, by column name.
    pub features: serde_json::Map<String, Value>,
}

impl Info {
    /// A fresh description for `features` recorded at `fps`.
    pub fn new(fps: u32, robot_type: Option<String>, features: &[(String, Feature)]) -> Result<Info> {
        let has_video = features.iter().any(|(_, f)| f.is_video());
        let mut map = serde_json::Map::new();
        for (name, feature) in features {
            let value =
                serde_json::to_value(feature).map_err(|e| Error::Usage(format!("feature {name}: {e}")))?;
            map.insert(name.clone(), value);
        }
        Ok(Info {
            codebase_version: CODEBASE_VERSION.to_owned(),
            robot_type,
            fps,
            total_episodes: 0,
            total_frames: 0,
            total_tasks: 0,
            chunks_size: CHUNKS_SIZE,
            data_files_size_in_mb: DATA_FILE_SIZE_MB,
            video_files_size_in_mb: VIDEO_FILE_SIZE_MB,
            data_path: layout::DATA_PATH.to_owned(),
            video_path: has_video.then(|| layout::VIDEO_PATH.to_owned()),
            splits: BTreeMap::new(),
            features: map,
        })
    }

    /// The features, parsed, in file order.
    pub fn features(&self) -> Result<Vec<(String, Feature)>> {
        self.features
            .iter()
            .map(|(name, value)| {
                let feature: Feature = serde_json::from_value(value.clone())
                    .map_err(|e| Error::Usage(format!("info.json feature {name:?}: {e}")))?;
                Ok((name.clone(), feature))
            })
            .collect()
    }

    /// The camera features (video or image), in file order.
    pub fn cameras(&self) -> Result<Vec<(String, Feature)>> {
        Ok(self
            .features()?
            .into_iter()
            .filter(|(_, f)| f.is_video() || f.is_image())
            .collect())
    }

    /// Reads and checks `meta/info.json` under `root`.
    pub fn load(root: &Path) -> Result<Info> {
        let path = layout::info_path(root);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let info: Info = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not valid info.json: {e}")))?;
        if info.codebase_version != CODEBASE_VERSION {
            return Err(Error::format(
                &path,
                format!(
                    "codebase_version is {:?}, this reader handles {CODEBASE_VERSION:?} (convert older datasets with `sponge dataset convert`)",
                    info.codebase_version
                ),
            ));
        }
        if info.fps == 0 {
            return Err(Error::format(&path, "fps is 0"));
        }
        info.features().map_err(|e| Error::format(&path, e.to_string()))?;
        Ok(info)
    }

    /// The JSON text written to `meta/info.json`.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|e| Error::Usage(format!("info.json: {e}")))
    }
}
