//! Model handles: build, inspect, run, load and save.
use super::*;
use crate::model::{Model, ModelArgs};
use crate::options::Options;
use std::sync::{Arc, Mutex, MutexGuard};

/// An opaque model handle. Calls on one handle are serialised; different handles run in parallel.
pub struct CebraModel {
    pub(crate) inner: Arc<Mutex<Box<dyn Model>>>,
}

impl CebraModel {
    pub(crate) fn new(model: Box<dyn Model>) -> Self {
        CebraModel { inner: Arc::new(Mutex::new(model)) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Box<dyn Model>> {
        // A panic inside a call cannot leave the model half-updated (weights are swapped only after
        // every check), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handle behind a caller's model pointer.
///
/// # Safety
/// `model` is NULL or a live handle from `cebra_model_init`/`cebra_model_load_file` (not yet freed).
pub(crate) unsafe fn model_ref<'a>(model: *const CebraModel) -> FfiResult<&'a CebraModel> {
    // SAFETY: forwarded contract; the handle is only read (its mutex serialises use).
    unsafe { non_null(model, "model") }
}

/// Options from a caller's option string (NULL = none).
///
/// # Safety
/// `options` is NULL or a NUL-terminated string.
pub(crate) unsafe fn parse_options(options: *const c_char) -> FfiResult<Options> {
    // SAFETY: forwarded contract.
    Ok(match unsafe { optional_c_str(options, "options") }? {
        Some(text) => Options::parse(text)?,
        None => Options::new(),
    })
}

/// Hands a new model to the caller through `out`.
///
/// # Safety
/// `out` is NULL or a writable `CebraModel*`.
unsafe fn give_model(model: Box<dyn Model>, out: *mut *mut CebraModel) -> FfiResult {
    require(out, "out")?;
    let handle = Box::into_raw(Box::new(CebraModel::new(model)));
    // SAFETY: `out` is non-NULL and writable (this function's contract).
    unsafe { write_out(out, handle, "out") }
}

/// The C counterpart of `cebra.models.init(name, num_neurons, num_units, num_output, **options)`;
/// `options` (NULL or `"key=value;…"`) carries the extra keyword arguments.
///
/// # Safety
/// `name` is a NUL-terminated string; `options` is NULL or one; `out` points to a writable
/// `CebraModel*` (NULL pointers are reported, not dereferenced).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_init(
    name: *const c_char,
    num_neurons: i64,
    num_units: i64,
    num_output: i64,
    options: *const c_char,
    out: *mut *mut CebraModel,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `name` and `options` are NULL or NUL-terminated (contract above).
        let (name, options) = unsafe { (c_str(name, "name")?, parse_options(options)?) };
        require(out, "out")?;
        positive(num_neurons, "num_neurons")?;
        positive(num_units, "num_units")?;
        positive(num_output, "num_output")?;
        let args = ModelArgs::new(num_neurons, num_units, num_output).with_options(options);
        let model = crate::registry::init(name, &args)?;
        // SAFETY: `out` is writable (contract above).
        unsafe { give_model(model, out) }
    })
}

/// Builds the model a self-describing `.safetensors` file records (written by `cebra_model_save`) and
/// loads its weights.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to a writable `CebraModel*`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_load_file(path: *const c_char, out: *mut *mut CebraModel) -> CebraStatus {
    boundary(|| {
        // SAFETY: `path` is NULL or NUL-terminated (contract above).
        let path = unsafe { c_path(path, "path") }?;
        require(out, "out")?;
        let model = crate::weights::load_model(path)?;
        // SAFETY: `out` is writable (contract above).
        unsafe { give_model(model, out) }
    })
}

/// Releases a model handle; NULL is a no-op.
///
/// # Safety
/// `model` is NULL or a live handle, not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_free(model: *mut CebraModel) {
    if !model.is_null() {
        // SAFETY: a live handle made by Box::into_raw, freed once (contract above).
        infallible(|| drop(unsafe { Box::from_raw(model) }));
    }
}

/// The receptive field: `left + right` input steps give one output step.
///
/// # Safety
/// `model` is NULL or a live handle; `left` and `right` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_get_offset(model: *const CebraModel, left: *mut i64, right: *mut i64) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let offset = unsafe { model_ref(model) }?.lock().offset();
        require(left, "left")?;
        require(right, "right")?;
        // SAFETY: both checked non-NULL, writable (contract above).
        unsafe {
            write_out(left, offset.left, "left")?;
            write_out(right, offset.right, "right")
        }
    })
}

/// Reads one value of a model into a caller's out-pointer.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or writable.
unsafe fn model_value<T>(model: *const CebraModel, out: *mut T, get: impl FnOnce(&dyn Model) -> T) -> CebraStatus {
    boundary(|| {
        // SAFETY: forwarded contract.
        let value = get(unsafe { model_ref(model) }?.lock().as_ref());
        // SAFETY: forwarded contract.
        unsafe { write_out(out, value, "out") }
    })
}

/// Input channels.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_num_input(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe { model_value(model, out, |m| m.num_input()) }
}

/// Output features.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_num_output(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe { model_value(model, out, |m| m.num_output()) }
}

/// Time downsampling factor: 1 for models that do not resample.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_resample_factor(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe { model_value(model, out, |m| m.resample_factor()) }
}

/// Parameter counts; a tensor shared by several layers counts once, as in the reference.
///
/// # Safety
/// `model` is NULL or a live handle; `total` and `trainable` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_num_parameters(model: *const CebraModel, total: *mut i64, trainable: *mut i64) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let (t, tr) = unsafe { model_ref(model) }?.lock().num_parameters();
        require(total, "total")?;
        require(trainable, "trainable")?;
        // SAFETY: both checked non-NULL, writable (contract above).
        unsafe {
            write_out(total, t, "total")?;
            write_out(trainable, tr, "trainable")
        }
    })
}

/// The `out_time` that `cebra_model_forward` gives for `time` input steps (resampling included):
/// SHAPE_MISMATCH when `time` is shorter than the receptive field (or, for models that take one time
/// step after their receptive field, longer than it).
///
/// # Safety
/// `model` is NULL or a live handle; `out_time` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_output_time(model: *const CebraModel, time: i64, out_time: *mut i64) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        positive(time, "time")?;
        require(out_time, "out_time")?;
        let steps = handle.lock().output_time(time)?;
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(out_time, steps, "out_time") }
    })
}

/// Checks the shape arguments of a forward call and returns the output time length.
fn forward_shape(model: &dyn Model, batch: i64, num_input: i64, time: i64) -> FfiResult<i64> {
    positive(batch, "batch")?;
    positive(num_input, "num_input")?;
    positive(time, "time")?;
    if num_input != model.num_input() {
        return Err(Error::ShapeMismatch(format!(
            "model '{}' expects num_input = {}, got {num_input}",
            model.architecture().name,
            model.num_input()
        ))
        .into());
    }
    Ok(model.output_time(time)?)
}

/// Runs the model on `input` `(batch, num_input, time)` without an autograd graph; `output` receives
/// `(batch, num_output, out_time)`, which for `out_time == 1` is the same bytes as `(batch, num_output)`.
///
/// # Safety
/// `model` is NULL or a live handle; `input` is NULL or holds `batch * num_input * time` floats;
/// `output` is NULL or holds `output_len` writable floats; `out_time` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_forward(
    model: *mut CebraModel,
    input: *const f32,
    batch: i64,
    num_input: i64,
    time: i64,
    output: *mut f32,
    output_len: usize,
    out_time: *mut i64,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        let guard = handle.lock();
        let steps = forward_shape(guard.as_ref(), batch, num_input, time)?;
        require(input, "input")?;
        require(output, "output")?;
        require(out_time, "out_time")?;
        let needed = element_count(&[batch, guard.num_output(), steps], "output")?;
        check_capacity(output_len, needed, "output")?;
        // SAFETY: `input` holds batch * num_input * time floats (contract above).
        let x = unsafe { input_tensor(input, &[batch, num_input, time], "input") }?;
        let y = guard.forward(&x)?;
        if y.numel() != needed {
            return Err(Error::ShapeMismatch(format!(
                "model '{}' produced {:?}, expected {needed} values",
                guard.architecture().name,
                y.size()
            ))
            .into());
        }
        // SAFETY: `output` holds `output_len` floats and `out_time` is writable (contract above).
        unsafe {
            write_tensor(&y, output, output_len, "output")?;
            write_out(out_time, steps, "out_time")
        }
    })
}

/// Loads weights from a `.safetensors` file named by the reference `state_dict` keys. Missing, extra or
/// mis-shaped tensors are FORMAT errors naming the tensor; the model is unchanged on error.
///
/// # Safety
/// `model` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_load(model: *mut CebraModel, path: *const c_char) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle; `path` NULL or NUL-terminated (contract above).
        let (handle, path) = unsafe { (model_ref(model)?, c_path(path, "path")?) };
        let mut guard = handle.lock();
        crate::weights::load(guard.as_mut(), path)?;
        Ok(())
    })
}

/// Saves weights (readable by Python `safetensors.torch.load_file` + `load_state_dict`) with the
/// architecture in the metadata, so `cebra_model_load_file` can rebuild the model.
///
/// # Safety
/// `model` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_save(model: *const CebraModel, path: *const c_char) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle; `path` NULL or NUL-terminated (contract above).
        let (handle, path) = unsafe { (model_ref(model)?, c_path(path, "path")?) };
        crate::weights::save(handle.lock().as_ref(), path)?;
        Ok(())
    })
}

/// Dropout on (`training != 0`) or off (the default).
///
/// # Safety
/// `model` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_set_training(model: *mut CebraModel, training: u8) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        unsafe { model_ref(model) }?.lock().set_training(training != 0);
        Ok(())
    })
}

fn not_a_classifier(model: &dyn Model) -> FfiError {
    Error::Unsupported(format!(
        "model '{}' is not a classifier model (supervised10-model, supervised1-model)",
        model.architecture().name
    ))
    .into()
}

/// Creates the classifier head `Linear(num_output, label_num)` of a classifier model; a second call
/// needs `override_existing != 0`.
///
/// # Safety
/// `model` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_set_output_num(model: *mut CebraModel, label_num: i64, override_existing: u8) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        positive(label_num, "label_num")?;
        let mut guard = handle.lock();
        if guard.as_classifier().is_none() {
            return Err(not_a_classifier(guard.as_ref()));
        }
        guard.as_classifier_mut().expect("checked").set_output_num(label_num, override_existing != 0)?;
        Ok(())
    })
}

/// `(features, prediction) = (relu(net(x)), classifier(features))` of a classifier model with a head:
/// `features` is `(batch, num_output)`, `prediction` is `(batch, label_num)`.
///
/// # Safety
/// `model` is NULL or a live handle; `input` is NULL or holds `batch * num_input * time` floats;
/// `features` and `prediction` are NULL or hold `features_len` / `prediction_len` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_forward_classifier(
    model: *mut CebraModel,
    input: *const f32,
    batch: i64,
    num_input: i64,
    time: i64,
    features: *mut f32,
    features_len: usize,
    prediction: *mut f32,
    prediction_len: usize,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        let guard = handle.lock();
        let model: &dyn Model = guard.as_ref();
        let steps = forward_shape(model, batch, num_input, time)?;
        let num_output = model.num_output();
        let classifier = model.as_classifier().ok_or_else(|| not_a_classifier(model))?;
        let label_num = classifier.label_num().ok_or_else(|| {
            Error::ShapeMismatch("the classifier head is not initialised: call cebra_model_set_output_num first".into())
        })?;
        if steps != 1 {
            return Err(Error::ShapeMismatch(format!(
                "the classifier head needs one output step; time = {time} gives {steps}"
            ))
            .into());
        }
        require(input, "input")?;
        require(features, "features")?;
        require(prediction, "prediction")?;
        check_capacity(features_len, element_count(&[batch, num_output], "features")?, "features")?;
        check_capacity(prediction_len, element_count(&[batch, label_num], "prediction")?, "prediction")?;
        // SAFETY: `input` holds batch * num_input * time floats (contract above).
        let x = unsafe { input_tensor(input, &[batch, num_input, time], "input") }?;
        let (f, p) = classifier.forward_classifier(&x)?;
        // SAFETY: the buffers hold their stated capacities (contract above); both were checked.
        unsafe {
            write_tensor(&f, features, features_len, "features")?;
            write_tensor(&p, prediction, prediction_len, "prediction")
        }
    })
}

/// The size of a classifier model's head (`label_num` of `cebra_model_set_output_num`); 0 while the
/// head is not initialised. A model that is not a classifier is UNSUPPORTED.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_label_num(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    boundary(|| {
        // SAFETY: `model` is NULL or a live handle (contract above).
        let handle = unsafe { model_ref(model) }?;
        let guard = handle.lock();
        let classifier = guard.as_classifier().ok_or_else(|| not_a_classifier(guard.as_ref()))?;
        let label_num = classifier.label_num().unwrap_or(0);
        // SAFETY: `out` is NULL or writable (contract above).
        unsafe { write_out(out, label_num, "out") }
    })
}
