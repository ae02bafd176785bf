//! `cebra decode`: k-nearest-neighbour decoding of labels from an embedding (the reference's
//! `cebra.KNNDecoder`), scored with R² on held-out rows.
use super::{arrays, CliResult};
use cebra::train::{KnnDecoder, Metric, Targets};
use cebra::transform::{Layout, Recording};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Training embedding (rows, dims).
    #[arg(long, requires_all = ["train_labels", "test_embedding", "test_labels"], conflicts_with = "model")]
    pub train_embedding: Option<String>,
    /// Labels of the training rows (float: regression; integer: classification).
    #[arg(long)]
    pub train_labels: Option<String>,
    /// Test embedding (rows, dims).
    #[arg(long)]
    pub test_embedding: Option<String>,
    /// Labels of the test rows.
    #[arg(long)]
    pub test_labels: Option<String>,
    /// Instead of embeddings: a model (or saved solver) that embeds --data; the first --split of the
    /// time steps trains the decoder, the rest tests it (each part embedded on its own).
    #[arg(long, requires_all = ["data", "labels"], required_unless_present = "train_embedding")]
    pub model: Option<PathBuf>,
    /// Recording (time, neurons) for --model.
    #[arg(long, requires = "model")]
    pub data: Option<String>,
    /// Labels of --data, one row per time step.
    #[arg(long, requires = "model")]
    pub labels: Option<String>,
    /// Fraction of the time steps (from the start) that trains the decoder, with --model.
    #[arg(long, default_value_t = 0.8, requires = "model")]
    pub split: f64,
    /// Neighbours (the reference's n_neighbors).
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// cosine or euclidean.
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    /// Write the test predictions as .npy.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Decoder targets from a label file: float → regression, integer → classification.
fn targets(loaded: &arrays::Loaded, what: &str) -> CliResult<Targets> {
    if loaded.is_float() {
        let (values, _, dims) = loaded.continuous(what)?;
        Ok(Targets::Continuous(values.into_iter().map(f64::from).collect(), dims))
    } else {
        Ok(Targets::Discrete(loaded.discrete(what)?))
    }
}

fn rows(t: &Targets) -> usize {
    match t {
        Targets::Continuous(v, d) => v.len() / d.max(&1),
        Targets::Discrete(v) => v.len(),
    }
}

/// Rows `range` of the targets.
fn slice(t: &Targets, range: std::ops::Range<usize>) -> Targets {
    match t {
        Targets::Continuous(v, d) => Targets::Continuous(v[range.start * d..range.end * d].to_vec(), *d),
        Targets::Discrete(v) => Targets::Discrete(v[range].to_vec()),
    }
}

/// The result of decoding.
pub struct Decoded {
    pub r2: f64,
    /// Median absolute error of the first target column (continuous targets).
    pub median_abs_error: Option<f64>,
    /// Rows of (train, test).
    pub rows: (usize, usize),
    pub predictions: Targets,
}

/// Fits the decoder on `train` and scores it on `test`.
pub fn decode(train: (&[f32], usize), train_targets: Targets, test: &[f32], test_targets: &Targets, k: usize, metric: Metric) -> CliResult<Decoded> {
    let (train_values, dims) = train;
    let train_rows = train_values.len() / dims.max(1);
    if !test.len().is_multiple_of(dims.max(1)) {
        return Err(format!("the test embedding is not rows of {dims} (the training embedding's dimension)"));
    }
    let test_rows = test.len() / dims.max(1);
    if matches!((&train_targets, test_targets), (Targets::Continuous(..), Targets::Discrete(_)) | (Targets::Discrete(_), Targets::Continuous(..))) {
        return Err("the training and test labels must both be float (regression) or both integer (classification)".into());
    }
    if rows(test_targets) != test_rows {
        return Err(format!("{} test labels for {test_rows} test embedding rows: they must match", rows(test_targets)));
    }
    if let Some(i) = test.iter().position(|v| !v.is_finite()) {
        return Err(format!("the test embedding must be finite; row {} has {}", i / dims, test[i]));
    }
    let decoder = KnnDecoder::fit(train_values, dims, train_targets, k, metric).map_err(|e| e.to_string())?;
    let predictions = decoder.predict(test).map_err(|e| e.to_string())?;
    let r2 = cebra::train::r2_score(test_targets, &predictions).map_err(|e| e.to_string())?;
    let median_abs_error = match (test_targets, &predictions) {
        (Targets::Continuous(t, d), Targets::Continuous(p, _)) => {
            let mut e: Vec<f64> = t.iter().step_by(*d).zip(p.iter().step_by(*d)).map(|(a, b)| (a - b).abs()).collect();
            e.sort_by(f64::total_cmp);
            e.get(e.len() / 2).copied()
        }
        _ => None,
    };
    Ok(Decoded { r2, median_abs_error, rows: (train_rows, test_rows), predictions })
}

fn embedding(spec: &str, what: &str) -> CliResult<(Vec<f32>, usize, usize)> {
    let loaded = arrays::read(spec)?;
    let (values, rows, dims) = loaded.continuous(what)?;
    Ok((values, rows, dims))
}

/// Embeds rows `range` of a `(time, neurons)` recording with `model` (padded, as the reference's transform).
pub fn embed_part(model: &dyn cebra::Model, data: &[f32], neurons: usize, range: std::ops::Range<usize>) -> CliResult<Vec<f32>> {
    let part = &data[range.start * neurons..range.end * neurons];
    let recording = Recording::new(part, range.len(), neurons, Layout::RowMajor).map_err(|e| e.to_string())?;
    cebra::transform::transform(model, &recording, Default::default()).map_err(|e| e.to_string())
}

/// The row where the held-out tail starts.
pub fn split_row(timesteps: usize, split: f64) -> CliResult<usize> {
    if !(split > 0.0 && split < 1.0) {
        return Err(format!("--split must be between 0 and 1 (exclusive), got {split}"));
    }
    let cut = (timesteps as f64 * split).round() as usize;
    if cut < 1 || cut + 2 > timesteps {
        return Err(format!("--split {split} of {timesteps} time steps leaves no training or fewer than 2 test rows"));
    }
    Ok(cut)
}

pub fn run(args: &DecodeArgs) -> CliResult {
    let metric = Metric::parse(&args.metric).map_err(|e| format!("--metric: {e}"))?;
    if let Some(p) = &args.output
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return Err(format!("-o '{}': predictions are written as a .npy file", p.display()));
    }
    let decoded = if let Some(model_path) = &args.model {
        let (data, labels) = (args.data.as_deref().expect("clap requires --data"), args.labels.as_deref().expect("clap requires --labels"));
        let model = cebra::weights::load_model(model_path).map_err(|e| e.to_string())?;
        let (values, timesteps, neurons) = arrays::read(data)?.recording("data")?;
        let targets = targets(&arrays::read(labels)?, "labels")?;
        if rows(&targets) != timesteps {
            return Err(format!("labels '{labels}' have {} rows, the data has {timesteps} time steps: they must match", rows(&targets)));
        }
        let cut = split_row(timesteps, args.split)?;
        let train = embed_part(model.as_ref(), &values, neurons, 0..cut).map_err(|e| format!("embedding the training part: {e}"))?;
        let test = embed_part(model.as_ref(), &values, neurons, cut..timesteps).map_err(|e| format!("embedding the test part: {e}"))?;
        let dims = model.num_output() as usize;
        decode((&train, dims), slice(&targets, 0..cut), &test, &slice(&targets, cut..timesteps), args.k, metric)?
    } else {
        let (train, train_rows, dims) = embedding(args.train_embedding.as_deref().expect("checked"), "training embedding")?;
        let (test, _, test_dims) = embedding(args.test_embedding.as_deref().expect("clap requires it"), "test embedding")?;
        if test_dims != dims {
            return Err(format!("the test embedding has {test_dims} dimensions, the training embedding {dims}"));
        }
        let train_targets = targets(&arrays::read(args.train_labels.as_deref().expect("clap requires it"))?, "training labels")?;
        if rows(&train_targets) != train_rows {
            return Err(format!("{} training labels for {train_rows} training embedding rows: they must match", rows(&train_targets)));
        }
        let test_targets = targets(&arrays::read(args.test_labels.as_deref().expect("clap requires it"))?, "test labels")?;
        decode((&train, dims), train_targets, &test, &test_targets, args.k, metric)?
    };
    print_decoded(&decoded, args.k, &args.metric);
    if let Some(path) = &args.output {
        write_predictions(path, decoded.predictions)?;
    }
    Ok(())
}

pub fn print_decoded(d: &Decoded, k: usize, metric: &str) {
    let mae = d.median_abs_error.map(|e| format!(", median absolute error {e:.4}")).unwrap_or_default();
    println!("R2 {:.6}{mae} (kNN, k = {k}, {metric}; {} training rows, {} test rows)", d.r2, d.rows.0, d.rows.1);
}

fn write_predictions(path: &Path, predictions: Targets) -> CliResult {
    match predictions {
        Targets::Continuous(v, d) => {
            let rows = v.len() / d.max(1);
            arrays::write_f32(path, v.into_iter().map(|x| x as f32).collect(), rows, d)
        }
        Targets::Discrete(v) => arrays::write_i64(path, v),
    }
}
