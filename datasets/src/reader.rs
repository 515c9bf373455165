//! Reading datasets: LeRobot's v3.0 files, written by sponge or by LeRobot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};

use crate::commit;
use crate::info::{Feature, Info};
use crate::layout::{self, FileId};
use crate::meta::{self, EpisodeMeta};
use crate::table::{self, column};
use crate::video;
use crate::writer::ENVIRONMENT_STATE;
use crate::{Error, Result};

/// One episode, read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Episode index.
    pub index: u64,
    /// Its task text.
    pub task: String,
    /// Its task index (into `meta/tasks.parquet`).
    pub task_index: i64,
    /// Per frame: timestamp, seconds.
    pub timestamps: Vec<f32>,
    /// Per frame: `observation.state`.
    pub state: Vec<Vec<f32>>,
    /// Per frame: `action`.
    pub action: Vec<Vec<f32>>,
    /// Per frame: `next.reward`, if the dataset has it.
    pub reward: Option<Vec<f32>>,
    /// Per frame: `next.done`, if the dataset has it.
    pub done: Option<Vec<bool>>,
    /// Per frame: `observation.environment_state`, if the dataset has it.
    pub environment_state: Option<Vec<Vec<f32>>>,
    /// Per camera feature: RGB8 frames.
    pub images: BTreeMap<String, Vec<Vec<u8>>>,
}

/// An open dataset.
pub struct Dataset {
    root: PathBuf,
    info: Info,
    features: Vec<(String, Feature)>,
    tasks: Vec<String>,
    episodes: Vec<EpisodeMeta>,
    /// The data file read last: episodes are read one after another from the same file.
    cached: Mutex<Option<(FileId, Arc<Vec<RecordBatch>>)>>,
}

impl Dataset {
    /// Opens the dataset at `root` (finishing a commit a crash interrupted;
    /// while a writer has it open, what it has committed so far).
    pub fn open(root: &Path) -> Result<Dataset> {
        commit::recover_unless_written(root)?;
        let info = Info::load(root)?;
        let features = info.features()?;
        let (tasks, episodes) = meta::read_tasks_and_episodes(root)?;
        Ok(Dataset {
            root: root.to_path_buf(),
            info,
            features,
            tasks,
            episodes,
            cached: Mutex::new(None),
        })
    }

    /// The dataset folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `meta/info.json`.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The features, in file order.
    pub fn features(&self) -> &[(String, Feature)] {
        &self.features
    }

    /// Task texts by task index.
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }

    /// Episode metadata, in order.
    pub fn episodes(&self) -> &[EpisodeMeta] {
        &self.episodes
    }

    /// The rows of one data file.
    pub fn data_file(&self, file: FileId) -> Result<Arc<Vec<RecordBatch>>> {
        if let Ok(cached) = self.cached.lock()
            && let Some((id, batches)) = cached.as_ref()
            && *id == file
        {
            return Ok(batches.clone());
        }
        let batches = Arc::new(table::read_parquet(&layout::data_path(&self.root, file))?.1);
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((file, batches.clone()));
        }
        Ok(batches)
    }

    /// Reads episode `index` whole, images decoded.
    pub fn read_episode(&self, index: usize) -> Result<Episode> {
        self.read(index, true)
    }

    /// Reads episode `index` without its images (`images` left empty):
    /// states, actions, timestamps, rewards, as fast as the table reads.
    pub fn read_episode_values(&self, index: usize) -> Result<Episode> {
        self.read(index, false)
    }

    fn read(&self, index: usize, with_images: bool) -> Result<Episode> {
        let meta = self.episodes.get(index).ok_or_else(|| {
            Error::Usage(format!(
                "episode {index} does not exist ({} episodes)",
                self.episodes.len()
            ))
        })?;
        let path = layout::data_path(&self.root, meta.data_file);
        let batches = self.data_file(meta.data_file)?;
        let mut episode = Episode {
            index: meta.episode_index,
            task: meta.tasks.first().cloned().unwrap_or_default(),
            task_index: meta
                .tasks
                .first()
                .and_then(|t| self.tasks.iter().position(|known| known == t))
                .map_or(-1, |i| i as i64),
            timestamps: Vec::new(),
            state: Vec::new(),
            action: Vec::new(),
            reward: None,
            done: None,
            environment_state: None,
            images: BTreeMap::new(),
        };
        for batch in batches.iter() {
            let episode_index = column(batch, "episode_index", &path)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| Error::format(&path, "episode_index is not int64"))?;
            let rows: Vec<usize> = (0..batch.num_rows())
                .filter(|r| episode_index.value(*r) == meta.episode_index as i64)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let take_vectors = |name: &str| -> Result<Vec<Vec<f32>>> {
                let all = table::vector_rows(column(batch, name, &path)?, name, &path)?;
                Ok(rows
                    .iter()
                    .map(|r| all[*r].iter().map(|v| *v as f32).collect())
                    .collect())
            };
            episode.state.extend(take_vectors("observation.state")?);
            episode.action.extend(take_vectors("action")?);
            if batch.column_by_name(ENVIRONMENT_STATE).is_some() {
                episode
                    .environment_state
                    .get_or_insert_with(Vec::new)
                    .extend(take_vectors(ENVIRONMENT_STATE)?);
            }
            let timestamps = table::f64_values(column(batch, "timestamp", &path)?, "timestamp", &path)?;
            episode
                .timestamps
                .extend(rows.iter().map(|r| timestamps[*r] as f32));
            if let Some(reward) = batch.column_by_name("next.reward") {
                let values = table::f64_values(reward, "next.reward", &path)?;
                episode
                    .reward
                    .get_or_insert_with(Vec::new)
                    .extend(rows.iter().map(|r| values[*r] as f32));
            }
            if let Some(done) = batch.column_by_name("next.done") {
                let done = done
                    .as_boolean_opt()
                    .ok_or_else(|| Error::format(&path, "next.done is not boolean"))?;
                episode
                    .done
                    .get_or_insert_with(Vec::new)
                    .extend(rows.iter().map(|r| done.value(*r)));
            }
            for (name, feature) in &self.features {
                if with_images && feature.is_image() {
                    let images = read_png_column(batch, name, &rows, &path)?;
                    episode.images.entry(name.clone()).or_default().extend(images);
                }
            }
        }
        if episode.state.len() as u64 != meta.length {
            return Err(Error::format(
                &path,
                format!(
                    "episode {index} has {} rows, its metadata says {}",
                    episode.state.len(),
                    meta.length
                ),
            ));
        }
        for (name, feature) in &self.features {
            if with_images && feature.is_video() {
                let span = meta
                    .videos
                    .get(name)
                    .ok_or_else(|| Error::format(&path, format!("episode {index} has no {name} video")))?;
                let video_path = layout::video_path(&self.root, name, span.file);
                let (height, width) = (feature.shape[0] as u32, feature.shape[1] as u32);
                let frames = video::decode(
                    &video_path,
                    span.from_timestamp,
                    meta.length as usize,
                    width,
                    height,
                    self.info.fps,
                )?;
                episode.images.insert(name.clone(), frames);
            }
        }
        Ok(episode)
    }
}

pub(crate) fn read_png_column(
    batch: &RecordBatch,
    name: &str,
    rows: &[usize],
    path: &Path,
) -> Result<Vec<Vec<u8>>> {
    let column = column(batch, name, path)?;
    let images = column
        .as_struct_opt()
        .ok_or_else(|| Error::format(path, format!("{name} is not an image struct")))?;
    let bytes = images
        .column_by_name("bytes")
        .and_then(|b| b.as_binary_opt::<i32>())
        .ok_or_else(|| Error::format(path, format!("{name} has no binary \"bytes\" field")))?;
    rows.iter()
        .map(|r| {
            if bytes.is_null(*r) {
                return Err(Error::format(path, format!("{name} row {r} has no image bytes")));
            }
            decode_png(bytes.value(*r)).map_err(|e| Error::format(path, format!("{name} row {r}: {e}")))
        })
        .collect()
}

/// Decodes a PNG to RGB8.
pub fn decode_png(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("bad PNG: {e}"))?;
    buf.truncate(info.buffer_size());
    match info.color_type {
        png::ColorType::Rgb => Ok(buf),
        png::ColorType::Rgba => Ok(buf.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()),
        other => Err(format!("PNG colour type {other:?} is not RGB")),
    }
}
