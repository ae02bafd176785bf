//! Weights I/O in the `.safetensors` format, with the reference `state_dict` keys as tensor names.
//!
//! Files written here load in Python with `safetensors.torch.load_file` + `model.load_state_dict`, and
//! files written by `safetensors.torch.save_file(model.state_dict())` (tied tensors cloned) load here.
//! A file written by [`save`] also records the architecture in its metadata, so [`load_model`] can
//! rebuild the model from the file alone.
use crate::criterions::Criterion;
use crate::error::{format_error, Error, Result};
use crate::model::{Model, ModelArgs};
use crate::options::Options;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Metadata keys written into every saved model file.
///
/// ```
/// use cebra::weights::{self, meta};
/// let model = cebra::init("offset10-model", &cebra::ModelArgs::new(7, 12, 3)).unwrap();
/// let m = weights::model_metadata(model.as_ref());
/// assert_eq!(m[meta::ARCHITECTURE], "offset10-model");
/// assert_eq!((m[meta::NUM_NEURONS].as_str(), m[meta::NUM_UNITS].as_str(), m[meta::NUM_OUTPUT].as_str()), ("7", "12", "3"));
/// ```
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
    /// Criterion name, in a file saved with [`super::save_with_criterion`].
    pub const CRITERION: &str = "cebra.criterion";
    /// Criterion options, `key=value;…`.
    pub const CRITERION_OPTIONS: &str = "cebra.criterion_options";
}

/// State-dict prefix of the criterion's tensors in a combined file (the reference solver keeps the
/// criterion's state under `"criterion"` beside `"model"`).
pub const CRITERION_PREFIX: &str = "criterion.";

/// A parsed `.safetensors` file: tensors (as float32, in file order) and metadata.
///
/// ```
/// use std::collections::HashMap;
/// let path = std::env::temp_dir().join(format!("cebra-doc-tensorfile-{}.safetensors", std::process::id()));
/// let tensors = vec![("x".to_string(), tch::Tensor::from_slice(&[1.0f32, 2.0]))];
/// cebra::weights::write_file(&path, &tensors, HashMap::new()).unwrap();
/// let file: cebra::weights::TensorFile = cebra::weights::read_file(&path).unwrap();
/// for (name, tensor) in &file.tensors {
///     assert_eq!((name.as_str(), tensor.size()), ("x", vec![2]));
/// }
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct TensorFile {
    /// `(name, tensor)` pairs.
    pub tensors: Vec<(String, Tensor)>,
    /// The `__metadata__` map.
    pub metadata: HashMap<String, String>,
}

/// Prefixes a format error's message with the file it is about.
fn naming_file(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Format(m) => Error::Format(format!("'{}': {m}", path.display())),
        other => other,
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(format!("cannot read '{}': {e}", path.display())))
}

/// Reads every tensor of a `.safetensors` file as float32 (float64/float16/bfloat16 are converted).
///
/// ```
/// use cebra::weights::{read_file, write_file};
/// use std::collections::HashMap;
/// let path = std::env::temp_dir().join(format!("cebra-doc-read-{}.safetensors", std::process::id()));
/// let t = tch::Tensor::from_slice(&[1.0f64, 2.0]); // written as float32
/// write_file(&path, &[("x".to_string(), t)], HashMap::from([("note".to_string(), "hi".to_string())])).unwrap();
/// let file = read_file(&path).unwrap();
/// assert_eq!(file.tensors[0].1.kind(), tch::Kind::Float);
/// assert_eq!(file.metadata["note"], "hi");
/// std::fs::remove_file(&path).unwrap();
/// assert!(matches!(read_file(&path), Err(cebra::Error::Io(_))));
/// ```
pub fn read_file(path: impl AsRef<Path>) -> Result<TensorFile> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse(&bytes).map_err(naming_file(path))
}

/// Parses `.safetensors` bytes (see [`read_file`]).
///
/// ```
/// use std::collections::HashMap;
/// assert!(matches!(cebra::weights::parse(b"not a safetensors file"), Err(cebra::Error::Format(_))));
/// let path = std::env::temp_dir().join(format!("cebra-doc-parse-{}.safetensors", std::process::id()));
/// let tensors = vec![("w".to_string(), tch::Tensor::ones([2, 3], (tch::Kind::Float, tch::Device::Cpu)))];
/// cebra::weights::write_file(&path, &tensors, HashMap::new()).unwrap();
/// let bytes = std::fs::read(&path).unwrap();
/// std::fs::remove_file(&path).unwrap();
/// assert_eq!(cebra::weights::parse(&bytes).unwrap().tensors[0].1.size(), [2, 3]);
/// ```
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
///
/// ```
/// use cebra::{init, weights, ModelArgs};
/// let path = std::env::temp_dir().join(format!("cebra-doc-load-{}.safetensors", std::process::id()));
/// let a = init("offset1-model", &ModelArgs::new(7, 12, 3)).unwrap();
/// weights::save(a.as_ref(), &path).unwrap();
/// let mut b = init("offset1-model", &ModelArgs::new(7, 12, 3)).unwrap();
/// weights::load(b.as_mut(), &path).unwrap();
/// let x = tch::Tensor::randn([2, 7, 1], (tch::Kind::Float, tch::Device::Cpu));
/// assert!(a.forward(&x).unwrap().equal(&b.forward(&x).unwrap()));
/// // Strict: weights of another size are refused, and the error names the tensor.
/// let mut c = init("offset1-model", &ModelArgs::new(7, 16, 3)).unwrap();
/// let err = weights::load(c.as_mut(), &path).unwrap_err();
/// assert!(err.to_string().contains("'net.1.weight'"), "{err}");
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load(model: &mut dyn Model, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file = read_file(path)?;
    model.load_state_dict(&file.tensors).map_err(naming_file(path))
}

/// The metadata [`save`] writes for `model`.
///
/// ```
/// let mut model = cebra::init("supervised1-model", &cebra::ModelArgs::new(7, 12, 3)).unwrap();
/// model.as_classifier_mut().unwrap().set_output_num(4, false).unwrap();
/// let m = cebra::weights::model_metadata(model.as_ref());
/// assert_eq!(m[cebra::weights::meta::LABEL_NUM], "4");
/// assert_eq!(m["format"], "pt"); // what safetensors.torch expects
/// ```
pub fn model_metadata(model: &dyn Model) -> HashMap<String, String> {
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
///
/// ```
/// use std::collections::HashMap;
/// let dir = std::env::temp_dir();
/// let path = dir.join(format!("cebra-doc-write-{}.safetensors", std::process::id()));
/// let tensors = vec![("a".to_string(), tch::Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu)))];
/// cebra::weights::write_file(&path, &tensors, HashMap::new()).unwrap();
/// assert!(path.exists());
/// std::fs::remove_file(&path).unwrap();
/// // A missing directory is an I/O error.
/// let bad = dir.join("cebra-no-such-dir").join("x.safetensors");
/// assert!(matches!(cebra::weights::write_file(&bad, &tensors, HashMap::new()), Err(cebra::Error::Io(_))));
/// ```
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
///
/// ```
/// use cebra::{init, weights, ModelArgs};
/// let path = std::env::temp_dir().join(format!("cebra-doc-save-{}.safetensors", std::process::id()));
/// let model = init("offset1-model-mse-v2-2layers", &ModelArgs::new(7, 12, 3)).unwrap();
/// weights::save(model.as_ref(), &path).unwrap();
/// // The shared Linear(U, U) is stored under both of its keys, net.3 and net.5.
/// let file = weights::read_file(&path).unwrap();
/// let get = |k: &str| &file.tensors.iter().find(|(n, _)| n == k).unwrap().1;
/// assert!(get("net.3.weight").equal(get("net.5.weight")));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save(model: &dyn Model, path: impl AsRef<Path>) -> Result<()> {
    let metadata = model_metadata(model);
    write_file(path, &model.state_dict(), metadata)
}

/// Builds the model a file describes (see [`save`]) and loads its weights.
///
/// ```
/// use cebra::{init, weights, ModelArgs, Options};
/// let path = std::env::temp_dir().join(format!("cebra-doc-load-model-{}.safetensors", std::process::id()));
/// let args = ModelArgs::new(7, 12, 3).with_options(Options::parse("normalize=false").unwrap());
/// let model = init("offset10-model", &args).unwrap();
/// weights::save(model.as_ref(), &path).unwrap();
/// let loaded = weights::load_model(&path).unwrap();
/// assert_eq!(loaded.architecture(), model.architecture()); // name, sizes and options
/// std::fs::remove_file(&path).unwrap();
/// ```
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
    let label_num = match file.metadata.get(meta::LABEL_NUM) {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            format_error!("'{}': metadata '{}' is not an integer", path.display(), meta::LABEL_NUM)
        })?),
        None => None,
    };
    // The model must fit in the file's tensors: building it under that budget stops a file whose
    // metadata claims huge sizes from allocating before the tensor check would reject it.
    let budget = file.tensors.iter().map(|(_, t)| t.numel() as i64).sum();
    let mut model = crate::init::with_param_budget(budget, || {
        let mut model = crate::registry::init(&name, &args)?;
        if let Some(label_num) = label_num {
            let classifier = model
                .as_classifier_mut()
                .ok_or_else(|| format_error!("'{name}' has no classifier head"))?;
            classifier.set_output_num(label_num, true)?;
        }
        Ok(model)
    })
    .map_err(|e| format_error!("'{}' describes a model that cannot be built: {e}", path.display()))?;
    // A file that also holds a criterion (a saved solver) loads as its model.
    let tensors: Vec<(String, Tensor)> =
        file.tensors.into_iter().filter(|(k, _)| !k.starts_with(CRITERION_PREFIX)).collect();
    model.load_state_dict(&tensors).map_err(naming_file(path))?;
    Ok(model)
}

/// Saves `model` and `criterion` (its name, options and learnable temperature) in one `.safetensors`
/// file: model tensors under their state-dict keys, criterion tensors under `criterion.<key>`.
pub fn save_with_criterion(model: &dyn Model, criterion: &Criterion, path: impl AsRef<Path>) -> Result<()> {
    save_with_criterion_and_metadata(model, criterion, HashMap::new(), path)
}

/// [`save_with_criterion`] with extra metadata entries (a saved solver's options and record).
pub fn save_with_criterion_and_metadata(
    model: &dyn Model,
    criterion: &Criterion,
    extra: HashMap<String, String>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let mut metadata = model_metadata(model);
    metadata.extend(extra);
    metadata.insert(meta::CRITERION.into(), criterion.name().to_string());
    metadata.insert(meta::CRITERION_OPTIONS.into(), criterion.options().to_string_canonical());
    let mut tensors = model.state_dict();
    tensors.extend(criterion.state_dict().into_iter().map(|(k, t)| (format!("{CRITERION_PREFIX}{k}"), t)));
    write_file(path, &tensors, metadata)
}

/// Reads a file written by [`save_with_criterion`]: rebuilds the model and the criterion and loads both
/// states (strict, as for models).
pub fn load_with_criterion(path: impl AsRef<Path>) -> Result<(Box<dyn Model>, Criterion)> {
    let path = path.as_ref();
    let file = read_file(path)?;
    let name = file.metadata.get(meta::CRITERION).ok_or_else(|| {
        format_error!("'{}' has no '{}' metadata: it holds no criterion", path.display(), meta::CRITERION)
    })?;
    let options = Options::parse(file.metadata.get(meta::CRITERION_OPTIONS).map(String::as_str).unwrap_or(""))?;
    let mut criterion = Criterion::new(name, &options)?;
    let (criterion_tensors, model_tensors): (Vec<_>, Vec<_>) =
        file.tensors.into_iter().partition(|(k, _)| k.starts_with(CRITERION_PREFIX));
    let criterion_tensors: Vec<(String, Tensor)> =
        criterion_tensors.into_iter().map(|(k, t)| (k[CRITERION_PREFIX.len()..].to_string(), t)).collect();
    criterion.load_state_dict(&criterion_tensors).map_err(naming_file(path))?;
    let model = build_model(TensorFile { tensors: model_tensors, metadata: file.metadata }, path)?;
    Ok((model, criterion))
}
