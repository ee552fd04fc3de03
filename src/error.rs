//! The library's error type: every variant renders as one line that names the file or setting at fault.

use std::path::PathBuf;

/// Errors of every stage, each saying what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data set or converter input is laid out wrongly; the message says what to fix.
    #[error("{}: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    /// An image file exists but cannot be decoded.
    #[error("cannot read image {}: {source}", path.display())]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A settings file (`--config`, a grid) cannot be read or holds an unknown key.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// A weights file cannot be read or does not fit the backbone.
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },
    /// A file of a run directory (settings, checkpoint, model, results) is missing, cannot
    /// be read or written, or does not match the run.
    #[error("{}: {message}", path.display())]
    RunFile { path: PathBuf, message: String },
    /// A setting is out of range or contradicts the data.
    #[error("{0}")]
    Setting(String),
    /// Training cannot go on (a loss is not finite).
    #[error("{0}")]
    Training(String),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A layout error for `path`.
    pub fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Layout {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A run-directory error for `path`.
    pub fn run_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::RunFile {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
