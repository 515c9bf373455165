//! Writing a dataset episode by episode: the recording API that the twin
//! and the real-robot recorder use.
//!
//! An episode becomes part of the dataset only when it is finished: its
//! data file, videos and metadata are committed together ([`crate::commit`]),
//! so a process killed at any moment leaves a dataset that validates and
//! holds every episode finished before; [`DatasetWriter::resume`] carries on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
    StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::json;

use crate::commit::{self, Commit, TMP_SUFFIX, WriterLock};
use crate::info::{Feature, Info};
use crate::layout::{self, FileId};
use crate::meta::{self, EpisodeMeta, VideoSpan};
use crate::stats::{self, EpisodeColumns, FeatureStats};
use crate::table;
use crate::video::{self, Codec, VideoEncoder};
use crate::{Error, Result};

/// How camera frames are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraStorage {
    /// One concatenated mp4 per camera per file (LeRobot's default).
    Video,
    /// PNG images inside the data parquet.
    Png,
}

/// A camera of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraSpec {
    /// Short name; the feature is `observation.images.<name>`.
    pub name: String,
    /// Frame width, pixels.
    pub width: u32,
    /// Frame height, pixels.
    pub height: u32,
}

impl CameraSpec {
    /// The feature (column) name.
    pub fn key(&self) -> String {
        format!("observation.images.{}", self.name)
    }
}

/// The feature of what a simulator knows of the scene (LeRobot's name for it).
pub const ENVIRONMENT_STATE: &str = "observation.environment_state";

/// The names of a vector feature's entries: its `names`, or `prefix`
/// and the index when it has none.
fn entry_names(feature: &Feature, prefix: &str) -> Vec<String> {
    match &feature.names {
        serde_json::Value::Array(names) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => (0..feature.shape.first().copied().unwrap_or(0))
            .map(|i| format!("{prefix}{i}"))
            .collect(),
    }
}

/// What a new dataset records.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// Frames per second.
    pub fps: u32,
    /// `robot_type` of info.json.
    pub robot_type: String,
    /// Names of the state and action entries (LeRobot: `shoulder_pan.pos` …).
    pub joint_names: Vec<String>,
    /// Cameras.
    pub cameras: Vec<CameraSpec>,
    /// How cameras are stored.
    pub storage: CameraStorage,
    /// Whether frames carry `next.reward` and `next.done`.
    pub reward_done: bool,
    /// Names of the `observation.environment_state` entries (what a
    /// simulator knows of the scene, e.g. where the named spill is); empty
    /// when frames carry none.
    pub environment_state: Vec<String>,
    /// Video codec; `None` chooses by frame size ([`video::choose_codec`]).
    pub codec: Option<Codec>,
}

impl DatasetSpec {
    /// An SO-100 follower dataset in LeRobot's conventions (no cameras yet).
    pub fn so100(fps: u32) -> DatasetSpec {
        DatasetSpec {
            fps,
            robot_type: "so100_follower".into(),
            joint_names: sponge_robot::units::FEATURE_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            cameras: Vec::new(),
            storage: CameraStorage::Video,
            reward_done: false,
            environment_state: Vec::new(),
            codec: None,
        }
    }

    fn features(&self, codec: Option<Codec>) -> Vec<(String, Feature)> {
        let vector = |len: usize| Feature {
            dtype: "float32".into(),
            shape: vec![len],
            names: json!(self.joint_names),
            info: None,
        };
        let scalar = |dtype: &str| Feature {
            dtype: dtype.into(),
            shape: vec![1],
            names: serde_json::Value::Null,
            info: None,
        };
        let mut features = vec![
            ("action".to_owned(), vector(self.joint_names.len())),
            ("observation.state".to_owned(), vector(self.joint_names.len())),
        ];
        if !self.environment_state.is_empty() {
            features.push((
                ENVIRONMENT_STATE.to_owned(),
                Feature {
                    dtype: "float32".into(),
                    shape: vec![self.environment_state.len()],
                    names: json!(self.environment_state),
                    info: None,
                },
            ));
        }
        for camera in &self.cameras {
            let (dtype, info) = match (self.storage, codec) {
                (CameraStorage::Video, Some(codec)) => (
                    "video",
                    Some(json!({
                        "video.height": camera.height,
                        "video.width": camera.width,
                        "video.codec": codec.name(),
                        "video.pix_fmt": "yuv420p",
                        "video.is_depth_map": false,
                        "video.fps": self.fps,
                        "video.channels": 3,
                        "has_audio": false,
                    })),
                ),
                _ => ("image", None),
            };
            features.push((
                camera.key(),
                Feature {
                    dtype: dtype.into(),
                    shape: vec![camera.height as usize, camera.width as usize, 3],
                    names: json!(["height", "width", "channels"]),
                    info,
                },
            ));
        }
        features.push(("timestamp".into(), scalar("float32")));
        for name in ["frame_index", "episode_index", "index", "task_index"] {
            features.push((name.into(), scalar("int64")));
        }
        if self.reward_done {
            features.push(("next.reward".into(), scalar("float32")));
            features.push(("next.done".into(), scalar("bool")));
        }
        features
    }

    /// Reconstructs the spec of an existing dataset from its info.json.
    pub fn from_info(info: &Info) -> Result<(DatasetSpec, Option<Codec>)> {
        let features = info.features()?;
        let find = |name: &str| features.iter().find(|(n, _)| n == name).map(|(_, f)| f);
        let action = find("action").ok_or_else(|| Error::Usage("dataset has no action feature".into()))?;
        let joint_names = entry_names(action, "a");
        let environment_state = find(ENVIRONMENT_STATE).map_or_else(Vec::new, |f| entry_names(f, "e"));
        let mut cameras = Vec::new();
        let mut storage = CameraStorage::Video;
        let mut codec = None;
        for (name, feature) in &features {
            if let (Some(camera), true) = (
                name.strip_prefix("observation.images."),
                feature.is_video() || feature.is_image(),
            ) {
                if feature.is_image() {
                    storage = CameraStorage::Png;
                } else {
                    codec = Some(
                        match feature.info.as_ref().and_then(|i| i["video.codec"].as_str()) {
                            Some("h264") => Codec::H264,
                            _ => Codec::Av1,
                        },
                    );
                }
                cameras.push(CameraSpec {
                    name: camera.to_owned(),
                    height: feature.shape.first().copied().unwrap_or(0) as u32,
                    width: feature.shape.get(1).copied().unwrap_or(0) as u32,
                });
            }
        }
        let spec = DatasetSpec {
            fps: info.fps,
            robot_type: info.robot_type.clone().unwrap_or_default(),
            joint_names,
            cameras,
            storage,
            reward_done: find("next.reward").is_some(),
            environment_state,
            codec,
        };
        Ok((spec, codec))
    }
}

/// One frame to record.
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    /// Robot state (dataset units).
    pub state: &'a [f32],
    /// Action (dataset units).
    pub action: &'a [f32],
    /// One RGB8 image per camera, in the spec's camera order.
    pub images: &'a [&'a [u8]],
    /// Reward after this frame (datasets with `reward_done`).
    pub reward: f32,
    /// Whether the episode ends after this frame (datasets with `reward_done`).
    pub done: bool,
    /// `observation.environment_state` (datasets that record it; empty otherwise).
    pub environment_state: &'a [f32],
}

struct EpisodeBuffer {
    task_index: usize,
    new_task: Option<String>,
    frames: u64,
    state: Vec<f32>,
    action: Vec<f32>,
    reward: Vec<f32>,
    done: Vec<bool>,
    environment_state: Vec<f32>,
    pngs: Vec<Vec<Vec<u8>>>,
    encoders: Vec<VideoEncoder>,
    staged_videos: Vec<PathBuf>,
    camera_samples: Vec<Vec<Vec<u8>>>,
}

impl Drop for EpisodeBuffer {
    fn drop(&mut self) {
        // Unfinished or already-committed episode videos: scratch either way.
        for path in &self.staged_videos {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes a LeRobot v3.0 dataset, one episode at a time.
pub struct DatasetWriter {
    root: PathBuf,
    info: Info,
    spec: DatasetSpec,
    codec: Option<Codec>,
    schema: Arc<Schema>,
    tasks: Vec<String>,
    episodes: Vec<EpisodeMeta>,
    data_file: FileId,
    data_batches: Vec<RecordBatch>,
    video_files: Vec<(FileId, u64)>,
    meta_file: FileId,
    episode: Option<EpisodeBuffer>,
    /// Held while the writer lives: readers leave its staged files alone.
    _lock: WriterLock,
}

fn data_schema(spec: &DatasetSpec) -> Arc<Schema> {
    let dims = spec.joint_names.len();
    let mut fields = vec![
        table::f32_vector_field("action", dims),
        table::f32_vector_field("observation.state", dims),
    ];
    if !spec.environment_state.is_empty() {
        fields.push(table::f32_vector_field(
            ENVIRONMENT_STATE,
            spec.environment_state.len(),
        ));
    }
    if spec.storage == CameraStorage::Png {
        fields.extend(spec.cameras.iter().map(|c| table::image_field(&c.key())));
    }
    fields.push(Field::new("timestamp", DataType::Float32, false));
    for name in ["frame_index", "episode_index", "index", "task_index"] {
        fields.push(Field::new(name, DataType::Int64, false));
    }
    if spec.reward_done {
        fields.push(Field::new("next.reward", DataType::Float32, false));
        fields.push(Field::new("next.done", DataType::Boolean, false));
    }
    Arc::new(Schema::new(fields))
}

fn staging_dir(root: &Path) -> PathBuf {
    root.join(".sponge-staging")
}

impl DatasetWriter {
    /// Creates a new dataset at `root` (which must not exist, or be empty).
    pub fn create(root: &Path, spec: DatasetSpec) -> Result<DatasetWriter> {
        if root.exists()
            && std::fs::read_dir(root)
                .map_err(|e| Error::io(root, e))?
                .next()
                .is_some()
        {
            return Err(Error::Usage(format!(
                "{} already exists and is not empty: choose another folder, or resume it",
                root.display()
            )));
        }
        if spec.fps == 0 || spec.joint_names.is_empty() {
            return Err(Error::Usage(
                "a dataset needs fps > 0 and at least one joint".into(),
            ));
        }
        if let Some(camera) = spec
            .cameras
            .iter()
            .find(|c| c.width % 2 == 1 || c.height % 2 == 1 || c.width == 0)
        {
            return Err(Error::Usage(format!(
                "camera {} is {}x{}: sizes must be even and non-zero",
                camera.name, camera.width, camera.height
            )));
        }
        let max_pixels = spec.cameras.iter().map(|c| c.width * c.height).max();
        let min_side = spec
            .cameras
            .iter()
            .map(|c| c.width.min(c.height))
            .min()
            .unwrap_or(0);
        let codec = match (spec.storage, max_pixels) {
            (CameraStorage::Video, Some(max_pixels)) => {
                Some(video::choose_codec(spec.codec, min_side, max_pixels)?)
            }
            _ => None,
        };
        std::fs::create_dir_all(root.join("meta")).map_err(|e| Error::io(root, e))?;
        let lock = WriterLock::acquire(root)?;
        let info = Info::new(spec.fps, Some(spec.robot_type.clone()), &spec.features(codec))?;
        let mut commit = Commit::new(root);
        commit.stage_bytes(&layout::info_path(root), info.to_json()?.as_bytes())?;
        commit.apply()?;
        Ok(DatasetWriter {
            root: root.to_path_buf(),
            schema: data_schema(&spec),
            video_files: vec![(FileId::default(), 0); spec.cameras.len()],
            info,
            spec,
            codec,
            tasks: Vec::new(),
            episodes: Vec::new(),
            data_file: FileId::default(),
            data_batches: Vec::new(),
            meta_file: FileId::default(),
            episode: None,
            _lock: lock,
        })
    }

    /// Opens an existing dataset to add episodes (after recovering from a crash if needed).
    pub fn resume(root: &Path) -> Result<DatasetWriter> {
        if !root.join("meta").is_dir() {
            return Err(Error::Format {
                path: root.to_path_buf(),
                message: "not a LeRobot dataset (no meta folder) to add episodes to".into(),
            });
        }
        let lock = WriterLock::acquire(root)?;
        commit::recover(root)?;
        // Left over from an episode that never finished.
        let _ = std::fs::remove_dir_all(staging_dir(root));
        let info = Info::load(root)?;
        let (spec, codec) = DatasetSpec::from_info(&info)?;
        let (tasks, episodes) = meta::read_tasks_and_episodes(root)?;
        let (data_file, meta_file) = episodes
            .last()
            .map_or((FileId::default(), FileId::default()), |e| {
                (e.data_file, e.meta_file)
            });
        let data_path = layout::data_path(root, data_file);
        let data_batches = if data_path.exists() {
            table::read_parquet(&data_path)?.1
        } else {
            Vec::new()
        };
        let video_files = spec
            .cameras
            .iter()
            .map(|camera| {
                episodes.last().and_then(|e| e.videos.get(&camera.key())).map_or(
                    (FileId::default(), 0),
                    |span| {
                        (
                            span.file,
                            (span.to_timestamp * f64::from(info.fps)).round() as u64,
                        )
                    },
                )
            })
            .collect();
        Ok(DatasetWriter {
            root: root.to_path_buf(),
            schema: data_schema(&spec),
            info,
            spec,
            codec,
            tasks,
            episodes,
            data_file,
            data_batches,
            video_files,
            meta_file,
            episode: None,
            _lock: lock,
        })
    }

    /// The dataset's spec.
    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    /// The codec of the dataset's videos (`None` when images are PNG).
    pub fn codec(&self) -> Option<Codec> {
        self.codec
    }

    /// Episodes committed so far.
    pub fn episodes(&self) -> usize {
        self.episodes.len()
    }

    /// Frames committed so far.
    pub fn frames(&self) -> u64 {
        self.info.total_frames
    }

    /// Starts recording an episode of `task`.
    pub fn start_episode(&mut self, task: &str) -> Result<()> {
        self.begin_episode(task, None)
    }

    /// Starts an episode of `task` whose camera videos are already encoded:
    /// one mp4 per camera, in the spec's order, in this dataset's codec and
    /// frame size, each with as many frames as the episode will get. They
    /// are joined to the dataset's videos as they are, with no second
    /// encoding (and no second loss of quality). The frames added still
    /// carry their images, for the statistics. The writer takes the files:
    /// they are gone once the episode is finished or discarded.
    pub fn start_episode_with_videos(&mut self, task: &str, videos: Vec<PathBuf>) -> Result<()> {
        if self.codec.is_none() || videos.len() != self.spec.cameras.len() {
            let given = videos.len();
            // The writer owns them, used or not.
            for path in videos {
                let _ = std::fs::remove_file(path);
            }
            return Err(Error::Usage(format!(
                "{given} encoded videos for a dataset with {} cameras stored as {}",
                self.spec.cameras.len(),
                if self.codec.is_some() { "video" } else { "PNG" }
            )));
        }
        self.begin_episode(task, Some(videos))
    }

    /// A path for a scratch file of `name` in the writer's staging folder,
    /// which [`DatasetWriter::close`] and [`DatasetWriter::resume`] clear
    /// (for videos to give [`DatasetWriter::start_episode_with_videos`]).
    pub fn scratch_path(&self, name: &str) -> Result<PathBuf> {
        let staging = staging_dir(&self.root);
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(staging.join(format!("{name}{TMP_SUFFIX}")))
    }

    fn begin_episode(&mut self, task: &str, encoded: Option<Vec<PathBuf>>) -> Result<()> {
        if self.episode.is_some() {
            for path in encoded.into_iter().flatten() {
                let _ = std::fs::remove_file(path);
            }
            return Err(Error::Usage(
                "an episode is already being recorded: finish or discard it first".into(),
            ));
        }
        let (task_index, new_task) = match self.tasks.iter().position(|t| t == task) {
            Some(i) => (i, None),
            None => (self.tasks.len(), Some(task.to_owned())),
        };
        let cameras = self.spec.cameras.len();
        let mut buffer = EpisodeBuffer {
            task_index,
            new_task,
            frames: 0,
            state: Vec::new(),
            action: Vec::new(),
            reward: Vec::new(),
            done: Vec::new(),
            environment_state: Vec::new(),
            pngs: vec![Vec::new(); cameras],
            encoders: Vec::new(),
            staged_videos: Vec::new(),
            camera_samples: vec![Vec::new(); cameras],
        };
        if let Some(videos) = encoded {
            buffer.staged_videos = videos;
        } else if let Some(codec) = self.codec {
            let staging = staging_dir(&self.root);
            std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
            for camera in &self.spec.cameras {
                let path = staging.join(format!(
                    "episode-{:06}-{}.mp4{TMP_SUFFIX}",
                    self.episodes.len(),
                    camera.name
                ));
                buffer.staged_videos.push(path.clone());
                buffer.encoders.push(VideoEncoder::start(
                    &path,
                    camera.width,
                    camera.height,
                    self.spec.fps,
                    codec,
                )?);
            }
        }
        self.episode = Some(buffer);
        Ok(())
    }

    /// Adds a frame to the episode being recorded.
    pub fn add_frame(&mut self, frame: &FrameInput<'_>) -> Result<()> {
        let dims = self.spec.joint_names.len();
        let Some(episode) = self.episode.as_mut() else {
            return Err(Error::Usage("no episode started".into()));
        };
        if frame.state.len() != dims || frame.action.len() != dims {
            return Err(Error::Usage(format!(
                "frame has {} state and {} action values, the dataset has {dims}",
                frame.state.len(),
                frame.action.len()
            )));
        }
        if frame.environment_state.len() != self.spec.environment_state.len() {
            return Err(Error::Usage(format!(
                "frame has {} environment state values, the dataset has {}",
                frame.environment_state.len(),
                self.spec.environment_state.len()
            )));
        }
        if frame.images.len() != self.spec.cameras.len() {
            return Err(Error::Usage(format!(
                "frame has {} images, the dataset has {} cameras",
                frame.images.len(),
                self.spec.cameras.len()
            )));
        }
        for (camera, image) in self.spec.cameras.iter().zip(frame.images) {
            let expected = camera.width as usize * camera.height as usize * 3;
            if image.len() != expected {
                return Err(Error::Usage(format!(
                    "camera {} image has {} bytes, expected {expected} ({}x{} RGB)",
                    camera.name,
                    image.len(),
                    camera.width,
                    camera.height
                )));
            }
        }
        for (i, image) in frame.images.iter().enumerate() {
            if let Some(encoder) = episode.encoders.get_mut(i) {
                encoder.push(image)?;
            } else if self.codec.is_none() {
                episode.pngs[i].push(encode_png(image, &self.spec.cameras[i])?);
            }
            if episode.frames % stats::SAMPLE_EVERY == 0 {
                episode.camera_samples[i].push(stats::sample_pixels(image));
            }
        }
        episode.state.extend_from_slice(frame.state);
        episode.action.extend_from_slice(frame.action);
        episode.reward.push(frame.reward);
        episode.done.push(frame.done);
        episode
            .environment_state
            .extend_from_slice(frame.environment_state);
        episode.frames += 1;
        Ok(())
    }

    /// Drops the episode being recorded; the dataset is unchanged.
    pub fn discard_episode(&mut self) {
        self.episode = None;
        let _ = std::fs::remove_dir(staging_dir(&self.root));
    }

    fn episode_batch(&self, episode: &EpisodeBuffer, index: u64, from: u64) -> Result<RecordBatch> {
        let dims = self.spec.joint_names.len() as i32;
        let n = episode.frames as usize;
        let vector = |values: &[f32], dims: i32| -> Result<ArrayRef> {
            let item = Arc::new(Field::new("item", DataType::Float32, true));
            let list =
                FixedSizeListArray::try_new(item, dims, Arc::new(Float32Array::from(values.to_vec())), None)
                    .map_err(|e| Error::Usage(format!("vector column: {e}")))?;
            Ok(Arc::new(list))
        };
        let mut columns: Vec<ArrayRef> = vec![vector(&episode.action, dims)?, vector(&episode.state, dims)?];
        if !self.spec.environment_state.is_empty() {
            columns.push(vector(
                &episode.environment_state,
                self.spec.environment_state.len() as i32,
            )?);
        }
        if self.spec.storage == CameraStorage::Png {
            for pngs in &episode.pngs {
                let bytes = BinaryArray::from_iter_values(pngs.iter());
                let paths = StringArray::from(vec![None::<&str>; n]);
                let fields = Fields::from(vec![
                    Field::new("bytes", DataType::Binary, true),
                    Field::new("path", DataType::Utf8, true),
                ]);
                columns.push(Arc::new(StructArray::new(
                    fields,
                    vec![Arc::new(bytes), Arc::new(paths)],
                    None,
                )));
            }
        }
        let fps = self.spec.fps as f32;
        columns.push(Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| i as f32 / fps),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(0..n as i64)));
        columns.push(Arc::new(Int64Array::from(vec![index as i64; n])));
        columns.push(Arc::new(Int64Array::from_iter_values(
            from as i64..(from + n as u64) as i64,
        )));
        columns.push(Arc::new(Int64Array::from(vec![episode.task_index as i64; n])));
        if self.spec.reward_done {
            columns.push(Arc::new(Float32Array::from(episode.reward.clone())));
            columns.push(Arc::new(BooleanArray::from(episode.done.clone())));
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::Usage(format!("episode table: {e}")))
    }

    /// Finishes the episode being recorded and commits it to the dataset.
    /// On failure (disk full, encoder error) the episode is lost, the
    /// dataset stays as it was, and the error says why.
    pub fn finish_episode(&mut self) -> Result<EpisodeMeta> {
        let Some(mut episode) = self.episode.take() else {
            return Err(Error::Usage("no episode started".into()));
        };
        if episode.frames == 0 {
            return Err(Error::Usage(
                "the episode has no frames; nothing was saved".into(),
            ));
        }
        // Videos without encoders came encoded (`start_episode_with_videos`).
        let encoded = self.codec.is_some() && episode.encoders.is_empty();
        for encoder in std::mem::take(&mut episode.encoders) {
            encoder.finish()?;
        }
        if encoded {
            for (camera, path) in self.spec.cameras.iter().zip(&episode.staged_videos) {
                let found = video::probe(path)?;
                if found.frames != episode.frames
                    || (found.width, found.height) != (camera.width, camera.height)
                {
                    return Err(Error::Usage(format!(
                        "the encoded video of camera {} is {}x{} with {} frames; the episode has {} frames of {}x{}",
                        camera.name,
                        found.width,
                        found.height,
                        found.frames,
                        episode.frames,
                        camera.width,
                        camera.height
                    )));
                }
            }
        }
        let mut commit = Commit::new(&self.root);
        let result = self.stage_episode(&mut commit, &episode);
        match result {
            Ok(update) => {
                commit.apply()?;
                Ok(self.apply_update(update))
            }
            Err(e) => {
                commit.discard();
                Err(e)
            }
        }
    }

    fn stage_episode(&self, commit: &mut Commit, episode: &EpisodeBuffer) -> Result<Update> {
        let index = self.episodes.len() as u64;
        let from = self.info.total_frames;
        let fps = f64::from(self.spec.fps);
        let batch = self.episode_batch(episode, index, from)?;

        let mut data_file = self.data_file;
        let mut data_batches = self.data_batches.clone();
        let current = layout::data_path(&self.root, data_file);
        if file_mb(&current) >= self.info.data_files_size_in_mb {
            data_file = data_file.next();
            data_batches.clear();
        }
        data_batches.push(batch);
        let data_path = layout::data_path(&self.root, data_file);
        commit.stage_bytes(
            &data_path,
            &table::to_parquet(self.schema.clone(), &data_batches, &data_path)?,
        )?;

        let mut videos = std::collections::BTreeMap::new();
        let mut video_files = self.video_files.clone();
        for (i, camera) in self.spec.cameras.iter().enumerate() {
            let Some(episode_video) = episode.staged_videos.get(i) else {
                continue;
            };
            let (mut file, mut frames_before) = video_files[i];
            let existing = layout::video_path(&self.root, &camera.key(), file);
            if frames_before > 0 && file_mb(&existing) >= self.info.video_files_size_in_mb {
                file = file.next();
                frames_before = 0;
            }
            let target = layout::video_path(&self.root, &camera.key(), file);
            let staged = commit.stage_path(&target)?;
            if frames_before > 0 {
                video::concat(
                    &[(&target, frames_before), (episode_video, episode.frames)],
                    self.spec.fps,
                    &staged,
                )?;
            } else {
                std::fs::copy(episode_video, &staged).map_err(|e| Error::io(&staged, e))?;
            }
            videos.insert(
                camera.key(),
                VideoSpan {
                    file,
                    from_timestamp: frames_before as f64 / fps,
                    to_timestamp: (frames_before + episode.frames) as f64 / fps,
                },
            );
            video_files[i] = (file, frames_before + episode.frames);
        }

        let mut tasks = self.tasks.clone();
        if let Some(task) = &episode.new_task {
            tasks.push(task.clone());
            let path = layout::tasks_path(&self.root);
            commit.stage_bytes(&path, &meta::tasks_parquet(&tasks, &path)?)?;
        }

        let mut meta_file = self.meta_file;
        if file_mb(&layout::episodes_path(&self.root, meta_file)) >= self.info.data_files_size_in_mb {
            meta_file = meta_file.next();
        }
        let new_episode = EpisodeMeta {
            episode_index: index,
            tasks: vec![tasks[episode.task_index].clone()],
            length: episode.frames,
            data_file,
            dataset_from_index: from,
            dataset_to_index: from + episode.frames,
            videos,
            meta_file,
            stats: stats::episode_stats(&EpisodeColumns {
                dims: self.spec.joint_names.len(),
                state: &episode.state,
                action: &episode.action,
                reward: self.spec.reward_done.then_some(episode.reward.as_slice()),
                environment_state: (!self.spec.environment_state.is_empty())
                    .then_some(episode.environment_state.as_slice()),
                fps: self.spec.fps,
                episode_index: index,
                from,
                task_index: episode.task_index as i64,
                camera_samples: self
                    .spec
                    .cameras
                    .iter()
                    .map(CameraSpec::key)
                    .zip(episode.camera_samples.iter())
                    .collect(),
            }),
        };
        let mut in_meta_file: Vec<EpisodeMeta> = self
            .episodes
            .iter()
            .filter(|e| e.meta_file == meta_file)
            .cloned()
            .collect();
        in_meta_file.push(new_episode.clone());
        let meta_path = layout::episodes_path(&self.root, meta_file);
        let meta_batch = meta::episodes_batch(&in_meta_file)?;
        commit.stage_bytes(
            &meta_path,
            &table::to_parquet(meta_batch.schema(), &[meta_batch], &meta_path)?,
        )?;

        let mut all: Vec<&EpisodeMeta> = self.episodes.iter().collect();
        all.push(&new_episode);
        let cameras: Vec<String> = self.spec.cameras.iter().map(CameraSpec::key).collect();
        let mut stats_json = serde_json::Map::new();
        for feature in new_episode.stats.keys() {
            let parts: Vec<&FeatureStats> = all.iter().filter_map(|e| e.stats.get(feature)).collect();
            if let Some(combined) = FeatureStats::combine(&parts) {
                stats_json.insert(feature.clone(), combined.to_json(cameras.contains(feature)));
            }
        }
        let stats_text =
            serde_json::to_string_pretty(&stats_json).map_err(|e| Error::Usage(e.to_string()))? + "\n";
        commit.stage_bytes(&layout::stats_path(&self.root), stats_text.as_bytes())?;

        let mut info = self.info.clone();
        info.total_episodes = index + 1;
        info.total_frames = from + episode.frames;
        info.total_tasks = tasks.len() as u64;
        info.splits = [("train".to_owned(), format!("0:{}", index + 1))].into();
        commit.stage_bytes(&layout::info_path(&self.root), info.to_json()?.as_bytes())?;

        Ok(Update {
            info,
            tasks,
            episode: new_episode,
            data_file,
            data_batches,
            video_files,
            meta_file,
        })
    }

    fn apply_update(&mut self, update: Update) -> EpisodeMeta {
        self.info = update.info;
        self.tasks = update.tasks;
        self.data_file = update.data_file;
        self.data_batches = update.data_batches;
        self.video_files = update.video_files;
        self.meta_file = update.meta_file;
        self.episodes.push(update.episode.clone());
        update.episode
    }

    /// Finishes writing. An episode still being recorded is discarded.
    pub fn close(mut self) -> Result<()> {
        self.discard_episode();
        let _ = std::fs::remove_dir_all(staging_dir(&self.root));
        Ok(())
    }
}

/// What a staged episode changes in the writer once committed.
struct Update {
    info: Info,
    tasks: Vec<String>,
    episode: EpisodeMeta,
    data_file: FileId,
    data_batches: Vec<RecordBatch>,
    video_files: Vec<(FileId, u64)>,
    meta_file: FileId,
}

fn file_mb(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len() / (1024 * 1024))
}

fn encode_png(rgb: &[u8], camera: &CameraSpec) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, camera.width, camera.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .map_err(|e| Error::Usage(format!("PNG: {e}")))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| Error::Usage(format!("PNG: {e}")))?;
    writer.finish().map_err(|e| Error::Usage(format!("PNG: {e}")))?;
    Ok(bytes)
}
