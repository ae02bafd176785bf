//! The crate's error type. Each variant maps to one stable C status code in `ffi`.
use thiserror::Error;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in libcebra, with a message naming the problem.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A size, count or option value out of its range, or a malformed option string.
    #[error("{0}")]
    InvalidArgument(String),
    /// A model or criterion name that is not registered.
    #[error("{0}")]
    UnknownName(String),
    /// A name (or, without the deprecated flag, a model class) that is already registered.
    #[error("{0}")]
    AlreadyRegistered(String),
    /// Arrays whose shapes do not fit the model or each other.
    #[error("{0}")]
    ShapeMismatch(String),
    /// A caller-provided buffer too small for the result.
    #[error("{0}")]
    BufferTooSmall(String),
    /// A file that cannot be opened, read or written.
    #[error("{0}")]
    Io(String),
    /// A file that was read but is not what is needed.
    #[error("{0}")]
    Format(String),
    /// An error raised by libtorch.
    #[error("libtorch: {0}")]
    Torch(String),
    /// A user callback returned a failure code.
    #[error("{0}")]
    CallbackFailed(String),
    /// An operation this object does not support.
    #[error("{0}")]
    Unsupported(String),
}

impl From<tch::TchError> for Error {
    fn from(err: tch::TchError) -> Self {
        // libtorch messages carry a C++ backtrace after the first line; keep the useful part.
        let text = err.to_string();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("unknown libtorch error")
            .trim()
            .to_string();
        Error::Torch(first)
    }
}

/// Shorthand constructors, so call sites read `invalid!("…")`.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidArgument(format!($($arg)*)) };
}
macro_rules! shape_mismatch {
    ($($arg:tt)*) => { $crate::error::Error::ShapeMismatch(format!($($arg)*)) };
}
macro_rules! format_error {
    ($($arg:tt)*) => { $crate::error::Error::Format(format!($($arg)*)) };
}
pub(crate) use format_error;
pub(crate) use invalid;
pub(crate) use shape_mismatch;
