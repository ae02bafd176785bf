//! The C ABI: a thin layer of `extern "C"` functions over the Rust core.
//!
//! Every exported function that can fail runs its body through [`boundary`], which catches panics,
//! turns [`Error`]s into stable [`CebraStatus`] codes, and keeps the message per thread for
//! `cebra_last_error`.
//!
//! Raw pointers from the caller are turned into references or slices only by the `unsafe fn` helpers
//! below, each stating what the caller of the C function must guarantee; those guarantees are the
//! `# Safety` sections of the exported functions (and the header's documentation).
use crate::error::Error;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod callback;
mod criterion;
mod model;
mod registry;
mod runtime;
mod solver;
mod stream;

pub use callback::*;
pub use criterion::*;
pub use model::*;
pub use registry::*;
pub use runtime::*;
pub use solver::*;
pub use stream::*;

/// A status code. Numbers are stable and never reused.
pub type CebraStatus = u32;

/// Success.
pub const CEBRA_STATUS_OK: CebraStatus = 0;
/// A required pointer was NULL.
pub const CEBRA_STATUS_NULL_POINTER: CebraStatus = 1;
/// A size, count or option value out of its range, or a malformed option string.
pub const CEBRA_STATUS_INVALID_ARGUMENT: CebraStatus = 2;
/// A model or criterion name that is not registered.
pub const CEBRA_STATUS_UNKNOWN_NAME: CebraStatus = 3;
/// A name (or model factory) that is already registered.
pub const CEBRA_STATUS_ALREADY_REGISTERED: CebraStatus = 4;
/// Array sizes that do not fit the model or each other.
pub const CEBRA_STATUS_SHAPE_MISMATCH: CebraStatus = 5;
/// An output buffer too small for the result; nothing was written.
pub const CEBRA_STATUS_BUFFER_TOO_SMALL: CebraStatus = 6;
/// A file that cannot be opened, read or written.
pub const CEBRA_STATUS_IO: CebraStatus = 7;
/// A file that was read but is not what is needed.
pub const CEBRA_STATUS_FORMAT: CebraStatus = 8;
/// An error raised by libtorch.
pub const CEBRA_STATUS_TORCH: CebraStatus = 9;
/// A user callback returned a nonzero code.
pub const CEBRA_STATUS_CALLBACK_FAILED: CebraStatus = 10;
/// An operation this object does not support.
pub const CEBRA_STATUS_UNSUPPORTED: CebraStatus = 11;
/// An internal bug was caught; the process keeps running.
pub const CEBRA_STATUS_PANIC: CebraStatus = 12;

/// Layout of a `(time, channels)` matrix stored row by row (NumPy, C).
pub const CEBRA_LAYOUT_ROW_MAJOR: u32 = 0;
/// Layout of a `(time, channels)` matrix stored column by column (MATLAB, Julia).
pub const CEBRA_LAYOUT_COL_MAJOR: u32 = 1;

/// `cebra_register_callback` flag: replace an existing name.
pub const CEBRA_REGISTER_OVERRIDE: u32 = 1;
/// `cebra_register_callback` flag: allow a second (legacy) name for the same model.
pub const CEBRA_REGISTER_DEPRECATED: u32 = 2;

/// Major version of the library.
pub const CEBRA_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const CEBRA_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const CEBRA_VERSION_PATCH: u32 = 0;
/// Version of the binary interface; bumped on any incompatible change of an exported signature.
pub const CEBRA_ABI_VERSION: u32 = 2;

pub(crate) fn status_of(error: &Error) -> CebraStatus {
    match error {
        Error::InvalidArgument(_) => CEBRA_STATUS_INVALID_ARGUMENT,
        Error::UnknownName(_) => CEBRA_STATUS_UNKNOWN_NAME,
        Error::AlreadyRegistered(_) => CEBRA_STATUS_ALREADY_REGISTERED,
        Error::ShapeMismatch(_) => CEBRA_STATUS_SHAPE_MISMATCH,
        Error::BufferTooSmall(_) => CEBRA_STATUS_BUFFER_TOO_SMALL,
        Error::Io(_) => CEBRA_STATUS_IO,
        Error::Format(_) => CEBRA_STATUS_FORMAT,
        Error::Torch(_) => CEBRA_STATUS_TORCH,
        Error::CallbackFailed(_) => CEBRA_STATUS_CALLBACK_FAILED,
        Error::Unsupported(_) => CEBRA_STATUS_UNSUPPORTED,
    }
}

/// Errors of the C layer itself that have no core counterpart.
pub(crate) enum FfiError {
    Core(Error),
    NullPointer(&'static str),
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError::Core(e)
    }
}

impl From<tch::TchError> for FfiError {
    fn from(e: tch::TchError) -> Self {
        FfiError::Core(e.into())
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    /// The NUL-terminated message of the last failure on this thread (just the NUL after a success).
    /// A byte buffer reused in place, so that clearing it on success never allocates.
    static LAST_ERROR: RefCell<Vec<u8>> = RefCell::new(vec![0]);
    /// Whether this thread is inside an exported function: panics there are reported as statuses,
    /// so the default hook's print to stderr is suppressed.
    static IN_BOUNDARY: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that stays quiet inside the boundary and defers to the previous
/// hook everywhere else, so Rust users of the rlib keep their own behaviour.
fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_BOUNDARY.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

fn set_last_error(message: &str) {
    LAST_ERROR.with(|e| {
        let mut buffer = e.borrow_mut();
        buffer.clear();
        // An interior NUL would cut the message short; show it as a space.
        buffer.extend(message.bytes().map(|b| if b == 0 { b' ' } else { b }));
        buffer.push(0);
    });
}

/// Empties the last error without allocating (the success path of every call).
fn clear_last_error() {
    LAST_ERROR.with(|e| {
        let mut buffer = e.borrow_mut();
        if buffer.len() != 1 {
            buffer.clear();
            buffer.push(0);
        }
    });
}

/// Runs `body` as the body of an exported function: success clears the thread's last error; an error
/// or a caught panic becomes a status with its message kept for `cebra_last_error`.
pub(crate) fn boundary(body: impl FnOnce() -> FfiResult) -> CebraStatus {
    install_quiet_panic_hook();
    // Saved and restored: a C callback running inside one exported function may call another.
    let outer = IN_BOUNDARY.with(|f| f.replace(true));
    let result = catch_unwind(AssertUnwindSafe(body));
    IN_BOUNDARY.with(|f| f.set(outer));
    match result {
        Ok(Ok(())) => {
            clear_last_error();
            CEBRA_STATUS_OK
        }
        Ok(Err(FfiError::Core(e))) => {
            set_last_error(&e.to_string());
            status_of(&e)
        }
        Ok(Err(FfiError::NullPointer(what))) => {
            set_last_error(&format!("'{what}' must not be NULL"));
            CEBRA_STATUS_NULL_POINTER
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {what}"));
            CEBRA_STATUS_PANIC
        }
    }
}

/// Runs a function that cannot report failure (the `*_free` functions): a panic is swallowed.
pub(crate) fn infallible(body: impl FnOnce()) {
    install_quiet_panic_hook();
    let outer = IN_BOUNDARY.with(|f| f.replace(true));
    let _ = catch_unwind(AssertUnwindSafe(body));
    IN_BOUNDARY.with(|f| f.set(outer));
}

// ---------------------------------------------------------------------------------------------
// Argument helpers: each names the offending parameter in its error.

/// Fails with NULL_POINTER when `ptr` is NULL; never dereferences it.
pub(crate) fn require<T>(ptr: *const T, name: &'static str) -> FfiResult {
    if ptr.is_null() { Err(FfiError::NullPointer(name)) } else { Ok(()) }
}

/// A shared reference to a caller's object.
///
/// # Safety
/// `ptr` is NULL or points to a live, initialised `T` that nothing mutates during `'a`.
pub(crate) unsafe fn non_null<'a, T>(ptr: *const T, name: &'static str) -> FfiResult<&'a T> {
    // SAFETY: a non-NULL `ptr` is valid for `'a` (this function's contract).
    unsafe { ptr.as_ref() }.ok_or(FfiError::NullPointer(name))
}

/// A UTF-8 string from a caller's NUL-terminated C string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged during `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char, name: &'static str) -> FfiResult<&'a str> {
    require(ptr, name)?;
    // SAFETY: `ptr` is non-NULL and NUL-terminated (this function's contract).
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("'{name}' is not valid UTF-8")).into())
}

/// A file path: any bytes but NUL, as Linux allows (not necessarily UTF-8).
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn c_path<'a>(ptr: *const c_char, name: &'static str) -> FfiResult<&'a std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    require(ptr, name)?;
    // SAFETY: `ptr` is non-NULL and NUL-terminated (this function's contract).
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// [`c_str`] where NULL means "not given".
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn optional_c_str<'a>(ptr: *const c_char, name: &'static str) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { c_str(ptr, name) }.map(Some)
}

pub(crate) fn positive(value: i64, name: &str) -> FfiResult<i64> {
    if value < 1 {
        return Err(Error::InvalidArgument(format!("'{name}' must be at least 1, got {value}")).into());
    }
    Ok(value)
}

/// Product of sizes as an element count, or an error when it overflows (or exceeds what a float
/// buffer can address).
pub(crate) fn element_count(dims: &[i64], what: &str) -> FfiResult<usize> {
    let mut total: i64 = 1;
    for &d in dims {
        total = total
            .checked_mul(d)
            .filter(|t| *t <= (isize::MAX as i64) / 4)
            .ok_or_else(|| Error::InvalidArgument(format!("'{what}' is too large ({dims:?})")))?;
    }
    Ok(total as usize)
}

/// A caller's input array as a slice of `count` floats.
///
/// # Safety
/// `ptr` is NULL or points to `count` initialised floats that nothing mutates during `'a`.
pub(crate) unsafe fn input_slice<'a>(ptr: *const f32, count: usize, name: &'static str) -> FfiResult<&'a [f32]> {
    require(ptr, name)?;
    // SAFETY: non-NULL and valid for `count` reads (this function's contract); `count` fits isize
    // (element_count bounds it).
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// A caller's input array as a float32 tensor of `dims` (copied: the library never keeps the pointer).
///
/// # Safety
/// `ptr` is NULL or points to as many floats as `dims` multiply to.
pub(crate) unsafe fn input_tensor(ptr: *const f32, dims: &[i64], name: &'static str) -> FfiResult<tch::Tensor> {
    let count = element_count(dims, name)?;
    // SAFETY: forwarded contract.
    let data = unsafe { input_slice(ptr, count, name) }?;
    Ok(tch::Tensor::f_from_slice(data)?.f_reshape(dims)?)
}

/// Checks that a caller's buffer holds `needed` elements.
pub(crate) fn check_capacity(capacity: usize, needed: usize, name: &str) -> FfiResult {
    if capacity < needed {
        return Err(Error::BufferTooSmall(format!(
            "'{name}' holds {capacity} elements, {needed} are needed"
        ))
        .into());
    }
    Ok(())
}

/// Copies a float tensor into a caller's buffer of `capacity` elements.
///
/// # Safety
/// `out` is NULL or points to `capacity` writable floats that nothing else accesses during the call.
pub(crate) unsafe fn write_tensor(tensor: &tch::Tensor, out: *mut f32, capacity: usize, name: &'static str) -> FfiResult {
    let t = tensor.f_detach()?.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
    let count = t.numel();
    check_capacity(capacity, count, name)?;
    require(out, name)?;
    // SAFETY: non-NULL and valid for `capacity >= count` writes (this function's contract).
    let dst = unsafe { std::slice::from_raw_parts_mut(out, count) };
    t.f_copy_data(dst, count)?;
    Ok(())
}

/// The C listing functions' `limit` (0 = no limit) as the core's Python-style limit.
pub(crate) fn listing_limit(limit: usize) -> Option<isize> {
    (limit > 0).then(|| limit.min(isize::MAX as usize) as isize)
}

/// Writes a `'\n'`-joined, NUL-terminated list into `buf`, with the size query semantics of
/// `cebra_get_options`: `*needed` is written on success and on BUFFER_TOO_SMALL, never on another
/// error.
///
/// # Safety
/// `buf` is NULL or points to `buf_len` writable bytes; `needed` is NULL or points to a writable
/// `size_t`.
pub(crate) unsafe fn write_name_list(names: &[String], buf: *mut c_char, buf_len: usize, needed: *mut usize) -> FfiResult {
    let text = names.join("\n");
    let size = text.len() + 1;
    let report_size = || {
        if !needed.is_null() {
            // SAFETY: non-NULL `needed` is writable (this function's contract).
            unsafe { *needed = size };
        }
    };
    if buf.is_null() {
        if buf_len == 0 {
            report_size();
            return Ok(());
        }
        return Err(FfiError::NullPointer("buf"));
    }
    if buf_len < size {
        report_size();
        return Err(Error::BufferTooSmall(format!("'buf' holds {buf_len} bytes, {size} are needed")).into());
    }
    // SAFETY: `buf` is non-NULL and holds `buf_len >= size` bytes; the source is our own string.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, text.len());
        *buf.add(text.len()) = 0;
    }
    report_size();
    Ok(())
}

/// Writes one value through an out-pointer that must not be NULL.
///
/// # Safety
/// `ptr` is NULL or points to a writable `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T, name: &'static str) -> FfiResult {
    require(ptr, name)?;
    // SAFETY: non-NULL and writable (this function's contract); `T` is a plain C value type here.
    unsafe { ptr.write(value) };
    Ok(())
}

/// The thread's last error message: `""` when the last fallible call on this thread succeeded.
/// The pointer stays valid until the next `cebra_*` call on the same thread. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_last_error() -> *const c_char {
    // The buffer lives as long as the thread and is changed only by the next cebra_* call on it.
    LAST_ERROR.with(|e| e.borrow().as_ptr() as *const c_char)
}

/// A static name for a status, such as `"CEBRA_STATUS_SHAPE_MISMATCH"`; `"CEBRA_STATUS_UNKNOWN"` for a
/// number that is not a status.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_status_name(status: CebraStatus) -> *const c_char {
    let name: &'static CStr = match status {
        CEBRA_STATUS_OK => c"CEBRA_STATUS_OK",
        CEBRA_STATUS_NULL_POINTER => c"CEBRA_STATUS_NULL_POINTER",
        CEBRA_STATUS_INVALID_ARGUMENT => c"CEBRA_STATUS_INVALID_ARGUMENT",
        CEBRA_STATUS_UNKNOWN_NAME => c"CEBRA_STATUS_UNKNOWN_NAME",
        CEBRA_STATUS_ALREADY_REGISTERED => c"CEBRA_STATUS_ALREADY_REGISTERED",
        CEBRA_STATUS_SHAPE_MISMATCH => c"CEBRA_STATUS_SHAPE_MISMATCH",
        CEBRA_STATUS_BUFFER_TOO_SMALL => c"CEBRA_STATUS_BUFFER_TOO_SMALL",
        CEBRA_STATUS_IO => c"CEBRA_STATUS_IO",
        CEBRA_STATUS_FORMAT => c"CEBRA_STATUS_FORMAT",
        CEBRA_STATUS_TORCH => c"CEBRA_STATUS_TORCH",
        CEBRA_STATUS_CALLBACK_FAILED => c"CEBRA_STATUS_CALLBACK_FAILED",
        CEBRA_STATUS_UNSUPPORTED => c"CEBRA_STATUS_UNSUPPORTED",
        CEBRA_STATUS_PANIC => c"CEBRA_STATUS_PANIC",
        _ => c"CEBRA_STATUS_UNKNOWN",
    };
    name.as_ptr()
}

/// The crate version, e.g. `"0.1.0"`.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Equals the header macro `CEBRA_ABI_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_abi_version() -> u32 {
    CEBRA_ABI_VERSION
}

/// Diagnostics: panics inside the error boundary and so always returns `CEBRA_STATUS_PANIC`, showing
/// that an internal bug is reported as a status and the process goes on.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_debug_panic() -> CebraStatus {
    boundary(|| panic!("cebra_debug_panic was called"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn abi_version_is_the_sonames() {
        assert_eq!(super::CEBRA_ABI_VERSION.to_string(), env!("CEBRA_BUILD_ABI_VERSION"));
    }

    #[test]
    fn version_macros_follow_the_crate_version() {
        assert_eq!(super::CEBRA_VERSION_MAJOR.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
        assert_eq!(super::CEBRA_VERSION_MINOR.to_string(), env!("CARGO_PKG_VERSION_MINOR"));
        assert_eq!(super::CEBRA_VERSION_PATCH.to_string(), env!("CARGO_PKG_VERSION_PATCH"));
    }
}
