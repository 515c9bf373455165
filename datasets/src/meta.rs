//! Episode metadata (`meta/episodes/*.parquet`) and tasks (`meta/tasks.parquet`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::layout::{self, FileId};
use crate::stats::FeatureStats;
use crate::table::{self, column, i64_values};
use crate::{Error, Result};

/// Where one camera's part of an episode lies in a concatenated video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSpan {
    /// The video file.
    pub file: FileId,
    /// Start of the episode in that file, seconds.
    pub from_timestamp: f64,
    /// End of the episode in that file, seconds.
    pub to_timestamp: f64,
}

/// One row of the episode metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeMeta {
    /// Episode index.
    pub episode_index: u64,
    /// Task texts.
    pub tasks: Vec<String>,
    /// Frames.
    pub length: u64,
    /// The data file holding its frames.
    pub data_file: FileId,
    /// First global frame index.
    pub dataset_from_index: u64,
    /// One past the last global frame index.
    pub dataset_to_index: u64,
    /// Per video key, where its frames are.
    pub videos: BTreeMap<String, VideoSpan>,
    /// The metadata file holding this row.
    pub meta_file: FileId,
    /// Per feature, the episode's statistics.
    pub stats: BTreeMap<String, FeatureStats>,
}

fn list_f64(values: impl Iterator<Item = Vec<f64>>) -> ArrayRef {
    let mut builder = ListBuilder::new(Float64Builder::new());
    for row in values {
        builder.values().append_slice(&row);
        builder.append(true);
    }
    Arc::new(builder.finish())
}

/// The episode-metadata table for `episodes` (all with the same video keys and stats features).
pub fn episodes_batch(episodes: &[EpisodeMeta]) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let int = |name: &str, values: Vec<i64>, fields: &mut Vec<Field>, columns: &mut Vec<ArrayRef>| {
        fields.push(Field::new(name, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from(values)));
    };
    let each = |f: &dyn Fn(&EpisodeMeta) -> u64| episodes.iter().map(|e| f(e) as i64).collect::<Vec<_>>();
    int(
        "episode_index",
        each(&|e| e.episode_index),
        &mut fields,
        &mut columns,
    );
    let mut tasks = ListBuilder::new(StringBuilder::new());
    for episode in episodes {
        for task in &episode.tasks {
            tasks.values().append_value(task);
        }
        tasks.append(true);
    }
    let tasks = tasks.finish();
    fields.push(Field::new("tasks", tasks.data_type().clone(), true));
    columns.push(Arc::new(tasks));
    int("length", each(&|e| e.length), &mut fields, &mut columns);
    int(
        "data/chunk_index",
        each(&|e| e.data_file.chunk),
        &mut fields,
        &mut columns,
    );
    int(
        "data/file_index",
        each(&|e| e.data_file.file),
        &mut fields,
        &mut columns,
    );
    int(
        "dataset_from_index",
        each(&|e| e.dataset_from_index),
        &mut fields,
        &mut columns,
    );
    int(
        "dataset_to_index",
        each(&|e| e.dataset_to_index),
        &mut fields,
        &mut columns,
    );
    let keys: Vec<String> = episodes
        .first()
        .map(|e| e.videos.keys().cloned().collect())
        .unwrap_or_default();
    for key in &keys {
        let span = |e: &EpisodeMeta| e.videos.get(key).copied();
        let missing = || Error::Usage(format!("episode without video {key}"));
        let spans: Vec<VideoSpan> = episodes
            .iter()
            .map(|e| span(e).ok_or_else(missing))
            .collect::<Result<_>>()?;
        int(
            &format!("videos/{key}/chunk_index"),
            spans.iter().map(|s| s.file.chunk as i64).collect(),
            &mut fields,
            &mut columns,
        );
        int(
            &format!("videos/{key}/file_index"),
            spans.iter().map(|s| s.file.file as i64).collect(),
            &mut fields,
            &mut columns,
        );
        for (name, pick) in [("from_timestamp", 0), ("to_timestamp", 1)] {
            let values: Vec<f64> = spans
                .iter()
                .map(|s| {
                    if pick == 0 {
                        s.from_timestamp
                    } else {
                        s.to_timestamp
                    }
                })
                .collect();
            fields.push(Field::new(
                format!("videos/{key}/{name}"),
                DataType::Float64,
                false,
            ));
            columns.push(Arc::new(Float64Array::from(values)));
        }
    }
    int(
        "meta/episodes/chunk_index",
        each(&|e| e.meta_file.chunk),
        &mut fields,
        &mut columns,
    );
    int(
        "meta/episodes/file_index",
        each(&|e| e.meta_file.file),
        &mut fields,
        &mut columns,
    );
    let features: Vec<String> = episodes
        .first()
        .map(|e| e.stats.keys().cloned().collect())
        .unwrap_or_default();
    for feature in &features {
        let stats: Vec<&FeatureStats> = episodes
            .iter()
            .map(|e| {
                e.stats
                    .get(feature)
                    .ok_or_else(|| Error::Usage(format!("episode without stats for {feature}")))
            })
            .collect::<Result<_>>()?;
        for name in FeatureStats::NAMES {
            let column = list_f64(stats.iter().map(|s| s.get(name).cloned().unwrap_or_default()));
            fields.push(Field::new(
                format!("stats/{feature}/{name}"),
                column.data_type().clone(),
                true,
            ));
            columns.push(column);
        }
        let mut count = ListBuilder::new(Int64Builder::new());
        for s in &stats {
            count.values().append_value(s.count as i64);
            count.append(true);
        }
        let count = count.finish();
        fields.push(Field::new(
            format!("stats/{feature}/count"),
            count.data_type().clone(),
            true,
        ));
        columns.push(Arc::new(count));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Usage(format!("episodes table: {e}")))
}

fn file_id(batch: &RecordBatch, prefix: &str, row: usize, path: &Path) -> Result<FileId> {
    let chunk = i64_values(batch, &format!("{prefix}/chunk_index"), path)?[row];
    let file = i64_values(batch, &format!("{prefix}/file_index"), path)?[row];
    if chunk < 0 || file < 0 {
        return Err(Error::format(path, format!("negative {prefix} file index")));
    }
    Ok(FileId {
        chunk: chunk as u64,
        file: file as u64,
    })
}

/// Reads every episode-metadata file under `root`, in episode order.
pub fn read_episodes(root: &Path) -> Result<Vec<EpisodeMeta>> {
    let dir = root.join("meta/episodes");
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut episodes = Vec::new();
    for path in files {
        let (schema, batches) = table::read_parquet(&path)?;
        let video_keys: Vec<String> = schema
            .fields()
            .iter()
            .filter_map(|f| {
                f.name()
                    .strip_prefix("videos/")?
                    .strip_suffix("/chunk_index")
                    .map(str::to_owned)
            })
            .collect();
        let stat_features: Vec<String> = schema
            .fields()
            .iter()
            .filter_map(|f| {
                f.name()
                    .strip_prefix("stats/")?
                    .strip_suffix("/mean")
                    .map(str::to_owned)
            })
            .collect();
        for batch in &batches {
            let index = i64_values(batch, "episode_index", &path)?;
            let length = i64_values(batch, "length", &path)?;
            let from = i64_values(batch, "dataset_from_index", &path)?;
            let to = i64_values(batch, "dataset_to_index", &path)?;
            let tasks_column = column(batch, "tasks", &path)?;
            let tasks_list = tasks_column
                .as_list_opt::<i32>()
                .ok_or_else(|| Error::format(&path, "column \"tasks\" is not a list of strings"))?;
            let mut stats_columns: HashMap<String, Vec<Vec<f64>>> = HashMap::new();
            for feature in &stat_features {
                for name in FeatureStats::NAMES.iter().chain(&["count"]) {
                    let key = format!("stats/{feature}/{name}");
                    if let Some(array) = batch.column_by_name(&key) {
                        let rows = match array.as_list_opt::<i32>() {
                            Some(list) if list.values().data_type() == &DataType::Int64 => (0..list.len())
                                .map(|i| {
                                    list.value(i)
                                        .as_primitive::<arrow_array::types::Int64Type>()
                                        .values()
                                        .iter()
                                        .map(|v| *v as f64)
                                        .collect()
                                })
                                .collect(),
                            _ => table::vector_rows(array, &key, &path)?,
                        };
                        stats_columns.insert(key, rows);
                    }
                }
            }
            for row in 0..batch.num_rows() {
                let tasks = tasks_list.value(row);
                let tasks = tasks
                    .as_string_opt::<i32>()
                    .ok_or_else(|| Error::format(&path, "tasks are not strings"))?;
                let mut videos = BTreeMap::new();
                for key in &video_keys {
                    let from_ts = column(batch, &format!("videos/{key}/from_timestamp"), &path)?;
                    let to_ts = column(batch, &format!("videos/{key}/to_timestamp"), &path)?;
                    videos.insert(
                        key.clone(),
                        VideoSpan {
                            file: file_id(batch, &format!("videos/{key}"), row, &path)?,
                            from_timestamp: table::f64_values(from_ts, "from_timestamp", &path)?[row],
                            to_timestamp: table::f64_values(to_ts, "to_timestamp", &path)?[row],
                        },
                    );
                }
                let mut stats = BTreeMap::new();
                for feature in &stat_features {
                    let get = |name: &str| {
                        stats_columns
                            .get(&format!("stats/{feature}/{name}"))
                            .map(|rows| rows[row].clone())
                    };
                    if let (Some(min), Some(max), Some(mean), Some(std)) =
                        (get("min"), get("max"), get("mean"), get("std"))
                    {
                        stats.insert(
                            feature.clone(),
                            FeatureStats {
                                min,
                                max,
                                mean,
                                std,
                                count: get("count").and_then(|c| c.first().copied()).unwrap_or(0.0) as u64,
                                q01: get("q01").unwrap_or_default(),
                                q10: get("q10").unwrap_or_default(),
                                q50: get("q50").unwrap_or_default(),
                                q90: get("q90").unwrap_or_default(),
                                q99: get("q99").unwrap_or_default(),
                            },
                        );
                    }
                }
                let check = |v: i64, what: &str| -> Result<u64> {
                    u64::try_from(v)
                        .map_err(|_| Error::format(&path, format!("negative {what} in row {row}")))
                };
                episodes.push(EpisodeMeta {
                    episode_index: check(index[row], "episode_index")?,
                    tasks: (0..tasks.len()).map(|i| tasks.value(i).to_owned()).collect(),
                    length: check(length[row], "length")?,
                    data_file: file_id(batch, "data", row, &path)?,
                    dataset_from_index: check(from[row], "dataset_from_index")?,
                    dataset_to_index: check(to[row], "dataset_to_index")?,
                    videos,
                    meta_file: file_id(batch, "meta/episodes", row, &path)?,
                    stats,
                });
            }
        }
    }
    episodes.sort_by_key(|e| e.episode_index);
    Ok(episodes)
}

/// The tasks and episode metadata under `root`; an empty dataset (no
/// episode yet) has neither file.
pub fn read_tasks_and_episodes(root: &Path) -> Result<(Vec<String>, Vec<EpisodeMeta>)> {
    let tasks = if layout::tasks_path(root).exists() {
        read_tasks(root)?
    } else {
        Vec::new()
    };
    let episodes = if root.join("meta/episodes").exists() {
        read_episodes(root)?
    } else {
        Vec::new()
    };
    Ok((tasks, episodes))
}

/// `meta/tasks.parquet` bytes: columns `task_index` and `task`, with pandas
/// metadata making `task` the index, as LeRobot writes it.
pub fn tasks_parquet(tasks: &[String], path: &Path) -> Result<Vec<u8>> {
    let pandas = serde_json::json!({
        "index_columns": ["task"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "sponge", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.2.3"
    });
    let schema = Arc::new(
        Schema::new(vec![
            Field::new("task_index", DataType::Int64, false),
            Field::new("task", DataType::Utf8, false),
        ])
        .with_metadata(HashMap::from([("pandas".to_owned(), pandas.to_string())])),
    );
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from((0..tasks.len() as i64).collect::<Vec<_>>())),
            Arc::new(StringArray::from(tasks.to_vec())),
        ],
    )
    .map_err(|e| Error::Usage(format!("tasks table: {e}")))?;
    table::to_parquet(schema, &[batch], path)
}

/// Reads `meta/tasks.parquet`: the task texts, by task index.
pub fn read_tasks(root: &Path) -> Result<Vec<String>> {
    let path = layout::tasks_path(root);
    let (_, batches) = table::read_parquet(&path)?;
    let mut tasks: Vec<(i64, String)> = Vec::new();
    for batch in &batches {
        let indices = i64_values(batch, "task_index", &path)?;
        // LeRobot's index column is named "task" (older files: "__index_level_0__").
        let text = batch
            .column_by_name("task")
            .or_else(|| batch.column_by_name("__index_level_0__"))
            .ok_or_else(|| Error::format(&path, "no \"task\" column"))?;
        let text = text
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::format(&path, "the task column is not text"))?;
        tasks.extend(
            indices
                .into_iter()
                .zip((0..text.len()).map(|i| text.value(i).to_owned())),
        );
    }
    tasks.sort_by_key(|(i, _)| *i);
    for (expected, (index, _)) in tasks.iter().enumerate() {
        if *index != expected as i64 {
            return Err(Error::format(
                &path,
                format!("task indices are not 0..{}: found {index}", tasks.len()),
            ));
        }
    }
    Ok(tasks.into_iter().map(|(_, t)| t).collect())
}
