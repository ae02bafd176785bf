//! Nearest-neighbour look-ups in label space: the positive of a continuous conditional is the time
//! step whose label is closest (squared Euclidean) to a query. The reference searches all time steps
//! by brute force for every query; a k-d tree ([`kiddo`]) answers in `O(log T)`.
//!
//! Identical label vectors are stored once, under their first time step, so exact duplicates resolve
//! to the earliest index as the reference's `argmin` does. (Distinct labels at exactly the same
//! distance may resolve differently; the reference computes the distances in float32 with its own
//! rounding, so such ties are not reproducible bit for bit anyway.)
use kiddo::immutable::float::kdtree::ImmutableKdTree;
use kiddo::SquaredEuclidean;
use std::collections::HashMap;

/// Finds, for a query label, the time step with the nearest label.
trait Search: Send + Sync {
    /// Position (in the deduplicated point list) of the nearest point.
    fn nearest(&self, query: &[f32]) -> usize;
}

/// A k-d tree over `K`-dimensional points.
struct KdTree<const K: usize> {
    tree: ImmutableKdTree<f32, u32, K, 32>,
}

impl<const K: usize> KdTree<K> {
    fn new(points: &[f32]) -> Self {
        let rows: Vec<[f32; K]> =
            points.chunks_exact(K).map(|c| std::array::from_fn(|i| c[i])).collect();
        KdTree { tree: ImmutableKdTree::new_from_slice(&rows) }
    }
}

impl<const K: usize> Search for KdTree<K> {
    fn nearest(&self, query: &[f32]) -> usize {
        let q: [f32; K] = std::array::from_fn(|i| query[i]);
        self.tree.nearest_one::<SquaredEuclidean>(&q).item as usize
    }
}

/// Linear scan, for label spaces of more dimensions than the trees are compiled for (where a k-d
/// tree stops paying off anyway).
struct Scan {
    points: Vec<f32>,
    dims: usize,
}

impl Search for Scan {
    fn nearest(&self, query: &[f32]) -> usize {
        let mut best = (f32::INFINITY, 0);
        for (i, p) in self.points.chunks_exact(self.dims).enumerate() {
            let d: f32 = p.iter().zip(query).map(|(a, b)| (a - b) * (a - b)).sum();
            if d < best.0 {
                best = (d, i);
            }
        }
        best.1
    }
}

/// Nearest-neighbour index over the labels of a set of time steps.
pub struct LabelIndex {
    /// The time step of each stored (deduplicated) point.
    time_of_point: Vec<i64>,
    search: Box<dyn Search>,
    dims: usize,
}

impl std::fmt::Debug for LabelIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelIndex").field("points", &self.time_of_point.len()).field("dims", &self.dims).finish()
    }
}

impl LabelIndex {
    /// Indexes the labels of `times` (all of them when `None`); `labels` is `(T, dims)` row-major.
    /// `times` must not be empty.
    pub fn new(labels: &[f32], dims: usize, times: Option<&[i64]>) -> Self {
        let all: Vec<i64>;
        let times = match times {
            Some(t) => t,
            None => {
                all = (0..(labels.len() / dims) as i64).collect();
                &all
            }
        };
        let mut first: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut points = Vec::new();
        let mut time_of_point = Vec::new();
        for &t in times {
            let row = &labels[t as usize * dims..(t as usize + 1) * dims];
            // -0.0 and 0.0 are the same point.
            let key: Vec<u32> = row.iter().map(|v| (v + 0.0).to_bits()).collect();
            if let std::collections::hash_map::Entry::Vacant(e) = first.entry(key) {
                e.insert(time_of_point.len());
                points.extend_from_slice(row);
                time_of_point.push(t);
            }
        }
        let search: Box<dyn Search> = match dims {
            1 => Box::new(KdTree::<1>::new(&points)),
            2 => Box::new(KdTree::<2>::new(&points)),
            3 => Box::new(KdTree::<3>::new(&points)),
            4 => Box::new(KdTree::<4>::new(&points)),
            5 => Box::new(KdTree::<5>::new(&points)),
            6 => Box::new(KdTree::<6>::new(&points)),
            7 => Box::new(KdTree::<7>::new(&points)),
            8 => Box::new(KdTree::<8>::new(&points)),
            _ => Box::new(Scan { points, dims }),
        };
        LabelIndex { time_of_point, search, dims }
    }

    /// The time step whose label is nearest to `query` (`dims` values).
    pub fn nearest(&self, query: &[f32]) -> i64 {
        debug_assert_eq!(query.len(), self.dims);
        self.time_of_point[self.search.nearest(query)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(labels: &[f32], dims: usize, q: &[f32]) -> i64 {
        Scan { points: labels.to_vec(), dims }.nearest(q) as i64
    }

    #[test]
    fn tree_matches_scan_and_duplicates_resolve_to_the_first_index() {
        for dims in [1, 2, 3, 9] {
            let t = 500;
            // A coarse grid of labels: many exact duplicates.
            let labels: Vec<f32> = (0..t * dims).map(|i| ((i * 7919 % 13) as f32) * 0.5).collect();
            let index = LabelIndex::new(&labels, dims, None);
            for k in 0..200 {
                let q: Vec<f32> = (0..dims).map(|j| ((k * 31 + j * 17) % 29) as f32 * 0.23 - 0.4).collect();
                let got = index.nearest(&q);
                let want = brute(&labels, dims, &q);
                let dist = |i: i64| -> f32 {
                    labels[i as usize * dims..(i as usize + 1) * dims].iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum()
                };
                assert_eq!(dist(got), dist(want), "dims {dims} query {q:?}");
                // The first time step holding that label vector.
                let row = &labels[got as usize * dims..(got as usize + 1) * dims];
                let first = (0..t).find(|&i| &labels[i * dims..(i + 1) * dims] == row).unwrap();
                assert_eq!(got, first as i64);
            }
        }
    }

    #[test]
    fn a_subset_index_returns_only_its_times() {
        let labels: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let even: Vec<i64> = (0..100).step_by(2).collect();
        let index = LabelIndex::new(&labels, 1, Some(&even));
        assert_eq!(index.nearest(&[51.2]), 52);
        assert_eq!(index.nearest(&[-5.0]), 0);
        assert_eq!(index.nearest(&[1000.0]), 98);
    }
}
