//! `cebra fit`: trains a CEBRA model (the reference's `cebra.CEBRA(...).fit(X, y)`) and saves it.
use super::{arrays, CliResult};
use cebra::train::{History, Labels, Progress, Solver, SolverOptions, StepRecord};
use cebra::transform::{Layout, Recording};
use cebra::Options;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The solver options as flags, reference names with `-` for `_`; unset flags keep the reference's
/// defaults (or what `--options` says).
#[derive(clap::Args, Debug, Default)]
pub struct SolverFlags {
    /// Registered model name [default: offset1-model].
    #[arg(long)]
    pub model_architecture: Option<String>,
    /// Samples per step; 0 = full batch [default: 0, the reference's None].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate [default: 3e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub learning_rate: Option<f64>,
    /// InfoNCE temperature (start value in auto mode) [default: 1.0].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// constant or auto [default: constant].
    #[arg(long)]
    pub temperature_mode: Option<String>,
    /// Lower bound of a learned temperature [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub min_temperature: Option<f64>,
    /// cosine or euclidean [default: cosine].
    #[arg(long)]
    pub distance: Option<String>,
    /// time, time_delta, delta (continuous labels) [default: time_delta].
    #[arg(long)]
    pub conditional: Option<String>,
    /// Steps between a reference and its positive [default: 1].
    #[arg(long)]
    pub time_offsets: Option<usize>,
    /// Standard deviation for conditional=delta.
    #[arg(long, allow_negative_numbers = true)]
    pub delta: Option<f64>,
    /// Optimizer steps [default: 10000].
    #[arg(long)]
    pub max_iterations: Option<usize>,
    /// Hidden units [default: 32].
    #[arg(long)]
    pub num_hidden_units: Option<i64>,
    /// Embedding dimension [default: 8].
    #[arg(long)]
    pub output_dimension: Option<i64>,
    /// Behaviour (first 3 features) and time objectives together [default: false].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub hybrid: Option<bool>,
    /// cpu, cuda, cuda:N, cuda_if_available [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// Seed of weights, batches and dropout [default: random, recorded in the saved file].
    #[arg(long)]
    pub seed: Option<u64>,
    /// More solver options as "key=value;key=value" (the same names with underscores).
    #[arg(long, default_value = "")]
    pub options: String,
}

impl SolverFlags {
    /// The options of `--options` with the flags laid over them; a key given both ways is an error.
    pub fn to_solver_options(&self) -> CliResult<SolverOptions> {
        let mut options = Options::parse(&self.options).map_err(|e| format!("--options: {e}"))?;
        let mut set = |key: &str, value: Option<String>| -> CliResult {
            if let Some(v) = value {
                if options.get(key).is_some() {
                    return Err(format!("'{key}' is given both as --{} and in --options", key.replace('_', "-")));
                }
                options.set(key, v);
            }
            Ok(())
        };
        let s = |v: &Option<String>| v.clone();
        let d = |v: Option<f64>| v.map(|x| x.to_string());
        let u = |v: Option<usize>| v.map(|x| x.to_string());
        let i = |v: Option<i64>| v.map(|x| x.to_string());
        set("model_architecture", s(&self.model_architecture))?;
        set("batch_size", u(self.batch_size))?;
        set("learning_rate", d(self.learning_rate))?;
        set("temperature", d(self.temperature))?;
        set("temperature_mode", s(&self.temperature_mode))?;
        set("min_temperature", d(self.min_temperature))?;
        set("distance", s(&self.distance))?;
        set("conditional", s(&self.conditional))?;
        set("time_offsets", u(self.time_offsets))?;
        set("delta", d(self.delta))?;
        set("max_iterations", u(self.max_iterations))?;
        set("num_hidden_units", i(self.num_hidden_units))?;
        set("output_dimension", i(self.output_dimension))?;
        set("hybrid", self.hybrid.map(|b| b.to_string()))?;
        set("device", s(&self.device))?;
        set("seed", self.seed.map(|x| x.to_string()))?;
        SolverOptions::from_options(&options).map_err(|e| flag_names(&e.to_string()))
    }
}

/// The library names options by key (`option 'batch_size'`); on the command line they are flags.
fn flag_names(message: &str) -> String {
    let mut out = message.to_string();
    for key in cebra::train::SOLVER_OPTION_KEYS {
        out = out.replace(&format!("option '{key}'"), &format!("option '{key}' (--{})", key.replace('_', "-")));
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Recording (time, neurons): FILE.npy, FILE.npz[:NAME] or FILE.safetensors[:TENSOR].
    pub data: String,
    /// Labels, one row per time step; float arrays are continuous, integer arrays discrete (as the
    /// reference's fit). At most one of each kind (both: mixed sampling).
    #[arg(long)]
    pub labels: Vec<String>,
    /// Continuous labels (any numeric array, used as floats).
    #[arg(long)]
    pub continuous: Option<String>,
    /// Discrete labels (an integer array).
    #[arg(long)]
    pub discrete: Option<String>,
    #[command(flatten)]
    pub solver: SolverFlags,
    /// The fitted solver (`.safetensors`; `cebra transform` reads it as a model).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the per-step record as CSV (step, loss, align, uniform, temperature).
    #[arg(long)]
    pub loss_csv: Option<PathBuf>,
    /// Also write the (padded) embedding of the training data as `.npy`.
    #[arg(long)]
    pub embedding: Option<PathBuf>,
    /// Threads libtorch computes with [default: libtorch's choice, the number of cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Reads the labels given by `--labels`, `--continuous` and `--discrete`, checked against `timesteps`.
pub fn read_labels(args: &FitArgs, timesteps: usize) -> CliResult<Labels> {
    let mut labels = Labels::none();
    let add_continuous = |labels: &mut Labels, loaded: &arrays::Loaded| -> CliResult {
        if labels.continuous.is_some() {
            return Err("more than one set of continuous labels (give one --continuous or one float --labels)".into());
        }
        let (values, rows, dims) = loaded.continuous("continuous labels")?;
        check_rows(rows, timesteps, &loaded.source)?;
        labels.continuous = Some((values, dims));
        Ok(())
    };
    let add_discrete = |labels: &mut Labels, loaded: &arrays::Loaded| -> CliResult {
        if labels.discrete.is_some() {
            return Err("more than one set of discrete labels (give one --discrete or one integer --labels)".into());
        }
        let classes = loaded.discrete("discrete labels")?;
        check_rows(classes.len(), timesteps, &loaded.source)?;
        labels.discrete = Some(classes);
        Ok(())
    };
    for spec in &args.labels {
        let loaded = arrays::read(spec)?;
        if loaded.is_float() { add_continuous(&mut labels, &loaded)? } else { add_discrete(&mut labels, &loaded)? }
    }
    if let Some(spec) = &args.continuous {
        add_continuous(&mut labels, &arrays::read(spec)?)?;
    }
    if let Some(spec) = &args.discrete {
        add_discrete(&mut labels, &arrays::read(spec)?)?;
    }
    Ok(labels)
}

fn check_rows(rows: usize, timesteps: usize, source: &str) -> CliResult {
    if rows != timesteps {
        return Err(format!("labels '{source}' have {rows} rows, the data has {timesteps} time steps: they must match"));
    }
    Ok(())
}

/// Progress shown while fitting: a bar on a terminal, plain lines (about every 5 s and at 10 % marks)
/// otherwise, nothing with `--quiet`.
pub struct FitProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    start: Instant,
    last_line: Instant,
}

impl FitProgress {
    pub fn new(total: usize, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} {rate} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1} it/s", state.per_sec());
                    }),
            );
            bar
        });
        let now = Instant::now();
        FitProgress { bar, plain: !quiet && !terminal, start: now, last_line: now }
    }

    pub fn step(&mut self, r: &StepRecord) {
        if let Some(bar) = &self.bar {
            bar.set_position(r.step as u64);
            bar.set_message(format!("loss {:.4} temperature {:.3}", r.loss, r.temperature));
        } else if self.plain {
            let tenth = (r.total_steps / 10).max(1);
            if r.step == 1 || r.step.is_multiple_of(tenth) || r.step == r.total_steps || self.last_line.elapsed() >= Duration::from_secs(5) {
                self.last_line = Instant::now();
                let elapsed = self.start.elapsed().as_secs_f64();
                let rate = r.step as f64 / elapsed.max(1e-9);
                let eta = (r.total_steps - r.step) as f64 / rate.max(1e-9);
                eprintln!(
                    "step {}/{} loss {:.4} temperature {:.3} {rate:.1} it/s eta {eta:.0} s",
                    r.step, r.total_steps, r.loss, r.temperature
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What a fit reports.
pub struct FitSummary {
    pub steps: usize,
    pub seconds: f64,
    pub final_loss: f64,
}

impl FitSummary {
    pub fn iterations_per_second(&self) -> f64 {
        self.steps as f64 / self.seconds.max(1e-9)
    }
}

/// Set by the first Ctrl-C during a fit: the fit stops after the current step and keeps what it learned.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    // An atomic store and `signal` only: both async-signal-safe. The default action comes back, so
    // a second Ctrl-C ends the program at once.
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: `signal` is async-signal-safe (POSIX); SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// Routes SIGINT to [`on_interrupt`] while alive; dropping it restores the handler found at install.
struct InterruptGuard {
    previous: libc::sighandler_t,
}

impl InterruptGuard {
    fn install() -> Self {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `on_interrupt` only stores to an atomic, which is async-signal-safe; `signal` has no
        // other preconditions.
        let previous = unsafe { libc::signal(libc::SIGINT, handler) };
        InterruptGuard { previous }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        // SAFETY: restores the handler `signal` returned at install (the default or the caller's).
        unsafe { libc::signal(libc::SIGINT, self.previous) };
    }
}

/// Fits `solver` on a row-major `(timesteps, neurons)` recording, with progress output. Ctrl-C stops
/// the fit after the current step; the solver keeps what it learned (and is saved as usual).
pub fn fit_solver(solver: &mut Solver, data: &[f32], timesteps: usize, neurons: usize, labels: &Labels, quiet: bool) -> CliResult<FitSummary> {
    let recording = Recording::new(data, timesteps, neurons, Layout::RowMajor).map_err(|e| e.to_string())?;
    let mut progress = FitProgress::new(solver.options().max_iterations, quiet);
    let start = Instant::now();
    let guard = InterruptGuard::install();
    let result = solver.fit(&recording, labels, |r| {
        progress.step(r);
        if INTERRUPTED.load(Ordering::SeqCst) { Progress::Stop } else { Progress::Continue }
    });
    drop(guard);
    progress.finish();
    if INTERRUPTED.load(Ordering::SeqCst) && !quiet {
        eprintln!("interrupted: stopped after step {} of {}", result.as_ref().map_or(0, |h| h.len()), solver.options().max_iterations);
    }
    let history = result.map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(FitSummary { steps: history.len(), seconds, final_loss: history.loss.last().copied().unwrap_or(f64::NAN) })
}

/// Writes the per-step record as CSV.
pub fn write_history_csv(path: &Path, history: &History) -> CliResult {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| format!("cannot create '{}': {e}", path.display()))?,
    );
    let w = |e: std::io::Error| format!("cannot write '{}': {e}", path.display());
    writeln!(out, "step,loss,align,uniform,temperature").map_err(w)?;
    for i in 0..history.len() {
        writeln!(
            out,
            "{},{},{},{},{}",
            i + 1,
            history.loss[i],
            history.align[i],
            history.uniform[i],
            history.temperature[i]
        )
        .map_err(w)?;
    }
    out.flush().map_err(w)
}

pub fn run(args: &FitArgs) -> CliResult {
    // Everything that can be checked before training is: options, output paths, data, labels.
    let options = args.solver.to_solver_options()?;
    if !args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
        return Err(format!("-o '{}': the fitted solver is written as a .safetensors file", args.output.display()));
    }
    if let Some(p) = &args.embedding
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return Err(format!("--embedding '{}': the embedding is written as a .npy file", p.display()));
    }
    super::set_threads(args.threads)?;
    for path in [Some(&args.output), args.loss_csv.as_ref(), args.embedding.as_ref()].into_iter().flatten() {
        check_writable_dir(path)?;
    }
    let data = arrays::read(&args.data)?;
    let (values, timesteps, neurons) = data.recording("data")?;
    let labels = read_labels(args, timesteps)?;
    let mut solver = Solver::new(options).map_err(|e| e.to_string())?;
    let o = solver.options();
    if !args.quiet {
        eprintln!(
            "fitting {} on {timesteps} x {neurons} ({}), batch {}, {} steps, seed {}",
            o.model_architecture,
            describe_labels(&labels),
            if o.batch_size == 0 { "full".to_string() } else { o.batch_size.to_string() },
            o.max_iterations,
            o.seed.unwrap_or_default()
        );
    }
    let summary = fit_solver(&mut solver, &values, timesteps, neurons, &labels, args.quiet)?;
    solver.save(&args.output).map_err(|e| e.to_string())?;
    if let Some(path) = &args.loss_csv {
        write_history_csv(path, solver.history().map_err(|e| e.to_string())?)?;
    }
    if let Some(path) = &args.embedding {
        let recording = Recording::new(&values, timesteps, neurons, Layout::RowMajor).map_err(|e| e.to_string())?;
        let embedding = solver.transform(&recording).map_err(|e| e.to_string())?;
        let dims = embedding.len() / timesteps;
        arrays::write_f32(path, embedding, timesteps, dims)?;
    }
    println!(
        "fitted {} steps in {:.1} s ({:.1} it/s), final loss {:.4}; saved {}",
        summary.steps,
        summary.seconds,
        summary.iterations_per_second(),
        summary.final_loss,
        args.output.display()
    );
    Ok(())
}

/// A fit can take hours: an output that cannot be written is an error before it starts.
fn check_writable_dir(path: &Path) -> CliResult {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("'{}': the directory '{}' does not exist", path.display(), dir.display()));
    }
    if path.is_dir() {
        return Err(format!("'{}' is a directory", path.display()));
    }
    Ok(())
}

pub fn describe_labels(labels: &Labels) -> String {
    match (&labels.continuous, &labels.discrete) {
        (None, None) => "no labels: time contrastive".into(),
        (Some((_, d)), None) => format!("{d}-D continuous labels"),
        (None, Some(_)) => "discrete labels".into(),
        (Some((_, d)), Some(_)) => format!("{d}-D continuous and discrete labels"),
    }
}
