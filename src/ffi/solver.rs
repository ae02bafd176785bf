//! Training: solver handles over [`crate::train::Solver`] (`cebra.CEBRA(...).fit(X, y)` without Python).
use super::model::CebraModel;
use super::stream::{layout_of, recording_arg};
use super::*;
use crate::train::{Labels, Progress, Solver, SolverOptions, StepRecord};
use crate::transform::TransformOptions;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard};

/// Called after every training step with that step's record (1-based `step` of `total_steps`); a
/// nonzero return stops the fit after this step, keeping what was learned. It runs on the thread that
/// called `cebra_solver_fit` and must not call functions on the solver being fitted (they fail with
/// CEBRA_STATUS_UNSUPPORTED) nor free it.
pub type CebraProgressFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        step: i64,
        total_steps: i64,
        loss: f64,
        align: f64,
        uniform: f64,
        temperature: f64,
    ) -> i32,
>;

/// Which per-step record `cebra_solver_history` reads.
pub type CebraHistoryField = u32;
/// The loss of each step.
pub const CEBRA_HISTORY_LOSS: CebraHistoryField = 0;
/// The alignment term of each step (hybrid: behaviour + time).
pub const CEBRA_HISTORY_ALIGN: CebraHistoryField = 1;
/// The uniformity term of each step (hybrid: behaviour + time).
pub const CEBRA_HISTORY_UNIFORM: CebraHistoryField = 2;
/// The temperature after each step (constant unless `temperature_mode=auto`).
pub const CEBRA_HISTORY_TEMPERATURE: CebraHistoryField = 3;

/// An opaque solver handle. Calls on one handle are serialised; different handles run in parallel.
pub struct CebraSolver {
    inner: Mutex<Solver>,
}

thread_local! {
    /// The solvers this thread is fitting now: a progress callback that calls back into its own solver
    /// would otherwise wait forever for the lock the fit holds.
    static FITTING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks a solver as being fitted by this thread until dropped (also on a panic).
struct FittingMark(usize);

impl FittingMark {
    fn new(solver: &CebraSolver) -> Self {
        let id = solver as *const CebraSolver as usize;
        FITTING.with(|f| f.borrow_mut().push(id));
        FittingMark(id)
    }
}

impl Drop for FittingMark {
    fn drop(&mut self) {
        FITTING.with(|f| f.borrow_mut().retain(|&id| id != self.0));
    }
}

impl CebraSolver {
    fn new(solver: Solver) -> Self {
        CebraSolver { inner: Mutex::new(solver) }
    }

    fn lock(&self) -> FfiResult<MutexGuard<'_, Solver>> {
        let id = self as *const CebraSolver as usize;
        if FITTING.with(|f| f.borrow().contains(&id)) {
            return Err(Error::Unsupported(
                "this solver is being fitted: its own progress callback cannot call functions on it".into(),
            )
            .into());
        }
        // A failed or stopped fit leaves the solver as it was before, or fitted with what it learned
        // (the fitted state is replaced only at the end): still safe to use after a caught panic.
        Ok(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The handle behind a caller's solver pointer.
///
/// # Safety
/// `solver` is NULL or a live handle from `cebra_solver_new`/`cebra_solver_load` (not yet freed).
unsafe fn solver_ref<'a>(solver: *const CebraSolver) -> FfiResult<&'a CebraSolver> {
    // SAFETY: forwarded contract; the handle is only read (its mutex serialises use).
    unsafe { non_null(solver, "solver") }
}

/// Hands a new solver to the caller through `out`.
///
/// # Safety
/// `out` is NULL or a writable `CebraSolver*`.
unsafe fn give_solver(solver: Solver, out: *mut *mut CebraSolver) -> FfiResult {
    require(out, "out")?;
    let handle = Box::into_raw(Box::new(CebraSolver::new(solver)));
    // SAFETY: `out` is non-NULL and writable (this function's contract).
    unsafe { write_out(out, handle, "out") }
}

/// A solver with the reference `cebra.CEBRA` options, `"key=value;…"` (NULL = all defaults):
/// `model_architecture` (default `offset1-model`), `batch_size` (0 = full batch, the default),
/// `learning_rate` (3e-4), `temperature` (1), `temperature_mode=constant|auto`, `min_temperature`
/// (0.1), `distance=cosine|euclidean`, `conditional=time|time_delta|delta`, `time_offsets` (1),
/// `delta`, `max_iterations` (10000), `num_hidden_units` (32), `output_dimension` (8),
/// `hybrid=true|false`, `device=cpu|cuda|cuda:N|cuda_if_available`, `seed` (unsigned integer; drawn at
/// random when not given, and shown by `cebra_solver_options`), `model_options`,
/// `criterion_implementation=fused|libtorch`. An unknown key or a bad value is INVALID_ARGUMENT naming
/// the key, an unknown architecture UNKNOWN_NAME, a CUDA device without CUDA UNSUPPORTED. With the
/// same seed, options and data, a fit on the CPU gives the same weights.
///
/// # Safety
/// `options` is NULL or NUL-terminated; `out` is NULL or a writable `CebraSolver*`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_new(options: *const c_char, out: *mut *mut CebraSolver) -> CebraStatus {
    boundary(|| {
        // SAFETY: `options` is NULL or NUL-terminated (contract above).
        let options = unsafe { super::model::parse_options(options) }?;
        require(out, "out")?;
        let solver = Solver::new(SolverOptions::from_options(&options)?)?;
        // SAFETY: `out` is writable (contract above).
        unsafe { give_solver(solver, out) }
    })
}

/// Releases a solver handle; NULL is a no-op. Models from `cebra_solver_model` stay valid.
///
/// # Safety
/// `solver` is NULL or a live handle, not used again after this call (and not being fitted).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_free(solver: *mut CebraSolver) {
    if !solver.is_null() {
        // SAFETY: a live handle made by Box::into_raw, freed once (contract above).
        infallible(|| drop(unsafe { Box::from_raw(solver) }));
    }
}

/// The auxiliary variables of a fit from the caller's arrays.
///
/// # Safety
/// `continuous` is NULL or holds `num_timesteps * num_continuous` floats; `discrete` is NULL or holds
/// `num_timesteps` integers.
unsafe fn labels_of(
    continuous: *const f32,
    num_timesteps: i64,
    num_continuous: i64,
    layout: crate::transform::Layout,
    discrete: *const i64,
) -> FfiResult<Labels> {
    let mut labels = Labels::none();
    if num_continuous < 0 {
        return Err(Error::InvalidArgument(format!("'num_continuous' must be 0 (none) or positive, got {num_continuous}")).into());
    }
    match (continuous.is_null(), num_continuous) {
        (true, 0) => {}
        (true, _) => return Err(FfiError::NullPointer("continuous")),
        (false, 0) => {
            return Err(Error::InvalidArgument(
                "'num_continuous' is 0 but 'continuous' is not NULL: give the number of label columns".into(),
            )
            .into())
        }
        (false, dims) => {
            // SAFETY: `continuous` holds `num_timesteps * num_continuous` floats (contract above).
            let matrix = unsafe { recording_arg(continuous, num_timesteps, dims, layout, "continuous") }?;
            labels = Labels::continuous(matrix.to_row_major(), dims as usize);
        }
    }
    if !discrete.is_null() {
        let count = element_count(&[num_timesteps], "discrete")?;
        // SAFETY: non-NULL `discrete` holds `num_timesteps` integers (contract above).
        let classes = unsafe { std::slice::from_raw_parts(discrete, count) }.to_vec();
        labels = labels.with_discrete(classes);
    }
    Ok(labels)
}

/// Trains from scratch on `data` `(num_timesteps, num_neurons)` (a fitted solver is re-initialised, as
/// the reference's `fit`). `continuous` is `(num_timesteps, num_continuous)` in the same `layout` (NULL
/// with `num_continuous = 0` when there are none), `discrete` one non-negative label per time step
/// (NULL when there are none); the labels choose the sampling as in the reference. `progress` (may be
/// NULL) is called after every step with `user_data`; returning nonzero stops the fit early, and the
/// solver keeps what it learned (the call still returns CEBRA_STATUS_OK). On an error the solver is
/// left as it was before the call.
///
/// # Safety
/// `solver` is NULL or a live handle; `data` is NULL or holds `num_timesteps * num_neurons` floats;
/// `continuous` and `discrete` as above; `progress` is NULL or a function with the `CebraProgressFn`
/// signature, called on this thread with `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_fit(
    solver: *mut CebraSolver,
    data: *const f32,
    num_timesteps: i64,
    num_neurons: i64,
    layout: u32,
    continuous: *const f32,
    num_continuous: i64,
    discrete: *const i64,
    progress: CebraProgressFn,
    user_data: *mut c_void,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle (contract above).
        let handle = unsafe { solver_ref(solver) }?;
        positive(num_timesteps, "num_timesteps")?;
        positive(num_neurons, "num_neurons")?;
        let layout = layout_of(layout)?;
        require(data, "data")?;
        // SAFETY: `data` holds `num_timesteps * num_neurons` floats (contract above).
        let recording = unsafe { recording_arg(data, num_timesteps, num_neurons, layout, "data") }?;
        // SAFETY: the label arrays hold what the contract above says.
        let labels = unsafe { labels_of(continuous, num_timesteps, num_continuous, layout, discrete) }?;
        let mut guard = handle.lock()?;
        let _mark = FittingMark::new(handle);
        let report = |record: &StepRecord| -> Progress {
            let Some(callback) = progress else { return Progress::Continue };
            // SAFETY: the caller's function with the documented signature, given its own `user_data`
            // (contract above); the record holds plain numbers.
            let code = unsafe {
                callback(
                    user_data,
                    record.step as i64,
                    record.total_steps as i64,
                    record.loss,
                    record.align,
                    record.uniform,
                    record.temperature,
                )
            };
            if code != 0 { Progress::Stop } else { Progress::Continue }
        };
        guard.fit(&recording, &labels, report)?;
        Ok(())
    })
}

/// Embeds `data` `(num_timesteps, num_neurons)` with the trained model, padded as the reference's
/// default `transform` (one output row per input step): `out` receives `(*out_timesteps,
/// output_dimension)` in the same `layout` as `data`. An unfitted solver is INVALID_ARGUMENT.
///
/// # Safety
/// `solver` is NULL or a live handle; `data` is NULL or holds `num_timesteps * num_neurons` floats;
/// `out` is NULL or holds `out_len` writable floats; `out_timesteps` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_transform(
    solver: *mut CebraSolver,
    data: *const f32,
    num_timesteps: i64,
    num_neurons: i64,
    layout: u32,
    out: *mut f32,
    out_len: usize,
    out_timesteps: *mut i64,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle (contract above).
        let handle = unsafe { solver_ref(solver) }?;
        positive(num_timesteps, "num_timesteps")?;
        positive(num_neurons, "num_neurons")?;
        let layout = layout_of(layout)?;
        require(data, "data")?;
        require(out, "out")?;
        require(out_timesteps, "out_timesteps")?;
        let guard = handle.lock()?;
        let model = guard.trained_model()?;
        if num_neurons != model.num_input() {
            return Err(Error::ShapeMismatch(format!(
                "the solver was fitted on {} neurons, got num_neurons = {num_neurons}",
                model.num_input()
            ))
            .into());
        }
        let rows = crate::transform::output_timesteps(model, num_timesteps as usize, true)?;
        let needed = rows * model.num_output() as usize;
        check_capacity(out_len, needed, "out")?;
        // SAFETY: `data` holds `num_timesteps * num_neurons` floats (contract above).
        let recording = unsafe { recording_arg(data, num_timesteps, num_neurons, layout, "data") }?;
        // Computed aside, so that `out` is written only when everything succeeded.
        let mut result = vec![0f32; needed];
        crate::transform::transform_into(model, &recording, TransformOptions::default(), &mut result, &|_| {})?;
        // SAFETY: `out` is non-NULL and holds `out_len >= needed` writable floats (checked above,
        // contract above); `result` is our own buffer, so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(result.as_ptr(), out, needed) };
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(out_timesteps, rows as i64, "out_timesteps") }
    })
}

/// Copies one per-step record into a caller's buffer, with the size query of `cebra_get_options`:
/// `out = NULL, out_len = 0` only writes `*count`; `*count` is written on success and on
/// BUFFER_TOO_SMALL (then nothing else is).
///
/// # Safety
/// `solver` is NULL or a live handle; `out` is NULL or holds `out_len` writable doubles; `count` is
/// NULL or writable.
unsafe fn history_values(solver: *const CebraSolver, field: CebraHistoryField, out: *mut f64, out_len: usize, count: *mut usize) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle (contract of this function).
        let handle = unsafe { solver_ref(solver) }?;
        require(count, "count")?;
        let guard = handle.lock()?;
        let history = guard.history()?;
        let values = match field {
            CEBRA_HISTORY_LOSS => &history.loss,
            CEBRA_HISTORY_ALIGN => &history.align,
            CEBRA_HISTORY_UNIFORM => &history.uniform,
            CEBRA_HISTORY_TEMPERATURE => &history.temperature,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "'field' must be CEBRA_HISTORY_LOSS (0), _ALIGN (1), _UNIFORM (2) or _TEMPERATURE (3), got {other}"
                ))
                .into())
            }
        };
        let n = values.len();
        if out.is_null() {
            if out_len != 0 {
                return Err(FfiError::NullPointer("out"));
            }
            // SAFETY: checked non-NULL, writable (contract of this function).
            return unsafe { write_out(count, n, "count") };
        }
        if out_len < n {
            // SAFETY: as above.
            unsafe { write_out(count, n, "count") }?;
            return check_capacity(out_len, n, "out");
        }
        // SAFETY: `out` is non-NULL and holds `out_len >= n` writable doubles (contract of this
        // function); `values` is the solver's own vector.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, n) };
        // SAFETY: as above.
        unsafe { write_out(count, n, "count") }
    })
}

/// The loss of every step of the last fit (as many as steps were taken, fewer than `max_iterations`
/// after an early stop). `out = NULL, out_len = 0` asks for `*count` only; a too small `out` is
/// BUFFER_TOO_SMALL with `*count` set and nothing else written. An unfitted solver is
/// INVALID_ARGUMENT.
///
/// # Safety
/// `solver` is NULL or a live handle; `out` is NULL or holds `out_len` writable doubles; `count` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_loss_history(solver: *const CebraSolver, out: *mut f64, out_len: usize, count: *mut usize) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe { history_values(solver, CEBRA_HISTORY_LOSS, out, out_len, count) }
}

/// Any per-step record of the last fit, as `cebra_solver_loss_history`: `field` is
/// `CEBRA_HISTORY_LOSS`, `CEBRA_HISTORY_ALIGN`, `CEBRA_HISTORY_UNIFORM` or `CEBRA_HISTORY_TEMPERATURE`
/// (the reference's `total`, `pos`, `neg` and `temperature` logs).
///
/// # Safety
/// `solver` is NULL or a live handle; `out` is NULL or holds `out_len` writable doubles; `count` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_history(
    solver: *const CebraSolver,
    field: CebraHistoryField,
    out: *mut f64,
    out_len: usize,
    count: *mut usize,
) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe { history_values(solver, field, out, out_len, count) }
}

/// Whether the solver holds a trained model (after `cebra_solver_fit` or `cebra_solver_load`):
/// `*out` is 1 or 0.
///
/// # Safety
/// `solver` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_is_fitted(solver: *const CebraSolver, out: *mut u8) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle (contract above).
        let fitted = unsafe { solver_ref(solver) }?.lock()?.is_fitted();
        // SAFETY: `out` is NULL or writable (contract above).
        unsafe { write_out(out, u8::from(fitted), "out") }
    })
}

/// Every option in use as `"key=value;…"` text that `cebra_solver_new` accepts, the seed included
/// (drawn at random when it was not given): with it, the same data gives the same fit again. Buffer
/// semantics of `cebra_get_options`: `buf = NULL, buf_len = 0` only writes `*needed` (bytes with the
/// NUL); `*needed` is written on success and on BUFFER_TOO_SMALL.
///
/// # Safety
/// `solver` is NULL or a live handle; `buf` is NULL or holds `buf_len` writable bytes; `needed` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_options(solver: *const CebraSolver, buf: *mut c_char, buf_len: usize, needed: *mut usize) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle (contract above).
        let text = unsafe { solver_ref(solver) }?.lock()?.options().to_options().to_string_canonical();
        // SAFETY: `buf`/`needed` as in the contract above.
        unsafe { write_name_list(&[text], buf, buf_len, needed) }
    })
}

/// A new model handle holding a copy of the trained weights (free it with `cebra_model_free`; it
/// outlives the solver and does not change when the solver is fitted again), usable with
/// `cebra_model_transform` and `cebra_stream_new`. An unfitted solver is INVALID_ARGUMENT.
///
/// # Safety
/// `solver` is NULL or a live handle; `out` is NULL or a writable `CebraModel*`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_model(solver: *mut CebraSolver, out: *mut *mut CebraModel) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle (contract above).
        let handle = unsafe { solver_ref(solver) }?;
        require(out, "out")?;
        let model = handle.lock()?.model()?;
        let handle = Box::into_raw(Box::new(CebraModel::new(model)));
        // SAFETY: `out` is non-NULL and writable (contract above).
        unsafe { write_out(out, handle, "out") }
    })
}

/// Saves the fitted solver (weights under the reference's state-dict keys, the criterion, every option
/// with the seed, the per-step record) in one `.safetensors` file, which `cebra_solver_load` reads back
/// and `cebra_model_load_file` reads as a model. An unfitted solver is INVALID_ARGUMENT.
///
/// # Safety
/// `solver` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_save(solver: *const CebraSolver, path: *const c_char) -> CebraStatus {
    boundary(|| {
        // SAFETY: `solver` is NULL or a live handle; `path` NULL or NUL-terminated (contract above).
        let (handle, path) = unsafe { (solver_ref(solver)?, c_path(path, "path")?) };
        handle.lock()?.save(path)?;
        Ok(())
    })
}

/// A fitted solver from a file written by `cebra_solver_save`. A file that is not a saved solver (a
/// model file, say) is FORMAT; an unreadable one IO.
///
/// # Safety
/// `path` is NULL or NUL-terminated; `out` is NULL or a writable `CebraSolver*`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_solver_load(path: *const c_char, out: *mut *mut CebraSolver) -> CebraStatus {
    boundary(|| {
        // SAFETY: `path` is NULL or NUL-terminated (contract above).
        let path = unsafe { c_path(path, "path") }?;
        require(out, "out")?;
        let solver = Solver::load(path)?;
        // SAFETY: `out` is writable (contract above).
        unsafe { give_solver(solver, out) }
    })
}
