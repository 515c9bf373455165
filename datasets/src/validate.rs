//! Checking every invariant of a dataset, naming the file and the problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::DataType;

use crate::info::Info;
use crate::layout::{self, FileId};
use crate::meta::{self, EpisodeMeta};
use crate::stats::FeatureStats;
use crate::table::{self, column};
use crate::{Error, video};

/// Timestamps must match `frame_index / fps` within this, seconds (as LeRobot checks).
pub const TIMESTAMP_TOLERANCE_S: f64 = 1e-4;

/// One problem found.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file (or folder) at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

struct Checker<'a> {
    root: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, path: &Path, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.strip_prefix(self.root).unwrap_or(path).to_path_buf(),
            message: message.into(),
        });
    }

    fn error(&mut self, error: Error) {
        match error {
            Error::Io { path, source } => self.report(&path, source.to_string()),
            Error::Format { path, message } | Error::Video { path, message } => self.report(&path, message),
            Error::Usage(message) => self.report(self.root, message),
        }
    }
}

/// Checks the dataset at `root`; an empty list means it is valid. Does not
/// modify anything (a crash-interrupted commit is reported, not finished).
pub fn validate(root: &Path) -> Vec<Problem> {
    let mut check = Checker {
        root,
        problems: Vec::new(),
    };
    if !root.is_dir() {
        check.report(root, "no such dataset folder");
        return check.problems;
    }
    if root.join("meta/.sponge-commit.json").exists() {
        check.report(
            &root.join("meta/.sponge-commit.json"),
            "a commit was interrupted; opening the dataset with sponge finishes it",
        );
    }
    let info = match Info::load(root) {
        Ok(info) => info,
        Err(e) => {
            check.error(e);
            return check.problems;
        }
    };
    if info.total_episodes == 0 {
        return check.problems;
    }
    let tasks = match meta::read_tasks(root) {
        Ok(tasks) => tasks,
        Err(e) => {
            check.error(e);
            Vec::new()
        }
    };
    if tasks.len() as u64 != info.total_tasks {
        check.report(
            &layout::tasks_path(root),
            format!("{} tasks, info.json says {}", tasks.len(), info.total_tasks),
        );
    }
    let episodes = match meta::read_episodes(root) {
        Ok(episodes) => episodes,
        Err(e) => {
            check.error(e);
            return check.problems;
        }
    };
    check_episodes(&mut check, &info, &tasks, &episodes);
    check_data(&mut check, &info, &episodes);
    check_videos(&mut check, &info, &episodes);
    check_stats(&mut check, &info);
    check.problems
}

fn check_episodes(check: &mut Checker<'_>, info: &Info, tasks: &[String], episodes: &[EpisodeMeta]) {
    let meta_dir = check.root.join("meta/episodes");
    if episodes.len() as u64 != info.total_episodes {
        check.report(
            &meta_dir,
            format!(
                "{} episodes, info.json says {}",
                episodes.len(),
                info.total_episodes
            ),
        );
    }
    let mut next_from = 0;
    for (i, episode) in episodes.iter().enumerate() {
        let path = layout::episodes_path(check.root, episode.meta_file);
        if episode.episode_index != i as u64 {
            check.report(
                &path,
                format!(
                    "episode indices are not contiguous: row {i} is episode {}",
                    episode.episode_index
                ),
            );
        }
        if episode.dataset_from_index != next_from {
            check.report(
                &path,
                format!(
                    "episode {i} starts at frame {}, the previous ended at {next_from}",
                    episode.dataset_from_index
                ),
            );
        }
        if episode.dataset_to_index < episode.dataset_from_index
            || episode.dataset_to_index - episode.dataset_from_index != episode.length
        {
            check.report(
                &path,
                format!(
                    "episode {i} has length {} but spans frames {}..{}",
                    episode.length, episode.dataset_from_index, episode.dataset_to_index
                ),
            );
        }
        for task in &episode.tasks {
            if !tasks.contains(task) {
                check.report(
                    &path,
                    format!("episode {i} has task {task:?}, which is not in tasks.parquet"),
                );
            }
        }
        next_from = episode.dataset_to_index;
    }
    if next_from != info.total_frames {
        check.report(
            &meta_dir,
            format!(
                "episodes cover {next_from} frames, info.json says {}",
                info.total_frames
            ),
        );
    }
}

fn expected_type(dtype: &str, shape: &[usize]) -> Option<&'static str> {
    match (dtype, shape) {
        ("float32", [1]) => Some("float"),
        ("float32", _) => Some("list"),
        ("int64", _) => Some("int64"),
        ("bool", _) => Some("bool"),
        ("image", _) => Some("struct"),
        _ => None,
    }
}

fn type_matches(expected: &str, actual: &DataType) -> bool {
    match expected {
        "float" => matches!(actual, DataType::Float32 | DataType::Float64),
        "list" => matches!(
            actual,
            DataType::FixedSizeList(_, _) | DataType::List(_) | DataType::LargeList(_)
        ),
        "int64" => matches!(actual, DataType::Int64),
        "bool" => matches!(actual, DataType::Boolean),
        "struct" => matches!(actual, DataType::Struct(_)),
        _ => true,
    }
}

fn check_data(check: &mut Checker<'_>, info: &Info, episodes: &[EpisodeMeta]) {
    let Ok(features) = info.features() else { return };
    let files: BTreeSet<FileId> = episodes.iter().map(|e| e.data_file).collect();
    let mut rows_seen = 0u64;
    for file in files {
        let path = layout::data_path(check.root, file);
        let (schema, batches) = match table::read_parquet(&path) {
            Ok(read) => read,
            Err(e) => {
                check.error(e);
                continue;
            }
        };
        for (name, feature) in &features {
            if feature.is_video() {
                continue;
            }
            match schema.field_with_name(name) {
                Err(_) => check.report(&path, format!("column {name:?} of info.json is missing")),
                Ok(field) => {
                    if let Some(expected) = expected_type(&feature.dtype, &feature.shape)
                        && !type_matches(expected, field.data_type())
                    {
                        check.report(
                            &path,
                            format!(
                                "column {name:?} is {}, info.json says {} {:?}",
                                field.data_type(),
                                feature.dtype,
                                feature.shape
                            ),
                        );
                    }
                }
            }
        }
        let mut per_episode: BTreeMap<i64, Vec<(i64, i64, f64)>> = BTreeMap::new();
        for batch in &batches {
            let (Ok(ep), Ok(index), Ok(frame), Ok(ts)) = (
                column(batch, "episode_index", &path),
                column(batch, "index", &path),
                column(batch, "frame_index", &path),
                column(batch, "timestamp", &path),
            ) else {
                check.report(
                    &path,
                    "episode_index, index, frame_index or timestamp column is missing",
                );
                break;
            };
            let (Some(ep), Some(index), Some(frame)) = (
                ep.as_primitive_opt::<Int64Type>(),
                index.as_primitive_opt::<Int64Type>(),
                frame.as_primitive_opt::<Int64Type>(),
            ) else {
                check.report(&path, "index columns are not int64");
                break;
            };
            let ts = match table::f64_values(ts, "timestamp", &path) {
                Ok(ts) => ts,
                Err(e) => {
                    check.error(e);
                    break;
                }
            };
            for (row, timestamp) in ts.iter().enumerate() {
                per_episode.entry(ep.value(row)).or_default().push((
                    index.value(row),
                    frame.value(row),
                    *timestamp,
                ));
            }
        }
        for (episode_index, rows) in per_episode {
            rows_seen += rows.len() as u64;
            let Some(meta) = episodes
                .get(episode_index as usize)
                .filter(|e| e.episode_index as i64 == episode_index)
            else {
                check.report(
                    &path,
                    format!(
                        "{} rows of episode {episode_index}, which the metadata does not list",
                        rows.len()
                    ),
                );
                continue;
            };
            if meta.data_file != file {
                check.report(
                    &path,
                    format!("holds rows of episode {episode_index}, whose metadata points at another file"),
                );
            }
            if rows.len() as u64 != meta.length {
                check.report(
                    &path,
                    format!(
                        "episode {episode_index} has {} rows, its metadata says {}",
                        rows.len(),
                        meta.length
                    ),
                );
            }
            for (i, (index, frame, ts)) in rows.iter().enumerate() {
                if *index != (meta.dataset_from_index + i as u64) as i64 || *frame != i as i64 {
                    check.report(&path, format!("episode {episode_index} row {i}: index {index} frame_index {frame}, expected {} and {i}", meta.dataset_from_index + i as u64));
                    break;
                }
                let expected = *frame as f64 / f64::from(info.fps);
                if (ts - expected).abs() > TIMESTAMP_TOLERANCE_S {
                    check.report(&path, format!("episode {episode_index} frame {frame}: timestamp {ts:.6} s, frame_index / fps = {expected:.6} s"));
                    break;
                }
            }
        }
    }
    if rows_seen != info.total_frames {
        check.report(
            &check.root.join("data"),
            format!(
                "{rows_seen} rows in data files, info.json says {} frames",
                info.total_frames
            ),
        );
    }
}

fn check_videos(check: &mut Checker<'_>, info: &Info, episodes: &[EpisodeMeta]) {
    let Ok(cameras) = info.cameras() else { return };
    let fps = f64::from(info.fps);
    for (key, feature) in cameras.iter().filter(|(_, f)| f.is_video()) {
        let mut by_file: BTreeMap<FileId, Vec<&EpisodeMeta>> = BTreeMap::new();
        for episode in episodes {
            match episode.videos.get(key) {
                Some(span) => by_file.entry(span.file).or_default().push(episode),
                None => check.report(
                    &layout::episodes_path(check.root, episode.meta_file),
                    format!("episode {} has no {key} video columns", episode.episode_index),
                ),
            }
        }
        for (file, in_file) in by_file {
            let path = layout::video_path(check.root, key, file);
            if !path.exists() {
                check.report(
                    &path,
                    format!("video file is missing ({} episodes point at it)", in_file.len()),
                );
                continue;
            }
            let mut expected_from = 0.0;
            let mut frames = 0;
            // Each episode's first frame must be shown at its from_timestamp:
            // readers (LeRobot's, sponge's) find frames by time.
            let times = match video::frame_times(&path) {
                Ok(times) => times,
                Err(e) => {
                    check.error(e);
                    Vec::new()
                }
            };
            // (episode, shown at, from_timestamp) of those off, in order.
            let mut off: Vec<(u64, f64, f64)> = Vec::new();
            for episode in &in_file {
                let span = episode.videos[key];
                if let Some(shown) = times.get(frames as usize)
                    && (shown - span.from_timestamp).abs() > TIMESTAMP_TOLERANCE_S
                {
                    off.push((episode.episode_index, *shown, span.from_timestamp));
                }
                if (span.from_timestamp - expected_from).abs() > TIMESTAMP_TOLERANCE_S
                    || (span.to_timestamp - span.from_timestamp - episode.length as f64 / fps).abs()
                        > TIMESTAMP_TOLERANCE_S
                {
                    check.report(
                        &path,
                        format!(
                            "episode {} spans {:.4}..{:.4} s, expected {:.4}..{:.4} s",
                            episode.episode_index,
                            span.from_timestamp,
                            span.to_timestamp,
                            expected_from,
                            expected_from + episode.length as f64 / fps
                        ),
                    );
                }
                expected_from = span.to_timestamp;
                frames += episode.length;
            }
            let worst = off
                .iter()
                .max_by(|a, b| (a.1 - a.2).abs().total_cmp(&(b.1 - b.2).abs()));
            if let (Some(&(episode, shown, from)), Some(&(worst_episode, worst_shown, worst_from))) =
                (off.first(), worst)
            {
                check.report(
                    &path,
                    format!(
                        "episode {episode}'s first frame is shown at {shown:.4} s, its from_timestamp is \
                         {from:.4} s ({:+.2} frames); {} episodes are off, episode {worst_episode} most \
                         ({:+.2} frames): frames read by time come from the wrong place (sponge before \
                         2026-12-02 wrote videos that drift like this; write the dataset again)",
                        (shown - from) * fps,
                        off.len(),
                        (worst_shown - worst_from) * fps
                    ),
                );
            }
            match video::probe(&path) {
                Err(e) => check.error(e),
                Ok(probe) => {
                    if probe.frames != frames {
                        check.report(
                            &path,
                            format!("{} frames, its episodes have {frames}", probe.frames),
                        );
                    }
                    let (height, width) = (feature.shape[0] as u32, feature.shape[1] as u32);
                    if (probe.width, probe.height) != (width, height) {
                        check.report(
                            &path,
                            format!(
                                "video is {}x{}, info.json says {width}x{height}",
                                probe.width, probe.height
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn check_stats(check: &mut Checker<'_>, info: &Info) {
    let path = layout::stats_path(check.root);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            check.report(&path, e.to_string());
            return;
        }
    };
    let stats: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            check.report(&path, format!("not valid JSON: {e}"));
            return;
        }
    };
    let Ok(features) = info.features() else { return };
    for (name, feature) in features {
        if feature.dtype == "bool" || feature.dtype == "string" {
            continue;
        }
        let Some(parsed) = stats.get(&name).and_then(FeatureStats::from_json) else {
            check.report(&path, format!("no min/max/mean/std/count for {name:?}"));
            continue;
        };
        let camera = feature.is_video() || feature.is_image();
        let dims = if camera { 3 } else { feature.shape.iter().product() };
        if parsed.mean.len() != dims || parsed.min.len() != dims || parsed.std.len() != dims {
            check.report(
                &path,
                format!("{name:?} has {} mean values, expected {dims}", parsed.mean.len()),
            );
        }
        if !camera && parsed.count != info.total_frames {
            check.report(
                &path,
                format!(
                    "{name:?} count is {}, the dataset has {} frames",
                    parsed.count, info.total_frames
                ),
            );
        }
        if parsed.min.iter().zip(&parsed.max).any(|(lo, hi)| lo > hi) {
            check.report(&path, format!("{name:?} has min above max"));
        }
    }
}
