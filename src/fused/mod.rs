//! The fused InfoNCE: the reference's stabilised InfoNCE (see [`crate::criterions::infonce`]) over
//! cosine (dot) or Euclidean similarities, forward and analytic backward, without ever holding the
//! `n × m` similarity matrix.
//!
//! Blocks of `BLOCK_ROWS` reference rows are split over rayon's threads. For each block, pass 1
//! streams tiles of `TILE` negatives and keeps, per row, the running maximum `c_i` of the logits and
//! `Σ_j exp(logit_ij - c_i)` (an online log-sum-exp, rescaled whenever the maximum grows); the
//! maximum ends as the reference's detached `c_i`, so the corrected align/uniform terms are
//! reproduced. Pass 1 keeps the block's logits, and pass 2 reads them back to accumulate the
//! softmax-weighted sums the gradients need. The blocks are cut into fixed pieces of consecutive
//! blocks (about four per thread), each summing its column terms into its own buffer, added in piece
//! order at the end: for a given number of threads the results are the same bits whichever thread
//! ran which piece. Memory is O((n + m)·d) plus `BLOCK_ROWS·m` logits per thread and `(d + 1)·m`
//! column sums per piece.
//!
//! Rounding follows the reference's float32 operations where that decides the last digits (which
//! matters, because the gradients and the corrected align term are sums that nearly cancel): dot
//! products are sequential fused multiply-adds over `d` (as BLAS), logits are `sim/τ` (as a
//! multiplication only where that is exact, else the correctly rounded quotient) or `sim·s`, the
//! softmax weights are `exp(logit - c - lse)·(1/n)·s` (multiplied by `s = 1/τ` rather than divided by
//! `τ`: one rounding apart, well inside the fixtures' tolerance, where the logits themselves must be
//! divided exactly because `c` enters the align term), and the sums over negatives
//! (`G·neg`) and over rows (`Gᵀ·ref`, column sums) run in index order in float32. The running
//! log-sum-exp, the per-row weight sums and the Euclidean gradient assembly use float64.
//!
//! With `s` the inverse temperature, `P_i = sim(ref_i, pos_i)`, `N_ij = sim(ref_i, neg_j)`,
//! `W_ij = softmax_j(s N_ij)` and `G_ij = s W_ij / n`:
//! `∂L/∂P_i = -s/n`, `∂L/∂N_ij = G_ij`, `∂L/∂s = (1/n) Σ_i (Σ_j W_ij N_ij - P_i)`.
mod kernel;
mod simd;

use crate::error::{invalid, shape_mismatch, Result};
use kernel::{fit_buffer, ColumnSums, GradientOut, Layout, LogitScale, RowState, Scratch, BLOCK_ROWS, TILE};
use rayon::prelude::*;
use std::cell::RefCell;

/// The similarity of the InfoNCE variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Similarity {
    /// Dot product (the reference's "cosine" criterions, which expect normalised embeddings).
    Dot,
    /// Negative squared Euclidean distance, `-(|a|² + |b|² - 2 a·b)`.
    Euclidean,
}

/// Borrowed row-major float32 inputs: `reference` and `positive` `(n, d)`, `negative` `(m, d)`.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `(n, d)` reference embeddings.
    pub reference: &'a [f32],
    /// `(n, d)` positive embeddings.
    pub positive: &'a [f32],
    /// `(m, d)` negative embeddings.
    pub negative: &'a [f32],
    /// Rows of `reference` and `positive`.
    pub n: usize,
    /// Rows of `negative`.
    pub m: usize,
    /// Columns of all three.
    pub d: usize,
    /// Which similarity.
    pub similarity: Similarity,
    /// How similarities become logits.
    pub scaling: Scaling,
    /// Optional precomputed `(|ref_i|², |neg_j|²)` for the Euclidean similarity and `P_i`, so that a
    /// caller can supply them rounded exactly as its reference computes them (the tiled dot products
    /// already are: sequential fused multiply-adds, as BLAS). `None`: computed here.
    pub precomputed: Option<Precomputed<'a>>,
}

/// How similarities become logits, in the reference's float32 operation (the last bit matters at
/// small temperatures).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// `sim / τ` (the fixed-temperature criterions).
    DivideByTemperature(f32),
    /// `sim · s` (the learnable ones, `s` the clamped inverse temperature).
    MultiplyByInverseTemperature(f32),
}

impl Scaling {
    /// `x / τ` or `x · s`.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Scaling::DivideByTemperature(t) => x / t,
            Scaling::MultiplyByInverseTemperature(s) => x * s,
        }
    }

    /// `s = 1/τ`.
    pub fn inverse_temperature(self) -> f64 {
        match self {
            Scaling::DivideByTemperature(t) => 1.0 / f64::from(t),
            Scaling::MultiplyByInverseTemperature(s) => f64::from(s),
        }
    }

    fn value(self) -> f32 {
        match self {
            Scaling::DivideByTemperature(v) | Scaling::MultiplyByInverseTemperature(v) => v,
        }
    }
}

/// See [`Inputs::precomputed`].
#[derive(Debug, Clone, Copy)]
pub struct Precomputed<'a> {
    /// `(n,)` `|ref_i|²` (read for the Euclidean similarity only).
    pub reference_sq: &'a [f32],
    /// `(m,)` `|neg_j|²` (read for the Euclidean similarity only).
    pub negative_sq: &'a [f32],
    /// `(n,)` `P_i = sim(ref_i, pos_i)`.
    pub positive_similarity: &'a [f32],
}

/// The three scalars of the reference's InfoNCE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Losses {
    /// `align + uniform` (stabilised terms).
    pub loss: f64,
    /// `mean(-(pos - c)) - mean(c)`.
    pub align: f64,
    /// `mean(logsumexp(neg - c)) + mean(c)`.
    pub uniform: f64,
}

/// Per reference row: the reference's detached `c_i = max_j logit_ij` and `logsumexp_j(logit_ij - c_i)`,
/// from which a caller can form the three terms with its own reductions.
#[derive(Debug, Clone, PartialEq)]
pub struct RowTerms {
    /// `(n,)` `c_i`.
    pub max: Vec<f32>,
    /// `(n,)` `ln Σ_j exp(logit_ij - c_i)`.
    pub log_sum_exp: Vec<f32>,
}

impl RowTerms {
    fn new(states: &[RowState]) -> Self {
        RowTerms { max: states.iter().map(|s| s.max).collect(), log_sum_exp: states.iter().map(|s| s.sum.ln() as f32).collect() }
    }
}

/// Where [`forward_backward_into`] writes the gradients of `loss`.
#[derive(Debug)]
pub struct GradientsOut<'a> {
    /// `(n, d)`.
    pub reference: &'a mut [f32],
    /// `(n, d)`.
    pub positive: &'a mut [f32],
    /// `(m, d)`.
    pub negative: &'a mut [f32],
}

/// What [`forward_backward_into`] returns besides the gradients.
#[derive(Debug, Clone)]
pub struct BackwardTerms {
    /// Forward values.
    pub losses: Losses,
    /// Forward per-row terms.
    pub rows: RowTerms,
    /// `∂loss/∂s` for [`Scaling::MultiplyByInverseTemperature`] (the learnable temperatures); `None`
    /// for a fixed temperature, where it is not computed.
    pub inverse_temperature: Option<f64>,
}

/// The losses and the gradients of `loss`.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// Forward values.
    pub losses: Losses,
    /// Forward per-row terms.
    pub rows: RowTerms,
    /// `(n, d)`.
    pub reference: Vec<f32>,
    /// `(n, d)`.
    pub positive: Vec<f32>,
    /// `(m, d)`.
    pub negative: Vec<f32>,
    /// `∂loss/∂s` for [`Scaling::MultiplyByInverseTemperature`] (the learnable temperatures); `None`
    /// for a fixed temperature, where it is not computed.
    pub inverse_temperature: Option<f64>,
}

impl Inputs<'_> {
    fn check(&self) -> Result<()> {
        let (n, m, d) = (self.n, self.m, self.d);
        if n == 0 || m == 0 || d == 0 {
            return Err(invalid!("fused InfoNCE needs n, m, d >= 1, got n={n}, m={m}, d={d}"));
        }
        for (name, len, rows) in
            [("reference", self.reference.len(), n), ("positive", self.positive.len(), n), ("negative", self.negative.len(), m)]
        {
            if Some(len) != rows.checked_mul(d) {
                return Err(shape_mismatch!("fused InfoNCE: '{name}' has {len} values, expected {rows} x {d}"));
            }
        }
        if let Some(pre) = &self.precomputed {
            let euclidean = self.similarity == Similarity::Euclidean;
            for (name, len, want, needed) in [
                ("reference_sq", pre.reference_sq.len(), n, euclidean),
                ("negative_sq", pre.negative_sq.len(), m, euclidean),
                ("positive_similarity", pre.positive_similarity.len(), n, true),
            ] {
                if needed && len != want {
                    return Err(shape_mismatch!("fused InfoNCE: '{name}' has {len} values, expected {want}"));
                }
            }
        }
        let v = self.scaling.value();
        if !(v.is_finite() && v > 0.0) {
            return Err(invalid!("fused InfoNCE: the (inverse) temperature must be finite and positive, got {v}"));
        }
        Ok(())
    }

    fn layout(&self) -> Layout<'_> {
        let (m, d) = (self.m, self.d);
        let squares = |x: &[f32], given: Option<&[f32]>| -> Vec<f32> {
            match given {
                Some(v) => v.to_vec(),
                None => x.chunks_exact(d).map(|r| sum_of_products(r, r)).collect(),
            }
        };
        let euclidean = self.similarity == Similarity::Euclidean;
        let pre = self.precomputed;
        Layout {
            reference: self.reference,
            negative: self.negative,
            d,
            n: self.n,
            m,
            m_padded: m.div_ceil(TILE) * TILE,
            negative_sq: if euclidean { squares(self.negative, pre.map(|p| p.negative_sq)) } else { Vec::new() },
            reference_sq: if euclidean { squares(self.reference, pre.map(|p| p.reference_sq)) } else { Vec::new() },
            similarity: self.similarity,
            logit: LogitScale::new(self.scaling, kernel::fma_detected()),
            weight_sums: euclidean,
            weighted_logits: self.wants_temperature_gradient(),
        }
    }

    /// Whether `∂loss/∂s` is computed: for the learnable form `sim·s` only (a fixed temperature has
    /// no use for it, and it costs a multiply-add per element).
    fn wants_temperature_gradient(&self) -> bool {
        matches!(self.scaling, Scaling::MultiplyByInverseTemperature(_))
    }

    /// `P_i`, in float32 like the reference's einsum.
    fn positive_similarity(&self) -> Vec<f32> {
        if let Some(pre) = &self.precomputed {
            return pre.positive_similarity.to_vec();
        }
        let d = self.d;
        self.reference
            .chunks_exact(d)
            .zip(self.positive.chunks_exact(d))
            .map(|(r, p)| {
                let dot = sum_of_products(r, p);
                match self.similarity {
                    Similarity::Dot => dot,
                    Similarity::Euclidean => -((sum_of_products(r, r) + sum_of_products(p, p)) - dot * 2.0),
                }
            })
            .collect()
    }
}

/// `Σ a_k b_k` as libtorch's `(a*b).sum()` rounds it for short rows: each product rounded, then summed
/// in order.
fn sum_of_products(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0f32, |acc, (&x, &y)| acc + x * y)
}


fn log_sum_exp(layout: &Layout, n: usize) -> Vec<RowState> {
    let mut states = vec![RowState::default(); n];
    states.par_chunks_mut(BLOCK_ROWS).enumerate().for_each(|(block, states)| {
        Scratch::with_thread_scratch(layout, |scratch| kernel::block(layout, block * BLOCK_ROWS, states, scratch, None))
    });
    states
}

/// Blocks per piece of parallel work, for column sums of `piece_floats` floats per piece: enough
/// pieces (four per thread) to balance the load when a thread is slowed, few enough that the
/// per-piece column sums (zeroed, then added up) stay a small part of the work and of the memory
/// (256 MB in all, unless that leaves fewer pieces than threads).
fn blocks_per_piece(blocks: usize, piece_floats: usize) -> usize {
    let threads = rayon::current_num_threads();
    let pieces = (4 * threads).min((256 << 20) / (4 * piece_floats).max(1)).max(threads);
    blocks.div_ceil(pieces).max(1)
}

/// The calling thread's working memory of [`forward_backward_into`], kept from one call to the next:
/// several MB that fresh allocations would page-fault in, and the allocator hand back (a shrinking
/// heap costs every core a TLB flush), at every call.
#[derive(Default)]
struct Workspace {
    states: Vec<RowState>,
    weighted_negative: Vec<f32>,
    /// The column sums of all pieces, then their total.
    pieces: Vec<f32>,
    columns: Vec<f32>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Runs `f` with the calling thread's workspace (a nested call, from inside `f`'s parallel work, gets
/// a fresh one).
fn with_workspace<R>(f: impl FnOnce(&mut Workspace) -> R) -> R {
    let mut workspace = WORKSPACE.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    let result = f(&mut workspace);
    WORKSPACE.with(|cell| *cell.borrow_mut() = workspace);
    result
}

/// The three terms, rounded as the reference's float32 tensors are: per-row terms and the final
/// corrections in float32 (the corrected terms cancel `mean(c)` and keep its rounding), means summed
/// in float64 and rounded once (libtorch's cascade sums are about that accurate).
fn losses(inputs: &Inputs, states: &[RowState], positive_similarity: &[f32]) -> Losses {
    let n = inputs.n as f64;
    let mean = |terms: &mut dyn Iterator<Item = f32>| (terms.map(f64::from).sum::<f64>() / n) as f32;
    let align = mean(&mut states.iter().zip(positive_similarity).map(|(st, &p)| -(inputs.scaling.apply(p) - st.max)));
    let uniform = mean(&mut states.iter().map(|st| st.sum.ln() as f32));
    let max = mean(&mut states.iter().map(|st| st.max));
    Losses { loss: f64::from(align + uniform), align: f64::from(align - max), uniform: f64::from(uniform + max) }
}

/// The loss, align and uniform terms.
///
/// ```
/// use cebra::fused::{forward, Inputs, Scaling, Similarity};
/// let x = [1.0f32, 0.0, 0.0, 1.0];
/// let inputs = Inputs {
///     reference: &x, positive: &x, negative: &x, n: 2, m: 2, d: 2,
///     similarity: Similarity::Dot, scaling: Scaling::DivideByTemperature(1.0), precomputed: None,
/// };
/// let out = forward(&inputs).unwrap();
/// // Each row: -1 + log(e + 1).
/// assert!((out.loss - (-1.0 + (1.0f64.exp() + 1.0).ln())).abs() < 1e-6);
/// ```
pub fn forward(inputs: &Inputs) -> Result<Losses> {
    Ok(forward_rows(inputs)?.0)
}

/// [`forward`], with the per-row terms.
pub fn forward_rows(inputs: &Inputs) -> Result<(Losses, RowTerms)> {
    inputs.check()?;
    let layout = inputs.layout();
    let states = log_sum_exp(&layout, inputs.n);
    Ok((losses(inputs, &states, &inputs.positive_similarity()), RowTerms::new(&states)))
}

/// The losses and the analytic gradients of `loss` with respect to the three inputs and `s`.
pub fn forward_backward(inputs: &Inputs) -> Result<Gradients> {
    // (Checked first: the sizes below are then the inputs' own.)
    inputs.check()?;
    let (n, m, d) = (inputs.n, inputs.m, inputs.d);
    let (mut reference, mut positive, mut negative) = (vec![0.0f32; n * d], vec![0.0f32; n * d], vec![0.0f32; m * d]);
    let out = GradientsOut { reference: &mut reference, positive: &mut positive, negative: &mut negative };
    let BackwardTerms { losses, rows, inverse_temperature } = forward_backward_into(inputs, out)?;
    Ok(Gradients { losses, rows, reference, positive, negative, inverse_temperature })
}

/// [`forward_backward`] writing the gradients into the caller's buffers (a tensor's storage, say), so
/// that no large buffer is allocated per call.
pub fn forward_backward_into(inputs: &Inputs, out: GradientsOut) -> Result<BackwardTerms> {
    inputs.check()?;
    let (n, m, d) = (inputs.n, inputs.m, inputs.d);
    for (name, buffer, rows) in [("reference", &out.reference, n), ("positive", &out.positive, n), ("negative", &out.negative, m)] {
        if buffer.len() != rows * d {
            return Err(shape_mismatch!("the gradient buffer for '{name}' has {} values, expected {rows} x {d}", buffer.len()));
        }
    }
    with_workspace(|workspace| backward_terms(inputs, out, workspace))
}

fn backward_terms(inputs: &Inputs, out: GradientsOut, workspace: &mut Workspace) -> Result<BackwardTerms> {
    let (n, d) = (inputs.n, inputs.d);
    let layout = inputs.layout();
    let Workspace { states, weighted_negative, pieces: buffer, columns } = workspace;
    fit_buffer(states, n, RowState::default());
    states.fill(RowState::default());
    fit_buffer(weighted_negative, n * d, 0.0);
    // Each block runs both passes while its logits are at hand. The blocks are cut into fixed pieces
    // of consecutive blocks, each summing its column terms into its own part of one buffer, and the
    // parts are added in piece order: the result does not depend on which thread ran what.
    let blocks = n.div_ceil(BLOCK_ROWS);
    let piece_floats = ColumnSums::len(d, layout.m_padded);
    let per_piece = blocks_per_piece(blocks, piece_floats);
    let pieces = blocks.div_ceil(per_piece);
    fit_buffer(buffer, pieces * piece_floats, 0.0);
    fit_buffer(columns, piece_floats, 0.0);
    buffer
        .par_chunks_mut(piece_floats)
        .zip(states.par_chunks_mut(per_piece * BLOCK_ROWS))
        .zip(weighted_negative.par_chunks_mut(per_piece * BLOCK_ROWS * d))
        .enumerate()
        .for_each(|(piece, ((sums, states), weighted_negative))| {
            sums.fill(0.0);
            let mut sums = ColumnSums::new(sums, d, layout.m_padded);
            let blocks = states.chunks_mut(BLOCK_ROWS).zip(weighted_negative.chunks_mut(BLOCK_ROWS * d));
            for (b, (states, weighted_negative)) in blocks.enumerate() {
                let row0 = (piece * per_piece + b) * BLOCK_ROWS;
                let out = GradientOut { weighted_negative, columns: &mut sums };
                Scratch::with_thread_scratch(&layout, |scratch| kernel::block(&layout, row0, states, scratch, Some(out)));
            }
        });
    // Column ranges in parallel, pieces in order within each.
    const RANGE: usize = 4096;
    columns.par_chunks_mut(RANGE).enumerate().for_each(|(range, out)| {
        out.fill(0.0);
        for piece in buffer.chunks_exact(piece_floats) {
            let part = &piece[range * RANGE..range * RANGE + out.len()];
            out.iter_mut().zip(part).for_each(|(o, p)| *o += p);
        }
    });
    let columns = ColumnSums::new(columns, d, layout.m_padded);
    let states: &[RowState] = states;
    let positive_similarity = inputs.positive_similarity();
    let losses = losses(inputs, states, &positive_similarity);
    let rows = RowTerms::new(states);

    // ∂L/∂P_i = -s/n for every row, rounded as autograd does: the mean's 1/n, then the scaling.
    let g32 = inputs.scaling.apply(-(1.0 / n as f32));
    let g = f64::from(g32);
    let GradientsOut { reference: grad_ref, positive: grad_pos, negative: grad_neg } = out;
    let pairs = inputs.reference.chunks_exact(d).zip(inputs.positive.chunks_exact(d));
    for (i, (r, p)) in pairs.enumerate() {
        let wq = &weighted_negative[i * d..(i + 1) * d];
        let weight_sum = states[i].weight_sum;
        for k in 0..d {
            let (gr, gp) = match inputs.similarity {
                // Two float32 terms, as autograd adds them.
                Similarity::Dot => (wq[k] + g32 * p[k], g32 * r[k]),
                // ∂N_ij/∂r_i = 2(q_j - r_i), ∂P_i/∂r_i = 2(p_i - r_i), ∂P_i/∂p_i = 2(r_i - p_i).
                // As the reference's autograd adds them: the dot-product terms and 2·ref·∂L/∂|ref|².
                // These terms can nearly cancel: combined in float64.
                Similarity::Euclidean => {
                    let (wq, r, p) = (f64::from(wq[k]), f64::from(r[k]), f64::from(p[k]));
                    let square_grad = f64::from(-g32 - weight_sum as f32);
                    ((2.0 * wq + 2.0 * g * p + 2.0 * r * square_grad) as f32, (2.0 * g * (r - p)) as f32)
                }
            };
            grad_ref[i * d + k] = gr;
            grad_pos[i * d + k] = gp;
        }
    }
    for (j, q) in inputs.negative.chunks_exact(d).enumerate() {
        for k in 0..d {
            let wr = columns.weighted_reference[ColumnSums::weighted_reference_index(d, j, k)];
            grad_neg[j * d + k] = match inputs.similarity {
                Similarity::Dot => wr,
                // ∂N_ij/∂q_j = 2(r_i - q_j).
                Similarity::Euclidean => (2.0 * f64::from(wr) - 2.0 * f64::from(columns.weight_sum[j]) * f64::from(q[k])) as f32,
            };
        }
    }
    // Σ_j G_ij N_ij = (s/n) Σ_j W_ij N_ij, so ∂L/∂s = Σ_i Σ_j G_ij N_ij / s - mean(P), and the
    // kernel's Σ_j G_ij logit_ij is s Σ_j G_ij N_ij (to the logits' float32 rounding).
    let inverse_temperature = inputs.wants_temperature_gradient().then(|| {
        let weighted: f64 = states.iter().map(|st| st.weighted_logit).sum();
        let s = inputs.scaling.inverse_temperature();
        let positive_mean = positive_similarity.iter().map(|&p| f64::from(p)).sum::<f64>() / n as f64;
        weighted / (s * s) - positive_mean
    });
    Ok(BackwardTerms { losses, rows, inverse_temperature })
}
