//! Training: fit CEBRA without Python.
//!
//! - [`Sampler`]: the reference's batch construction (time, time-delta, delta, discrete, mixed and
//!   hybrid conditionals; the full-batch mode), reproducible from a seed, with k-d tree look-ups.
//! - [`Solver`] with [`SolverOptions`]: the reference's `cebra.CEBRA(...).fit(X, y)` / `.transform(X)`:
//!   Adam over model and criterion, constant or learned temperature, cosine or Euclidean InfoNCE,
//!   mini-batches or the full batch, a per-step record, early stop, save and load.
//! - [`KnnDecoder`]: the reference's `cebra.KNNDecoder` and its R² score.
mod adam;
mod decoder;
mod nearest;
mod sampler;
mod solver;

pub use adam::{Adam, AdamConfig};
pub use decoder::{r2_score, KnnDecoder, Metric, Targets};
pub use nearest::LabelIndex;
pub use sampler::{window_starts, BatchIndex, Conditional, Labels, LoaderKind, Sampler};
pub use solver::{Distance, History, Progress, Solver, SolverOptions, StepRecord, TemperatureMode, Trainer, SOLVER_OPTION_KEYS};
