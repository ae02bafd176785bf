//! The solver: `cebra.CEBRA(...).fit(X, y)` and `.transform(X)` — options with the reference's names
//! and defaults, a model and an InfoNCE criterion built from them, Adam over both, and the training
//! loop with its per-step record.
//!
//! One step: draw the batch indices ([`Sampler`]), gather the input windows of the references,
//! positives and negatives into one `(3n, neurons, window)` tensor, run the model **once** on it (the
//! reference runs it three times; in training mode each row gets its own dropout mask either way),
//! compute the loss (the fused InfoNCE by default), back-propagate, and update with Adam.
use super::adam::{Adam, AdamConfig};
use super::sampler::{window_starts, BatchIndex, Conditional, Labels, LoaderKind, Sampler};
use crate::criterions::Criterion;
use crate::error::{invalid, shape_mismatch, Error, Result};
use crate::layers::Layer;
use crate::model::{Model, ModelArgs};
use crate::options::Options;
use crate::transform::{Recording, TransformOptions};
use crate::weights;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// How the temperature of the InfoNCE loss is set (`temperature_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureMode {
    /// Fixed at `temperature`.
    Constant,
    /// Learned, starting at `temperature`, never below `min_temperature`.
    Auto,
}

/// The similarity of the InfoNCE loss (`distance`).
pub use crate::criterions::Distance;

/// The solver's options: the reference's `cebra.CEBRA` parameters, same names and defaults (except
/// `device`, `cpu` by default, and `seed`, which the reference does not honour).
///
/// ```
/// use cebra::train::SolverOptions;
/// let options = SolverOptions::new()
///     .model_architecture("offset10-model")
///     .batch_size(512)
///     .max_iterations(100)
///     .output_dimension(3)
///     .seed(1);
/// let text = options.to_options().to_string_canonical();
/// assert_eq!(SolverOptions::from_options(&cebra::Options::parse(&text).unwrap()).unwrap(), options);
/// assert!(SolverOptions::from_options(&cebra::Options::parse("learning_rte=1").unwrap()).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SolverOptions {
    /// A registered model name (default `offset1-model`).
    pub model_architecture: String,
    /// Samples per step; `0` = the full-batch mode (the reference's `batch_size=None`, the default).
    pub batch_size: usize,
    /// Adam's learning rate (default `3e-4`).
    pub learning_rate: f64,
    /// InfoNCE temperature (default `1.0`; the start value in `auto` mode).
    pub temperature: f64,
    /// `constant` (default) or `auto`.
    pub temperature_mode: TemperatureMode,
    /// Lower bound of a learned temperature (default `0.1`).
    pub min_temperature: f64,
    /// `cosine` (default) or `euclidean`.
    pub distance: Distance,
    /// How positives are drawn given continuous labels; `None` = `time_delta` (the reference's default).
    pub conditional: Option<Conditional>,
    /// Steps between a reference and its positive (default 1).
    pub time_offsets: usize,
    /// Standard deviation for `conditional = delta`.
    pub delta: Option<f64>,
    /// Optimizer steps (default 10000).
    pub max_iterations: usize,
    /// Hidden width (default 32).
    pub num_hidden_units: i64,
    /// Embedding dimension (default 8).
    pub output_dimension: i64,
    /// Behaviour (features 0..3) and time (all features) objectives together (default false).
    pub hybrid: bool,
    /// `cpu` (default), `cuda`, `cuda:N`.
    pub device: String,
    /// Seed of the weights, the batches and dropout. `None` picks one at random (recorded, so that
    /// [`Solver::options`] and saved files reproduce the fit).
    pub seed: Option<u64>,
    /// Extra model options (e.g. `normalize=false`), as a `key=value;...` string under `model_options`.
    pub model_options: Options,
    /// `fused` (default) or `libtorch`: which InfoNCE implementation computes the loss.
    pub criterion_implementation: String,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            model_architecture: "offset1-model".into(),
            batch_size: 0,
            learning_rate: 3e-4,
            temperature: 1.0,
            temperature_mode: TemperatureMode::Constant,
            min_temperature: 0.1,
            distance: Distance::Cosine,
            conditional: None,
            time_offsets: 1,
            delta: None,
            max_iterations: 10000,
            num_hidden_units: 32,
            output_dimension: 8,
            hybrid: false,
            device: "cpu".into(),
            seed: None,
            model_options: Options::new(),
            criterion_implementation: "fused".into(),
        }
    }
}

/// The option keys [`SolverOptions::from_options`] accepts.
pub const SOLVER_OPTION_KEYS: &[&str] = &[
    "model_architecture",
    "batch_size",
    "learning_rate",
    "temperature",
    "temperature_mode",
    "min_temperature",
    "distance",
    "conditional",
    "time_offsets",
    "delta",
    "max_iterations",
    "num_hidden_units",
    "output_dimension",
    "hybrid",
    "device",
    "seed",
    "model_options",
    "criterion_implementation",
    "criterion",
    "optimizer",
];

macro_rules! setter {
    // An option that is unset by default.
    ($name:ident, Some($ty:ty)) => {
        #[doc = concat!("Sets `", stringify!($name), "`.")]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
    };
    // A name held as a `String`.
    ($name:ident, &str) => {
        #[doc = concat!("Sets `", stringify!($name), "`.")]
        pub fn $name(mut self, value: &str) -> Self {
            self.$name = value.to_string();
            self
        }
    };
    ($name:ident, $ty:ty) => {
        #[doc = concat!("Sets `", stringify!($name), "`.")]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

fn positive_count(options: &Options, key: &str, default: i64, allow_zero: bool) -> Result<i64> {
    let v = options.i64_or(key, default)?;
    if v < 0 || (v == 0 && !allow_zero) {
        return Err(invalid!("option '{key}' must be {}, got {v}", if allow_zero { "0 or more" } else { "at least 1" }));
    }
    Ok(v)
}

impl SolverOptions {
    /// The defaults.
    pub fn new() -> Self {
        SolverOptions::default()
    }

    /// Sets `model_architecture`.
    pub fn model_architecture(mut self, name: &str) -> Self {
        self.model_architecture = name.to_string();
        self
    }
    setter!(batch_size, usize);
    setter!(learning_rate, f64);
    setter!(temperature, f64);
    setter!(temperature_mode, TemperatureMode);
    setter!(min_temperature, f64);
    setter!(distance, Distance);
    setter!(time_offsets, usize);
    setter!(max_iterations, usize);
    setter!(num_hidden_units, i64);
    setter!(output_dimension, i64);
    setter!(hybrid, bool);
    setter!(model_options, Options);
    setter!(conditional, Some(Conditional));
    setter!(delta, Some(f64));
    setter!(seed, Some(u64));
    setter!(device, &str);
    setter!(criterion_implementation, &str);

    /// Parses `key=value` options (the C API's `cebra_solver_new` string); unknown keys, bad values and
    /// unsupported choices are errors naming the key.
    pub fn from_options(options: &Options) -> Result<Self> {
        options.check_keys(SOLVER_OPTION_KEYS, "the solver")?;
        let d = SolverOptions::default();
        if let Some(c) = options.get("criterion")
            && c != "infonce"
        {
            return Err(invalid!("option 'criterion' must be 'infonce' (the only criterion of the reference's fit), got '{c}'"));
        }
        if let Some(o) = options.get("optimizer")
            && o != "adam"
        {
            return Err(invalid!("option 'optimizer' must be 'adam' (the only optimizer of the reference), got '{o}'"));
        }
        let temperature_mode = match options.str_or("temperature_mode", "constant") {
            "constant" => TemperatureMode::Constant,
            "auto" => TemperatureMode::Auto,
            other => return Err(invalid!("option 'temperature_mode' must be 'constant' or 'auto', got '{other}'")),
        };
        let distance = match options.str_or("distance", "cosine") {
            "cosine" => Distance::Cosine,
            "euclidean" => Distance::Euclidean,
            other => return Err(invalid!("option 'distance' must be 'cosine' or 'euclidean', got '{other}'")),
        };
        let conditional = match options.get("conditional") {
            None | Some("") | Some("none") => None,
            Some(text) => Some(Conditional::parse(text)?),
        };
        let seed = match options.get("seed") {
            None => None,
            Some(text) => Some(text.parse::<u64>().map_err(|_| invalid!("option 'seed' must be an unsigned integer, got '{text}'"))?),
        };
        let model_options = Options::parse(&options.str_or("model_options", "").replace(',', ";"))
            .map_err(|e| invalid!("option 'model_options': {e}"))?;
        let implementation = options.str_or("criterion_implementation", "fused").to_string();
        if implementation != "fused" && implementation != "libtorch" {
            return Err(invalid!("option 'criterion_implementation' must be 'fused' or 'libtorch', got '{implementation}'"));
        }
        let s = SolverOptions {
            model_architecture: options.str_or("model_architecture", &d.model_architecture).to_string(),
            batch_size: positive_count(options, "batch_size", 0, true)? as usize,
            learning_rate: options.f64_or("learning_rate", d.learning_rate)?,
            temperature: options.f64_or("temperature", d.temperature)?,
            temperature_mode,
            min_temperature: options.f64_or("min_temperature", d.min_temperature)?,
            distance,
            conditional,
            time_offsets: positive_count(options, "time_offsets", 1, false)? as usize,
            delta: options.f64_opt("delta")?,
            max_iterations: positive_count(options, "max_iterations", d.max_iterations as i64, true)? as usize,
            num_hidden_units: positive_count(options, "num_hidden_units", d.num_hidden_units, false)?,
            output_dimension: positive_count(options, "output_dimension", d.output_dimension, false)?,
            hybrid: options.bool_or("hybrid", false)?,
            device: options.str_or("device", "cpu").to_string(),
            seed,
            model_options,
            criterion_implementation: implementation,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks values that do not depend on the data.
    pub fn validate(&self) -> Result<()> {
        let positive = |key: &str, v: f64| -> Result<()> {
            if !(v > 0.0 && v.is_finite()) {
                return Err(invalid!("option '{key}' must be a positive number, got {v}"));
            }
            Ok(())
        };
        positive("learning_rate", self.learning_rate)?;
        positive("temperature", self.temperature)?;
        positive("min_temperature", self.min_temperature)?;
        if let Some(delta) = self.delta {
            positive("delta", delta)?;
        }
        if !crate::registry::models().contains(&self.model_architecture) {
            // The registry's error suggests close names.
            crate::registry::init(&self.model_architecture, &ModelArgs::new(1, 2, 1))?;
        }
        parse_device(&self.device)?;
        Ok(())
    }

    /// The options as `key=value` pairs (every option, the seed included once chosen).
    pub fn to_options(&self) -> Options {
        let mut o = Options::new()
            .with("model_architecture", &self.model_architecture)
            .with("batch_size", self.batch_size)
            .with("learning_rate", self.learning_rate)
            .with("temperature", self.temperature)
            .with("temperature_mode", match self.temperature_mode {
                TemperatureMode::Constant => "constant",
                TemperatureMode::Auto => "auto",
            })
            .with("min_temperature", self.min_temperature)
            .with("distance", match self.distance {
                Distance::Cosine => "cosine",
                Distance::Euclidean => "euclidean",
            });
        if let Some(c) = self.conditional {
            o.set("conditional", c.as_str());
        }
        o.set("time_offsets", self.time_offsets);
        if let Some(d) = self.delta {
            o.set("delta", d);
        }
        o.set("max_iterations", self.max_iterations);
        o.set("num_hidden_units", self.num_hidden_units);
        o.set("output_dimension", self.output_dimension);
        o.set("hybrid", self.hybrid);
        o.set("device", &self.device);
        if let Some(s) = self.seed {
            o.set("seed", s);
        }
        if !self.model_options.is_empty() {
            o.set("model_options", self.model_options.to_string_canonical().replace(';', ","));
        }
        o.set("criterion_implementation", &self.criterion_implementation);
        o
    }

    /// The registered criterion name and options for these settings (the reference's table:
    /// constant → `Fixed…InfoNCE`, auto → `Learnable…InfoNCE`).
    fn criterion(&self) -> Result<Criterion> {
        let name = match (self.distance, self.temperature_mode) {
            (Distance::Cosine, TemperatureMode::Constant) => "fixed-cosine-infonce",
            (Distance::Euclidean, TemperatureMode::Constant) => "fixed-euclidean-infonce",
            (Distance::Cosine, TemperatureMode::Auto) => "learnable-cosine-infonce",
            (Distance::Euclidean, TemperatureMode::Auto) => "learnable-euclidean-infonce",
        };
        let mut options = Options::new()
            .with("temperature", self.temperature)
            .with("implementation", &self.criterion_implementation);
        if self.temperature_mode == TemperatureMode::Auto {
            options.set("min_temperature", self.min_temperature);
        }
        Criterion::new(name, &options)
    }
}

/// `cpu`, `cuda`, `cuda:N`, `cuda_if_available`; CUDA only when the libtorch in use has it.
fn parse_device(text: &str) -> Result<Device> {
    let no_cuda = || {
        Error::Unsupported(format!(
            "device '{text}': this libtorch has no CUDA support (or no GPU is visible). Build libcebra against \
             a CUDA libtorch 2.13 (LIBTORCH=<torch/ from the torch==2.13.0 CUDA wheel>, see the README) to train on a GPU"
        ))
    };
    match text {
        "cpu" => Ok(Device::Cpu),
        "cuda_if_available" => Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu }),
        "cuda" => {
            if !tch::Cuda::is_available() {
                return Err(no_cuda());
            }
            Ok(Device::Cuda(0))
        }
        other => match other.strip_prefix("cuda:").map(|n| n.parse::<usize>()) {
            Some(Ok(n)) => {
                if !tch::Cuda::is_available() {
                    return Err(no_cuda());
                }
                let count = tch::Cuda::device_count() as usize;
                if n >= count {
                    return Err(invalid!("device '{other}': only {count} CUDA device(s) are visible"));
                }
                Ok(Device::Cuda(n))
            }
            _ => Err(invalid!("option 'device' must be 'cpu', 'cuda', 'cuda:N' or 'cuda_if_available', got '{other}'")),
        },
    }
}

/// One step's record: what the reference logs (`total`, `pos`, `neg`, `temperature`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// 1-based step number.
    pub step: usize,
    /// Steps the fit will take unless stopped.
    pub total_steps: usize,
    /// The loss.
    pub loss: f64,
    /// The alignment term (hybrid: behaviour + time).
    pub align: f64,
    /// The uniformity term (hybrid: behaviour + time).
    pub uniform: f64,
    /// The temperature after the step.
    pub temperature: f64,
}

/// Per-step values of a fit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Loss per step.
    pub loss: Vec<f64>,
    /// Alignment per step.
    pub align: Vec<f64>,
    /// Uniformity per step.
    pub uniform: Vec<f64>,
    /// Temperature per step.
    pub temperature: Vec<f64>,
}

impl History {
    fn push(&mut self, r: &StepRecord) {
        self.loss.push(r.loss);
        self.align.push(r.align);
        self.uniform.push(r.uniform);
        self.temperature.push(r.temperature);
    }

    /// Steps recorded.
    pub fn len(&self) -> usize {
        self.loss.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.loss.is_empty()
    }
}

/// What a progress callback answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Go on.
    Continue,
    /// Stop after this step; the solver keeps what it learned.
    Stop,
}

/// The fitted state.
struct Fitted {
    model: Box<dyn Model>,
    criterion: Criterion,
    history: History,
}

/// A CEBRA solver: options, then [`Solver::fit`], then [`Solver::transform`] or [`Solver::model`].
///
/// ```
/// use cebra::train::{Labels, Solver, SolverOptions};
/// use cebra::transform::{Layout, Recording};
/// // 300 steps of 6 neurons driven by a 1-D latent.
/// let latent: Vec<f32> = (0..300).map(|t| (t as f32 * 0.05).sin()).collect();
/// let data: Vec<f32> = (0..300 * 6).map(|i| latent[i / 6] * (i % 6) as f32 + 0.1 * ((i * 7) % 5) as f32).collect();
/// let recording = Recording::new(&data, 300, 6, Layout::RowMajor).unwrap();
/// let mut solver = Solver::new(
///     SolverOptions::new().model_architecture("offset10-model").batch_size(64).max_iterations(5).output_dimension(3).seed(0),
/// ).unwrap();
/// let history = solver.fit(&recording, &Labels::continuous(latent.clone(), 1), |_| cebra::train::Progress::Continue).unwrap();
/// assert_eq!(history.loss.len(), 5);
/// let embedding = solver.transform(&recording).unwrap();
/// assert_eq!(embedding.len(), 300 * 3); // padded: one row per time step
/// ```
pub struct Solver {
    options: SolverOptions,
    fitted: Option<Fitted>,
}

impl std::fmt::Debug for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solver").field("options", &self.options).field("fitted", &self.fitted.is_some()).finish()
    }
}

/// Serialises seeding libtorch's global generator with drawing a model's initial weights.
static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Metadata keys of a saved solver (besides the model's and criterion's).
mod meta {
    pub const SOLVER: &str = "cebra.solver";
    pub const HISTORY: &str = "cebra.solver.history";
}

impl Solver {
    /// A solver with `options` (validated; a missing seed is drawn now and recorded).
    pub fn new(mut options: SolverOptions) -> Result<Self> {
        options.validate()?;
        if options.seed.is_none() {
            options.seed = Some(rand::random::<u64>() >> 11);
        }
        Ok(Solver { options, fitted: None })
    }

    /// A solver from `key=value;...` options (see [`SolverOptions::from_options`]).
    pub fn from_options_str(text: &str) -> Result<Self> {
        Solver::new(SolverOptions::from_options(&Options::parse(text)?)?)
    }

    /// The options (with the seed in use).
    pub fn options(&self) -> &SolverOptions {
        &self.options
    }

    /// Whether [`Solver::fit`] has run.
    pub fn is_fitted(&self) -> bool {
        self.fitted.is_some()
    }

    fn fitted(&self) -> Result<&Fitted> {
        self.fitted.as_ref().ok_or_else(|| invalid!("the solver is not fitted yet: call fit first"))
    }

    /// The per-step record of the last fit.
    pub fn history(&self) -> Result<&History> {
        Ok(&self.fitted()?.history)
    }

    /// The trained model.
    pub fn trained_model(&self) -> Result<&dyn Model> {
        Ok(self.fitted()?.model.as_ref())
    }

    /// The trained criterion (its learned temperature).
    pub fn criterion(&self) -> Result<&Criterion> {
        Ok(&self.fitted()?.criterion)
    }

    /// A new model sharing nothing with the solver: a copy of the trained weights (for streaming or
    /// transform elsewhere).
    pub fn model(&self) -> Result<Box<dyn Model>> {
        let fitted = self.fitted()?;
        let source = fitted.model.as_ref();
        let mut copy = crate::registry::init(&source.architecture().name, &source.architecture().args)?;
        let state: Vec<(String, Tensor)> = source
            .state_dict()
            .into_iter()
            .map(|(k, t)| Ok((k, t.f_detach_copy()?)))
            .collect::<Result<_>>()?;
        copy.load_state_dict(&state)?;
        copy.set_training(false);
        Ok(copy)
    }

    /// Trains from scratch (a fitted solver is re-initialised, as the reference's `fit`). `data` is the
    /// recording, `labels` the auxiliary variables (see [`Labels`] and the sampler's table).
    /// `progress` is called after every step; [`Progress::Stop`] ends the fit early, keeping what
    /// was learned. Returns the per-step record.
    pub fn fit(&mut self, data: &Recording, labels: &Labels, mut progress: impl FnMut(&StepRecord) -> Progress) -> Result<History> {
        let mut trainer = Trainer::new(&self.options, data, labels)?;
        let total = self.options.max_iterations;
        let mut history = History::default();
        let outcome = (|| -> Result<()> {
            for step in 1..=total {
                let batch = trainer.next_batch()?;
                let record = trainer.step(&batch, step, total)?;
                history.push(&record);
                if progress(&record) == Progress::Stop {
                    break;
                }
            }
            Ok(())
        })();
        let (model, criterion) = trainer.finish()?;
        outcome?;
        self.fitted = Some(Fitted { model, criterion, history: history.clone() });
        Ok(history)
    }

    /// The embedding of `data` (padded, as the reference's default transform): `(T, output_dimension)`
    /// in the recording's layout.
    pub fn transform(&self, data: &Recording) -> Result<Vec<f32>> {
        self.transform_with(data, TransformOptions::default())
    }

    /// [`Solver::transform`] with explicit settings (no padding, chunking).
    pub fn transform_with(&self, data: &Recording, options: TransformOptions) -> Result<Vec<f32>> {
        crate::transform::transform(self.trained_model()?, data, options)
    }

    /// Saves the trained model (its state-dict keys), the criterion, every option and the per-step
    /// record in one `.safetensors` file, which [`crate::weights::load_model`] also reads as a model.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let fitted = self.fitted()?;
        let path = path.as_ref();
        let h = &fitted.history;
        let history = serde_json::json!({
            "loss": h.loss, "align": h.align, "uniform": h.uniform, "temperature": h.temperature,
        });
        let extra = HashMap::from([
            (meta::SOLVER.to_string(), self.options.to_options().to_string_canonical()),
            (meta::HISTORY.to_string(), history.to_string()),
        ]);
        weights::save_with_criterion_and_metadata(fitted.model.as_ref(), &fitted.criterion, extra, path)
    }

    /// Loads a solver saved by [`Solver::save`] (fitted, with its options and record).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = weights::read_file(path)?;
        let text = file.metadata.get(meta::SOLVER).ok_or_else(|| {
            Error::Format(format!("'{}' has no '{}' metadata: it is not a saved solver", path.display(), meta::SOLVER))
        })?;
        let options = SolverOptions::from_options(&Options::parse(text)?)
            .map_err(|e| Error::Format(format!("'{}': solver options: {e}", path.display())))?;
        let history_text = file.metadata.get(meta::HISTORY).map(String::as_str).unwrap_or("{}");
        let parsed: HashMap<String, Vec<f64>> = serde_json::from_str(history_text)
            .map_err(|e| Error::Format(format!("'{}': metadata '{}': {e}", path.display(), meta::HISTORY)))?;
        let get = |k: &str| parsed.get(k).cloned().unwrap_or_default();
        let history = History { loss: get("loss"), align: get("align"), uniform: get("uniform"), temperature: get("temperature") };
        let (model, criterion) = weights::load_with_criterion(path)?;
        let mut model = model;
        model.set_training(false);
        Ok(Solver { options, fitted: Some(Fitted { model, criterion, history }) })
    }
}

/// The training loop's state, one step at a time: what [`Solver::fit`] runs, open for callers that
/// want their own loop (or their own batches, as the tests that replay the reference's steps).
///
/// ```
/// use cebra::train::{Labels, SolverOptions, Trainer};
/// use cebra::transform::{Layout, Recording};
/// let data: Vec<f32> = (0..200 * 4).map(|i| ((i * 37) % 11) as f32 * 0.1).collect();
/// let recording = Recording::new(&data, 200, 4, Layout::RowMajor).unwrap();
/// let options = SolverOptions::new().model_architecture("offset5-model").batch_size(32).seed(3);
/// let mut trainer = Trainer::new(&options, &recording, &Labels::none()).unwrap();
/// let batch = trainer.next_batch().unwrap();
/// assert_eq!(batch.positive[0], batch.reference[0] + 1); // time-contrastive, time_offsets = 1
/// let record = trainer.step(&batch, 1, 1).unwrap();
/// assert!(record.loss.is_finite());
/// ```
pub struct Trainer {
    model: Box<dyn Model>,
    criterion: Criterion,
    adam: Adam,
    sampler: Sampler,
    x: Tensor,
    device: Device,
    timesteps: usize,
    batch_size: usize,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("sampler", &self.sampler).field("batch_size", &self.batch_size).finish()
    }
}

impl Trainer {
    /// Builds the model (seeded), the criterion, Adam and the sampler for `data` and `labels`, and
    /// checks everything that can be checked before the first step.
    pub fn new(options: &SolverOptions, data: &Recording, labels: &Labels) -> Result<Self> {
        let o = options;
        o.validate()?;
        let (timesteps, neurons) = (data.timesteps(), data.channels());
        labels.check(timesteps)?;
        let values = data.to_row_major();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(invalid!(
                "the data must be finite; value ({}, {}) is {}",
                i / neurons,
                i % neurons,
                values[i]
            ));
        }
        let device = parse_device(&o.device)?;
        let seed = o.seed.unwrap_or(0);
        let args = ModelArgs::new(neurons as i64, o.num_hidden_units, o.output_dimension).with_options(o.model_options.clone());
        // Weights (and dropout masks, which draw from the same generator) follow the seed. Seeding
        // and drawing the weights hold one lock, so that fits started on several threads at once each
        // get their seed's weights (libtorch's generator is global).
        let mut model = {
            let _seeded = SEEDED_INIT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::manual_seed(seed);
            crate::registry::init(&o.model_architecture, &args)?
        };
        let name = &o.model_architecture;
        if model.as_classifier().is_some() {
            return Err(Error::Unsupported(format!(
                "'{name}' is a supervised model; the contrastive solver trains encoders (as the reference's CEBRA, which excludes supervised models)"
            )));
        }
        if model.parameters().is_empty() {
            // Callback models compute outside libtorch: no weights, no gradients. Their
            // forward_train says why; without one, say it here.
            let probe = Tensor::f_zeros([1, neurons as i64, model.offset().len()], (Kind::Float, Device::Cpu))?;
            let _ = model.forward_train(&probe)?;
            return Err(Error::Unsupported(format!("'{name}' has no trainable parameters")));
        }
        let offset = model.offset();
        let field = offset.len() as usize;
        if !model.is_convolutional() && field > 1 {
            return Err(Error::Unsupported(format!(
                "'{name}' is not convolutional and sees {field} steps at once; the reference's fit does not support such models either"
            )));
        }
        if model.is_convolutional() && model.output_time(field as i64)? != 1 {
            return Err(Error::Unsupported(format!(
                "'{name}' does not give one embedding per window of {field} steps (a resampling model); it cannot be trained contrastively"
            )));
        }
        if timesteps < field {
            return Err(shape_mismatch!("'{name}' needs at least {field} time steps (its receptive field), the data has {timesteps}"));
        }
        if o.hybrid && o.output_dimension < 3 {
            return Err(invalid!("hybrid training uses features 0..3 for the behaviour objective: output_dimension must be at least 3, got {}", o.output_dimension));
        }
        let conditional = o.conditional.unwrap_or(Conditional::TimeDelta);
        let sampler = Sampler::new(timesteps, labels, conditional, o.time_offsets, o.delta, o.hybrid, seed)?;
        if o.batch_size == 0 {
            // Fails early (discrete, mixed, hybrid; too short) rather than at the first step. The
            // probe uses a copy of the generator so that the first batch is the same either way.
            let (l, f) = full_batch_field(model.as_ref());
            Sampler::new(timesteps, labels, conditional, o.time_offsets, o.delta, o.hybrid, seed)?.full_batch(l, f)?;
        }
        let criterion = o.criterion()?;
        if device != Device::Cpu {
            move_parameters(model.as_ref(), &criterion, device)?;
        }
        let mut params = model.parameters();
        params.extend(criterion.parameters());
        for p in &params {
            let _ = p.shallow_clone().set_requires_grad(true);
        }
        let adam = Adam::new(params, AdamConfig::new(o.learning_rate))?;
        let x = Tensor::f_from_slice(&values)?.f_view([timesteps as i64, neurons as i64])?.f_to_device(device)?;
        model.set_training(true);
        Ok(Trainer { model, criterion, adam, sampler, x, device, timesteps, batch_size: o.batch_size })
    }

    /// The model being trained (to inspect it, or to load given weights before the first step).
    pub fn model_mut(&mut self) -> &mut dyn Model {
        self.model.as_mut()
    }

    /// The criterion (its temperature).
    pub fn criterion(&self) -> &Criterion {
        &self.criterion
    }

    /// The next batch from the sampler (mini-batch or full batch).
    pub fn next_batch(&mut self) -> Result<BatchIndex> {
        if self.batch_size == 0 {
            let (l, f) = full_batch_field(self.model.as_ref());
            self.sampler.full_batch(l, f)
        } else {
            Ok(self.sampler.mini_batch(self.batch_size))
        }
    }

    /// One optimisation step on `batch` (indices into the recording): embeddings, loss, gradients,
    /// Adam. `step` and `total` only label the record.
    pub fn step(&mut self, batch: &BatchIndex, step: usize, total: usize) -> Result<StepRecord> {
        let model = self.model.as_ref();
        for (what, idx) in [("reference", &batch.reference), ("positive", &batch.positive), ("negative", &batch.negative)] {
            if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i >= self.timesteps as i64) {
                return Err(invalid!("{what} index {bad} is outside the recording (0..{})", self.timesteps));
            }
        }
        let hybrid = self.sampler.kind() == LoaderKind::Hybrid;
        let n = batch.reference.len();
        if n == 0 || batch.negative.is_empty() || batch.positive.len() != if hybrid { 2 * n } else { n } {
            return Err(invalid!(
                "a batch needs references, {} positives per reference and negatives; got {}, {}, {}",
                if hybrid { 2 } else { 1 },
                n,
                batch.positive.len(),
                batch.negative.len()
            ));
        }
        self.adam.zero_grad()?;
        let (r, p, ng) = if self.batch_size == 0 {
            full_batch_embeddings(model, &self.x, batch, model.offset().left as usize)?
        } else {
            mini_batch_embeddings(model, &self.x, batch, model.offset(), self.timesteps, self.device)?
        };
        let criterion = &self.criterion;
        let (loss, align, uniform) = tch::with_grad(|| -> Result<(Tensor, f64, f64)> {
            if hybrid {
                let (pb, pt) = (p.f_narrow(0, 0, n as i64)?, p.f_narrow(0, n as i64, n as i64)?);
                let behaviour = |t: &Tensor| t.f_narrow(1, 0, 3);
                let ob = criterion.forward(&behaviour(&r)?, &behaviour(&pb)?, &behaviour(&ng)?)?;
                let ot = criterion.forward(&r, &pt, &ng)?;
                let loss = criterion.objective(&ob)?.f_add(&criterion.objective(&ot)?)?;
                let sum = |a: &Tensor, b: &Tensor| -> Result<f64> { Ok(f64::try_from(a)? + f64::try_from(b)?) };
                Ok((loss, sum(&ob.align, &ot.align)?, sum(&ob.uniform, &ot.uniform)?))
            } else {
                let out = criterion.forward(&r, &p, &ng)?;
                Ok((criterion.objective(&out)?, f64::try_from(&out.align)?, f64::try_from(&out.uniform)?))
            }
        })?;
        loss.f_backward()?;
        self.adam.step()?;
        Ok(StepRecord {
            step,
            total_steps: total,
            loss: f64::try_from(&loss)?,
            align,
            uniform,
            temperature: self.criterion.temperature(),
        })
    }

    /// Ends training: dropout off, gradients off, parameters back on the CPU.
    pub fn finish(self) -> Result<(Box<dyn Model>, Criterion)> {
        let Trainer { mut model, criterion, .. } = self;
        model.set_training(false);
        for p in model.parameters().iter().chain(criterion.parameters().iter()) {
            let _ = p.shallow_clone().set_requires_grad(false);
        }
        move_parameters(model.as_ref(), &criterion, Device::Cpu)?;
        Ok((model, criterion))
    }
}

/// The receptive field the full-batch mode indexes with: the model's for convolutional models,
/// `(0, 1)` for feed-forward ones (as the reference).
fn full_batch_field(model: &dyn Model) -> (usize, usize) {
    if model.is_convolutional() { (model.offset().left as usize, model.offset().len() as usize) } else { (0, 1) }
}

/// Moves the model's and the criterion's parameters to `device` in place (`set_data`), so every view
/// of them (shared layers, the state-dict list) follows.
fn move_parameters(model: &dyn Model, criterion: &Criterion, device: Device) -> Result<()> {
    for mut p in model.parameters().into_iter().chain(criterion.parameters()) {
        let moved = p.f_to_device(device)?;
        p.f_set_data(&moved)?;
    }
    Ok(())
}

/// `(k, neurons, field)` windows of `x` starting at `starts`.
fn windows(x: &Tensor, starts: &[i64], field: usize, device: Device) -> Result<Tensor> {
    let k = starts.len() as i64;
    let f = field as i64;
    let starts = Tensor::f_from_slice(starts)?.f_to_device(device)?;
    let steps = Tensor::f_arange(f, (Kind::Int64, device))?;
    let index = starts.f_unsqueeze(1)?.f_add(&steps.f_unsqueeze(0)?)?.f_reshape([-1])?;
    let neurons = x.size()[1];
    Ok(x.f_index_select(0, &index)?.f_view([k, f, neurons])?.f_permute([0, 2, 1])?)
}

/// The training fast path of convolutional networks: the first layer's convolution of every window
/// as matrix products over rows of the recording, without building the windows. Output step `s` of
/// the window starting at `t` is `bias + Σ_j W_j · x[t + s + j]` (`W_j`: the weight's slice at kernel
/// step `j`), so:
/// - when the batch has more output steps than the recording has rows, every row is projected once
///   (`x · W_jᵀ`, `T` rows) and the batch gathers the projected rows it needs: the layer's cost then
///   depends on the recording's length, not on the batch size;
/// - otherwise the batch's rows are gathered and projected.
///
/// Either way the backward is products for the weight only (the recording needs no gradient), and
/// the weight's gradient arrives in its own layout. The other layers run as the model defines them.
/// `None` when the model does not start with a stride-1 convolution (the caller builds the windows
/// and runs the model).
fn first_conv_as_gemm(model: &dyn Model, x: &Tensor, starts: &[i64], field: usize, device: Device) -> Result<Option<Tensor>> {
    let Some(network) = model.as_network() else { return Ok(None) };
    let (Some(Layer::Conv1d(conv)), true) = (network.net().first(), model.is_convolutional()) else { return Ok(None) };
    if conv.stride != 1 || (conv.kernel as usize) > field {
        return Ok(None);
    }
    let t = x.size()[0];
    let k = conv.kernel;
    let out_len = field as i64 - k + 1;
    let offsets = Tensor::f_arange(out_len, (Kind::Int64, device))?;
    let index = Tensor::f_from_slice(starts)?.f_to_device(device)?.f_unsqueeze(1)?.f_add(&offsets.f_unsqueeze(0)?)?.f_reshape([-1])?;
    let whole_recording = t <= starts.len() as i64 * out_len;
    let mut sum: Option<Tensor> = None;
    for j in 0..k {
        let weight = conv.weight.f_select(2, j)?; // (out, N)
        let bias = if j == 0 { Some(&conv.bias) } else { None };
        let rows = index.f_add_scalar(j)?;
        let term = if whole_recording {
            x.f_linear(&weight, bias)?.f_index_select(0, &rows)?
        } else {
            x.f_index_select(0, &rows)?.f_linear(&weight, bias)?
        };
        sum = Some(match sum {
            None => term,
            Some(s) => s.f_add(&term)?,
        });
    }
    let sum = sum.expect("kernel width >= 1");
    let b = starts.len() as i64;
    // Contiguous (batch, out, time), as a convolution gives it: the next layers (GELU, convolutions)
    // take their vectorised paths only on that layout.
    let mut y = sum.f_view([b, out_len, conv.out_channels])?.f_permute([0, 2, 1])?.f_contiguous()?;
    for layer in network.net()[1..].iter().chain(network.after_net()) {
        y = layer.forward(&y, model.is_training())?;
    }
    Ok(Some(y))
}

/// One forward over the concatenated reference, positive and negative windows.
fn mini_batch_embeddings(
    model: &dyn Model,
    x: &Tensor,
    batch: &BatchIndex,
    offset: crate::Offset,
    timesteps: usize,
    device: Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (left, right) = (offset.left as usize, offset.right as usize);
    let mut all = Vec::with_capacity(batch.reference.len() + batch.positive.len() + batch.negative.len());
    all.extend_from_slice(&batch.reference);
    all.extend_from_slice(&batch.positive);
    all.extend_from_slice(&batch.negative);
    let starts = window_starts(&all, left, right, timesteps);
    let emb = match first_conv_as_gemm(model, x, &starts, left + right, device)? {
        Some(emb) => emb,
        None => model.forward_train(&windows(x, &starts, left + right, device)?)?,
    };
    let emb = if emb.dim() == 3 { emb.f_squeeze_dim(2)? } else { emb };
    let (a, b) = (batch.reference.len() as i64, batch.positive.len() as i64);
    Ok((emb.f_narrow(0, 0, a)?, emb.f_narrow(0, a, b)?, emb.f_narrow(0, a + b, batch.negative.len() as i64)?))
}

/// The full-batch mode: the model runs once on the whole recording; rows are picked by `index − left`.
/// As the reference: a positive whose row is past the end is replaced by its reference, and a
/// negative row counts from the end (Python indexing).
fn full_batch_embeddings(model: &dyn Model, x: &Tensor, batch: &BatchIndex, left: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let emb = if model.is_convolutional() {
        let y = model.forward_train(&x.f_transpose(0, 1)?.f_unsqueeze(0)?)?;
        let o = model.num_output();
        y.f_reshape([o, -1])?.f_transpose(0, 1)?
    } else {
        model.forward_train(&x.f_unsqueeze(2)?)?
    };
    let rows = emb.size()[0];
    let left = if model.is_convolutional() { left as i64 } else { 0 };
    let wrap = |i: i64| if i < 0 { i + rows } else { i };
    let reference: Vec<i64> = batch.reference.iter().map(|&i| wrap(i - left)).collect();
    let positive: Vec<i64> = batch
        .positive
        .iter()
        .zip(&batch.reference)
        .map(|(&p, &r)| if p - left >= rows { wrap(r - left) } else { wrap(p - left) })
        .collect();
    let negative: Vec<i64> = batch.negative.iter().map(|&i| wrap(i - left)).collect();
    let device = emb.device();
    let pick = |idx: &[i64]| -> Result<Tensor> { Ok(emb.f_index_select(0, &Tensor::f_from_slice(idx)?.f_to_device(device)?)?) };
    Ok((pick(&reference)?, pick(&positive)?, pick(&negative)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast first layer gives the windows' forward, and the same weight gradients, for every
    /// convolutional family it takes.
    #[test]
    fn first_conv_as_gemm_matches_the_model_on_windows() {
        let names = ["offset5-model", "offset10-model", "offset10-model-mse", "offset15-model", "offset36-model"];
        let (t, n) = (120usize, 7usize);
        let x = Tensor::f_from_slice(&(0..t * n).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect::<Vec<_>>())
            .unwrap()
            .view([t as i64, n as i64]);
        let mut took = 0;
        for name in names {
            crate::manual_seed(1);
            let model = crate::registry::init(name, &ModelArgs::new(n as i64, 12, 3)).unwrap();
            let offset = model.offset();
            let field = offset.len() as usize;
            if model.output_time(field as i64).unwrap() != 1 {
                continue; // resampling models are not trained
            }
            let params = model.parameters();
            for p in &params {
                let _ = p.shallow_clone().set_requires_grad(true);
            }
            // Few windows: the batch's rows are projected; many: the whole recording is.
            for count in [3, 60] {
                let starts: Vec<i64> = (0..count).map(|i| (i * 13 % (t - field + 1)) as i64).collect();
                let run = |fast: bool| -> (Tensor, Vec<Tensor>) {
                    for p in &params {
                        let mut g = p.grad();
                        if g.defined() {
                            let _ = g.zero_();
                        }
                    }
                    let y = if fast {
                        first_conv_as_gemm(model.as_ref(), &x, &starts, field, Device::Cpu).unwrap().unwrap_or_else(|| panic!("{name} not taken"))
                    } else {
                        model.forward_train(&windows(&x, &starts, field, Device::Cpu).unwrap()).unwrap()
                    };
                    let y = if y.dim() == 3 { y.squeeze_dim(2) } else { y };
                    (&y * Tensor::from_slice(&[1.0f32, -2.0, 0.5]).view([1, 3])).sum(Kind::Float).backward();
                    (y.detach(), params.iter().map(|p| p.grad().copy()).collect())
                };
                let (y_fast, g_fast) = run(true);
                let (y_ref, g_ref) = run(false);
                assert!(f64::try_from((&y_fast - &y_ref).abs().max()).unwrap() < 1e-5, "{name}: outputs");
                for (a, b) in g_fast.iter().zip(&g_ref) {
                    assert!(f64::try_from((a - b).abs().max()).unwrap() < 1e-4, "{name}: gradients");
                }
            }
            took += 1;
        }
        assert_eq!(took, names.len());
    }
}
