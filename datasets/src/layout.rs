//! Where things live in a LeRobot v3.0 dataset.

use std::path::{Path, PathBuf};

/// The format version written and read.
pub const CODEBASE_VERSION: &str = "v3.0";
/// Files per chunk folder.
pub const CHUNKS_SIZE: u64 = 1000;
/// A data file is closed once it exceeds this many MB.
pub const DATA_FILE_SIZE_MB: u64 = 100;
/// A video file is closed once it exceeds this many MB.
pub const VIDEO_FILE_SIZE_MB: u64 = 200;
/// Data file path template, as info.json records it.
pub const DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// Video file path template, as info.json records it.
pub const VIDEO_PATH: &str = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";

/// A chunk and file index pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FileId {
    /// Chunk folder index.
    pub chunk: u64,
    /// File index within the chunk.
    pub file: u64,
}

impl FileId {
    /// The file after this one (rolling over to a new chunk after `CHUNKS_SIZE`).
    pub fn next(self) -> FileId {
        if self.file + 1 >= CHUNKS_SIZE {
            FileId {
                chunk: self.chunk + 1,
                file: 0,
            }
        } else {
            FileId {
                chunk: self.chunk,
                file: self.file + 1,
            }
        }
    }
}

fn chunk_file(id: FileId, ext: &str) -> String {
    format!("chunk-{:03}/file-{:03}.{ext}", id.chunk, id.file)
}

/// `meta/info.json`.
pub fn info_path(root: &Path) -> PathBuf {
    root.join("meta/info.json")
}

/// `meta/stats.json`.
pub fn stats_path(root: &Path) -> PathBuf {
    root.join("meta/stats.json")
}

/// `meta/tasks.parquet`.
pub fn tasks_path(root: &Path) -> PathBuf {
    root.join("meta/tasks.parquet")
}

/// An episode-metadata file.
pub fn episodes_path(root: &Path, id: FileId) -> PathBuf {
    root.join("meta/episodes").join(chunk_file(id, "parquet"))
}

/// A data file.
pub fn data_path(root: &Path, id: FileId) -> PathBuf {
    root.join("data").join(chunk_file(id, "parquet"))
}

/// A video file of camera feature `key`.
pub fn video_path(root: &Path, key: &str, id: FileId) -> PathBuf {
    root.join("videos").join(key).join(chunk_file(id, "mp4"))
}
