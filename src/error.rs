//! The library's error type: every variant renders as one line that names the file or setting at fault.

use std::path::PathBuf;

/// Errors raised by the data layer, converters and metrics.
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
    /// A setting is out of range or contradicts the data.
    #[error("{0}")]
    Setting(String),
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

    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
