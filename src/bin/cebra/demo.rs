//! `cebra synth` and `cebra demo`: the synthetic place-cell recording, and the whole job on it —
//! fit an `offset10-model` with the position as label on the first 80 % of the time steps, decode
//! the position of the last 20 % from the embedding, and plot the embedding and the loss.
use super::{arrays, decode, fit, plot, synth, CliResult};
use cebra::train::{Conditional, Labels, Metric, Solver, SolverOptions, Targets};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Output directory: neural.npy (time, neurons) spike counts, position.npy (time, 1) in metres,
    /// behaviour.npy (time, 3): position, running right, running left.
    #[arg(short, long)]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub recording: RecordingArgs,
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct RecordingArgs {
    /// Place cells.
    #[arg(long, default_value_t = 120)]
    pub neurons: usize,
    /// Time steps (25 ms each).
    #[arg(long, default_value_t = 10_000)]
    pub timesteps: usize,
    /// Seed of the recording (and of the fit, in the demo).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the recording, model, embedding and plots go.
    #[arg(short, long, default_value = "demo-output")]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub recording: RecordingArgs,
    /// Training steps.
    #[arg(long, default_value_t = 400)]
    pub max_iterations: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 3)]
    pub output_dimension: i64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Threads libtorch computes with. The demo's model is small: with more threads, OpenMP's
    /// synchronisation costs more than it gains on a busy machine (measured 2.5 it/s with 2 threads,
    /// 7 it/s with 1, on 2 cores with other jobs running).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

fn check_recording(r: &RecordingArgs) -> CliResult {
    if r.neurons == 0 || r.neurons > 100_000 {
        return Err(format!("--neurons must be 1..=100000, got {}", r.neurons));
    }
    if r.timesteps < 100 || r.timesteps > 100_000_000 {
        return Err(format!("--timesteps must be 100..=100000000, got {}", r.timesteps));
    }
    Ok(())
}

fn write_recording(dir: &Path, s: &synth::Synthetic) -> CliResult {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
    arrays::write_f32(&dir.join("neural.npy"), s.spikes.clone(), s.timesteps, s.neurons)?;
    arrays::write_f32(&dir.join("position.npy"), s.position.clone(), s.timesteps, 1)?;
    arrays::write_f32(&dir.join("behaviour.npy"), s.behaviour.clone(), s.timesteps, 3)
}

fn generate(r: &RecordingArgs) -> CliResult<synth::Synthetic> {
    check_recording(r)?;
    Ok(synth::generate(synth::SynthOptions { neurons: r.neurons, timesteps: r.timesteps, seed: r.seed }))
}

pub fn run_synth(args: &SynthArgs) -> CliResult {
    let s = generate(&args.recording)?;
    write_recording(&args.output_dir, &s)?;
    println!(
        "wrote neural.npy ({} x {}), position.npy and behaviour.npy into {}",
        s.timesteps,
        s.neurons,
        args.output_dir.display()
    );
    Ok(())
}

pub fn run_demo(args: &DemoArgs) -> CliResult {
    super::set_threads(Some(args.threads))?;
    let total_start = Instant::now();
    let s = generate(&args.recording)?;
    let dir = &args.output_dir;
    write_recording(dir, &s)?;
    let (t, n) = (s.timesteps, s.neurons);
    let spikes_per_step = s.spikes.iter().sum::<f32>() / t as f32;
    println!(
        "libcebra {} demo: a rat runs back and forth on a {} m track; {n} place cells, {t} steps of 25 ms \
         ({spikes_per_step:.1} spikes per step), seed {}",
        env!("CARGO_PKG_VERSION"),
        synth::TRACK_LENGTH,
        args.recording.seed
    );
    let cut = decode::split_row(t, 0.8)?;
    let options = SolverOptions::new()
        .model_architecture("offset10-model")
        .conditional(Conditional::TimeDelta)
        .batch_size(args.batch_size)
        .learning_rate(args.learning_rate)
        .temperature(args.temperature)
        .max_iterations(args.max_iterations)
        .num_hidden_units(32)
        .output_dimension(args.output_dimension)
        .seed(args.recording.seed);
    let mut solver = Solver::new(options).map_err(|e| e.to_string())?;
    println!(
        "fit:    offset10-model, position as continuous label (time_delta), batch {}, {} steps, learning rate {}, \
         output dimension {}, on the first {cut} steps ({} thread{})",
        args.batch_size,
        args.max_iterations,
        args.learning_rate,
        args.output_dimension,
        tch::get_num_threads(),
        if tch::get_num_threads() == 1 { "" } else { "s" }
    );
    let labels = Labels::continuous(s.position[..cut].to_vec(), 1);
    let summary = fit::fit_solver(&mut solver, &s.spikes[..cut * n], cut, n, &labels, args.quiet)?;
    let history = solver.history().map_err(|e| e.to_string())?.clone();
    let tail = history.loss.len().min(50);
    let final_loss = history.loss[history.loss.len() - tail..].iter().sum::<f64>() / tail as f64;
    println!(
        "        {} steps in {:.1} s: {:.1} it/s; loss {:.4} at the first step, {final_loss:.4} over the last {tail}",
        summary.steps,
        summary.seconds,
        summary.iterations_per_second(),
        history.loss[0]
    );
    let model_path = dir.join("model.safetensors");
    solver.save(&model_path).map_err(|e| e.to_string())?;
    fit::write_history_csv(&dir.join("loss.csv"), &history)?;

    let model = solver.model().map_err(|e| e.to_string())?;
    let train = decode::embed_part(model.as_ref(), &s.spikes, n, 0..cut)?;
    let test = decode::embed_part(model.as_ref(), &s.spikes, n, cut..t)?;
    let dims = args.output_dimension as usize;
    let positions = |r: std::ops::Range<usize>| Targets::Continuous(s.position[r].iter().map(|&p| p as f64).collect(), 1);
    let decoded = decode::decode((&train, dims), positions(0..cut), &test, &positions(cut..t), 3, Metric::Cosine)?;
    println!(
        "decode: position of the last {} steps from their embedding: R2 {:.4}, median absolute error {:.1} cm \
         (kNN, k = 3, cosine, trained on the first {cut})",
        t - cut,
        decoded.r2,
        decoded.median_abs_error.unwrap_or(f64::NAN) * 100.0
    );

    let mut embedding = train;
    embedding.extend_from_slice(&test);
    let embedding_path = dir.join("embedding.npy");
    arrays::write_f32(&embedding_path, embedding, t, dims)?;
    let spec = embedding_path.to_string_lossy().into_owned();
    let position_spec = dir.join("position.npy").to_string_lossy().into_owned();
    plot::plot_embedding(
        &spec,
        Some(&position_spec),
        &[],
        &dir.join("embedding.png"),
        800,
        Some("CEBRA embedding of the place cells, coloured by position"),
    )?;
    plot::plot_loss(&history.loss, &dir.join("loss.png"), 800, "offset10-model, InfoNCE loss")?;
    println!(
        "wrote:  neural.npy, position.npy, behaviour.npy, model.safetensors, loss.csv, embedding.npy, \
         embedding.png, loss.png into {}/ ({:.1} s in all)",
        dir.display(),
        total_start.elapsed().as_secs_f64()
    );
    Ok(())
}
