//! Weights I/O in the `.safetensors` format, with the reference `state_dict` keys as tensor names.
//!
//! Files written here load in Python with `safetensors.torch.load_file` + `model.load_state_dict`, and
//! files written by `safetensors.torch.save_file(model.state_dict())` (tied tensors cloned) load here.
//! A file written by [`save`] also records the architecture in its metadata, so [`load_model`] can
//! rebuild the model from the file alone.
use crate::error::{format_error, Error, Result};
use crate::model::{Model, ModelArgs};
use crate::options::Options;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Metadata keys written into every saved model file.
pub mod meta {
    /// Registered architecture name.
    pub const ARCHITECTURE: &str = "cebra.architecture";
    /// `num_neurons` constructor argument.
    pub const NUM_NEURONS: &str = "cebra.num_neurons";
    /// `num_units` constructor argument.
    pub const NUM_UNITS: &str = "cebra.num_units";
    /// `num_output` constructor argument.
    pub const NUM_OUTPUT: &str = "cebra.num_output";
    /// Constructor options, `key=value;…`.
    pub const OPTIONS: &str = "cebra.options";
    /// Classifier head size, for classifier models with a head.
    pub const LABEL_NUM: &str = "cebra.label_num";
    /// libcebra version that wrote the file.
    pub const VERSION: &str = "cebra.version";
}

/// A parsed `.safetensors` file: tensors (as float32, in file order) and metadata.
pub struct TensorFile {
    /// `(name, tensor)` pairs.
    pub tensors: Vec<(String, Tensor)>,
    /// The `__metadata__` map.
    pub metadata: HashMap<String, String>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(format!("cannot read '{}': {e}", path.display())))
}

/// Reads every tensor of a `.safetensors` file as float32 (float64/float16/bfloat16 are converted).
pub fn read_file(path: impl AsRef<Path>) -> Result<TensorFile> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse(&bytes).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("'{}': {m}", path.display())),
        other => other,
    })
}

/// Parses `.safetensors` bytes (see [`read_file`]).
pub fn parse(bytes: &[u8]) -> Result<TensorFile> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| format_error!("not a valid safetensors file ({e})"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format_error!("not a valid safetensors file ({e})"))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            other => return Err(format_error!("tensor '{name}' has dtype {other:?}; a float type is needed")),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)?.f_to_kind(Kind::Float)?;
        tensors.push((name, tensor));
    }
    Ok(TensorFile { tensors, metadata })
}

/// Loads weights into `model` (strict: missing, extra or mis-shaped tensors are errors naming the
/// tensor; on error the model is unchanged).
pub fn load(model: &mut dyn Model, path: impl AsRef<Path>) -> Result<()> {
    let file = read_file(path.as_ref())?;
    model.load_state_dict(&file.tensors).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("'{}': {m}", path.as_ref().display())),
        other => other,
    })
}

/// The metadata [`save`] writes for `model`.
pub fn model_metadata(model: &mut dyn Model) -> HashMap<String, String> {
    let arch = model.architecture().clone();
    let mut m = HashMap::new();
    m.insert("format".to_string(), "pt".to_string());
    m.insert(meta::ARCHITECTURE.into(), arch.name.clone());
    m.insert(meta::NUM_NEURONS.into(), arch.args.num_neurons.to_string());
    m.insert(meta::NUM_UNITS.into(), arch.args.num_units.to_string());
    m.insert(meta::NUM_OUTPUT.into(), arch.args.num_output.to_string());
    m.insert(meta::OPTIONS.into(), arch.args.options.to_string_canonical());
    m.insert(meta::VERSION.into(), env!("CARGO_PKG_VERSION").into());
    if let Some(label_num) = model.as_classifier().and_then(|c| c.label_num()) {
        m.insert(meta::LABEL_NUM.into(), label_num.to_string());
    }
    m
}

/// Writes `tensors` with `metadata` to `path`, through a temporary file renamed into place so that a
/// failed write never leaves a truncated file behind.
pub fn write_file(path: impl AsRef<Path>, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let path = path.as_ref();
    let mut buffers: Vec<(String, Vec<i64>, Vec<u8>)> = Vec::new();
    for (name, tensor) in tensors {
        let t = tensor.f_detach()?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let numel = t.numel();
        let mut data = vec![0f32; numel];
        t.f_copy_data(&mut data, numel)?;
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), t.size(), bytes));
    }
    let mut views = Vec::new();
    for (name, shape, bytes) in &buffers {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let view = TensorView::new(Dtype::F32, shape, bytes)
            .map_err(|e| Error::Format(format!("tensor '{name}': {e}")))?;
        views.push((name.clone(), view));
    }
    let data = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Format(format!("cannot encode safetensors: {e}")))?;
    let file_name = path.file_name().ok_or_else(|| Error::Io(format!("'{}' is not a file path", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.tmp{}", file_name.to_string_lossy(), std::process::id()));
    let io = |e: std::io::Error| Error::Io(format!("cannot write '{}': {e}", path.display()));
    std::fs::write(&tmp, data).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Saves the model's weights under the reference `state_dict` keys (every key of a shared tensor gets
/// its own copy, as `safetensors.torch.save_file` requires), plus the architecture metadata.
pub fn save(model: &mut dyn Model, path: impl AsRef<Path>) -> Result<()> {
    let metadata = model_metadata(model);
    write_file(path, &model.state_dict(), metadata)
}

/// Builds the model a file describes (see [`save`]) and loads its weights.
pub fn load_model(path: impl AsRef<Path>) -> Result<Box<dyn Model>> {
    let path = path.as_ref();
    build_model(read_file(path)?, path)
}

/// Builds the model that `file`'s metadata describes and loads the file's tensors into it.
pub(crate) fn build_model(file: TensorFile, path: &Path) -> Result<Box<dyn Model>> {
    let need = |key: &str| -> Result<&String> {
        file.metadata.get(key).ok_or_else(|| {
            format_error!("'{}' has no '{key}' metadata: it was not saved by libcebra", path.display())
        })
    };
    let int = |key: &str| -> Result<i64> {
        need(key)?.parse::<i64>().map_err(|_| format_error!("'{}': metadata '{key}' is not an integer", path.display()))
    };
    let name = need(meta::ARCHITECTURE)?.clone();
    let options = Options::parse(file.metadata.get(meta::OPTIONS).map(String::as_str).unwrap_or(""))
        .map_err(|e| format_error!("'{}': metadata '{}': {e}", path.display(), meta::OPTIONS))?;
    let args = ModelArgs::new(int(meta::NUM_NEURONS)?, int(meta::NUM_UNITS)?, int(meta::NUM_OUTPUT)?)
        .with_options(options);
    let mut model = crate::registry::init(&name, &args)
        .map_err(|e| format_error!("'{}' describes a model that cannot be built: {e}", path.display()))?;
    if let Some(label_num) = file.metadata.get(meta::LABEL_NUM) {
        let label_num: i64 = label_num
            .parse()
            .map_err(|_| format_error!("'{}': metadata '{}' is not an integer", path.display(), meta::LABEL_NUM))?;
        let classifier = model
            .as_classifier()
            .ok_or_else(|| format_error!("'{}': '{name}' has no classifier head", path.display()))?;
        classifier.set_output_num(label_num, true)?;
    }
    model.load_state_dict(&file.tensors).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("'{}': {m}", path.display())),
        other => other,
    })?;
    Ok(model)
}
