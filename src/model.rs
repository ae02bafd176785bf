//! Models: the [`Model`] trait every registered model implements, and [`Network`], the one concrete
//! type behind all reference architectures (a list of layers that own their parameters, plus the
//! state-dict naming of those parameters).
use crate::error::{invalid, shape_mismatch, Error, Result};
use crate::layers::{Layer, Linear};
use crate::offset::Offset;
use crate::options::Options;
use tch::{Kind, Tensor};

/// The arguments of `cebra.models.init(name, num_neurons, num_units, num_output, **options)`.
///
/// ```
/// use cebra::{ModelArgs, Options};
/// let args = ModelArgs::new(120, 32, 8).with_options(Options::parse("normalize=false").unwrap());
/// let model = cebra::init("offset10-model", &args).unwrap();
/// assert_eq!(model.architecture().args.options.get("normalize"), Some("false"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ModelArgs {
    /// Input channels.
    pub num_neurons: i64,
    /// Hidden width.
    pub num_units: i64,
    /// Embedding dimension.
    pub num_output: i64,
    /// Extra keyword arguments (e.g. `normalize=false`).
    pub options: Options,
}

impl ModelArgs {
    /// Arguments without options.
    pub fn new(num_neurons: i64, num_units: i64, num_output: i64) -> Self {
        ModelArgs { num_neurons, num_units, num_output, options: Options::new() }
    }

    /// Adds options.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }
}

/// What is recorded in a saved file so that the model can be rebuilt from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    /// Registered name.
    pub name: String,
    /// Constructor arguments.
    pub args: ModelArgs,
}

/// A CEBRA encoder: maps `(batch, num_input, time)` to `(batch, num_output[, out_time])`.
///
/// ```
/// use cebra::{init, ModelArgs};
/// use tch::{Device, Kind, Tensor};
/// let mut model = init("offset36-model-dropout", &ModelArgs::new(10, 16, 4)).unwrap();
/// assert_eq!((model.offset().left, model.offset().right), (18, 18));
/// assert_eq!(model.output_time(40).unwrap(), 5);
/// let x = Tensor::randn([3, 10, 40], (Kind::Float, Device::Cpu));
/// assert_eq!(model.forward(&x).unwrap().size(), [3, 4, 5]);
/// // The reference `state_dict` keys, in order.
/// assert_eq!(model.state_dict()[0].0, "net.0.weight");
/// model.set_training(true); // dropout on
/// assert!(model.forward_train(&x).unwrap().requires_grad());
/// ```
pub trait Model: Send {
    /// Registered name and constructor arguments.
    fn architecture(&self) -> &Architecture;
    /// Receptive field.
    fn offset(&self) -> Offset;
    /// Input channels.
    fn num_input(&self) -> i64;
    /// Output features.
    fn num_output(&self) -> i64;
    /// Time downsampling factor; 1 for models that do not resample.
    fn resample_factor(&self) -> i64 {
        1
    }
    /// Whether the model runs on sequences of any length `>= offset().len()`.
    fn is_convolutional(&self) -> bool;
    /// Output time length for an input of `time` steps, or the error forward would give.
    fn output_time(&self, time: i64) -> Result<i64>;
    /// Forward pass without an autograd graph (inference). `input` is `(batch, num_input, time)`.
    /// Output: `(batch, num_output)` when one step comes out, else `(batch, num_output, out_time)`.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;
    /// Forward pass that records the autograd graph (training). Dropout follows `set_training`.
    /// Models that cannot be trained return [`Error::Unsupported`].
    fn forward_train(&self, input: &Tensor) -> Result<Tensor>;
    /// `(total, trainable)` parameter counts, each shared tensor counted once.
    fn num_parameters(&self) -> (i64, i64) {
        let params = self.parameters();
        let count = |keep: &dyn Fn(&Tensor) -> bool| params.iter().filter(|p| keep(p)).map(|p| p.numel() as i64).sum();
        (count(&|_| true), count(&|p| p.requires_grad()))
    }
    /// Unique parameter tensors, in creation order (what an optimizer updates).
    fn parameters(&self) -> Vec<Tensor>;
    /// `(key, tensor)` in the reference `state_dict` order; shared tensors appear under every key.
    fn state_dict(&self) -> Vec<(String, Tensor)>;
    /// Expected `(key, shape)` of the state dict.
    fn state_dict_shapes(&self) -> Vec<(String, Vec<i64>)> {
        self.state_dict().into_iter().map(|(k, t)| (k, t.size())).collect()
    }
    /// Replaces the weights. All keys of `state_dict_shapes` must be given with their shapes and no
    /// others; on error nothing changes. For keys sharing one tensor the last key wins. Required, so
    /// that a model cannot "load" a file by silently ignoring it.
    fn load_state_dict(&mut self, tensors: &[(String, Tensor)]) -> Result<()>;
    /// Dropout on (`true`) or off.
    fn set_training(&mut self, training: bool);
    /// Whether dropout is on.
    fn is_training(&self) -> bool;
    /// The classifier interface of `supervised*-model`s (read-only use).
    fn as_classifier(&self) -> Option<&dyn ClassifierModel> {
        None
    }
    /// The classifier interface of `supervised*-model`s, to create or replace the head.
    fn as_classifier_mut(&mut self) -> Option<&mut dyn ClassifierModel> {
        None
    }
    /// The layer list behind a built-in model, for code that compiles it into another form
    /// (streaming); `None` for models defined elsewhere (callbacks), which are run through `forward`.
    fn as_network(&self) -> Option<&Network> {
        None
    }
}

/// The extra interface of the reference `ClassifierModel`s.
///
/// ```
/// let mut model = cebra::init("supervised10-model", &cebra::ModelArgs::new(10, 16, 4)).unwrap();
/// model.as_classifier_mut().unwrap().set_output_num(3, false).unwrap();
/// let head = model.as_classifier().unwrap();
/// let x = tch::Tensor::randn([2, 10, 10], (tch::Kind::Float, tch::Device::Cpu));
/// let (features, prediction) = head.forward_classifier(&x).unwrap();
/// assert_eq!((features.size(), prediction.size()), (vec![2, 4], vec![2, 3]));
/// ```
pub trait ClassifierModel {
    /// Creates the head `Linear(num_output, label_num)`; a second call needs `override_existing`.
    fn set_output_num(&mut self, label_num: i64, override_existing: bool) -> Result<()>;
    /// Number of labels, once the head exists.
    fn label_num(&self) -> Option<i64>;
    /// `(relu(net(x)), classifier(relu(net(x))))`.
    fn forward_classifier(&self, input: &Tensor) -> Result<(Tensor, Tensor)>;
}

/// The error every model gives for an input shorter than its receptive field.
pub fn check_receptive_field(name: &str, offset: Offset, time: i64) -> Result<()> {
    if time < offset.len() {
        return Err(shape_mismatch!(
            "model '{name}' needs at least {} time steps (its receptive field), got {time}",
            offset.len()
        ));
    }
    Ok(())
}

/// Validates a state dict against the expected keys and shapes; errors name the tensor.
pub fn check_state_dict(expected: &[(String, Vec<i64>)], given: &[(String, Tensor)]) -> Result<()> {
    for (key, shape) in expected {
        let tensor = given
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t)
            .ok_or_else(|| Error::Format(format!("missing tensor '{key}' in the weights")))?;
        if &tensor.size() != shape {
            return Err(Error::Format(format!(
                "tensor '{key}' has shape {:?}, the model needs {:?}",
                tensor.size(),
                shape
            )));
        }
    }
    for (key, _) in given {
        if !expected.iter().any(|(k, _)| k == key) {
            return Err(Error::Format(format!("unexpected tensor '{key}' in the weights")));
        }
    }
    Ok(())
}

/// The concrete model behind every reference architecture: a `net` of layers, optional layers applied
/// after `net` (the clip family's `clamp`), an optional classifier head, and the state-dict naming of
/// the layers' parameters.
pub struct Network {
    pub(crate) architecture: Architecture,
    pub(crate) offset: Offset,
    pub(crate) num_input: i64,
    pub(crate) num_output: i64,
    pub(crate) resample_factor: i64,
    pub(crate) convolutional: bool,
    pub(crate) net: Vec<Layer>,
    pub(crate) after_net: Vec<Layer>,
    /// Unique parameters in creation order: shallow clones of the layers' tensors.
    pub(crate) params: Vec<Tensor>,
    /// `(key, tensor)` in state-dict order; the tensors are shallow clones of the layers' (one storage),
    /// so loading through them updates the layers.
    pub(crate) state: Vec<(String, Tensor)>,
    pub(crate) classifier: Option<Linear>,
    pub(crate) is_classifier: bool,
    pub(crate) training: bool,
}

impl Network {
    /// The layers of `net`, in order (the reference's `nn.Sequential`).
    pub fn net(&self) -> &[Layer] {
        &self.net
    }

    /// Layers applied after `net` (the clip family's `Hardtanh`).
    pub fn after_net(&self) -> &[Layer] {
        &self.after_net
    }

    fn check_input(&self, input: &Tensor) -> Result<()> {
        let size = input.size();
        let name = &self.architecture.name;
        let time = match size.len() {
            3 => Some(size[2]),
            2 if !self.convolutional && !self.net_has_conv() => None,
            _ => {
                return Err(shape_mismatch!(
                    "model '{name}' takes a (batch, {}, time) input, got shape {size:?}",
                    self.num_input
                ))
            }
        };
        if size[0] < 1 {
            return Err(invalid!("batch size must be at least 1, got {}", size[0]));
        }
        if size[1] != self.num_input {
            return Err(shape_mismatch!(
                "model '{name}' expects {} input channels, got {}",
                self.num_input,
                size[1]
            ));
        }
        if input.kind() != Kind::Float {
            return Err(invalid!("model '{name}' takes float32 input, got {:?}", input.kind()));
        }
        match time {
            Some(t) => self.output_time(t).map(|_| ()),
            None => self.layers_output_time(None).map(|_| ()),
        }
    }

    fn net_has_conv(&self) -> bool {
        matches!(self.net.first(), Some(Layer::Conv1d(_)) | Some(Layer::MeanAndConv(_)))
    }

    fn layers_output_time(&self, time: Option<i64>) -> Result<Option<i64>> {
        let mut t = time;
        for layer in &self.net {
            t = layer.output_time(t).map_err(|e| match e {
                Error::ShapeMismatch(m) => {
                    shape_mismatch!("model '{}': {m}", self.architecture.name)
                }
                other => other,
            })?;
        }
        Ok(t)
    }

    fn run_net(&self, input: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(input)?;
        let mut x = input.shallow_clone();
        for layer in &self.net {
            x = layer.forward(&x, train)?;
        }
        Ok(x)
    }

    fn run(&self, input: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.run_net(input, train)?;
        for layer in &self.after_net {
            x = layer.forward(&x, train)?;
        }
        Ok(x)
    }
}

impl Model for Network {
    fn architecture(&self) -> &Architecture {
        &self.architecture
    }
    fn offset(&self) -> Offset {
        self.offset
    }
    fn num_input(&self) -> i64 {
        self.num_input
    }
    fn num_output(&self) -> i64 {
        self.num_output
    }
    fn resample_factor(&self) -> i64 {
        self.resample_factor
    }
    fn is_convolutional(&self) -> bool {
        self.convolutional
    }
    fn output_time(&self, time: i64) -> Result<i64> {
        check_receptive_field(&self.architecture.name, self.offset, time)?;
        let flattens = self.net.iter().any(|l| matches!(l, Layer::Flatten));
        match self.layers_output_time(Some(time)) {
            Ok(steps) => Ok(steps.unwrap_or(1)),
            // The layers would say where the time axis stops fitting; the user needs the rule instead.
            Err(Error::ShapeMismatch(_)) if flattens => {
                let len = self.offset.len();
                Err(shape_mismatch!(
                    "model '{}' is not convolutional: it gives one embedding per window of exactly {len} time \
                     step{} (its receptive field) and cannot take {time} steps at once; cut the recording into \
                     windows, or use transform, which does it for you",
                    self.architecture.name,
                    if len == 1 { "" } else { "s" }
                ))
            }
            Err(e) => Err(e),
        }
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| self.run(input, self.training))
    }
    fn forward_train(&self, input: &Tensor) -> Result<Tensor> {
        self.run(input, self.training)
    }
    fn parameters(&self) -> Vec<Tensor> {
        self.params.iter().map(Tensor::shallow_clone).collect()
    }
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.state.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect()
    }
    fn load_state_dict(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        check_state_dict(&self.state_dict_shapes(), tensors)?;
        // Convert everything first so that a failure leaves the model untouched.
        let mut staged: Vec<Tensor> = Vec::with_capacity(self.state.len());
        for (key, _) in &self.state {
            let (_, t) = tensors.iter().find(|(k, _)| k == key).expect("checked above");
            staged.push(t.f_to_kind(Kind::Float)?.f_contiguous()?);
        }
        tch::no_grad(|| -> Result<()> {
            // Key order, so that the last key of a shared tensor wins, as in load_state_dict.
            for ((_, target), value) in self.state.iter_mut().zip(staged) {
                target.f_copy_(&value)?;
            }
            Ok(())
        })
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn is_training(&self) -> bool {
        self.training
    }
    fn as_classifier(&self) -> Option<&dyn ClassifierModel> {
        self.is_classifier.then_some(self as &dyn ClassifierModel)
    }
    fn as_classifier_mut(&mut self) -> Option<&mut dyn ClassifierModel> {
        self.is_classifier.then_some(self as &mut dyn ClassifierModel)
    }
    fn as_network(&self) -> Option<&Network> {
        Some(self)
    }
}

impl ClassifierModel for Network {
    fn set_output_num(&mut self, label_num: i64, override_existing: bool) -> Result<()> {
        if label_num < 1 {
            return Err(invalid!("label_num must be at least 1, got {label_num}"));
        }
        if self.classifier.is_some() && !override_existing {
            return Err(Error::InvalidArgument("classifier is already initialized.".into()));
        }
        // Created before anything is removed, so that a failure leaves the old head in place.
        let linear = crate::init::linear(self.num_output, label_num)?;
        if self.classifier.take().is_some() {
            // The head's parameters and keys are always the last two (the head is created last).
            self.params.truncate(self.params.len() - 2);
            self.state.retain(|(k, _)| !k.starts_with("classifier."));
        }
        self.params.push(linear.weight.shallow_clone());
        self.params.push(linear.bias.shallow_clone());
        self.state.push(("classifier.weight".into(), linear.weight.shallow_clone()));
        self.state.push(("classifier.bias".into(), linear.bias.shallow_clone()));
        self.classifier = Some(linear);
        Ok(())
    }
    fn label_num(&self) -> Option<i64> {
        self.classifier.as_ref().map(|c| c.out_features)
    }
    fn forward_classifier(&self, input: &Tensor) -> Result<(Tensor, Tensor)> {
        let head = self.classifier.as_ref().ok_or_else(|| {
            shape_mismatch!(
                "classifier of '{}' is not initialised: call set_output_num first",
                self.architecture.name
            )
        })?;
        // The head is a Linear on the last axis: it needs the encoder to give one step per window.
        if input.dim() == 3 {
            let steps = self.output_time(input.size()[2])?;
            if steps != 1 {
                return Err(shape_mismatch!(
                    "the classifier head of '{}' needs exactly {} time steps (one output step), got {}",
                    self.architecture.name,
                    self.offset.len(),
                    input.size()[2]
                ));
            }
        }
        tch::no_grad(|| {
            let features = self.run(input, self.training)?.f_relu()?;
            let prediction = head.forward(&features)?;
            Ok((features, prediction))
        })
    }
}
