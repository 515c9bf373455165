//! The crate's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong with a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },

    /// A file is not what a LeRobot v3.0 dataset needs there.
    #[error("{path}: {message}")]
    Format {
        /// The file (or folder).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// Video encoding or decoding failed.
    #[error("video {path}: {message}")]
    Video {
        /// The video file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A call that does not fit the writer's state or the dataset's features.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An I/O error at `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A format error at `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Error {
        Error::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
