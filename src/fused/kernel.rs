//! The per-row-block work of the fused InfoNCE: similarity tiles, the online log-sum-exp (pass 1) and
//! the softmax-weighted gradient sums (pass 2). Plain loops over fixed-size arrays, written so that the
//! compiler vectorises them; they are compiled for AVX-512 (x86-64, a `#[target_feature]` version
//! chosen by run-time detection) and, through `multiversion`, for AVX2+FMA (x86-64), NEON (AArch64) and
//! the baseline. The AVX-512 and AVX2 versions do the same float32 operations in the same order (the
//! lanes of the sums are spelled out, FMA in both), so their results are identical.
use super::{Scaling, Similarity};
use multiversion::multiversion;
use multiversion::target::target_cfg_f;

/// Columns of the similarity matrix per tile (a multiple of [`LANES`]).
pub const TILE: usize = 64;
/// Lanes of the per-row partial maxima and sums: one AVX2 vector of float32. The sums stay per lane
/// (in float64) across all tiles and are combined once per row at the end.
pub const LANES: usize = 8;
/// Reference rows per block of pass 2: its sums over negatives run with the block's rows in vector
/// lanes, and its column sums keep a tile's partial sums in registers across the block's rows.
pub const ROW_BLOCK: usize = 16;
/// Reference rows per rayon task: each tile of negatives (and, in pass 2, its column sums) is used by
/// this many rows while it sits in L1, instead of sweeping the whole `(d, m)` arrays once per
/// [`ROW_BLOCK`]. Small enough that a 512-row batch still gives each of a few threads work.
pub const TASK_ROWS: usize = 128;

/// Everything the kernel reads, laid out for it: negatives transposed and zero-padded to a whole
/// number of tiles, squared norms precomputed for the Euclidean similarity.
pub struct Layout<'a> {
    pub reference: &'a [f32],
    pub d: usize,
    pub n: usize,
    pub m: usize,
    /// `m` rounded up to a multiple of [`TILE`].
    pub m_padded: usize,
    /// `(d, m_padded)`: column `j` is negative `j`, zero beyond `m`.
    pub negative_t: Vec<f32>,
    /// `|neg_j|²` (Euclidean only; zero beyond `m`).
    pub negative_sq: Vec<f32>,
    /// `|ref_i|²` (Euclidean only).
    pub reference_sq: Vec<f32>,
    pub similarity: Similarity,
    pub scaling: Scaling,
}

/// One reference row's running state.
#[derive(Debug, Clone, Copy)]
pub struct RowState {
    /// Running (finally the true) maximum of the row's logits: the reference's detached `c_i`.
    pub max: f32,
    /// `Σ_j exp(logit_ij - max)`.
    pub sum: f64,
    /// Pass 2: `Σ_j G_ij` with `G_ij = s·softmax_ij / n`.
    pub weight_sum: f64,
    /// Pass 2: `Σ_j G_ij · sim_ij`.
    pub weighted_similarity: f64,
}

impl Default for RowState {
    fn default() -> Self {
        RowState { max: f32::NEG_INFINITY, sum: 0.0, weight_sum: 0.0, weighted_similarity: 0.0 }
    }
}

/// Per-thread column sums of pass 2: `Σ_i G_ij ref_i` (transposed, `(d, m_padded)`) and `Σ_i G_ij`.
/// Float32 summed in row order, as the reference's `Gᵀ·ref` product and column sum do.
pub struct ColumnSums {
    pub weighted_reference_t: Vec<f32>,
    pub weight_sum: Vec<f32>,
}

impl ColumnSums {
    pub fn new(d: usize, m_padded: usize) -> Self {
        ColumnSums { weighted_reference_t: vec![0.0; d * m_padded], weight_sum: vec![0.0; m_padded] }
    }

    pub fn add(mut self, other: ColumnSums) -> Self {
        for (a, b) in self.weighted_reference_t.iter_mut().zip(&other.weighted_reference_t) {
            *a += b;
        }
        for (a, b) in self.weight_sum.iter_mut().zip(&other.weight_sum) {
            *a += b;
        }
        self
    }
}

#[inline(always)]
fn mul_add(fma: bool, a: f32, b: f32, c: f32) -> f32 {
    // Without hardware FMA, `mul_add` would be a libm call; the separate form vectorises.
    if fma { a.mul_add(b, c) } else { a * b + c }
}

/// `exp` of every element (Cephes-style: round to `k·ln2 + r`, degree-6 polynomial, scale by `2^k`),
/// branch-free so that it vectorises; relative error ~1e-7. Arguments below -87.3 give 0 or a value
/// under 1e-37, as the callers only need `exp(x ≤ 0)` summed next to `exp(0) = 1`.
#[inline(always)]
fn exp_tile(fma: bool, x: &mut [f32; TILE]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4B40_0000;
    for v in x.iter_mut() {
        let a = v.clamp(-88.0, 88.0);
        let shifted = mul_add(fma, a, LOG2E, ROUND);
        let k = shifted - ROUND;
        let r = mul_add(fma, k, -LN2_LO, mul_add(fma, k, -LN2_HI, a));
        let mut p = 1.987_569_1e-4;
        p = mul_add(fma, p, r, 1.398_199_9e-3);
        p = mul_add(fma, p, r, 8.333_452e-3);
        p = mul_add(fma, p, r, 4.166_579_6e-2);
        p = mul_add(fma, p, r, 1.666_666_5e-1);
        p = mul_add(fma, p, r, 0.5);
        let y = mul_add(fma, p * r, r, r) + 1.0;
        // 2^k from the integer in `shifted`'s mantissa; k = -127 gives the bit pattern of 0.
        let exponent = shifted.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(127) << 23;
        *v = y * f32::from_bits(exponent);
    }
}

/// Reference rows whose similarity tiles are computed together where there are registers for
/// them (AVX-512: 4 rows × 4 vectors of accumulators), so that each loaded negative serves 4 rows.
pub const SIM_ROWS: usize = 4;

/// The raw similarities of reference rows `rows` (at most [`SIM_ROWS`]) with negatives
/// `j0..j0+TILE`, into `out[..rows.len()]`; `wide`: compute [`SIM_ROWS`] rows at once (for d ≥ 16).
#[inline(always)]
fn similarity_tiles(
    fma: bool,
    wide: bool,
    layout: &Layout,
    rows: std::ops::Range<usize>,
    j0: usize,
    out: &mut [[f32; TILE]; SIM_ROWS],
) {
    // For short rows (small d) the per-row work after the dot products dominates and one row at a
    // time measured as fast.
    if wide && layout.d >= 16 && rows.len() == SIM_ROWS {
        similarity_rows::<SIM_ROWS>(fma, layout, rows.start, j0, out);
    } else {
        for (i, row) in rows.enumerate() {
            similarity_rows::<1>(fma, layout, row, j0, &mut out[i..i + 1]);
        }
    }
}

/// `R` rows from `row0`: each a sequential fused multiply-add over `d` (as BLAS), then for the
/// Euclidean similarity `-(|r|² + |q|² - 2 r·q)` in the reference's order of operations.
#[inline(always)]
fn similarity_rows<const R: usize>(fma: bool, layout: &Layout, row0: usize, j0: usize, out: &mut [[f32; TILE]]) {
    let d = layout.d;
    let r: [&[f32]; R] = std::array::from_fn(|i| &layout.reference[(row0 + i) * d..(row0 + i + 1) * d]);
    let mut acc = [[0.0f32; TILE]; R];
    for (k, negative_row) in layout.negative_t.chunks_exact(layout.m_padded).enumerate() {
        let q: &[f32; TILE] = negative_row[j0..j0 + TILE].try_into().expect("tile inside the layout");
        for i in 0..R {
            let rk = r[i][k];
            for t in 0..TILE {
                acc[i][t] = mul_add(fma, rk, q[t], acc[i][t]);
            }
        }
    }
    for (i, (out, mut sim)) in out.iter_mut().zip(acc).enumerate() {
        if layout.similarity == Similarity::Euclidean {
            let rsq = layout.reference_sq[row0 + i];
            let qsq: &[f32; TILE] = layout.negative_sq[j0..j0 + TILE].try_into().expect("tile inside the layout");
            for t in 0..TILE {
                sim[t] = -((rsq + qsq[t]) - sim[t] * 2.0);
            }
        }
        *out = sim;
    }
}

/// Logits `sim/τ` or `s·sim` of a tile; padding columns (beyond `m`) become -inf so they weigh
/// nothing.
#[inline(always)]
fn logits(layout: &Layout, j0: usize, sim: &[f32; TILE], out: &mut [f32; TILE]) {
    match layout.scaling {
        Scaling::DivideByTemperature(t) => {
            for i in 0..TILE {
                out[i] = sim[i] / t;
            }
        }
        Scaling::MultiplyByInverseTemperature(s) => {
            for i in 0..TILE {
                out[i] = sim[i] * s;
            }
        }
    }
    if j0 + TILE > layout.m {
        for v in out.iter_mut().skip(layout.m - j0) {
            *v = f32::NEG_INFINITY;
        }
    }
}

/// Adds the tile's values into per-lane float64 sums (float32 within the tile).
#[inline(always)]
fn add_lanes(sums: &mut [f64; LANES], x: &[f32; TILE]) {
    let mut lanes = [0.0f32; LANES];
    for chunk in x.chunks_exact(LANES) {
        for l in 0..LANES {
            lanes[l] += chunk[l];
        }
    }
    for l in 0..LANES {
        sums[l] += f64::from(lanes[l]);
    }
}

/// Combines the lanes pairwise, halving each step: a short dependency chain, in vector registers.
#[inline(always)]
fn tree(mut lanes: [f32; LANES], combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] = combine(lanes[l], lanes[l + width]);
        }
        width /= 2;
    }
    lanes[0]
}

#[inline(always)]
fn lane_max(x: &[f32; TILE]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for chunk in x.chunks_exact(LANES) {
        for l in 0..LANES {
            lanes[l] = lanes[l].max(chunk[l]);
        }
    }
    tree(lanes, f32::max)
}

/// Pass 1 over all tiles for the rows `rows` (whose states are `states`): the online log-sum-exp.
pub fn log_sum_exp_pass(layout: &Layout, rows: std::ops::Range<usize>, states: &mut [RowState]) {
    #[cfg(target_arch = "x86_64")]
    if avx512_detected() {
        // SAFETY: the CPU has the features `log_sum_exp_avx512` is compiled for (checked just above).
        return unsafe { log_sum_exp_avx512(layout, rows, states) };
    }
    log_sum_exp_multiversion(layout, rows, states);
}

/// [`log_sum_exp_pass`] compiled for AVX-512 (a tile is four 16-lane registers).
///
/// # Safety
/// The CPU must support AVX-512F/VL/BW/DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn log_sum_exp_avx512(layout: &Layout, rows: std::ops::Range<usize>, states: &mut [RowState]) {
    log_sum_exp_body(true, true, layout, rows, states);
}

#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn log_sum_exp_multiversion(layout: &Layout, rows: std::ops::Range<usize>, states: &mut [RowState]) {
    log_sum_exp_body(target_cfg_f!(target_feature = "fma"), false, layout, rows, states);
}

/// Whether the AVX-512 versions of the passes can run (detected once, then cached by `std`).
#[cfg(target_arch = "x86_64")]
fn avx512_detected() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("fma")
}

#[inline(always)]
fn log_sum_exp_body(fma: bool, wide: bool, layout: &Layout, rows: std::ops::Range<usize>, states: &mut [RowState]) {
    let mut sims = [[0.0f32; TILE]; SIM_ROWS];
    let mut logit = [0.0f32; TILE];
    let mut sums = vec![[0.0f64; LANES]; rows.len()];
    for j0 in (0..layout.m_padded).step_by(TILE) {
        for (i, ((row, state), sum)) in rows.clone().zip(states.iter_mut()).zip(sums.iter_mut()).enumerate() {
            if i % SIM_ROWS == 0 {
                similarity_tiles(fma, wide, layout, row..(row + SIM_ROWS).min(rows.end), j0, &mut sims);
            }
            logits(layout, j0, &sims[i % SIM_ROWS], &mut logit);
            let tile_max = lane_max(&logit);
            if tile_max > state.max {
                // Rescale what was summed relative to the old maximum.
                let factor = f64::from(state.max - tile_max).exp();
                for s in sum.iter_mut() {
                    *s *= factor;
                }
                state.max = tile_max;
            }
            let max = state.max;
            for v in logit.iter_mut() {
                *v -= max;
            }
            exp_tile(fma, &mut logit);
            add_lanes(sum, &logit);
        }
    }
    for (state, sum) in states.iter_mut().zip(&sums) {
        state.sum += sum.iter().sum::<f64>();
    }
}

/// Pass 2 over all tiles for the rows `rows` (a task: [`ROW_BLOCK`]s, each tile visiting all of them
/// before the next tile), given their final `max` and `log_sums` =
/// `ln Σ_j exp(logit_ij - max_i)`: `G_ij = exp(logit_ij - max_i - log_sum_i)·(1/n)·s`, in the order
/// of operations of the reference's autograd; accumulates `Σ_j G_ij neg_j` into `weighted_negative`
/// (`(rows, d)`), the row sums in `states`, and `Σ_i G_ij ref_i`, `Σ_i G_ij` into `columns`.
pub fn gradient_pass(
    layout: &Layout,
    rows: std::ops::Range<usize>,
    states: &mut [RowState],
    log_sums: &[f32],
    weighted_negative: &mut [f32],
    columns: &mut ColumnSums,
) {
    #[cfg(target_arch = "x86_64")]
    if avx512_detected() {
        // SAFETY: the CPU has the features `gradient_avx512` is compiled for (checked just above).
        return unsafe { gradient_avx512(layout, rows, states, log_sums, weighted_negative, columns) };
    }
    gradient_multiversion(layout, rows, states, log_sums, weighted_negative, columns);
}

/// [`gradient_pass`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F/VL/BW/DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn gradient_avx512(
    layout: &Layout,
    rows: std::ops::Range<usize>,
    states: &mut [RowState],
    log_sums: &[f32],
    weighted_negative: &mut [f32],
    columns: &mut ColumnSums,
) {
    gradient_body(true, true, layout, rows, states, log_sums, weighted_negative, columns);
}

#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn gradient_multiversion(
    layout: &Layout,
    rows: std::ops::Range<usize>,
    states: &mut [RowState],
    log_sums: &[f32],
    weighted_negative: &mut [f32],
    columns: &mut ColumnSums,
) {
    gradient_body(target_cfg_f!(target_feature = "fma"), false, layout, rows, states, log_sums, weighted_negative, columns);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gradient_body(
    fma: bool,
    wide: bool,
    layout: &Layout,
    rows: std::ops::Range<usize>,
    states: &mut [RowState],
    log_sums: &[f32],
    weighted_negative: &mut [f32],
    columns: &mut ColumnSums,
) {
    let d = layout.d;
    let mp = layout.m_padded;
    let blocks = rows.len().div_ceil(ROW_BLOCK);
    // Σ_j G_ij neg_jk, per row block `(d, ROW_BLOCK)`, summed over j in order (as the reference's
    // `G·neg` product): the tile's weights are kept transposed, `(TILE, ROW_BLOCK)`, so that the sum
    // runs over rows in vector lanes.
    let mut all_row_sums = vec![[0.0f32; ROW_BLOCK]; d * blocks];
    // Per row: lanes of Σ_j G_ij and of Σ_j G_ij·sim_ij.
    let mut lane_sums = vec![[[0.0f64; LANES]; 2]; rows.len()];
    let mut weight_t = [[0.0f32; ROW_BLOCK]; TILE];
    let mut weights = [[0.0f32; TILE]; ROW_BLOCK];
    let mut sims = [[0.0f32; TILE]; SIM_ROWS];
    let inverse_n = 1.0 / layout.n as f32;
    let inverse_t = layout.scaling.inverse_temperature() as f32;
    for (j0, blk) in (0..mp).step_by(TILE).flat_map(|j0| (0..blocks).map(move |blk| (j0, blk))) {
        let first = blk * ROW_BLOCK;
        let block_rows = rows.start + first..(rows.start + first + ROW_BLOCK).min(rows.end);
        let block = block_rows.len();
        let block_reference = &layout.reference[block_rows.start * d..block_rows.end * d];
        let row_sums = &mut all_row_sums[blk * d..(blk + 1) * d];
        for (b, row) in block_rows.clone().enumerate() {
            let state = &mut states[first + b];
            if b % SIM_ROWS == 0 {
                similarity_tiles(fma, wide, layout, row..(row + SIM_ROWS).min(block_rows.end), j0, &mut sims);
            }
            let sim = &sims[b % SIM_ROWS];
            let weight = &mut weights[b];
            logits(layout, j0, sim, weight);
            let (max, log_sum) = (state.max, log_sums[first + b]);
            for v in weight.iter_mut() {
                *v = (*v - max) - log_sum;
            }
            exp_tile(fma, weight);
            for v in weight.iter_mut() {
                *v = *v * inverse_n * inverse_t;
            }
            let [weight_sum, weighted_similarity] = &mut lane_sums[first + b];
            add_lanes(weight_sum, weight);
            let mut weighted = [0.0f32; TILE];
            for t in 0..TILE {
                weighted[t] = weight[t] * sim[t];
                weight_t[t][b] = weight[t];
            }
            add_lanes(weighted_similarity, &weighted);
        }
        let weights = &weights[..block];
        // Column sums over the block's rows in row order (as one row at a time would add them), with
        // the tile's partial sums held in registers across the rows.
        let column_weights: &mut [f32; TILE] =
            (&mut columns.weight_sum[j0..j0 + TILE]).try_into().expect("tile inside the layout");
        let mut acc = *column_weights;
        for w in weights {
            for t in 0..TILE {
                acc[t] += w[t];
            }
        }
        *column_weights = acc;
        for k in 0..d {
            let start = k * mp + j0;
            let column: &mut [f32; TILE] =
                (&mut columns.weighted_reference_t[start..start + TILE]).try_into().expect("tile inside the layout");
            let mut acc = *column;
            for (w, r) in weights.iter().zip(block_reference.chunks_exact(d)) {
                let rk = r[k];
                for t in 0..TILE {
                    acc[t] = mul_add(fma, w[t], rk, acc[t]);
                }
            }
            *column = acc;
        }
        // Σ_j G_ij neg_jk over the tile's negatives in order, four dimensions at a time so that
        // independent sums hide the FMA latency.
        let mut k = 0;
        while k + 4 <= d {
            row_sums_chunk::<4>(fma, layout, j0, k, &weight_t, &mut row_sums[k..k + 4]);
            k += 4;
        }
        while k < d {
            row_sums_chunk::<1>(fma, layout, j0, k, &weight_t, &mut row_sums[k..k + 1]);
            k += 1;
        }
    }
    for (state, [weight_sum, weighted_similarity]) in states.iter_mut().zip(&lane_sums) {
        state.weight_sum += weight_sum.iter().sum::<f64>();
        state.weighted_similarity += weighted_similarity.iter().sum::<f64>();
    }
    for (i, out) in weighted_negative.chunks_exact_mut(d).enumerate() {
        let (blk, b) = (i / ROW_BLOCK, i % ROW_BLOCK);
        for (k, v) in out.iter_mut().enumerate() {
            *v = all_row_sums[blk * d + k][b];
        }
    }
}

/// `sums[c][b] += Σ_t weight_t[t][b]·neg[j0 + t][k + c]` for `c < K`, summed over `t` in order.
#[inline(always)]
fn row_sums_chunk<const K: usize>(
    fma: bool,
    layout: &Layout,
    j0: usize,
    k: usize,
    weight_t: &[[f32; ROW_BLOCK]; TILE],
    sums: &mut [[f32; ROW_BLOCK]],
) {
    let mp = layout.m_padded;
    let q: [&[f32; TILE]; K] = std::array::from_fn(|c| {
        let start = (k + c) * mp + j0;
        layout.negative_t[start..start + TILE].try_into().expect("tile inside the layout")
    });
    let mut acc: [[f32; ROW_BLOCK]; K] = std::array::from_fn(|c| sums[c]);
    for (t, w) in weight_t.iter().enumerate() {
        for c in 0..K {
            let qt = q[c][t];
            for b in 0..ROW_BLOCK {
                acc[c][b] = mul_add(fma, w[b], qt, acc[c][b]);
            }
        }
    }
    for (out, a) in sums.iter_mut().zip(acc) {
        *out = a;
    }
}
