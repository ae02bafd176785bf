//! Batch sampling with the reference's rules (its `cebra.distributions` and the single-session data
//! loaders), reproducible from a seed.
//!
//! A batch is three lists of time indices: references, positives (which the loss pulls towards their
//! reference) and negatives. Which time steps are positives is the *conditional*:
//!
//! | labels | conditional | references / negatives | positive of reference `r` |
//! |---|---|---|---|
//! | any / none | `time` | `2n` uniform draws in `[0, T − o)`, split | `r + o` |
//! | continuous `y` | `time_delta` | `2n` uniform draws in `[0, T)`, split | nearest label to `y[r] + Δ[k]`, `k` uniform in `[0, T)` |
//! | continuous `y` | `delta` | as above | nearest label to a draw of `Normal(y[r], delta²·I)` |
//! | discrete `l` | — | `2n` uniform draws in `[0, T)`, split | uniform among the time steps with label `l[r]` |
//! | discrete + continuous | `time_delta` | two independent class-balanced draws of `n` | time-delta query among the steps with label `l[r]` |
//! | hybrid (continuous) | behaviour + `time` | `2n` draws in `[0, T − o)`, split | behaviour positives then `r + o` (`2n` rows) |
//!
//! `o` is `time_offsets`, `Δ[t] = y[t] − y[t − o]` (zero for `t < o`). The full-batch mode uses every
//! valid time step as a reference, in order ([`Sampler::full_batch`]).
use super::nearest::LabelIndex;
use crate::error::{invalid, shape_mismatch, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};

/// How positives are chosen for continuous labels (the reference's `conditional`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Time-contrastive: the positive is `time_offsets` steps after the reference.
    Time,
    /// The empirical distribution of label changes over `time_offsets` steps.
    TimeDelta,
    /// A Gaussian of standard deviation `delta` around the reference's label.
    Delta,
}

impl Conditional {
    /// Parses `time`, `time_delta`, `delta` (or its newer name `delta_normal`).
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "time" => Ok(Conditional::Time),
            "time_delta" => Ok(Conditional::TimeDelta),
            "delta" | "delta_normal" => Ok(Conditional::Delta),
            other => Err(invalid!("conditional must be 'time', 'time_delta' or 'delta', got '{other}'")),
        }
    }

    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Conditional::Time => "time",
            Conditional::TimeDelta => "time_delta",
            Conditional::Delta => "delta",
        }
    }
}

/// The auxiliary variables of a recording, one row per time step.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Continuous labels, `(T, dims)` row-major, with `dims`.
    pub continuous: Option<(Vec<f32>, usize)>,
    /// One non-negative class per time step.
    pub discrete: Option<Vec<i64>>,
}

impl Labels {
    /// No labels (time-contrastive learning).
    pub fn none() -> Self {
        Labels::default()
    }

    /// Continuous labels, `(T, dims)` row-major.
    pub fn continuous(values: Vec<f32>, dims: usize) -> Self {
        Labels { continuous: Some((values, dims)), discrete: None }
    }

    /// Discrete labels.
    pub fn discrete(classes: Vec<i64>) -> Self {
        Labels { continuous: None, discrete: Some(classes) }
    }

    /// Adds discrete labels to continuous ones (mixed sampling).
    pub fn with_discrete(mut self, classes: Vec<i64>) -> Self {
        self.discrete = Some(classes);
        self
    }

    /// Checks the labels against a recording of `timesteps` steps.
    pub fn check(&self, timesteps: usize) -> Result<()> {
        if let Some((values, dims)) = &self.continuous {
            if *dims == 0 {
                return Err(invalid!("continuous labels need at least 1 dimension"));
            }
            if values.len() != timesteps * dims {
                return Err(shape_mismatch!(
                    "continuous labels: {timesteps} time steps x {dims} dimensions need {} values, got {}",
                    timesteps * dims,
                    values.len()
                ));
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(invalid!("continuous labels must be finite; value {i} (time step {}) is {}", i / dims, values[i]));
            }
        }
        if let Some(classes) = &self.discrete {
            if classes.len() != timesteps {
                return Err(shape_mismatch!("discrete labels: {} values for {timesteps} time steps", classes.len()));
            }
            if let Some(i) = classes.iter().position(|&c| c < 0) {
                return Err(invalid!("discrete labels must be non-negative; time step {i} has {}", classes[i]));
            }
            let max = classes.iter().copied().max().unwrap_or(0);
            if max > 100_000_000 {
                return Err(invalid!("discrete label {max} is too large (labels index a histogram; renumber them 0..K)"));
            }
        }
        Ok(())
    }
}

/// The time indices of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIndex {
    /// Reference samples.
    pub reference: Vec<i64>,
    /// Positive samples (hybrid: behaviour positives, then time positives).
    pub positive: Vec<i64>,
    /// Negative samples.
    pub negative: Vec<i64>,
}

/// Uniform time steps: the prior of the continuous distributions.
fn uniform(rng: &mut ChaCha8Rng, n: usize, end: i64) -> Vec<i64> {
    (0..n).map(|_| rng.random_range(0..end)).collect()
}

/// `Δ[t] = y[t] − y[t − o]`, zero for the first `o` rows.
fn time_differences(values: &[f32], dims: usize, offset: usize) -> Vec<f32> {
    let t = values.len() / dims;
    let mut delta = vec![0.0f32; values.len()];
    for i in offset..t {
        for j in 0..dims {
            delta[i * dims + j] = values[i * dims + j] - values[(i - offset) * dims + j];
        }
    }
    delta
}

/// Discrete labels in sorted order, with the cumulative class counts: the reference's `Discrete`.
#[derive(Debug)]
struct DiscreteIndex {
    /// Time steps sorted by label (stable).
    sorted: Vec<i64>,
    /// `cdf[k]` = number of time steps with a label below `k`; `K + 1` entries.
    cdf: Vec<usize>,
    classes: Vec<i64>,
}

impl DiscreteIndex {
    fn new(classes: &[i64]) -> Self {
        let mut sorted: Vec<i64> = (0..classes.len() as i64).collect();
        sorted.sort_by_key(|&t| classes[t as usize]);
        let k = classes.iter().copied().max().unwrap_or(0) as usize + 1;
        let mut cdf = vec![0usize; k + 1];
        for &c in classes {
            cdf[c as usize + 1] += 1;
        }
        for i in 1..=k {
            cdf[i] += cdf[i - 1];
        }
        DiscreteIndex { sorted, cdf, classes: classes.to_vec() }
    }

    /// A uniformly random time step with label `class`.
    fn same_class(&self, rng: &mut ChaCha8Rng, class: i64) -> i64 {
        let (lo, hi) = (self.cdf[class as usize], self.cdf[class as usize + 1]);
        self.sorted[rng.random_range(lo..hi)]
    }

    /// Class-balanced draws (the reference's `DiscreteUniform`): a uniform position on `[0, T)` mapped
    /// through the piecewise-linear inverse of the class CDF, so every label value in `0..=max` gets the
    /// same share; an absent value passes its share to the next present one.
    fn balanced(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<i64> {
        let t = self.sorted.len() as f64;
        let k = (self.cdf.len() - 1) as f64;
        (0..n)
            .map(|_| {
                let u: f64 = rng.random_range(0.0..t);
                // np.interp over x = linspace(0, T, K + 1), y = cdf.
                let x = u / t * k;
                let i = (x.floor() as usize).min(self.cdf.len() - 2);
                let frac = x - i as f64;
                let y = self.cdf[i] as f64 + frac * (self.cdf[i + 1] as f64 - self.cdf[i] as f64);
                self.sorted[(y as usize).min(self.sorted.len() - 1)]
            })
            .collect()
    }
}

/// Where positives come from.
#[derive(Debug)]
enum Positives {
    Time { offset: i64 },
    TimeDelta { values: Vec<f32>, dims: usize, delta: Vec<f32>, index: LabelIndex },
    Delta { values: Vec<f32>, dims: usize, std: f32, index: LabelIndex },
    Discrete(DiscreteIndex),
    Mixed { values: Vec<f32>, dims: usize, delta: Vec<f32>, discrete: DiscreteIndex, per_class: Vec<Option<LabelIndex>> },
}

impl Positives {
    fn sample(&self, rng: &mut ChaCha8Rng, reference: &[i64]) -> Vec<i64> {
        match self {
            Positives::Time { offset } => reference.iter().map(|r| r + offset).collect(),
            Positives::TimeDelta { values, dims, delta, index } => {
                let mut query = vec![0.0f32; *dims];
                reference
                    .iter()
                    .map(|&r| {
                        shift_by_random_delta(rng, values, *dims, delta, r as usize, &mut query);
                        index.nearest(&query)
                    })
                    .collect()
            }
            Positives::Delta { values, dims, std, index } => {
                let normal = Normal::new(0.0f32, *std).expect("std checked positive");
                let mut query = vec![0.0f32; *dims];
                reference
                    .iter()
                    .map(|&r| {
                        for (j, q) in query.iter_mut().enumerate() {
                            *q = values[r as usize * dims + j] + normal.sample(rng);
                        }
                        index.nearest(&query)
                    })
                    .collect()
            }
            Positives::Discrete(index) => {
                reference.iter().map(|&r| index.same_class(rng, index.classes[r as usize])).collect()
            }
            Positives::Mixed { values, dims, delta, discrete, per_class } => {
                let mut query = vec![0.0f32; *dims];
                reference
                    .iter()
                    .map(|&r| {
                        shift_by_random_delta(rng, values, *dims, delta, r as usize, &mut query);
                        let class = discrete.classes[r as usize] as usize;
                        per_class[class].as_ref().expect("the reference's class is present").nearest(&query)
                    })
                    .collect()
            }
        }
    }
}

/// `query = values[r] + delta[k]` for a step `k` drawn uniformly (the reference's random shift of a
/// reference sample's label by an empirical delta).
fn shift_by_random_delta(rng: &mut ChaCha8Rng, values: &[f32], dims: usize, delta: &[f32], r: usize, query: &mut [f32]) {
    let timesteps = (values.len() / dims) as i64;
    let k = rng.random_range(0..timesteps) as usize;
    for j in 0..dims {
        query[j] = values[r * dims + j] + delta[k * dims + j];
    }
}

/// What a sampler was built for (the reference's loader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderKind {
    /// `ContinuousDataLoader` (also time-contrastive learning without labels).
    Continuous,
    /// `DiscreteDataLoader` with the empirical prior.
    Discrete,
    /// `MixedDataLoader`.
    Mixed,
    /// `HybridDataLoader`.
    Hybrid,
}

/// Draws batches of time indices, reproducibly from a seed.
///
/// ```
/// use cebra::train::{Conditional, Labels, Sampler};
/// let position: Vec<f32> = (0..1000).map(|t| (t as f32 * 0.01).sin()).collect();
/// let labels = Labels::continuous(position, 1);
/// let mut a = Sampler::new(1000, &labels, Conditional::TimeDelta, 1, None, false, 7).unwrap();
/// let mut b = Sampler::new(1000, &labels, Conditional::TimeDelta, 1, None, false, 7).unwrap();
/// let batch = a.mini_batch(64);
/// assert_eq!(batch, b.mini_batch(64)); // same seed, same batch
/// assert_eq!((batch.reference.len(), batch.positive.len(), batch.negative.len()), (64, 64, 64));
/// ```
#[derive(Debug)]
pub struct Sampler {
    timesteps: i64,
    kind: LoaderKind,
    /// Upper bound (exclusive) of the uniform prior.
    prior_end: i64,
    positives: Positives,
    /// Hybrid: the time positives.
    time_offset: i64,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler for a recording of `timesteps` steps, with the reference's loader selection (§ module
    /// table): no labels → time-contrastive whatever `conditional` says; discrete only → same-label
    /// positives; discrete + continuous → mixed; `hybrid` → behaviour (`conditional`) + time. `delta`
    /// is required for `Conditional::Delta`.
    pub fn new(
        timesteps: usize,
        labels: &Labels,
        conditional: Conditional,
        time_offset: usize,
        delta: Option<f64>,
        hybrid: bool,
        seed: u64,
    ) -> Result<Self> {
        labels.check(timesteps)?;
        if time_offset < 1 {
            return Err(invalid!("time_offsets must be at least 1, got {time_offset}"));
        }
        let t = timesteps as i64;
        let o = time_offset as i64;
        let needs_time_room = |what: &str| -> Result<()> {
            if o >= t {
                return Err(invalid!("{what} needs more than time_offsets = {o} time steps, the recording has {t}"));
            }
            Ok(())
        };
        let behaviour = |values: &Vec<f32>, dims: usize| -> Result<Positives> {
            Ok(match conditional {
                Conditional::Time => {
                    needs_time_room("conditional 'time'")?;
                    Positives::Time { offset: o }
                }
                Conditional::TimeDelta => Positives::TimeDelta {
                    values: values.clone(),
                    dims,
                    delta: time_differences(values, dims, time_offset.min(timesteps)),
                    index: LabelIndex::new(values, dims, None),
                },
                Conditional::Delta => {
                    let std = delta.ok_or_else(|| invalid!("conditional 'delta' needs the option 'delta' (the standard deviation of the positive's label around the reference's)"))?;
                    if !(std > 0.0 && std.is_finite()) {
                        return Err(invalid!("delta must be a positive number, got {std}"));
                    }
                    Positives::Delta { values: values.clone(), dims, std: std as f32, index: LabelIndex::new(values, dims, None) }
                }
            })
        };
        let (kind, prior_end, positives) = match (&labels.continuous, &labels.discrete, hybrid) {
            (None, None, false) => {
                needs_time_room("time-contrastive learning")?;
                (LoaderKind::Continuous, t - o, Positives::Time { offset: o })
            }
            (Some((values, dims)), None, false) => {
                let p = behaviour(values, *dims)?;
                let end = if conditional == Conditional::Time { t - o } else { t };
                (LoaderKind::Continuous, end, p)
            }
            (None, Some(classes), false) => (LoaderKind::Discrete, t, Positives::Discrete(DiscreteIndex::new(classes))),
            (Some((values, dims)), Some(classes), false) => {
                let discrete = DiscreteIndex::new(classes);
                let per_class = (0..discrete.cdf.len() - 1)
                    .map(|k| {
                        let (lo, hi) = (discrete.cdf[k], discrete.cdf[k + 1]);
                        (hi > lo).then(|| LabelIndex::new(values, *dims, Some(&discrete.sorted[lo..hi])))
                    })
                    .collect();
                let delta = time_differences(values, *dims, time_offset.min(timesteps));
                (LoaderKind::Mixed, t, Positives::Mixed { values: values.clone(), dims: *dims, delta, discrete, per_class })
            }
            (Some((values, dims)), None, true) => {
                needs_time_room("hybrid training")?;
                (LoaderKind::Hybrid, t - o, behaviour(values, *dims)?)
            }
            (_, _, true) => {
                return Err(crate::error::Error::Unsupported(
                    "hybrid training needs continuous labels and no discrete ones (as the reference)".into(),
                ))
            }
        };
        Ok(Sampler { timesteps: t, kind, prior_end, positives, time_offset: o, rng: ChaCha8Rng::seed_from_u64(seed) })
    }

    /// The loader this sampler implements.
    pub fn kind(&self) -> LoaderKind {
        self.kind
    }

    /// A mini-batch of `n` references, positives and negatives.
    pub fn mini_batch(&mut self, n: usize) -> BatchIndex {
        let (reference, negative) = match (&self.positives, self.kind) {
            (Positives::Mixed { discrete, .. }, _) => {
                let reference = discrete.balanced(&mut self.rng, n);
                let negative = discrete.balanced(&mut self.rng, n);
                (reference, negative)
            }
            _ => {
                let mut draws = uniform(&mut self.rng, 2 * n, self.prior_end);
                let negative = draws.split_off(n);
                (draws, negative)
            }
        };
        let mut positive = self.positives.sample(&mut self.rng, &reference);
        if self.kind == LoaderKind::Hybrid {
            positive.extend(reference.iter().map(|r| r + self.time_offset));
        }
        BatchIndex { reference, positive, negative }
    }

    /// The full-batch mode's indices for a model with receptive field `(left, len)` (`(0, 1)` for
    /// feed-forward models): references are every time step in `[left, T − len − 1)`, in order;
    /// negatives a random permutation of them; positives from the conditional. Errors for the loaders
    /// the reference has no full-batch mode for (discrete, mixed, hybrid), and when the recording is
    /// too short to leave a reference.
    pub fn full_batch(&mut self, left: usize, len: usize) -> Result<BatchIndex> {
        match self.kind {
            LoaderKind::Continuous => {}
            other => {
                return Err(crate::error::Error::Unsupported(format!(
                    "the full-batch mode (batch_size unset or 0) supports continuous labels or none, as the reference; {} training needs a batch_size",
                    match other {
                        LoaderKind::Discrete => "discrete-label",
                        LoaderKind::Mixed => "mixed-label",
                        _ => "hybrid",
                    }
                )))
            }
        }
        let end = self.timesteps - len as i64 - 1;
        if end <= left as i64 {
            return Err(invalid!(
                "the full-batch mode needs more than {} time steps for a receptive field of {len}, the recording has {}",
                left + len + 1,
                self.timesteps
            ));
        }
        let reference: Vec<i64> = (left as i64..end).collect();
        let mut negative = reference.clone();
        negative.shuffle(&mut self.rng);
        let positive = self.positives.sample(&mut self.rng, &reference);
        Ok(BatchIndex { reference, positive, negative })
    }
}

/// The first time step of the input window of each index: indices are clamped to `[left, T − right]`
/// (so edge samples share the first or last valid window, as the reference's `expand_index`), then
/// the window is `index − left .. index + right`.
pub fn window_starts(indices: &[i64], left: usize, right: usize, timesteps: usize) -> Vec<i64> {
    let (lo, hi) = (left as i64, timesteps as i64 - right as i64);
    indices.iter().map(|&i| i.clamp(lo, hi) - lo).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_prior_gives_every_present_class_its_share() {
        // Label 0: 900 steps, label 1: absent, label 2: 100 steps. K = 3 → each value gets 1/3; the
        // absent 1 passes its share to 2, so 2 is drawn about 2/3 of the time.
        let classes: Vec<i64> = (0..1000).map(|t| if t < 900 { 0 } else { 2 }).collect();
        let index = DiscreteIndex::new(&classes);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws = index.balanced(&mut rng, 30000);
        let twos = draws.iter().filter(|&&t| classes[t as usize] == 2).count() as f64 / 30000.0;
        assert!((twos - 2.0 / 3.0).abs() < 0.02, "{twos}");
    }

    #[test]
    fn window_starts_clamp_at_the_edges() {
        // T = 20, Offset(5, 5): index 0 → window 0..9 (as index 5), 7 → 2..11, 19 → 10..19.
        assert_eq!(window_starts(&[0, 5, 7, 19], 5, 5, 20), vec![0, 0, 2, 10]);
    }
}
