//! The per-block work of the fused InfoNCE. A block is [`BLOCK_ROWS`] reference rows held "rows in
//! lanes": every value of the similarity matrix the block touches is a vector over the block's rows
//! ([`Vector`]: four AVX-512 registers), so that the per-row maxima, sums and `Σ_j G_ij neg_j` are
//! lane-wise operations with no horizontal reductions and no gathers, and each loaded coordinate or
//! weight serves four registers. Per block:
//!
//! * pass 1 sweeps all negatives in tiles of [`TILE`] columns, computes the logits once, keeps them in
//!   the block's buffer (`m` vectors: O(m) per thread) and runs the online log-sum-exp;
//! * pass 2 re-reads the logits (no second similarity or division), forms the softmax weights
//!   `G_ij`, accumulates `Σ_j G_ij neg_j` with the block's rows in lanes, then transposes the tile's
//!   weights (columns in lanes, in registers on AVX-512) for the column sums `Σ_i G_ij ref_i`, `Σ_i G_ij`.
//!
//! The code is generic over the vector type and compiled for AVX-512 and AVX2+FMA (x86-64,
//! `#[target_feature]` versions chosen by run-time detection) and plain arrays elsewhere. All versions
//! do the same float32 operations in the same order (the register blocking only groups independent
//! sums; the lanes of the sums are spelled out; FMA where the CPU has it), so their results agree
//! exactly (tested).
use super::simd::{Plain, Vector};
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::{Scaling, Similarity};
use std::cell::RefCell;

/// Columns of the similarity matrix per tile (a multiple of [`LANES`]).
pub const TILE: usize = 64;
/// Lanes of the per-row partial sums over a tile: column `j` goes to lane `j mod LANES`, each lane
/// summed in float32 within the tile and in float64 across tiles, combined once per row at the end.
pub const LANES: usize = 8;
/// Reference rows per block: four AVX-512 vectors of float32, so that each value loaded for a column
/// (a negative's coordinate, a weight) serves four vector operations.
pub const BLOCK_ROWS: usize = 64;

/// One value per row of a block.
pub type Rows = [f32; BLOCK_ROWS];

/// Everything the kernel reads.
pub struct Layout<'a> {
    /// `(n, d)` row-major.
    pub reference: &'a [f32],
    /// `(m, d)` row-major.
    pub negative: &'a [f32],
    pub d: usize,
    pub n: usize,
    pub m: usize,
    /// `m` rounded up to a multiple of [`TILE`] (the column sums' width).
    pub m_padded: usize,
    /// `|neg_j|²` (Euclidean only).
    pub negative_sq: Vec<f32>,
    /// `|ref_i|²` (Euclidean only).
    pub reference_sq: Vec<f32>,
    pub similarity: Similarity,
    /// How the kernel forms `sim/τ` or `sim·s`.
    pub logit: LogitScale,
    /// Whether pass 2 sums the weights per row and per column (`Σ_j G_ij`, `Σ_i G_ij`: the Euclidean
    /// gradients need them).
    pub weight_sums: bool,
    /// Whether pass 2 sums `Σ_j G_ij·logit_ij` per row (the gradient with respect to `s`).
    pub weighted_logits: bool,
}

/// The float32 operation that turns a similarity into a logit, bitwise as [`Scaling::apply`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogitScale {
    /// `sim·s`; also `sim/τ` for a power-of-two `τ`, where `1/τ` is exact and so is the product's
    /// rounding (both round the same real number).
    Multiply(f32),
    /// `sim/τ` as the quotient `q = sim·r` (`r` = `1/τ` rounded) corrected once with fused
    /// multiply-adds: `q + (sim - q·τ)·r`, the correctly rounded quotient (Markstein's theorem);
    /// a division costs as much as the rest of a logit's work.
    CorrectedDivide { temperature: f32, reciprocal: f32 },
    /// `sim/τ` by division (no FMA, or `1/τ` not a normal float).
    Divide(f32),
}

impl LogitScale {
    pub fn new(scaling: Scaling, fma: bool) -> Self {
        match scaling {
            Scaling::MultiplyByInverseTemperature(s) => LogitScale::Multiply(s),
            Scaling::DivideByTemperature(t) => {
                let reciprocal = 1.0 / t;
                if !(reciprocal.is_normal() && t.is_normal()) {
                    LogitScale::Divide(t)
                } else if reciprocal.to_bits() & 0x007f_ffff == 0 {
                    LogitScale::Multiply(reciprocal)
                } else if fma {
                    LogitScale::CorrectedDivide { temperature: t, reciprocal }
                } else {
                    LogitScale::Divide(t)
                }
            }
        }
    }

    #[inline(always)]
    fn apply<V: Vector>(self, x: V) -> V {
        match self {
            // `x·1 = x`: the default temperature costs nothing.
            LogitScale::Multiply(1.0) => x,
            LogitScale::Multiply(s) => x.mul(V::splat(s)),
            LogitScale::Divide(t) => x.div(V::splat(t)),
            LogitScale::CorrectedDivide { temperature, reciprocal } => {
                let (t, r) = (V::splat(temperature), V::splat(reciprocal));
                let q = x.mul(r);
                let residual = q.neg().mul_add(t, x);
                residual.mul_add(r, q)
            }
        }
    }
}

/// `sim/τ` as [`LogitScale::CorrectedDivide`] computes it.
#[cfg(test)]
fn corrected_quotient(x: f32, temperature: f32) -> f32 {
    let mut out = [0.0; BLOCK_ROWS];
    LogitScale::CorrectedDivide { temperature, reciprocal: 1.0 / temperature }.apply(Plain::<true>::load(&[x; BLOCK_ROWS])).store(&mut out);
    out[0]
}

/// One reference row's state.
#[derive(Debug, Clone, Copy)]
pub struct RowState {
    /// The maximum of the row's logits: the reference's detached `c_i`.
    pub max: f32,
    /// `Σ_j exp(logit_ij - max)`.
    pub sum: f64,
    /// Pass 2: `Σ_j G_ij` with `G_ij = s·softmax_ij / n`.
    pub weight_sum: f64,
    /// Pass 2: `Σ_j G_ij · logit_ij` (`≈ s Σ_j G_ij·sim_ij`).
    pub weighted_logit: f64,
}

impl Default for RowState {
    fn default() -> Self {
        RowState { max: f32::NEG_INFINITY, sum: 0.0, weight_sum: 0.0, weighted_logit: 0.0 }
    }
}

/// Column sums of pass 2 over a run of blocks: `Σ_i G_ij ref_i` and `Σ_i G_ij`. Float32 summed in row
/// order, as the reference's `Gᵀ·ref` product and column sum do. They live in a caller's buffer of
/// [`ColumnSums::len`] floats, zeroed.
pub struct ColumnSums<'a> {
    /// `Σ_i G_ij ref_ik` by tile, `(m_padded / TILE, d, TILE)`: what a tile updates is contiguous,
    /// so the hardware prefetcher streams it.
    pub weighted_reference: &'a mut [f32],
    /// `(m_padded)`.
    pub weight_sum: &'a mut [f32],
}

impl<'a> ColumnSums<'a> {
    /// Floats of the buffer for `d` dimensions and `m_padded` columns.
    pub fn len(d: usize, m_padded: usize) -> usize {
        (d + 1) * m_padded
    }

    /// The sums held in `buffer` ([`ColumnSums::len`] floats).
    pub fn new(buffer: &'a mut [f32], d: usize, m_padded: usize) -> Self {
        let (weighted_reference, weight_sum) = buffer.split_at_mut(d * m_padded);
        ColumnSums { weighted_reference, weight_sum }
    }

    /// Where `Σ_i G_ij ref_ik` is in the buffer.
    pub fn weighted_reference_index(d: usize, j: usize, k: usize) -> usize {
        (j / TILE * d + k) * TILE + j % TILE
    }
}

/// Per-thread working memory of a block: its logits (`m` vectors) and its rows transposed.
pub struct Scratch {
    logits: Vec<Rows>,
    reference_t: Vec<Rows>,
    row_sums: Vec<Rows>,
}

thread_local! {
    /// Each thread's scratch, kept from one block (and one call) to the next: its logits are `m`
    /// vectors (2 MB at m = 8192), which fresh allocations would page-fault in every time.
    static THREAD_SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::empty()) };
}

impl Scratch {
    /// No buffers yet ([`Scratch::fit`] sizes them).
    const fn empty() -> Self {
        Scratch { logits: Vec::new(), reference_t: Vec::new(), row_sums: Vec::new() }
    }

    /// Runs `f` with this thread's scratch, sized for `layout`. `f` must not run parallel work
    /// (which could re-enter on this thread while the scratch is borrowed).
    pub fn with_thread_scratch<R>(layout: &Layout, f: impl FnOnce(&mut Scratch) -> R) -> R {
        THREAD_SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            scratch.fit(layout);
            f(&mut scratch)
        })
    }

    /// Sized for `layout` (the contents are overwritten before they are read); a buffer much larger
    /// than needed is given back rather than held.
    fn fit(&mut self, layout: &Layout) {
        for (buffer, len) in [(&mut self.logits, layout.m), (&mut self.reference_t, layout.d), (&mut self.row_sums, layout.d)] {
            fit_buffer(buffer, len, [0.0; BLOCK_ROWS]);
        }
    }
}

/// `buffer` resized to `len` values (contents unspecified where it already held some) for a buffer
/// kept between calls: one holding more than four times what is needed (and over 1 MB) is given back
/// rather than held.
pub fn fit_buffer<T: Clone>(buffer: &mut Vec<T>, len: usize, fill: T) {
    let floor = (256 << 10) / std::mem::size_of::<T>().max(1);
    if buffer.capacity() > 4 * len.max(floor) {
        *buffer = Vec::new();
    }
    buffer.resize(len, fill);
}

/// Where pass 2 puts a block's results.
pub struct GradientOut<'a, 'b> {
    /// `(rows, d)`: `Σ_j G_ij neg_j` for the block's rows.
    pub weighted_negative: &'a mut [f32],
    /// The column sums of the piece of blocks this block belongs to.
    pub columns: &'a mut ColumnSums<'b>,
}

/// `exp` of every lane for arguments `x ≤ 0`, branch-free: `x = k·ln2 + r` (Cody-Waite, `|r| ≤ ln2/2`),
/// `e^r` by a degree-6 polynomial in Horner form (near-minimax on that interval: 3e-9 in exact
/// arithmetic, about one float32 rounding as evaluated), times `2^k`; 12 vector operations on
/// AVX-512. Arguments are clamped at -87 so that `2^k` (`k ≥ -126`) is a normal float in every
/// version: below that the result is ~1.6e-38 instead of smaller, as the callers only need
/// `exp(x ≤ 0)` summed next to `exp(0) = 1` or as a factor of weights far below the tolerances.
#[inline(always)]
fn exp<V: Vector>(x: V) -> V {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let c = V::splat;
    // Clamped below only: every argument is a logit minus a maximum it does not exceed.
    let a = x.max(c(-87.0));
    let shifted = a.mul_add(c(LOG2E), c(ROUND));
    let k = shifted.sub(c(ROUND));
    let r = k.mul_add(c(-LN2_LO), k.mul_add(c(-LN2_HI), a));
    let mut p = c(1.381_461_3e-3);
    p = p.mul_add(r, c(8.368_71e-3));
    p = p.mul_add(r, c(4.166_839e-2));
    p = p.mul_add(r, c(1.666_652_1e-1));
    p = p.mul_add(r, c(4.999_999_4e-1));
    p = p.mul_add(r, c(1.0));
    p = p.mul_add(r, c(1.0));
    p.mul_exp2(k, shifted)
}

/// Logits of the block's rows with the negatives `j..j+C`, into `out[..C]`, and their maximum into
/// `max`: each similarity a sequential fused multiply-add over `d` (as BLAS), then for the Euclidean
/// similarity `-(|r|² + |q|² - 2 r·q)` in the reference's order of operations, then the scaling. `C`
/// columns at once so that each loaded reference vector serves `C` independent sums.
#[inline(always)]
fn logit_columns<V: Vector, const C: usize>(layout: &Layout, reference_t: &[Rows], reference_sq: V, j: usize, out: &mut [Rows], max: &mut V) {
    let d = layout.d;
    let reference_t = &reference_t[..d];
    let q: [&[f32]; C] = std::array::from_fn(|c| &layout.negative[(j + c) * d..(j + c + 1) * d]);
    let mut acc = [V::splat(0.0); C];
    for (k, r) in reference_t.iter().enumerate() {
        let r = V::load(r);
        for c in 0..C {
            acc[c] = r.mul_add(V::splat(q[c][k]), acc[c]);
        }
    }
    for (c, (out, mut sim)) in out[..C].iter_mut().zip(acc).enumerate() {
        if layout.similarity == Similarity::Euclidean {
            let qsq = V::splat(layout.negative_sq[j + c]);
            // `-(a - 2s)` is `2s - a` exactly (rounding to nearest is symmetric), and `2s` is exact,
            // so one fused multiply-subtract rounds as the reference's two operations.
            sim = sim.mul_sub(V::splat(2.0), reference_sq.add(qsq));
        }
        let logit = layout.logit.apply(sim);
        *max = logit.max(*max);
        logit.store(out);
    }
}

/// Adds the tile's per-lane float32 sums to the float64 ones.
#[inline(always)]
fn add_lanes(sums: &mut [[f64; BLOCK_ROWS]; LANES], lanes: &[Rows; LANES]) {
    for (sum, &lane) in sums.as_flattened_mut().iter_mut().zip(lanes.as_flattened()) {
        *sum += f64::from(lane);
    }
}

/// Each row's float64 lanes combined in lane order.
#[inline(always)]
fn combine_lanes(sums: &[[f64; BLOCK_ROWS]; LANES], row: usize) -> f64 {
    sums.iter().map(|s| s[row]).sum()
}

/// The block of reference rows from `row0` (its last block may be short: the missing rows are
/// zeros, and weigh nothing in pass 2), `states` its rows' states. Pass 1 always; pass 2 where `out`
/// is given.
pub fn block(layout: &Layout, row0: usize, states: &mut [RowState], scratch: &mut Scratch, out: Option<GradientOut>) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512_detected() {
            // SAFETY: the CPU has the features `block_avx512` is compiled for (checked just above).
            return unsafe { block_avx512(layout, row0, states, scratch, out) };
        }
        if avx2_detected() {
            // SAFETY: the CPU has the features `block_avx2` is compiled for (checked just above).
            return unsafe { block_avx2(layout, row0, states, scratch, out) };
        }
    }
    block_body::<Plain<{ cfg!(target_arch = "aarch64") }>>(layout, row0, states, scratch, out);
}

/// [`block`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F/VL/BW/DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn block_avx512(layout: &Layout, row0: usize, states: &mut [RowState], scratch: &mut Scratch, out: Option<GradientOut>) {
    block_body::<Avx512>(layout, row0, states, scratch, out);
}

/// [`block`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(layout: &Layout, row0: usize, states: &mut [RowState], scratch: &mut Scratch, out: Option<GradientOut>) {
    block_body::<Avx2>(layout, row0, states, scratch, out);
}

/// Whether the AVX-512 version can run (detected once, then cached by `std`).
#[cfg(target_arch = "x86_64")]
fn avx512_detected() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && avx2_detected()
}

#[cfg(target_arch = "x86_64")]
fn avx2_detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether the version [`block`] runs has fused multiply-add (which [`LogitScale::CorrectedDivide`]
/// needs to be fast).
pub fn fma_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2_detected();
    #[cfg(not(target_arch = "x86_64"))]
    return cfg!(target_arch = "aarch64");
}

#[inline(always)]
fn block_body<V: Vector>(layout: &Layout, row0: usize, states: &mut [RowState], scratch: &mut Scratch, out: Option<GradientOut>) {
    let d = layout.d;
    let rows = states.len();
    let mut reference_sq = [0.0f32; BLOCK_ROWS];
    for (b, row) in layout.reference[row0 * d..(row0 + rows) * d].chunks_exact(d).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            scratch.reference_t[k][b] = v;
        }
        if layout.similarity == Similarity::Euclidean {
            reference_sq[b] = layout.reference_sq[row0 + b];
        }
    }
    for r in scratch.reference_t.iter_mut() {
        r[rows..].fill(0.0);
    }
    let max = log_sum_exp_pass::<V>(layout, &scratch.reference_t, V::load(&reference_sq), &mut scratch.logits, states);
    if let Some(out) = out {
        let mut log_sum = [0.0f32; BLOCK_ROWS];
        for (l, state) in log_sum.iter_mut().zip(states.iter()) {
            *l = state.sum.ln() as f32;
        }
        gradient_pass::<V>(layout, row0, &max, &log_sum, states, scratch, out);
    }
}

/// Pass 1: all logits of the block into `logits`, and the online log-sum-exp. Returns the rows'
/// maxima (padding rows included).
#[inline(always)]
fn log_sum_exp_pass<V: Vector>(layout: &Layout, reference_t: &[Rows], reference_sq: V, logits: &mut [Rows], states: &mut [RowState]) -> Rows {
    let mut max = [f32::NEG_INFINITY; BLOCK_ROWS];
    let mut sums = [[0.0f64; BLOCK_ROWS]; LANES];
    for (tile_index, tile) in logits.chunks_mut(TILE).enumerate() {
        let j0 = tile_index * TILE;
        let mut t = 0;
        let mut running_max = V::splat(f32::NEG_INFINITY);
        while V::WIDE && t + 4 <= tile.len() {
            logit_columns::<V, 4>(layout, reference_t, reference_sq, j0 + t, &mut tile[t..], &mut running_max);
            t += 4;
        }
        while t < tile.len() {
            logit_columns::<V, 1>(layout, reference_t, reference_sq, j0 + t, &mut tile[t..], &mut running_max);
            t += 1;
        }
        let mut tile_max = [f32::NEG_INFINITY; BLOCK_ROWS];
        running_max.store(&mut tile_max);
        if (0..BLOCK_ROWS).any(|l| tile_max[l] > max[l]) {
            for l in 0..BLOCK_ROWS {
                if max[l] == f32::NEG_INFINITY {
                    // The first tile: nothing summed yet to rescale.
                    max[l] = tile_max[l];
                } else if tile_max[l] > max[l] {
                    // Rescale what was summed relative to the old maximum.
                    let factor = f64::from(max[l] - tile_max[l]).exp();
                    for sum in sums.iter_mut() {
                        sum[l] *= factor;
                    }
                    max[l] = tile_max[l];
                }
            }
        }
        let row_max = V::load(&max);
        let mut lanes = [V::splat(0.0); LANES];
        for chunk in tile.chunks(LANES) {
            for (lane, logit) in lanes.iter_mut().zip(chunk) {
                *lane = lane.add(exp(V::load(logit).sub(row_max)));
            }
        }
        let mut lane_values = [[0.0f32; BLOCK_ROWS]; LANES];
        for (lane, out) in lanes.iter().zip(lane_values.iter_mut()) {
            lane.store(out);
        }
        add_lanes(&mut sums, &lane_values);
    }
    for (b, state) in states.iter_mut().enumerate() {
        state.max = max[b];
        state.sum += combine_lanes(&sums, b);
    }
    max
}

/// Columns of a tile as vectors of [`BLOCK_ROWS`].
pub const TILE_VECTORS: usize = TILE / BLOCK_ROWS;

/// Pass 2, given the block's logits, maxima and `log_sum` = `ln Σ_j exp(logit_ij - max_i)`:
/// `G_ij = exp(logit_ij - max_i - log_sum_i)·(1/n)·s`, in the order of operations of the reference's
/// autograd; `Σ_j G_ij neg_j` into `out.weighted_negative`, the row sums into `states`, and
/// `Σ_i G_ij ref_i`, `Σ_i G_ij` into `out.columns`.
#[inline(always)]
fn gradient_pass<V: Vector>(
    layout: &Layout,
    row0: usize,
    max: &Rows,
    log_sum: &Rows,
    states: &mut [RowState],
    scratch: &mut Scratch,
    out: GradientOut,
) {
    let d = layout.d;
    let rows = states.len();
    let inverse_n = 1.0 / layout.n as f32;
    let inverse_t = match layout.logit {
        LogitScale::Multiply(s) => s,
        LogitScale::Divide(t) | LogitScale::CorrectedDivide { temperature: t, .. } => (1.0 / f64::from(t)) as f32,
    };
    // `(w·(1/n))·s`; one product where `1/n` is a power of two (exact, so the roundings agree).
    let scale_once = inverse_n.to_bits() & 0x007f_ffff == 0 && inverse_n.is_normal() && (inverse_n * inverse_t).is_normal();
    let (first, second) = if scale_once { (V::splat(inverse_n * inverse_t), V::splat(1.0)) } else { (V::splat(inverse_n), V::splat(inverse_t)) };
    // Padding rows weigh nothing: their weights are multiplied by 0, the others' by 1 (exact).
    let mut row_mask = [0.0f32; BLOCK_ROWS];
    row_mask[..rows].fill(1.0);
    let row_mask = V::load(&row_mask);
    let (max, log_sum) = (V::load(max), V::load(log_sum));
    let block_reference = &layout.reference[row0 * d..(row0 + rows) * d];
    let mut weight_sums = [[0.0f64; BLOCK_ROWS]; LANES];
    let mut weighted_logits = [[0.0f64; BLOCK_ROWS]; LANES];
    let row_sums = &mut scratch.row_sums;
    row_sums.iter_mut().for_each(|r| *r = [0.0; BLOCK_ROWS]);
    // The tile's weights, rows in lanes (`(TILE, BLOCK_ROWS)`) and transposed, columns in lanes.
    let mut weights = [[0.0f32; BLOCK_ROWS]; TILE];
    let mut weights_t = [[[0.0f32; BLOCK_ROWS]; TILE_VECTORS]; BLOCK_ROWS];
    for (tile_index, tile) in scratch.logits.chunks(TILE).enumerate() {
        let j0 = tile_index * TILE;
        let cols = tile.len();
        let mut weight_lanes = [V::splat(0.0); LANES];
        let mut weighted_lanes = [V::splat(0.0); LANES];
        let form = WeightForm { max, log_sum, first, second, scale_once, row_mask, masked: rows < BLOCK_ROWS };
        let lanes = (&mut weight_lanes, &mut weighted_lanes);
        // (One loop per combination of the optional sums, so that the cosine criterions with a fixed
        // temperature, which need neither, do not pay for them.)
        match (layout.weight_sums, layout.weighted_logits) {
            (false, false) => tile_weights::<V, false, false>(tile, &mut weights, &form, lanes),
            (true, false) => tile_weights::<V, true, false>(tile, &mut weights, &form, lanes),
            (false, true) => tile_weights::<V, false, true>(tile, &mut weights, &form, lanes),
            (true, true) => tile_weights::<V, true, true>(tile, &mut weights, &form, lanes),
        }
        let mut lane_values = [[0.0f32; BLOCK_ROWS]; LANES];
        for (wanted, lanes, sums) in [(layout.weight_sums, &weight_lanes, &mut weight_sums), (layout.weighted_logits, &weighted_lanes, &mut weighted_logits)] {
            if wanted {
                for (lane, out) in lanes.iter().zip(lane_values.iter_mut()) {
                    lane.store(out);
                }
                add_lanes(sums, &lane_values);
            }
        }
        weights[cols..].iter_mut().for_each(|w| *w = [0.0; BLOCK_ROWS]);

        // Σ_j G_ij neg_jk over the tile's negatives in order, with the rows in lanes; several
        // dimensions at a time so that independent sums hide the FMA latency.
        let negative = &layout.negative[j0 * d..(j0 + cols) * d];
        let weights_all = &weights;
        let weights = &weights[..cols];
        // (Register blocks of 4 vectors of 64 rows need AVX-512's 32 registers.)
        if V::WIDE {
            let mut k = 0;
            while k + 4 <= d {
                row_sums_chunk::<V, 4>(weights, negative, d, k, &mut row_sums[k..k + 4]);
                k += 4;
            }
            match d - k {
                0 => {}
                1 => row_sums_chunk::<V, 1>(weights, negative, d, k, &mut row_sums[k..]),
                2 => row_sums_chunk::<V, 2>(weights, negative, d, k, &mut row_sums[k..]),
                _ => row_sums_chunk::<V, 3>(weights, negative, d, k, &mut row_sums[k..]),
            }
        } else {
            for k in 0..d {
                row_sums_chunk::<V, 1>(weights, negative, d, k, &mut row_sums[k..k + 1]);
            }
        }

        // Column sums over the block's rows in row order (as one row at a time would add them),
        // with the columns in lanes.
        for (v, square) in weights_all.chunks_exact(BLOCK_ROWS).enumerate() {
            V::transpose(square.try_into().expect("BLOCK_ROWS vectors"), &mut weights_t, v);
        }
        let weights_t = &weights_t[..rows];
        let column_weights = &mut out.columns.weight_sum[j0..j0 + TILE];
        if layout.weight_sums {
            for (v, column) in column_weights.chunks_exact_mut(BLOCK_ROWS).enumerate() {
                let column: &mut Rows = column.try_into().expect("tile inside the layout");
                let mut acc = V::load(column);
                for w in weights_t {
                    acc = acc.add(V::load(&w[v]));
                }
                acc.store(column);
            }
        }
        let columns = &mut out.columns.weighted_reference[j0 * d..(j0 + TILE) * d];
        let mut k = 0;
        while V::WIDE && k + 4 <= d {
            column_sums_chunk::<V, 4>(weights_t, block_reference, d, k, columns);
            k += 4;
        }
        while k < d {
            column_sums_chunk::<V, 1>(weights_t, block_reference, d, k, columns);
            k += 1;
        }
    }
    for (b, state) in states.iter_mut().enumerate() {
        state.weight_sum += combine_lanes(&weight_sums, b);
        state.weighted_logit += combine_lanes(&weighted_logits, b);
    }
    for (b, out) in out.weighted_negative.chunks_exact_mut(d).enumerate() {
        for (k, v) in out.iter_mut().enumerate() {
            *v = row_sums[k][b];
        }
    }
}

/// How pass 2 turns a block's logits into weights (see [`gradient_pass`]).
struct WeightForm<V> {
    max: V,
    log_sum: V,
    first: V,
    second: V,
    /// `first` is the whole scale (`second` is 1).
    scale_once: bool,
    /// 1 for the block's rows, 0 for its padding.
    row_mask: V,
    masked: bool,
}

/// The tile's weights `G_ij` into `weights`; with `SUMS` their sums, with `WEIGHTED` the sums of
/// `G_ij·logit_ij`, each into the lanes of column `j mod LANES`.
#[inline(always)]
fn tile_weights<V: Vector, const SUMS: bool, const WEIGHTED: bool>(
    tile: &[Rows],
    weights: &mut [Rows; TILE],
    form: &WeightForm<V>,
    (weight_lanes, weighted_lanes): (&mut [V; LANES], &mut [V; LANES]),
) {
    for (chunk, weights) in tile.chunks(LANES).zip(weights.chunks_mut(LANES)) {
        for (lane, (logit, weight)) in chunk.iter().zip(weights).enumerate() {
            let logit = V::load(logit);
            let mut w = exp(logit.sub(form.max).sub(form.log_sum)).mul(form.first);
            if !form.scale_once {
                w = w.mul(form.second);
            }
            if form.masked {
                w = w.mul(form.row_mask);
            }
            if SUMS {
                weight_lanes[lane] = weight_lanes[lane].add(w);
            }
            if WEIGHTED {
                weighted_lanes[lane] = w.mul_add(logit, weighted_lanes[lane]);
            }
            w.store(weight);
        }
    }
}

/// `sums[c] += Σ_t weights[t]·neg[t][k + c]` for `c < K`, summed over `t` in order.
#[inline(always)]
fn row_sums_chunk<V: Vector, const K: usize>(weights: &[Rows], negative: &[f32], d: usize, k: usize, sums: &mut [Rows]) {
    // (Loops, not `array::from_fn`: its closure would not be compiled for the vector's features.)
    let mut acc = [V::splat(0.0); K];
    for (a, s) in acc.iter_mut().zip(sums.iter()) {
        *a = V::load(s);
    }
    for (w, q) in weights.iter().zip(negative.chunks_exact(d)) {
        let q = &q[k..k + K];
        let w = V::load(w);
        for c in 0..K {
            acc[c] = w.mul_add(V::splat(q[c]), acc[c]);
        }
    }
    for (a, out) in acc.iter().zip(sums) {
        a.store(out);
    }
}

/// `columns[k + c][..] += Σ_b weights_t[b]·reference[b][k + c]` for `c < K` (`columns`: the tile's
/// `(d, TILE)` sums), over the rows `b` in order.
#[inline(always)]
fn column_sums_chunk<V: Vector, const K: usize>(
    weights_t: &[[Rows; TILE_VECTORS]],
    reference: &[f32],
    d: usize,
    k: usize,
    columns: &mut [f32],
) {
    let column = |c: usize, v: usize| (k + c) * TILE + v * BLOCK_ROWS;
    // (Loops, not `array::from_fn`: its closure would not be compiled for the vector's features.)
    let mut acc = [[V::splat(0.0); TILE_VECTORS]; K];
    for (c, a) in acc.iter_mut().enumerate() {
        for (v, a) in a.iter_mut().enumerate() {
            *a = V::load(columns[column(c, v)..column(c, v) + BLOCK_ROWS].try_into().expect("tile inside the layout"));
        }
    }
    for (w, r) in weights_t.iter().zip(reference.chunks_exact(d)) {
        let r = &r[k..k + K];
        let mut wv = [V::splat(0.0); TILE_VECTORS];
        for (wv, w) in wv.iter_mut().zip(w) {
            *wv = V::load(w);
        }
        let w = wv;
        for c in 0..K {
            let rc = V::splat(r[c]);
            for v in 0..TILE_VECTORS {
                acc[c][v] = w[v].mul_add(rc, acc[c][v]);
            }
        }
    }
    for (c, a) in acc.iter().enumerate() {
        for (v, a) in a.iter().enumerate() {
            a.store((&mut columns[column(c, v)..column(c, v) + BLOCK_ROWS]).try_into().expect("tile inside the layout"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-0.5, 0.5).
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// One block's both passes, by one of the kernel's versions.
    type BlockRun = dyn Fn(&Layout, usize, &mut [RowState], &mut Scratch, GradientOut);

    /// Everything the blocks of one layout produce, with `run` doing one block.
    fn all_blocks(layout: &Layout, run: &BlockRun) -> (Vec<RowState>, Vec<f32>, Vec<f32>) {
        let mut states = vec![RowState::default(); layout.n];
        let mut weighted = vec![0.0f32; layout.n * layout.d];
        let mut buffer = vec![0.0f32; ColumnSums::len(layout.d, layout.m_padded)];
        let mut columns = ColumnSums::new(&mut buffer, layout.d, layout.m_padded);
        let mut scratch = Scratch::empty();
        scratch.fit(layout);
        for (block, (states, weighted_negative)) in
            states.chunks_mut(BLOCK_ROWS).zip(weighted.chunks_mut(BLOCK_ROWS * layout.d)).enumerate()
        {
            run(layout, block * BLOCK_ROWS, states, &mut scratch, GradientOut { weighted_negative, columns: &mut columns });
        }
        (states, weighted, buffer)
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The AVX-512 and AVX2 versions give bit for bit the results of the plain one with FMA
    /// (whichever of them this CPU has), over short blocks and tiles, all scalings and both
    /// similarities.
    #[test]
    fn every_vector_type_gives_the_same_bits() {
        let (n, m) = (70, 150);
        let mut compared = 0;
        for d in [1, 3, 9, 33] {
            let (reference, negative) = (values(n * d, d as u64), values(m * d, 100 + d as u64));
            for similarity in [Similarity::Dot, Similarity::Euclidean] {
                for logit in [LogitScale::Multiply(1.0), LogitScale::Multiply(2.5), LogitScale::new(Scaling::DivideByTemperature(0.3), true), LogitScale::Divide(0.3)] {
                    let squares = |x: &[f32]| x.chunks_exact(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
                    let layout = Layout {
                        reference: &reference,
                        negative: &negative,
                        d,
                        n,
                        m,
                        m_padded: m.div_ceil(TILE) * TILE,
                        negative_sq: squares(&negative),
                        reference_sq: squares(&reference),
                        similarity,
                        logit,
                        weight_sums: true,
                        weighted_logits: true,
                    };
                    let plain = all_blocks(&layout, &|l, r, s, sc, o| block_body::<Plain<true>>(l, r, s, sc, Some(o)));
                    // Without the optional sums: the same gradient terms.
                    let lean = Layout { weight_sums: false, weighted_logits: false, negative_sq: layout.negative_sq.clone(), reference_sq: layout.reference_sq.clone(), ..layout };
                    let lean = all_blocks(&lean, &|l, r, s, sc, o| block_body::<Plain<true>>(l, r, s, sc, Some(o)));
                    let sums = d * layout.m_padded;
                    assert_eq!((bits(&lean.1), bits(&lean.2[..sums])), (bits(&plain.1), bits(&plain.2[..sums])), "d={d} {similarity:?} {logit:?}: lean pass 2");
                    assert!(lean.0.iter().all(|s| s.weight_sum == 0.0 && s.weighted_logit == 0.0));
                    let mut others: Vec<(&str, _)> = Vec::new();
                    #[cfg(target_arch = "x86_64")]
                    {
                        if avx2_detected() {
                            // SAFETY: AVX2 and FMA were detected just above.
                            others.push(("avx2", all_blocks(&layout, &|l, r, s, sc, o| unsafe { block_avx2(l, r, s, sc, Some(o)) })));
                        }
                        if avx512_detected() {
                            // SAFETY: AVX-512 was detected just above.
                            others.push(("avx512", all_blocks(&layout, &|l, r, s, sc, o| unsafe { block_avx512(l, r, s, sc, Some(o)) })));
                        }
                    }
                    for (name, (states, weighted, columns)) in &others {
                        let case = format!("{name} d={d} {similarity:?} {logit:?}");
                        for (a, b) in states.iter().zip(&plain.0) {
                            assert_eq!(
                                (a.max.to_bits(), a.sum.to_bits(), a.weight_sum.to_bits(), a.weighted_logit.to_bits()),
                                (b.max.to_bits(), b.sum.to_bits(), b.weight_sum.to_bits(), b.weighted_logit.to_bits()),
                                "{case}: row state"
                            );
                        }
                        assert_eq!(bits(weighted), bits(&plain.1), "{case}: Σ G·neg");
                        assert_eq!(bits(columns), bits(&plain.2), "{case}: Σ G·ref and Σ G");
                        compared += 1;
                    }
                    // The weights of each row sum to s/n (here 1/n·s, n = 70).
                    let s = match logit {
                        LogitScale::Multiply(s) => f64::from(s),
                        LogitScale::Divide(t) | LogitScale::CorrectedDivide { temperature: t, .. } => 1.0 / f64::from(t),
                    };
                    for state in &plain.0 {
                        assert!((state.weight_sum - s / n as f64).abs() < 1e-6 * s, "d={d}: weight sum {}", state.weight_sum);
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if avx2_detected() {
            assert!(compared > 0);
        }
    }

    /// `exp` is within 1.5e-7 (relative) of the exact value over the callers' whole range, and 1 at
    /// 0; below the clamp it is the clamp's value.
    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        let xs: Vec<f32> = (0..2_000_000).map(|i| -87.0 * i as f32 / 2_000_000.0).chain([0.0, -1e-30, -0.5, -87.0]).collect();
        for chunk in xs.chunks(BLOCK_ROWS) {
            let mut x = [0.0f32; BLOCK_ROWS];
            x[..chunk.len()].copy_from_slice(chunk);
            let mut y = [0.0f32; BLOCK_ROWS];
            exp(Plain::<true>::load(&x)).store(&mut y);
            for (&x, &y) in x.iter().zip(&y) {
                let exact = f64::from(x).exp();
                worst = worst.max((f64::from(y) - exact).abs() / exact);
            }
        }
        assert!(worst < 1.5e-7, "worst relative error {worst:e}");
        let mut y = [0.0f32; BLOCK_ROWS];
        exp(Plain::<true>::splat(0.0)).store(&mut y);
        assert_eq!(y[0], 1.0);
        exp(Plain::<true>::splat(-1000.0)).store(&mut y);
        assert!((f64::from(y[0]) / (-87.0f64).exp() - 1.0).abs() < 1.5e-7, "exp(-1000) = {}", y[0]);
    }

    /// The FMA-corrected quotient is the correctly rounded `x/τ` (compared with the division over
    /// many magnitudes and temperatures), and the scaling is chosen as documented.
    #[test]
    fn corrected_quotient_is_the_division() {
        let temperatures = [0.1f32, 0.3, 0.07, 0.001, 1.0 / 3.0, 0.7, 3.0, 1e-3 * std::f32::consts::PI, 123.456];
        for &t in &temperatures {
            for (i, x) in values(200_000, t.to_bits() as u64).into_iter().enumerate() {
                let x = x * 2f32.powi((i % 60) as i32 - 30);
                assert_eq!(corrected_quotient(x, t).to_bits(), (x / t).to_bits(), "{x} / {t}");
            }
        }
        assert_eq!(LogitScale::new(Scaling::DivideByTemperature(0.25), true), LogitScale::Multiply(4.0));
        assert_eq!(LogitScale::new(Scaling::DivideByTemperature(1.0), false), LogitScale::Multiply(1.0));
        assert!(matches!(LogitScale::new(Scaling::DivideByTemperature(0.1), true), LogitScale::CorrectedDivide { .. }));
        assert_eq!(LogitScale::new(Scaling::DivideByTemperature(0.1), false), LogitScale::Divide(0.1));
        // 1/τ overflows: divide.
        assert_eq!(LogitScale::new(Scaling::DivideByTemperature(1e-39), true), LogitScale::Divide(1e-39));
        assert_eq!(LogitScale::new(Scaling::MultiplyByInverseTemperature(0.1), true), LogitScale::Multiply(0.1));
    }
}
