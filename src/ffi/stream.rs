//! Whole recordings (`cebra_model_transform`) and real-time streaming (`cebra_stream_*`).
use super::model::model_ref;
use super::*;
use crate::stream::Stream;
use crate::transform::{Layout, Recording, TransformOptions};
use std::sync::{Mutex, MutexGuard};

/// An opaque streaming handle over one model (it keeps the model alive). Calls on one handle are
/// serialised.
pub struct CebraStream {
    inner: Mutex<Stream>,
}

impl CebraStream {
    fn lock(&self) -> MutexGuard<'_, Stream> {
        // Stream state is only ring positions and buffers: still usable after a caught panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A caller's `(num_timesteps, channels)` float matrix in `layout`, as a [`Recording`].
///
/// # Safety
/// `data` is NULL or holds `num_timesteps * channels` initialised floats that nothing mutates during
/// `'a`; both sizes are positive (checked by the caller).
pub(crate) unsafe fn recording_arg<'a>(
    data: *const f32,
    num_timesteps: i64,
    channels: i64,
    layout: Layout,
    name: &'static str,
) -> FfiResult<Recording<'a>> {
    let count = element_count(&[num_timesteps, channels], name)?;
    // SAFETY: `data` holds `num_timesteps * channels` floats (this function's contract).
    let values = unsafe { input_slice(data, count, name) }?;
    Ok(Recording::new(values, num_timesteps as usize, channels as usize, layout)?)
}

pub(crate) fn layout_of(layout: u32) -> FfiResult<Layout> {
    match layout {
        CEBRA_LAYOUT_ROW_MAJOR => Ok(Layout::RowMajor),
        CEBRA_LAYOUT_COL_MAJOR => Ok(Layout::ColMajor),
        other => Err(Error::InvalidArgument(format!(
            "'layout' must be CEBRA_LAYOUT_ROW_MAJOR (0) or CEBRA_LAYOUT_COL_MAJOR (1), got {other}"
        ))
        .into()),
    }
}

/// Embeds a whole `(num_timesteps, num_neurons)` recording as the reference `CEBRA.transform` does:
/// with `pad != 0` edge-replicating padding (one output row per input step), without it one row per
/// full receptive field; `batch_size` 0 is one pass, otherwise chunks of that many steps (same
/// rows). `out` receives `(*out_timesteps, num_output)` in the same `layout` as `data`.
///
/// # Safety
/// `model` is NULL or a live handle; `data` is NULL or holds `num_timesteps * num_neurons` floats;
/// `out` is NULL or holds `out_len` writable floats; `out_timesteps` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_transform(
    model: *mut CebraModel,
    data: *const f32,
    num_timesteps: i64,
    num_neurons: i64,
    layout: u32,
    batch_size: i64,
    pad: u8,
    out: *mut f32,
    out_len: usize,
    out_timesteps: *mut i64,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        positive(num_timesteps, "num_timesteps")?;
        positive(num_neurons, "num_neurons")?;
        let layout = layout_of(layout)?;
        if batch_size < 0 {
            return Err(Error::InvalidArgument(format!("'batch_size' must be 0 (one pass) or positive, got {batch_size}")).into());
        }
        require(data, "data")?;
        require(out, "out")?;
        require(out_timesteps, "out_timesteps")?;
        // SAFETY: `data` holds `num_timesteps * num_neurons` floats (contract above).
        let recording = unsafe { recording_arg(data, num_timesteps, num_neurons, layout, "data") }?;
        let options = TransformOptions { pad: pad != 0, batch_size: batch_size as usize, force_libtorch: false };
        let guard = handle.lock();
        let model: &dyn crate::model::Model = guard.as_ref();
        if num_neurons != model.num_input() {
            return Err(Error::ShapeMismatch(format!(
                "model '{}' takes {} neurons, got num_neurons = {num_neurons}",
                model.architecture().name,
                model.num_input()
            ))
            .into());
        }
        let rows = crate::transform::output_timesteps(model, num_timesteps as usize, pad != 0)?;
        let needed = rows * model.num_output() as usize;
        check_capacity(out_len, needed, "out")?;
        // Computed aside, so that `out` is written only when everything succeeded.
        let mut result = vec![0f32; needed];
        crate::transform::transform_into(model, &recording, options, &mut result, &|_| {})?;
        // SAFETY: `out` is non-NULL and holds `out_len >= needed` writable floats (checked above,
        // contract above); `result` is our own buffer, so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(result.as_ptr(), out, needed) };
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(out_timesteps, rows as i64, "out_timesteps") }
    })
}

/// A streaming handle over `model` (which may be freed before the stream). Built-in models are
/// compiled (weights captured now); others run through libtorch. Resampling models: UNSUPPORTED.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or a writable `CebraStream*`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_stream_new(model: *mut CebraModel, out: *mut *mut CebraStream) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        require(out, "out")?;
        let stream = Stream::new(handle.inner.clone())?;
        let raw = Box::into_raw(Box::new(CebraStream { inner: Mutex::new(stream) }));
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(out, raw, "out") }
    })
}

/// Releases a stream; NULL is a no-op.
///
/// # Safety
/// `stream` is NULL or a handle from `cebra_stream_new` not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_stream_free(stream: *mut CebraStream) {
    if !stream.is_null() {
        // SAFETY: a non-NULL `stream` was created by `cebra_stream_new` and is freed once (contract).
        infallible(|| drop(unsafe { Box::from_raw(stream) }));
    }
}

/// Feeds one time step (`num_neurons` values). While fewer than a receptive field of steps were
/// pushed, sets `*ready = 0` and writes nothing; then sets `*ready = 1` and writes the embedding
/// (`num_output` values) of the step `lookahead` steps before the newest. No heap allocation after
/// the first push (compiled models).
///
/// # Safety
/// `stream` is NULL or a live handle; `sample` is NULL or holds `num_neurons` floats; `embedding` is
/// NULL or holds `embedding_len` writable floats; `ready` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_stream_push(
    stream: *mut CebraStream,
    sample: *const f32,
    num_neurons: i64,
    embedding: *mut f32,
    embedding_len: usize,
    ready: *mut u8,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `stream` is NULL or a live handle (contract above); its mutex serialises use.
        let handle = unsafe { non_null(stream, "stream") }?;
        require(sample, "sample")?;
        require(embedding, "embedding")?;
        require(ready, "ready")?;
        let mut stream = handle.lock();
        if num_neurons != stream.num_input() as i64 {
            return Err(Error::ShapeMismatch(format!(
                "the stream's model takes {} neurons, got num_neurons = {num_neurons}",
                stream.num_input()
            ))
            .into());
        }
        let o = stream.num_output();
        check_capacity(embedding_len, o, "embedding")?;
        // SAFETY: `sample` holds `num_neurons` floats (contract above), checked equal to the model's.
        let sample = unsafe { input_slice(sample, num_neurons as usize, "sample") }?;
        // SAFETY: non-NULL, holds `embedding_len >= o` writable floats (checked above, contract above).
        let embedding = unsafe { std::slice::from_raw_parts_mut(embedding, o) };
        let is_ready = stream.push(sample, embedding)?;
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(ready, is_ready as u8, "ready") }
    })
}

/// The number of steps between the newest pushed sample and the step whose embedding a push
/// writes: `right - 1` of the model's offset.
///
/// # Safety
/// `stream` is NULL or a live handle; `steps` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_stream_lookahead(stream: *const CebraStream, steps: *mut i64) -> CebraStatus {
    boundary(|| {
        // SAFETY: `stream` is NULL or a live handle (contract above).
        let handle = unsafe { non_null(stream, "stream") }?;
        require(steps, "steps")?;
        let lookahead = handle.lock().lookahead();
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(steps, lookahead, "steps") }
    })
}

/// Forgets every pushed sample (the next push starts a new recording).
///
/// # Safety
/// `stream` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_stream_reset(stream: *mut CebraStream) -> CebraStatus {
    boundary(|| {
        // SAFETY: `stream` is NULL or a live handle (contract above).
        unsafe { non_null(stream, "stream") }?.lock().reset();
        Ok(())
    })
}
