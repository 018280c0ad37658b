//! The one error type of the core. Every public kernel returns [`Result`]; the
//! Python binding maps each variant to a Python exception class in one place.

use thiserror::Error;

/// Everything that can go wrong inside a kernel, with a message naming the problem.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// An argument has the wrong shape (number of dimensions or extent).
    #[error("shape error: {0}")]
    Shape(String),
    /// An argument has an invalid value (negative size, NaN parameter, unknown mode...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An operation needs data that is empty (no voxels, empty mask).
    #[error("empty input: {0}")]
    Empty(String),
    /// The thread pool could not be built.
    #[error("thread pool error: {0}")]
    ThreadPool(String),
}

/// Result alias used by every public kernel.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns `Error::InvalidArgument` with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(Error::InvalidArgument(message()))
    }
}
