//! `cebra`: a command-line front end over the libcebra Rust API (registry, models, weights, criterions).
//!
//! ```text
//! cebra list [PATTERN] [--limit N] [--no-expand]   registered model names
//! cebra criterions [PATTERN]                       criterion names
//! cebra info NAME [--neurons N --units U --output O --options "k=v;..."]
//! cebra demo [-o demo-output]                      fit, decode and plot a synthetic place-cell recording
//! cebra synth -o DIR                               write that recording as .npy files
//! cebra fit DATA [--labels Y] [solver options] -o MODEL.safetensors
//! cebra decode --model MODEL --data X --labels Y [--split 0.8] | --train-embedding ... --test-labels ...
//! cebra plot EMBEDDING [--color LABELS] -o emb.png | cebra plot --loss MODEL -o loss.png
//! cebra embed [--model NAME --num-units U --num-output O] --weights FILE --input IN --output OUT
//! cebra transform MODEL.safetensors IN.npy|IN.safetensors -o OUT.npy|OUT.safetensors [--no-pad] [--batch-size N]
//! ```
mod arrays;
mod decode;
mod demo;
mod fit;
mod plot;
mod synth;

use cebra::{Model, ModelArgs, Options};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
#[command(name = "cebra", version, about = "libcebra: CEBRA models on libtorch, from the command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List registered model names, in registration order.
    List {
        /// Glob pattern (`*`, `?`, `[seq]`), matched against the whole name.
        pattern: Option<String>,
        /// At most N names (Python slice semantics: a negative N drops names from the end).
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<isize>,
        /// List each parametrized family once, by its first expansion.
        #[arg(long)]
        no_expand: bool,
    },
    /// List criterion names.
    Criterions {
        /// Glob pattern.
        pattern: Option<String>,
    },
    /// Describe a model: receptive field, sizes, parameter counts and state-dict keys.
    Info {
        /// Registered model name.
        name: String,
        #[command(flatten)]
        dims: Dims,
    },
    /// Fit, decode and plot a synthetic place-cell recording (what `make demo` runs).
    ///
    /// Fits an offset10-model with the position as label on the first 80 % of the time steps, decodes
    /// the position of the last 20 % from their embedding (kNN, R²), and plots the embedding and the
    /// loss; everything goes into --output-dir.
    Demo(demo::DemoArgs),
    /// Write the demo's synthetic place-cell recording (neural.npy, position.npy, behaviour.npy).
    Synth(demo::SynthArgs),
    /// Fit a CEBRA model (the reference's `cebra.CEBRA(...).fit(X, y)`) and save it.
    ///
    /// Options have the reference's names and defaults, as flags or as `--options "k=v;..."`. The saved
    /// file is a model file (`cebra transform`, `cebra_model_load_file`) that also keeps the options
    /// and the loss history (`cebra plot --loss`).
    Fit(Box<fit::FitArgs>),
    /// Decode labels from an embedding with k nearest neighbours (the reference's KNNDecoder); prints R².
    Decode(decode::DecodeArgs),
    /// Plot an embedding (2-D scatter, 3-D projected view) or a saved solver's loss curve as PNG.
    Plot(plot::PlotArgs),
    /// Embed a recording stored in a `.safetensors` file.
    ///
    /// The input tensor `data` has shape (time, neurons); the output file gets `embedding` of shape
    /// (out_time, output), one row per full receptive field (no padding): out_time = time - L + 1 for
    /// a receptive field of L steps (fewer for resampling models).
    Embed {
        /// Architecture name. Without it, the model is rebuilt from the weights file's metadata
        /// (files written by libcebra).
        #[arg(long, requires_all = ["num_units", "num_output"])]
        model: Option<String>,
        /// num_units (with --model; num_neurons is the input's column count).
        #[arg(long, requires = "model")]
        num_units: Option<i64>,
        /// num_output (with --model).
        #[arg(long, requires = "model")]
        num_output: Option<i64>,
        /// Model options `"key=value;..."` (with --model).
        #[arg(long, default_value = "", requires = "model")]
        options: String,
        /// Weights (`.safetensors` with the reference state_dict keys).
        #[arg(long)]
        weights: PathBuf,
        /// Input `.safetensors` file holding `data` (time, neurons).
        #[arg(long)]
        input: PathBuf,
        /// Output `.safetensors` file; receives `embedding` (out_time, output).
        #[arg(long = "output")]
        output_file: PathBuf,
    },
    /// Embed a whole recording as the reference `CEBRA.transform` does (padded by default).
    ///
    /// The model file is a self-describing `.safetensors` (written by libcebra or by
    /// tools/convert_cebra_checkpoint.py). The recording is a (time, neurons) array in a `.npy` file
    /// (float32 or float64, C or Fortran order) or a tensor of a `.safetensors` file. The output
    /// (`.npy`, or `.safetensors` with the tensor `embedding`) is (time, output) with padding, one
    /// row per full receptive field without.
    Transform {
        /// Model file.
        model: PathBuf,
        /// Recording: `.npy` or `.safetensors`.
        input: PathBuf,
        /// Output file: `.npy` or `.safetensors`.
        #[arg(short, long)]
        output: PathBuf,
        /// No edge padding: one output row per full receptive field.
        #[arg(long)]
        no_pad: bool,
        /// Work in chunks of this many time steps (bounds memory; same result). 0: one pass.
        #[arg(long, default_value_t = 0)]
        batch_size: usize,
        /// Tensor name in a `.safetensors` recording (default: `data`, or its only tensor).
        #[arg(long)]
        tensor: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

#[derive(clap::Args)]
struct Dims {
    /// num_neurons.
    #[arg(long, default_value_t = 10)]
    neurons: i64,
    /// num_units.
    #[arg(long, default_value_t = 32)]
    units: i64,
    /// num_output.
    #[arg(long, default_value_t = 8)]
    output: i64,
    /// Extra keyword arguments, `"key=value;key=value"`.
    #[arg(long, default_value = "")]
    options: String,
}

type CliResult<T = ()> = Result<T, String>;

/// Keeps freed tensor memory in the heap instead of returning it to the system after every op. A
/// training step allocates and frees tens of megabytes of activations and gradients; with glibc's
/// defaults many of those blocks are fresh mappings whose pages the kernel faults in and zeroes on
/// every step (about 15% of a step at batch 2048, measured with perf). This program owns its
/// process, so it may set this; the library does not change a host program's allocator.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List { pattern, limit, no_expand } => list(pattern.as_deref(), limit, !no_expand),
        Command::Criterions { pattern } => {
            cebra::criterions::get_options(pattern.as_deref(), None).iter().for_each(|n| println!("{n}"));
            Ok(())
        }
        Command::Info { name, dims } => info(&name, &dims),
        Command::Demo(args) => demo::run_demo(&args),
        Command::Synth(args) => demo::run_synth(&args),
        Command::Fit(args) => fit::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Embed { model, num_units, num_output, options, weights, input, output_file } => {
            embed(model.as_deref(), num_units, num_output, &options, &weights, &input, &output_file)
        }
        Command::Transform { model, input, output, no_pad, batch_size, tensor, quiet } => {
            transform(&model, &input, &output, !no_pad, batch_size, tensor.as_deref(), quiet)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cebra: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--threads`: libtorch's intra-op threads (on a loaded machine, fewer threads than cores avoid
/// OpenMP's busy-waiting).
fn set_threads(threads: Option<usize>) -> CliResult {
    if let Some(n) = threads {
        if n == 0 || n > 1024 {
            return Err(format!("--threads must be 1..=1024, got {n}"));
        }
        tch::set_num_threads(n as i32);
    }
    Ok(())
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn list(pattern: Option<&str>, limit: Option<isize>, expand: bool) -> CliResult {
    for name in cebra::get_options(pattern, limit, expand) {
        println!("{name}");
    }
    Ok(())
}

fn info(name: &str, dims: &Dims) -> CliResult {
    let options = Options::parse(&dims.options).map_err(err)?;
    let args = ModelArgs::new(dims.neurons, dims.units, dims.output).with_options(options);
    let model = cebra::init(name, &args).map_err(err)?;
    let offset = model.offset();
    let (total, trainable) = model.num_parameters();
    println!("model:            {name}");
    println!("num_input:        {}", model.num_input());
    println!("num_output:       {}", model.num_output());
    println!("offset:           left {}, right {} (receptive field {})", offset.left, offset.right, offset.len());
    println!("resample factor:  {}", model.resample_factor());
    println!("convolutional:    {}", model.is_convolutional());
    println!("parameters:       {total} total, {trainable} trainable");
    println!("state dict:");
    let shapes = model.state_dict_shapes();
    let width = shapes.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, shape) in shapes {
        println!("  {key:width$}  {shape:?}");
    }
    Ok(())
}

/// Embeds `(time, neurons)` data: one forward over the whole sequence when the model takes it,
/// otherwise a batch of all receptive-field windows. Returns `(out_time, output)`.
fn embed_data(model: &dyn Model, data: &Tensor) -> CliResult<Tensor> {
    let size = data.size();
    if size.len() != 2 {
        return Err(format!("'data' must be a 2-D (time, neurons) tensor, got shape {size:?}"));
    }
    let (time, neurons) = (size[0], size[1]);
    if neurons != model.num_input() {
        return Err(format!("'data' has {neurons} neurons (columns), the model takes {}", model.num_input()));
    }
    let sequence = data.transpose(0, 1).unsqueeze(0).contiguous(); // (1, neurons, time)
    if let Ok(out) = model.forward(&sequence) {
        return Ok(match out.dim() {
            3 => out.squeeze_dim(0).transpose(0, 1).contiguous(),
            _ => out.view([1, -1]),
        });
    }
    // Models that take one window at a time (e.g. the MLP offset1 models).
    let len = model.offset().len();
    if time < len {
        return Err(format!("'data' has {time} time steps, the model needs at least {len}"));
    }
    let windows = sequence.squeeze_dim(0).unfold(1, len, 1).permute([1, 0, 2]).contiguous(); // (T-L+1, N, L)
    let out = model.forward(&windows).map_err(err)?;
    Ok(out.view([windows.size()[0], -1]))
}

fn embed(
    name: Option<&str>,
    units: Option<i64>,
    output: Option<i64>,
    options: &str,
    weights: &std::path::Path,
    input: &std::path::Path,
    output_file: &std::path::Path,
) -> CliResult {
    let file = cebra::weights::read_file(input).map_err(err)?;
    let data = file
        .tensors
        .iter()
        .find(|(k, _)| k == "data")
        .map(|(_, t)| t.to_kind(Kind::Float).to_device(Device::Cpu))
        .ok_or_else(|| format!("'{}' has no tensor named 'data'", input.display()))?;
    if data.dim() != 2 || data.size().contains(&0) {
        return Err(format!(
            "'data' in '{}' must be a non-empty 2-D (time, neurons) array, got shape {:?}",
            input.display(),
            data.size()
        ));
    }
    let model = match name {
        Some(name) => {
            let neurons = data.size().get(1).copied().unwrap_or(0);
            let options = Options::parse(options).map_err(err)?;
            let args = ModelArgs::new(neurons, units.unwrap_or(0), output.unwrap_or(0)).with_options(options);
            let mut model = cebra::init(name, &args).map_err(err)?;
            cebra::weights::load(model.as_mut(), weights).map_err(err)?;
            model
        }
        None => cebra::weights::load_model(weights).map_err(err)?,
    };
    let start = Instant::now();
    let embedding = embed_data(model.as_ref(), &data)?;
    let elapsed = start.elapsed();
    let mut metadata = HashMap::new();
    metadata.insert("cebra.architecture".to_string(), model.architecture().name.clone());
    cebra::weights::write_file(output_file, &[("embedding".to_string(), embedding.shallow_clone())], metadata)
        .map_err(err)?;
    println!(
        "{}: data {:?} -> embedding {:?} in {:.2} ms, written to {}",
        model.architecture().name,
        data.size(),
        embedding.size(),
        elapsed.as_secs_f64() * 1e3,
        output_file.display()
    );
    Ok(())
}

/// A recording read from disk: values, shape and layout (Fortran-order `.npy` files stay as they are).
struct LoadedRecording {
    values: Vec<f32>,
    timesteps: usize,
    neurons: usize,
    layout: cebra::transform::Layout,
}

fn is_ext(path: &std::path::Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_recording(path: &std::path::Path, tensor: Option<&str>) -> CliResult<LoadedRecording> {
    use cebra::transform::Layout;
    use ndarray::Array2;
    if is_ext(path, "npy") {
        let array: Array2<f32> = match ndarray_npy::read_npy::<_, Array2<f32>>(path) {
            Ok(a) => a,
            Err(ndarray_npy::ReadNpyError::WrongDescriptor(_)) => ndarray_npy::read_npy::<_, Array2<f64>>(path)
                .map_err(|e| format!("'{}': {e}", path.display()))?
                .mapv(|v| v as f32),
            Err(e) => return Err(format!("'{}': {e} (a 2-D float32 or float64 array is needed)", path.display())),
        };
        let (timesteps, neurons) = array.dim();
        let layout = if array.is_standard_layout() { Layout::RowMajor } else { Layout::ColMajor };
        let values = match layout {
            Layout::RowMajor => array.into_raw_vec_and_offset().0,
            // Fortran order: the transposed view is standard, its buffer is the column-major data.
            Layout::ColMajor => array.reversed_axes().as_standard_layout().into_owned().into_raw_vec_and_offset().0,
        };
        return Ok(LoadedRecording { values, timesteps, neurons, layout });
    }
    let file = cebra::weights::read_file(path).map_err(err)?;
    let found = match tensor {
        Some(name) => file.tensors.iter().find(|(k, _)| k == name),
        None if file.tensors.len() == 1 => file.tensors.first(),
        None => file.tensors.iter().find(|(k, _)| k == "data"),
    };
    let (name, t) = found.ok_or_else(|| {
        format!("'{}': no tensor '{}' (use --tensor NAME)", path.display(), tensor.unwrap_or("data"))
    })?;
    let size = t.size();
    if size.len() != 2 {
        return Err(format!("'{}': tensor '{name}' must be 2-D (time, neurons), got shape {size:?}", path.display()));
    }
    let values = Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().view([-1])).map_err(err)?;
    Ok(LoadedRecording { values, timesteps: size[0] as usize, neurons: size[1] as usize, layout: Layout::RowMajor })
}

fn transform(
    model_path: &std::path::Path,
    input: &std::path::Path,
    output: &std::path::Path,
    pad: bool,
    batch_size: usize,
    tensor: Option<&str>,
    quiet: bool,
) -> CliResult {
    use cebra::transform::{output_timesteps, transform_into, Layout, Recording, TransformOptions};
    if !is_ext(output, "npy") && !is_ext(output, "safetensors") {
        return Err(format!("'{}': the output must be a .npy or .safetensors file", output.display()));
    }
    let model = cebra::weights::load_model(model_path).map_err(err)?;
    let rec = read_recording(input, tensor)?;
    let recording = Recording::new(&rec.values, rec.timesteps, rec.neurons, rec.layout).map_err(err)?;
    let rows = output_timesteps(model.as_ref(), rec.timesteps, pad).map_err(err)?;
    let o = model.num_output() as usize;
    // Long recordings get a progress bar (on a terminal).
    let bar = if quiet || rows < 100_000 { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(rows as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = vec![0f32; rows * o];
    let start = Instant::now();
    let options = TransformOptions { pad, batch_size, force_libtorch: false };
    transform_into(model.as_ref(), &recording, options, &mut out, &|done| bar.set_position(done as u64)).map_err(err)?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let row_major = match rec.layout {
        Layout::RowMajor => out,
        Layout::ColMajor => {
            let mut t = vec![0f32; out.len()];
            for r in 0..rows {
                for c in 0..o {
                    t[r * o + c] = out[c * rows + r];
                }
            }
            t
        }
    };
    if is_ext(output, "npy") {
        let array = ndarray::Array2::from_shape_vec((rows, o), row_major).map_err(err)?;
        ndarray_npy::write_npy(output, &array).map_err(|e| format!("cannot write '{}': {e}", output.display()))?;
    } else {
        let t = Tensor::from_slice(&row_major).view([rows as i64, o as i64]);
        let mut metadata = HashMap::new();
        metadata.insert("cebra.architecture".to_string(), model.architecture().name.clone());
        cebra::weights::write_file(output, &[("embedding".to_string(), t)], metadata).map_err(err)?;
    }
    if !quiet {
        eprintln!(
            "{}: ({}, {}) -> ({rows}, {o}) {} in {:.1} ms, written to {}",
            model.architecture().name,
            rec.timesteps,
            rec.neurons,
            if pad { "padded" } else { "unpadded" },
            elapsed.as_secs_f64() * 1e3,
            output.display()
        );
    }
    Ok(())
}
