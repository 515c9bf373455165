//! Converting LeRobot v2.1 (and v2.0) datasets to v3.0.
//!
//! v2.x keeps one parquet file and one mp4 per camera per episode
//! (`data/chunk-000/episode_000000.parquet`,
//! `videos/chunk-000/<camera>/episode_000000.mp4`) and its metadata in
//! `meta/episodes.jsonl` and `meta/tasks.jsonl`. Every episode is read and
//! written again through [`DatasetWriter`], so the result is a complete
//! v3.0 dataset with fresh statistics.

use std::path::Path;

use serde_json::Value;

use crate::reader::read_png_column;
use crate::table::{self, column};
use crate::writer::{CameraSpec, CameraStorage, DatasetSpec, DatasetWriter, ENVIRONMENT_STATE, FrameInput};
use crate::{Error, Result, video};

fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| Error::format(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Names of a vector feature: a list, or a map holding one list (`{"motors": [...]}`).
fn names(feature: &Value) -> Vec<String> {
    let list = match &feature["names"] {
        Value::Array(list) => list.clone(),
        Value::Object(map) => map
            .values()
            .find_map(|v| v.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

fn fill(template: &str, chunk: u64, episode: u64, key: &str) -> String {
    template
        .replace("{episode_chunk:03d}", &format!("{chunk:03}"))
        .replace("{episode_index:06d}", &format!("{episode:06}"))
        .replace("{video_key}", key)
}

/// The features a v3.0 dataset written here carries, besides cameras.
const CARRIED: [&str; 10] = [
    "action",
    "observation.state",
    ENVIRONMENT_STATE,
    "timestamp",
    "frame_index",
    "episode_index",
    "index",
    "task_index",
    "next.reward",
    "next.done",
];

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Episodes written.
    pub episodes: usize,
    /// Features of the input that the v3.0 dataset does not carry (sorted):
    /// the writer records joints, cameras, the environment state, the
    /// reward and done flags, and the index columns, nothing else.
    pub not_carried: Vec<String>,
}

/// Converts the v2.x dataset at `input` into a new v3.0 dataset at `out`.
/// `progress` sees (episodes done, episodes in all).
pub fn convert_v2(input: &Path, out: &Path, mut progress: impl FnMut(usize, usize)) -> Result<Converted> {
    let info_path = input.join("meta/info.json");
    let text = std::fs::read_to_string(&info_path).map_err(|e| Error::io(&info_path, e))?;
    let info: Value =
        serde_json::from_str(&text).map_err(|e| Error::format(&info_path, format!("not JSON: {e}")))?;
    let version = info["codebase_version"].as_str().unwrap_or("");
    if !version.starts_with("v2.") {
        return Err(Error::format(
            &info_path,
            format!("codebase_version is {version:?}; only v2.0 and v2.1 are converted"),
        ));
    }
    let fps = info["fps"]
        .as_u64()
        .filter(|f| *f > 0)
        .ok_or_else(|| Error::format(&info_path, "no fps"))? as u32;
    let chunks_size = info["chunks_size"].as_u64().unwrap_or(1000).max(1);
    let data_template = info["data_path"]
        .as_str()
        .ok_or_else(|| Error::format(&info_path, "no data_path"))?;
    let video_template = info["video_path"].as_str().unwrap_or("");
    let features = info["features"]
        .as_object()
        .ok_or_else(|| Error::format(&info_path, "no features"))?;
    let joint_names = names(&features["action"]);
    if joint_names.is_empty() {
        return Err(Error::format(&info_path, "the action feature has no names"));
    }
    let environment_names = features.get(ENVIRONMENT_STATE).map(|feature| {
        let listed = names(feature);
        if listed.is_empty() {
            let size = feature["shape"][0].as_u64().unwrap_or(0);
            (0..size).map(|i| format!("e{i}")).collect()
        } else {
            listed
        }
    });
    let mut cameras = Vec::new();
    let mut storage = CameraStorage::Video;
    let mut not_carried = Vec::new();
    for (key, feature) in features {
        let dtype = feature["dtype"].as_str().unwrap_or("");
        if dtype != "video" && dtype != "image" {
            if !CARRIED.contains(&key.as_str()) {
                not_carried.push(key.clone());
            }
            continue;
        }
        let name = key.strip_prefix("observation.images.").unwrap_or(key).to_owned();
        let shape: Vec<u64> = feature["shape"]
            .as_array()
            .map(|s| s.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let [height, width, _] = shape.as_slice() else {
            return Err(Error::format(
                &info_path,
                format!("camera {key} has shape {shape:?}, expected [height, width, 3]"),
            ));
        };
        if dtype == "image" {
            storage = CameraStorage::Png;
        }
        cameras.push((
            key.clone(),
            dtype == "video",
            CameraSpec {
                name,
                width: *width as u32,
                height: *height as u32,
            },
        ));
    }
    let spec = DatasetSpec {
        fps,
        robot_type: info["robot_type"].as_str().unwrap_or("unknown").to_owned(),
        joint_names,
        cameras: cameras.iter().map(|(_, _, c)| c.clone()).collect(),
        storage,
        reward_done: features.contains_key("next.reward"),
        environment_state: environment_names.unwrap_or_default(),
        codec: None,
    };
    not_carried.sort();

    let tasks_path = input.join("meta/tasks.jsonl");
    let mut tasks: Vec<(u64, String)> = read_jsonl(&tasks_path)?
        .iter()
        .map(|t| {
            Ok((
                t["task_index"]
                    .as_u64()
                    .ok_or_else(|| Error::format(&tasks_path, "task without task_index"))?,
                t["task"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect::<Result<_>>()?;
    tasks.sort();
    let episodes_path = input.join("meta/episodes.jsonl");
    let episodes = read_jsonl(&episodes_path)?;

    let mut writer = DatasetWriter::create(out, spec.clone())?;
    for (done, episode) in episodes.iter().enumerate() {
        let index = episode["episode_index"]
            .as_u64()
            .ok_or_else(|| Error::format(&episodes_path, "episode without episode_index"))?;
        let length = episode["length"].as_u64().unwrap_or(0) as usize;
        let chunk = index / chunks_size;
        let data_path = input.join(fill(data_template, chunk, index, ""));
        let (_, batches) = table::read_parquet(&data_path)?;
        let mut state = Vec::new();
        let mut action = Vec::new();
        let mut environment = Vec::new();
        let mut reward = Vec::new();
        let mut done_flags = Vec::new();
        let mut task_index = None;
        let mut pngs: Vec<Vec<Vec<u8>>> = vec![Vec::new(); cameras.len()];
        for batch in &batches {
            state.extend(table::vector_rows(
                column(batch, "observation.state", &data_path)?,
                "observation.state",
                &data_path,
            )?);
            action.extend(table::vector_rows(
                column(batch, "action", &data_path)?,
                "action",
                &data_path,
            )?);
            if !spec.environment_state.is_empty() {
                environment.extend(table::vector_rows(
                    column(batch, ENVIRONMENT_STATE, &data_path)?,
                    ENVIRONMENT_STATE,
                    &data_path,
                )?);
            }
            if task_index.is_none() && batch.num_rows() > 0 {
                task_index = table::i64_values(batch, "task_index", &data_path)?
                    .first()
                    .copied();
            }
            if spec.reward_done {
                reward.extend(table::f64_values(
                    column(batch, "next.reward", &data_path)?,
                    "next.reward",
                    &data_path,
                )?);
                if let Some(flags) = batch
                    .column_by_name("next.done")
                    .and_then(|c| arrow_array::cast::AsArray::as_boolean_opt(c.as_ref()).cloned())
                {
                    done_flags.extend((0..flags.len()).map(|i| flags.value(i)));
                }
            }
            for (c, (key, is_video, _)) in cameras.iter().enumerate() {
                if !is_video {
                    let rows: Vec<usize> = (0..batch.num_rows()).collect();
                    pngs[c].extend(read_png_column(batch, key, &rows, &data_path)?);
                }
            }
        }
        if state.len() != length {
            return Err(Error::format(
                &data_path,
                format!("{} rows, episodes.jsonl says {length}", state.len()),
            ));
        }
        let environment: Vec<Vec<f32>> = environment
            .iter()
            .map(|row| row.iter().map(|v| *v as f32).collect())
            .collect();
        let mut frames: Vec<Vec<Vec<u8>>> = Vec::with_capacity(cameras.len());
        for (c, (key, is_video, camera)) in cameras.iter().enumerate() {
            if *is_video {
                let path = input.join(fill(video_template, chunk, index, key));
                frames.push(video::decode(
                    &path,
                    0.0,
                    length,
                    camera.width,
                    camera.height,
                    fps,
                )?);
            } else {
                frames.push(std::mem::take(&mut pngs[c]));
            }
        }
        let task = task_index
            .and_then(|t| tasks.iter().find(|(i, _)| *i as i64 == t))
            .map(|(_, t)| t.clone())
            .or_else(|| episode["tasks"][0].as_str().map(str::to_owned))
            .unwrap_or_default();
        writer.start_episode(&task)?;
        for f in 0..length {
            let s: Vec<f32> = state[f].iter().map(|v| *v as f32).collect();
            let a: Vec<f32> = action[f].iter().map(|v| *v as f32).collect();
            let images: Vec<&[u8]> = frames.iter().map(|camera| camera[f].as_slice()).collect();
            writer.add_frame(&FrameInput {
                state: &s,
                action: &a,
                images: &images,
                reward: reward.get(f).map_or(0.0, |r| *r as f32),
                done: done_flags.get(f).copied().unwrap_or(false),
                environment_state: environment.get(f).map_or(&[], Vec::as_slice),
            })?;
        }
        writer.finish_episode()?;
        progress(done + 1, episodes.len());
    }
    writer.close()?;
    Ok(Converted {
        episodes: episodes.len(),
        not_carried,
    })
}
