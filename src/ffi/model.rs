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

pub(crate) fn model_ref<'a>(model: *const CebraModel) -> FfiResult<&'a CebraModel> {
    non_null(model, "model")
}

pub(crate) fn parse_options(options: *const c_char) -> FfiResult<Options> {
    Ok(match optional_c_str(options, "options")? {
        Some(text) => Options::parse(text)?,
        None => Options::new(),
    })
}

/// The C counterpart of `cebra.models.init(name, num_neurons, num_units, num_output, **options)`;
/// `options` (NULL or `"key=value;…"`) carries the extra keyword arguments.
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
        let name = c_str(name, "name")?;
        non_null_mut(out, "out")?;
        positive(num_neurons, "num_neurons")?;
        positive(num_units, "num_units")?;
        positive(num_output, "num_output")?;
        let args = ModelArgs::new(num_neurons, num_units, num_output).with_options(parse_options(options)?);
        let model = crate::registry::init(name, &args)?;
        write_out(out, Box::into_raw(Box::new(CebraModel::new(model))), "out")
    })
}

/// Builds the model a self-describing `.safetensors` file records (written by `cebra_model_save`) and
/// loads its weights.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_load_file(path: *const c_char, out: *mut *mut CebraModel) -> CebraStatus {
    boundary(|| {
        let path = c_path(path, "path")?;
        non_null_mut(out, "out")?;
        let model = crate::weights::load_model(path)?;
        write_out(out, Box::into_raw(Box::new(CebraModel::new(model))), "out")
    })
}

/// Releases a model handle; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_free(model: *mut CebraModel) {
    if !model.is_null() {
        infallible(|| drop(unsafe { Box::from_raw(model) }));
    }
}

/// The receptive field: `left + right` input steps give one output step.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_get_offset(model: *const CebraModel, left: *mut i64, right: *mut i64) -> CebraStatus {
    boundary(|| {
        let offset = model_ref(model)?.lock().offset();
        non_null_mut(left, "left")?;
        non_null_mut(right, "right")?;
        write_out(left, offset.left, "left")?;
        write_out(right, offset.right, "right")
    })
}

/// Input channels.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_num_input(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    boundary(|| {
        let value = model_ref(model)?.lock().num_input();
        write_out(out, value, "out")
    })
}

/// Output features.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_num_output(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    boundary(|| {
        let value = model_ref(model)?.lock().num_output();
        write_out(out, value, "out")
    })
}

/// Time downsampling factor: 1 for models that do not resample.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_resample_factor(model: *const CebraModel, out: *mut i64) -> CebraStatus {
    boundary(|| {
        let value = model_ref(model)?.lock().resample_factor();
        write_out(out, value, "out")
    })
}

/// Parameter counts; a tensor shared by several layers counts once, as in the reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_num_parameters(model: *const CebraModel, total: *mut i64, trainable: *mut i64) -> CebraStatus {
    boundary(|| {
        let (t, tr) = model_ref(model)?.lock().num_parameters();
        non_null_mut(total, "total")?;
        non_null_mut(trainable, "trainable")?;
        write_out(total, t, "total")?;
        write_out(trainable, tr, "trainable")
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
        let handle = model_ref(model)?;
        let guard = handle.lock();
        let steps = forward_shape(guard.as_ref(), batch, num_input, time)?;
        non_null(input, "input")?;
        non_null_mut(output, "output")?;
        non_null_mut(out_time, "out_time")?;
        let needed = element_count(&[batch, guard.num_output(), steps], "output")?;
        check_capacity(output_len, needed, "output")?;
        let x = input_tensor(input, &[batch, num_input, time], "input")?;
        let y = guard.forward(&x)?;
        if y.numel() != needed {
            return Err(Error::ShapeMismatch(format!(
                "model '{}' produced {:?}, expected {needed} values",
                guard.architecture().name,
                y.size()
            ))
            .into());
        }
        write_tensor(&y, output, "output")?;
        write_out(out_time, steps, "out_time")
    })
}

/// Loads weights from a `.safetensors` file named by the reference `state_dict` keys. Missing, extra or
/// mis-shaped tensors are FORMAT errors naming the tensor; the model is unchanged on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_load(model: *mut CebraModel, path: *const c_char) -> CebraStatus {
    boundary(|| {
        let handle = model_ref(model)?;
        let path = c_path(path, "path")?;
        let mut guard = handle.lock();
        crate::weights::load(guard.as_mut(), path)?;
        Ok(())
    })
}

/// Saves weights (readable by Python `safetensors.torch.load_file` + `load_state_dict`) with the
/// architecture in the metadata, so `cebra_model_load_file` can rebuild the model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_save(model: *const CebraModel, path: *const c_char) -> CebraStatus {
    boundary(|| {
        let handle = model_ref(model)?;
        let path = c_path(path, "path")?;
        let guard = handle.lock();
        crate::weights::save(guard.as_ref(), path)?;
        Ok(())
    })
}

/// Dropout on (`training != 0`) or off (the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_set_training(model: *mut CebraModel, training: u8) -> CebraStatus {
    boundary(|| {
        model_ref(model)?.lock().set_training(training != 0);
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
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_model_set_output_num(model: *mut CebraModel, label_num: i64, override_existing: u8) -> CebraStatus {
    boundary(|| {
        let handle = model_ref(model)?;
        positive(label_num, "label_num")?;
        let mut guard = handle.lock();
        let model: &mut dyn Model = guard.as_mut();
        if model.as_classifier().is_none() {
            return Err(not_a_classifier(model));
        }
        model.as_classifier_mut().expect("checked").set_output_num(label_num, override_existing != 0)?;
        Ok(())
    })
}

/// `(features, prediction) = (relu(net(x)), classifier(features))` of a classifier model with a head:
/// `features` is `(batch, num_output)`, `prediction` is `(batch, label_num)`.
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
        let handle = model_ref(model)?;
        let guard = handle.lock();
        let model: &dyn Model = guard.as_ref();
        let steps = forward_shape(model, batch, num_input, time)?;
        let num_output = model.num_output();
        let classifier = match model.as_classifier() {
            Some(c) => c,
            None => return Err(not_a_classifier(model)),
        };
        let label_num = classifier.label_num().ok_or_else(|| {
            Error::ShapeMismatch("the classifier head is not initialised: call cebra_model_set_output_num first".into())
        })?;
        if steps != 1 {
            return Err(Error::ShapeMismatch(format!(
                "the classifier head needs one output step; time = {time} gives {steps}"
            ))
            .into());
        }
        non_null(input, "input")?;
        non_null_mut(features, "features")?;
        non_null_mut(prediction, "prediction")?;
        check_capacity(features_len, element_count(&[batch, num_output], "features")?, "features")?;
        check_capacity(prediction_len, element_count(&[batch, label_num], "prediction")?, "prediction")?;
        let x = input_tensor(input, &[batch, num_input, time], "input")?;
        let (f, p) = classifier.forward_classifier(&x)?;
        write_tensor(&f, features, "features")?;
        write_tensor(&p, prediction, "prediction")
    })
}
