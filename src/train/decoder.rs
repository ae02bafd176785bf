//! The reference's `cebra.KNNDecoder`: k-nearest-neighbour regression (float targets, mean of the
//! neighbours) or classification (integer targets, majority vote, ties to the smallest class) in the
//! embedding, with the cosine metric by default, scored with R² (`sklearn.metrics.r2_score`,
//! outputs averaged uniformly).
use crate::error::{invalid, shape_mismatch, Result};
use rayon::prelude::*;

/// Distance between embedding rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `1 − a·b / (|a||b|)` (the reference's default).
    Cosine,
    /// `|a − b|`.
    Euclidean,
}

impl Metric {
    /// Parses `cosine` or `euclidean`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "cosine" => Ok(Metric::Cosine),
            "euclidean" => Ok(Metric::Euclidean),
            other => Err(invalid!("metric must be 'cosine' or 'euclidean', got '{other}'")),
        }
    }
}

/// What the decoder predicts.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// `(rows, dims)` row-major float targets: regression.
    Continuous(Vec<f64>, usize),
    /// One class per row: classification.
    Discrete(Vec<i64>),
}

impl Targets {
    fn rows(&self) -> usize {
        match self {
            Targets::Continuous(v, d) => v.len() / d.max(&1),
            Targets::Discrete(v) => v.len(),
        }
    }

    /// `(rows, dims)` values as floats (classes as numbers), for scoring.
    fn as_matrix(&self) -> (Vec<f64>, usize) {
        match self {
            Targets::Continuous(v, d) => (v.clone(), *d),
            Targets::Discrete(v) => (v.iter().map(|&c| c as f64).collect(), 1),
        }
    }
}

/// A k-nearest-neighbour decoder.
///
/// ```
/// use cebra::train::{KnnDecoder, Metric, Targets};
/// // Embedding on a circle; the target is the angle.
/// let angles: Vec<f64> = (0..200).map(|i| i as f64 * 0.03).collect();
/// let emb: Vec<f32> = angles.iter().flat_map(|a| [a.cos() as f32, a.sin() as f32]).collect();
/// let decoder = KnnDecoder::fit(&emb, 2, Targets::Continuous(angles.clone(), 1), 3, Metric::Cosine).unwrap();
/// let r2 = decoder.score(&emb, &Targets::Continuous(angles, 1)).unwrap();
/// assert!(r2 > 0.99, "{r2}");
/// ```
#[derive(Debug, Clone)]
pub struct KnnDecoder {
    points: Vec<f32>,
    dims: usize,
    targets: Targets,
    k: usize,
    metric: Metric,
}

impl KnnDecoder {
    /// Stores the training embedding `(rows, dims)` and its targets.
    pub fn fit(embedding: &[f32], dims: usize, targets: Targets, k: usize, metric: Metric) -> Result<Self> {
        if dims == 0 || !embedding.len().is_multiple_of(dims) {
            return Err(shape_mismatch!("the embedding has {} values, not a multiple of its {dims} dimensions", embedding.len()));
        }
        let rows = embedding.len() / dims;
        if targets.rows() != rows {
            return Err(shape_mismatch!("{} targets for {rows} embedding rows: they must match", targets.rows()));
        }
        if let Targets::Continuous(v, d) = &targets
            && (*d == 0 || !v.len().is_multiple_of(*d))
        {
            return Err(shape_mismatch!("{} target values are not rows of {d}", v.len()));
        }
        if k == 0 || k > rows {
            return Err(invalid!("n_neighbors must be in 1..={rows} (the training rows), got {k}"));
        }
        if embedding.iter().any(|v| !v.is_finite()) {
            return Err(invalid!("the embedding must be finite"));
        }
        Ok(KnnDecoder { points: embedding.to_vec(), dims, targets, k, metric })
    }

    fn distance(&self, a: &[f32], b: &[f32]) -> f64 {
        match self.metric {
            Metric::Cosine => {
                let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (*x as f64, *y as f64);
                    ab += x * y;
                    aa += x * x;
                    bb += y * y;
                }
                // sklearn: a zero vector has cosine distance 1 to everything.
                let norm = aa.sqrt() * bb.sqrt();
                if norm == 0.0 { 1.0 } else { 1.0 - ab / norm }
            }
            Metric::Euclidean => a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt(),
        }
    }

    /// The `k` nearest training rows of `query` (stable: equal distances keep training order).
    fn neighbours(&self, query: &[f32]) -> Vec<usize> {
        let mut d: Vec<(f64, usize)> =
            self.points.chunks_exact(self.dims).enumerate().map(|(i, p)| (self.distance(query, p), i)).collect();
        d.select_nth_unstable_by(self.k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        d.truncate(self.k);
        d.into_iter().map(|(_, i)| i).collect()
    }

    /// Predictions for the rows of `embedding` (`(rows, dims)`).
    pub fn predict(&self, embedding: &[f32]) -> Result<Targets> {
        if !embedding.len().is_multiple_of(self.dims) {
            return Err(shape_mismatch!("the embedding has {} values, not rows of {}", embedding.len(), self.dims));
        }
        let rows: Vec<&[f32]> = embedding.chunks_exact(self.dims).collect();
        Ok(match &self.targets {
            Targets::Continuous(values, d) => {
                let d = *d;
                let predicted: Vec<Vec<f64>> = rows
                    .par_iter()
                    .map(|q| {
                        let mut mean = vec![0f64; d];
                        for i in self.neighbours(q) {
                            for j in 0..d {
                                mean[j] += values[i * d + j];
                            }
                        }
                        mean.iter().map(|m| m / self.k as f64).collect()
                    })
                    .collect();
                Targets::Continuous(predicted.concat(), d)
            }
            Targets::Discrete(classes) => Targets::Discrete(
                rows.par_iter()
                    .map(|q| {
                        let mut votes: Vec<i64> = self.neighbours(q).into_iter().map(|i| classes[i]).collect();
                        votes.sort_unstable();
                        // The most frequent class; ties go to the smallest (sklearn's mode).
                        let mut best = (0usize, votes[0]);
                        let mut i = 0;
                        while i < votes.len() {
                            let j = votes[i..].iter().take_while(|&&v| v == votes[i]).count();
                            if j > best.0 {
                                best = (j, votes[i]);
                            }
                            i += j;
                        }
                        best.1
                    })
                    .collect(),
            ),
        })
    }

    /// R² of the predictions for `embedding` against `truth` (the reference's `Decoder.score`).
    pub fn score(&self, embedding: &[f32], truth: &Targets) -> Result<f64> {
        let predicted = self.predict(embedding)?;
        r2_score(truth, &predicted)
    }
}

/// `sklearn.metrics.r2_score(truth, predicted)` with uniformly averaged outputs: per output
/// `1 − SS_res / SS_tot`; a constant truth scores 1 when predicted exactly, else 0.
///
/// ```
/// use cebra::train::{r2_score, Targets};
/// let t = Targets::Continuous(vec![1.0, 2.0, 3.0, 4.0], 1);
/// let p = Targets::Continuous(vec![1.0, 2.0, 3.0, 5.0], 1);
/// assert!((r2_score(&t, &p).unwrap() - 0.8).abs() < 1e-12);
/// ```
pub fn r2_score(truth: &Targets, predicted: &Targets) -> Result<f64> {
    let (t, d) = truth.as_matrix();
    let (p, dp) = predicted.as_matrix();
    if d != dp || t.len() != p.len() {
        return Err(shape_mismatch!("R²: {} x {d} targets against {} x {dp} predictions", t.len() / d.max(1), p.len() / dp.max(1)));
    }
    let rows = t.len() / d;
    if rows < 2 {
        return Err(invalid!("R² needs at least 2 samples, got {rows}"));
    }
    let mut total = 0.0;
    for j in 0..d {
        let mean = (0..rows).map(|i| t[i * d + j]).sum::<f64>() / rows as f64;
        let ss_tot: f64 = (0..rows).map(|i| (t[i * d + j] - mean).powi(2)).sum();
        let ss_res: f64 = (0..rows).map(|i| (t[i * d + j] - p[i * d + j]).powi(2)).sum();
        total += if ss_tot == 0.0 {
            if ss_res == 0.0 { 1.0 } else { 0.0 }
        } else {
            1.0 - ss_res / ss_tot
        };
    }
    Ok(total / d as f64)
}
