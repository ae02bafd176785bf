//! Whole chunks of time at once (the transform path). Activations are channel-major: one row of
//! `ld` floats per channel, time along the row. A convolution of kernel `k` over a chunk is then one
//! matrix product, `(out, in * k) x (in * k, time)`, whose input columns are shifted views of the
//! channel rows (no im2col copy). The kernels hold a tile of 8 output channels times up to 48 time
//! steps (AVX-512; AVX2: 4 x 24) in registers: each loaded weight serves every time step of the tile
//! and each loaded input vector every channel of it, so the weights are read once per tile instead
//! of once per step. The GELU and the skip addition that follow a product are applied to each tile
//! right after it is stored, while it is in L1. The input is transposed to channel-major once per
//! chunk, and the output back.
//!
//! Tiles cover time in whole vectors: lanes past a stage's output length up to the next multiple
//! of 16 are computed too, from whatever the buffers hold there, and never read as results (every
//! lane is computed independently of the others). The buffers' rows are long enough for that (see
//! [`leading_dim`]).
use super::kernels::{self, Isa, padded_channels};
use super::plan::{Plan, Pointwise, Stage};

/// Output channels per weight panel: the channels of one tile.
pub(crate) const PANEL: usize = 8;

/// Time steps every tile is rounded up to (the widest vector).
const LANES: usize = 16;

/// How many channels ahead the kernels prefetch a tile's input row.
#[cfg(target_arch = "x86_64")]
const PREFETCH_CHANNELS: usize = 4;

/// Asks for the cache lines of one channel row of the widest tile (48 steps, unaligned, plus the
/// kernel): the tile's rows are far apart (one per channel) and read once per panel, so a later
/// channel's row is requested while this one is used.
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch_row(row: *const f32) {
    for line in 0..4 {
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(row.wrapping_add(16 * line).cast()) };
    }
}

/// Re-lays `(out, in, kernel)` row-major weights as panels of [`PANEL`] output channels: panel `p`
/// holds, for each window entry `i = c * kernel + j` in turn, the weights of channels
/// `8p..8p + 8` (zero past `out_channels`).
pub(crate) fn pack_panels(weight: &[f32], out_channels: usize, in_channels: usize, kernel: usize) -> Vec<f32> {
    let kk = in_channels * kernel;
    let mut panels = vec![0f32; padded_channels(out_channels) * kk];
    for o in 0..out_channels {
        for c in 0..in_channels {
            for j in 0..kernel {
                panels[(o / PANEL) * kk * PANEL + (c * kernel + j) * PANEL + o % PANEL] = weight[(o * in_channels + c) * kernel + j];
            }
        }
    }
    panels
}

/// A skip connection fused into a product: adds input row `t + shift` of the first `channels`
/// channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Skip {
    pub shift: usize,
    pub channels: usize,
}

/// What a product tile goes through before it is stored: GELU, the skip addition, GELU again
/// (each optional), in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Epilogue {
    pub gelu_before_skip: bool,
    pub skip: Option<Skip>,
    pub gelu_after_skip: bool,
}

/// `y[o * ldy + t] = epilogue(bias[o] + sum over c < cin, j < k of x[c * ldx + t + j] * W[o, c, j])`
/// for every `t < len` and every output channel `o < cp` (`W` as packed by [`pack_panels`]); the
/// skip reads `x` too. The sum runs in the same order for every `t`, so a recording cut into chunks
/// gives the bits of one pass. Lanes up to `len` rounded up to 16 are written too (see the module
/// documentation).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    isa: Isa, panels: &[f32], bias: &[f32], cin: usize, k: usize, cp: usize, x: &[f32], ldx: usize, len: usize, y: &mut [f32],
    ldy: usize, epilogue: Epilogue, upcoming: &[f32],
) {
    assert!(cp.is_multiple_of(PANEL) && cp > 0 && cin > 0 && k > 0, "bad product shape");
    assert!(panels.len() >= cp * cin * k && bias.len() >= cp, "weights too short");
    if len == 0 {
        return;
    }
    let span = len.next_multiple_of(LANES);
    assert!(x.len() >= (cin - 1) * ldx + span + k - 1, "input too short");
    assert!(y.len() >= (cp - 1) * ldy + span, "output too short");
    if let Some(s) = epilogue.skip {
        assert!(s.channels <= cin && s.channels <= cp, "skip wider than the product");
        assert!(s.channels == 0 || x.len() >= (s.channels - 1) * ldx + span + s.shift, "skip input too short");
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the lengths were checked above (every access below stays inside them) and
        // `Isa::Avx2Fma` is only ever created by `Isa::detect` after checking the CPU features.
        Isa::Avx2Fma => unsafe { avx2::conv(panels, bias, cin, k, cp, x, ldx, len, y, ldy, epilogue, Upcoming::new(upcoming)) },
        #[cfg(all(target_arch = "x86_64", cebra_avx512))]
        // SAFETY: as above; `Isa::Avx512` is only created after checking AVX-512F, AVX2 and FMA.
        Isa::Avx512 => unsafe { avx512::conv(panels, bias, cin, k, cp, x, ldx, len, y, ldy, epilogue, Upcoming::new(upcoming)) },
        _ => {
            // Nothing to overlap on the scalar path: the product dominates it.
            let _ = upcoming;
            conv_scalar(panels, bias, cin, k, cp, x, ldx, len, y, ldy, epilogue)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_scalar(
    panels: &[f32], bias: &[f32], cin: usize, k: usize, cp: usize, x: &[f32], ldx: usize, len: usize, y: &mut [f32], ldy: usize,
    epilogue: Epilogue,
) {
    let kk = cin * k;
    for o in 0..cp {
        let w = &panels[(o / PANEL) * kk * PANEL..][..kk * PANEL];
        let row = &mut y[o * ldy..][..len];
        row.fill(bias[o]);
        // Whole rows per weight (the compiler vectorises them); each step still sums its window
        // in channel-then-kernel order.
        for c in 0..cin {
            for j in 0..k {
                let wv = w[(c * k + j) * PANEL + o % PANEL];
                // Plain multiply-add: `mul_add` without a hardware FMA is a slow library call.
                row.iter_mut().zip(&x[c * ldx + j..][..len]).for_each(|(acc, xv)| *acc += xv * wv);
            }
        }
        let skip = epilogue.skip.filter(|s| o < s.channels).map(|s| &x[o * ldx + s.shift..][..len]);
        for (t, acc) in row.iter_mut().enumerate() {
            if epilogue.gelu_before_skip {
                *acc = kernels::gelu(*acc);
            }
            if let Some(id) = skip {
                *acc += id[t];
            }
            if epilogue.gelu_after_skip {
                *acc = kernels::gelu(*acc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
// Register-array indices read more plainly than iterator chains in these kernels.
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use super::{prefetch_row, Epilogue, Upcoming, PANEL, PREFETCH_CHANNELS};
    use crate::stream::kernels::avx2::gelu8;
    use std::arch::x86_64::*;

    /// Output channels per tile: 4 x 3 accumulators leave 4 of the 16 registers.
    const R: usize = 4;

    /// Adds one window entry to a tile: input vectors from `xi`, the panel's weights from `wi`.
    ///
    /// # Safety
    /// As the tile.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step<const V: usize>(acc: &mut [[__m256; V]; R], xi: *const f32, wi: *const f32) {
        // SAFETY: inside the tile's bounds, as the caller guarantees.
        unsafe {
            let xv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(xi.add(8 * v)));
            for r in 0..R {
                let b = _mm256_set1_ps(*wi.add(r));
                for v in 0..V {
                    acc[r][v] = _mm256_fmadd_ps(xv[v], b, acc[r][v]);
                }
            }
        }
    }

    /// Output channels `r0..r0 + 4` of one panel times `V` 8-step vectors (12 accumulators of the
    /// 16 registers at most).
    ///
    /// # Safety
    /// AVX2 and FMA available; `x` at the tile's first step of input row 0, `y` at its first step
    /// of output row `o0`, `w` and `bias` at the panel and its first channel, every access inside
    /// the slices `super::conv` checked.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const V: usize, const K: usize>(
        w: *const f32, bias: *const f32, r0: usize, cin: usize, k: usize, x: *const f32, ldx: usize, y: *mut f32, ldy: usize,
        o0: usize, epilogue: Epilogue, mut upcoming: Upcoming,
    ) {
        // SAFETY (whole body): every offset is below the bounds the caller guarantees.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; R];
            for r in 0..R {
                acc[r] = [_mm256_set1_ps(*bias.add(r)); V];
            }
            let mut wp = w.add(r0);
            if K > 0 {
                // Channel by channel, the kernel's steps unrolled.
                let mut xc = x;
                for _ in 0..cin {
                    prefetch_row(xc.wrapping_add(PREFETCH_CHANNELS * ldx));
                    upcoming.touch();
                    for j in 0..K {
                        step::<V>(&mut acc, xc.add(j), wp.add(j * PANEL));
                    }
                    xc = xc.add(ldx);
                    wp = wp.add(K * PANEL);
                }
            } else {
                // One loop over the window (channel by channel, kernel steps within), so that the
                // accumulators stay in registers.
                let (mut xc, mut j) = (x, 0);
                for _ in 0..cin * k {
                    step::<V>(&mut acc, xc.add(j), wp);
                    wp = wp.add(PANEL);
                    j += 1;
                    if j == k {
                        j = 0;
                        xc = xc.add(ldx);
                        prefetch_row(xc.wrapping_add(PREFETCH_CHANNELS * ldx));
                        upcoming.touch();
                    }
                }
            }
            for r in 0..R {
                for v in 0..V {
                    _mm256_storeu_ps(y.add(r * ldy + 8 * v), acc[r][v]);
                }
            }
            if epilogue == Epilogue::default() {
                return;
            }
            // From the stored tile (in L1): done on the registers, the epilogue's size would keep
            // the compiler from unrolling it and so from keeping the accumulators in registers.
            // A row's vectors at once: independent chains for the long GELU latency.
            for r in 0..R {
                let at = y.add(r * ldy);
                let mut vals: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(at.add(8 * v)));
                if epilogue.gelu_before_skip {
                    vals = vals.map(|v| gelu8(v));
                }
                if let Some(s) = epilogue.skip.filter(|s| o0 + r < s.channels) {
                    let id = x.add((o0 + r) * ldx + s.shift);
                    vals = std::array::from_fn(|v| _mm256_add_ps(vals[v], _mm256_loadu_ps(id.add(8 * v))));
                }
                if epilogue.gelu_after_skip {
                    vals = vals.map(|v| gelu8(v));
                }
                for v in 0..V {
                    _mm256_storeu_ps(at.add(8 * v), vals[v]);
                }
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA available; slice lengths as checked by `super::conv`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv(
        panels: &[f32], bias: &[f32], cin: usize, k: usize, cp: usize, x: &[f32], ldx: usize, len: usize, y: &mut [f32], ldy: usize,
        epilogue: Epilogue, upcoming: Upcoming,
    ) {
        let kk = cin * k;
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let tiles = (cp / 4) * len.div_ceil(3 * 8);
        let mut tile_index = 0;
        // SAFETY: o0 + 4 <= cp and t + 8V <= len rounded up to 16: inside the checked lengths.
        unsafe {
            for o0 in (0..cp).step_by(4) {
                let w = panels.as_ptr().add((o0 / PANEL) * kk * PANEL);
                let (b, r0) = (bias.as_ptr().add(o0), o0 % PANEL);
                let mut t = 0;
                while t < len {
                    let (xt, yt) = (xp.add(t), yp.add(o0 * ldy + t));
                    let v = (len - t).div_ceil(8).min(3);
                    macro_rules! run {
                        ($v:literal) => {
                            match k {
                                1 => tile::<$v, 1>(w, b, r0, cin, k, xt, ldx, yt, ldy, o0, epilogue, upcoming.share(tile_index, tiles)),
                                2 => tile::<$v, 2>(w, b, r0, cin, k, xt, ldx, yt, ldy, o0, epilogue, upcoming.share(tile_index, tiles)),
                                3 => tile::<$v, 3>(w, b, r0, cin, k, xt, ldx, yt, ldy, o0, epilogue, upcoming.share(tile_index, tiles)),
                                _ => tile::<$v, 0>(w, b, r0, cin, k, xt, ldx, yt, ldy, o0, epilogue, upcoming.share(tile_index, tiles)),
                            }
                        };
                    }
                    match v {
                        3 => run!(3),
                        2 => run!(2),
                        _ => run!(1),
                    }
                    t += 8 * v;
                    tile_index += 1;
                }
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", cebra_avx512))]
// Compiled only by Rust >= 1.89 (see build.rs), where these intrinsics are stable.
#[allow(clippy::needless_range_loop, clippy::incompatible_msrv)]
mod avx512 {
    use super::{prefetch_row, Epilogue, Upcoming, PANEL, PREFETCH_CHANNELS};
    use crate::stream::kernels::avx512::gelu16_with;
    use std::arch::x86_64::*;

    /// Adds one window entry to a tile: input vectors from `xi`, the panel's weights from `wi`.
    ///
    /// # Safety
    /// As the tile.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn step<const V: usize>(acc: &mut [[__m512; V]; PANEL], xi: *const f32, wi: *const f32) {
        // SAFETY: inside the tile's bounds, as the caller guarantees.
        unsafe {
            let xv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(xi.add(16 * v)));
            for r in 0..PANEL {
                let b = _mm512_set1_ps(*wi.add(r));
                for v in 0..V {
                    acc[r][v] = _mm512_fmadd_ps(xv[v], b, acc[r][v]);
                }
            }
        }
    }

    /// One panel (8 output channels) times `V` 16-step vectors: 24 accumulators at most, with the
    /// loaded input vectors and one broadcast weight within the 32 registers.
    ///
    /// # Safety
    /// AVX-512F available; pointers as for the AVX2 tile.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const V: usize, const K: usize, const PREFETCH: bool>(
        w: *const f32, bias: *const f32, cin: usize, k: usize, x: *const f32, ldx: usize, y: *mut f32, ldy: usize, o0: usize,
        epilogue: Epilogue, mut upcoming: Upcoming,
    ) {
        // SAFETY (whole body): every offset is below the bounds the caller guarantees.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; PANEL];
            for r in 0..PANEL {
                acc[r] = [_mm512_set1_ps(*bias.add(r)); V];
            }
            let mut wp = w;
            if K > 0 {
                // Channel by channel, the kernel's steps unrolled.
                let mut xc = x;
                for _ in 0..cin {
                    if PREFETCH {
                        prefetch_row(xc.wrapping_add(PREFETCH_CHANNELS * ldx));
                        upcoming.touch();
                    }
                    for j in 0..K {
                        step::<V>(&mut acc, xc.add(j), wp.add(j * PANEL));
                    }
                    xc = xc.add(ldx);
                    wp = wp.add(K * PANEL);
                }
            } else {
                // One loop over the window (channel by channel, kernel steps within), so that the
                // accumulators stay in registers.
                let (mut xc, mut j) = (x, 0);
                for _ in 0..cin * k {
                    step::<V>(&mut acc, xc.add(j), wp);
                    wp = wp.add(PANEL);
                    j += 1;
                    if j == k {
                        j = 0;
                        xc = xc.add(ldx);
                        if PREFETCH {
                            prefetch_row(xc.wrapping_add(PREFETCH_CHANNELS * ldx));
                            upcoming.touch();
                        }
                    }
                }
            }
            for r in 0..PANEL {
                for v in 0..V {
                    _mm512_storeu_ps(y.add(r * ldy + 16 * v), acc[r][v]);
                }
            }
            if epilogue == Epilogue::default() {
                return;
            }
            // From the stored tile (in L1): done on the registers, the epilogue's size would keep
            // the compiler from unrolling it and so from keeping the accumulators in registers.
            // A row's vectors at once: independent chains for the long GELU latency.
            for r in 0..PANEL {
                let at = y.add(r * ldy);
                let mut vals: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(at.add(16 * v)));
                if epilogue.gelu_before_skip {
                    vals = vals.map(|v| gelu16_with::<true>(v));
                }
                if let Some(s) = epilogue.skip.filter(|s| o0 + r < s.channels) {
                    let id = x.add((o0 + r) * ldx + s.shift);
                    vals = std::array::from_fn(|v| _mm512_add_ps(vals[v], _mm512_loadu_ps(id.add(16 * v))));
                }
                if epilogue.gelu_after_skip {
                    vals = vals.map(|v| gelu16_with::<true>(v));
                }
                for v in 0..V {
                    _mm512_storeu_ps(at.add(16 * v), vals[v]);
                }
            }
        }
    }

    /// # Safety
    /// AVX-512F, AVX2 and FMA available; slice lengths as checked by `super::conv`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv(
        panels: &[f32], bias: &[f32], cin: usize, k: usize, cp: usize, x: &[f32], ldx: usize, len: usize, y: &mut [f32], ldy: usize,
        epilogue: Epilogue, upcoming: Upcoming,
    ) {
        let kk = cin * k;
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let tiles = (cp / PANEL) * len.div_ceil(3 * 16);
        let mut tile_index = 0;
        // Weights and input rows in L1: no prefetching (the caller's upcoming region waits for
        // the next product that streams).
        let in_l1 = super::fits_l1(cp, cin, k, 48) && upcoming.lines == 0;
        // One tile of channels o0..o0 + 8 from step t; returns the steps it covered.
        let mut tile_at = |o0: usize, t: usize| -> usize {
            // SAFETY: o0 + 8 <= cp and t + 16V <= len rounded up to 16: inside the checked lengths.
            unsafe {
                let (w, b) = (panels.as_ptr().add((o0 / PANEL) * kk * PANEL), bias.as_ptr().add(o0));
                let (xt, yt) = (xp.add(t), yp.add(o0 * ldy + t));
                let v = (len - t).div_ceil(16).min(3);
                let share = upcoming.share(tile_index, tiles);
                macro_rules! run {
                    ($v:literal) => {
                        match (k, in_l1) {
                            (1, false) => tile::<$v, 1, true>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                            (2, false) => tile::<$v, 2, true>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                            (3, false) => tile::<$v, 3, true>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                            (1, true) => tile::<$v, 1, false>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                            (2, true) => tile::<$v, 2, false>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                            (3, true) => tile::<$v, 3, false>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                            _ => tile::<$v, 0, true>(w, b, cin, k, xt, ldx, yt, ldy, o0, epilogue, share),
                        }
                    };
                }
                match v {
                    3 => run!(3),
                    2 => run!(2),
                    _ => run!(1),
                }
                tile_index += 1;
                16 * v
            }
        };
        if in_l1 {
            // All panels and a tile's input rows stay in L1: every panel on one stretch of time.
            let mut t = 0;
            while t < len {
                let mut step = 0;
                for o0 in (0..cp).step_by(PANEL) {
                    step = tile_at(o0, t);
                }
                t += step;
            }
        } else {
            // One panel (in L1) over the whole chunk, the input streaming from L2.
            for o0 in (0..cp).step_by(PANEL) {
                let mut t = 0;
                while t < len {
                    t += tile_at(o0, t);
                }
            }
        }
    }
}

/// Memory the caller reads after this product (the next chunk of a recording), pulled towards
/// the cache a line at a time while the product computes, so that it arrives without a wait of
/// its own: the product is bound by arithmetic, reading a recording from memory by latency.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Upcoming {
    at: *const f32,
    lines: usize,
}

impl Upcoming {
    fn new(region: &[f32]) -> Upcoming {
        Upcoming { at: region.as_ptr(), lines: region.len().div_ceil(16) }
    }

    /// Tile `index`'s share of `tiles`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn share(self, index: usize, tiles: usize) -> Upcoming {
        let each = self.lines.div_ceil(tiles.max(1));
        let first = (index * each).min(self.lines);
        Upcoming { at: self.at.wrapping_add(first * 16), lines: each.min(self.lines - first) }
    }

    /// Requests the next line (to the second-level cache), if any is left.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn touch(&mut self) {
        if self.lines > 0 {
            // SAFETY: a prefetch never faults, whatever the address.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(self.at.cast()) };
            self.at = self.at.wrapping_add(16);
            self.lines -= 1;
        }
    }
}

/// Whether all of a product's weights and one tile's input rows (`steps` wide) fit in L1 with
/// room to spare (32 KiB is the smallest L1 of CPUs with AVX2).
#[cfg(all(target_arch = "x86_64", cebra_avx512))]
fn fits_l1(cp: usize, cin: usize, k: usize, steps: usize) -> bool {
    (cp * cin * k + cin * (steps + k + 16)) * 4 <= 24 * 1024
}

/// Floats per channel row for a chunk of `rows` input steps through kernels of at most
/// `max_kernel` steps: every tile reads less than `rows` rounded up to 16, plus the kernel.
fn leading_dim(rows: usize, max_kernel: usize) -> usize {
    let ld = rows.next_multiple_of(LANES) + max_kernel.next_multiple_of(LANES);
    // An odd number of 64-byte lines per row, so that the rows of a tile fall in different cache
    // sets (a power-of-two stride would put them all in one).
    if (ld / LANES).is_multiple_of(2) { ld + LANES } else { ld }
}

/// Reusable buffers for [`Plan::run_block`].
#[derive(Debug, Default)]
pub struct BlockScratch {
    /// The input, channel-major.
    x: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    /// One value per time step (the norms of [`Pointwise::Norm`]).
    per_step: Vec<f32>,
}

/// How a stage's elementwise operations run: fused into the product where the kernels can
/// (`epilogue`), the rest afterwards over the stored rows.
struct Schedule<'a> {
    epilogue: Epilogue,
    /// Operations inside the skip block left to run over the rows (then the skip is too).
    inner: &'a [Pointwise],
    outer: &'a [Pointwise],
}

fn schedule(stage: &Stage) -> Schedule<'_> {
    let fusable = stage.inner.is_empty() || stage.inner == [Pointwise::Gelu];
    if !fusable {
        return Schedule { epilogue: Epilogue::default(), inner: &stage.inner, outer: &stage.outer };
    }
    let gelu_after_skip = stage.outer.first() == Some(&Pointwise::Gelu);
    Schedule {
        epilogue: Epilogue {
            gelu_before_skip: !stage.inner.is_empty(),
            skip: stage.skip.map(|shift| Skip { shift, channels: stage.in_channels.min(stage.out_channels) }),
            gelu_after_skip,
        },
        inner: &[],
        outer: &stage.outer[usize::from(gelu_after_skip)..],
    }
}

/// Elementwise operations over the first `len` steps of `channels` channel rows of `ld` floats.
fn apply_rows(isa: Isa, ops: &[Pointwise], buf: &mut [f32], ld: usize, channels: usize, len: usize, per_step: &mut Vec<f32>) {
    for op in ops {
        if *op == Pointwise::Norm {
            // Summed over channels in channel order, as the per-step code does.
            per_step.clear();
            per_step.resize(len, 0.0);
            for r in buf.chunks(ld).take(channels) {
                per_step.iter_mut().zip(&r[..len]).for_each(|(s, v)| *s += v * v);
            }
            per_step.iter_mut().for_each(|s| *s = s.sqrt());
        }
        let rows = buf.chunks_mut(ld).take(channels).map(|r| &mut r[..len]);
        match *op {
            Pointwise::Gelu => rows.for_each(|r| kernels::gelu_inplace(isa, r)),
            Pointwise::Tanh => rows.for_each(|r| r.iter_mut().for_each(|v| *v = v.tanh())),
            Pointwise::Clamp(lo, hi) => rows.for_each(|r| r.iter_mut().for_each(|v| *v = super::plan::clamp_like_torch(*v, lo, hi))),
            Pointwise::Norm => rows.for_each(|r| r.iter_mut().zip(per_step.iter()).for_each(|(v, n)| *v /= n)),
        }
    }
}

/// `x[c * ld + t] = input[t * n + c]`.
fn to_channel_major(isa: Isa, input: &[f32], n: usize, x: &mut [f32], ld: usize) {
    let rows = input.len() / n;
    assert!(x.len() >= (n - 1) * ld + rows, "channel-major buffer too short");
    let done = transpose_blocks(isa, input, n, x, ld);
    for (t, row) in input.chunks_exact(n).enumerate().skip(done) {
        for (c, v) in row.iter().enumerate() {
            x[c * ld + t] = *v;
        }
    }
    // Channels past the last whole 8 of the rows done in blocks.
    for (t, row) in input.chunks_exact(n).enumerate().take(done) {
        for (c, v) in row.iter().enumerate().skip(n - n % 8) {
            x[c * ld + t] = *v;
        }
    }
}

/// The whole 8 x 8 blocks of [`to_channel_major`] in registers where the CPU has AVX; returns the
/// rows done that way (all channels of them but the last `n % 8`).
#[cfg(target_arch = "x86_64")]
fn transpose_blocks(isa: Isa, input: &[f32], n: usize, x: &mut [f32], ld: usize) -> usize {
    if isa == Isa::Scalar {
        return 0;
    }
    // SAFETY: AVX is available (checked with AVX2 by `Isa::detect`); the lengths were checked by
    // the caller.
    unsafe { transpose8::blocks(input, n, x, ld) };
    let rows = input.len() / n;
    rows - rows % 8
}

#[cfg(not(target_arch = "x86_64"))]
fn transpose_blocks(_isa: Isa, _input: &[f32], _n: usize, _x: &mut [f32], _ld: usize) -> usize {
    0
}

#[cfg(target_arch = "x86_64")]
mod transpose8 {
    use std::arch::x86_64::*;

    /// How far ahead (in time steps) the input is prefetched.
    const PREFETCH_ROWS: usize = 24;

    /// Transposes every whole 8 x 8 block (8 time steps of 8 channels) of `input` (rows of `n`)
    /// into `x` (rows of `ld`), in registers: each store writes 8 consecutive steps of a channel,
    /// where element-wise copying would touch a different cache line at every store.
    ///
    /// # Safety
    /// AVX available; `x.len() >= (n - 1) * ld + input.len() / n`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn blocks(input: &[f32], n: usize, x: &mut [f32], ld: usize) {
        let rows = input.len() / n;
        let (ip, xp) = (input.as_ptr(), x.as_mut_ptr());
        // SAFETY: t + 8 <= rows and c + 8 <= n: every load is inside `input`, every store inside
        // `x` by the caller's guarantee.
        unsafe {
            for t in (0..rows - rows % 8).step_by(8) {
                // The recording comes from memory: ask for the rows of a later block ahead, a few
                // lines per block of channels (their 8 rows are one contiguous stretch).
                let ahead = ip.wrapping_add((t + PREFETCH_ROWS) * n);
                for c in (0..n - n % 8).step_by(8) {
                    for line in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(c * 8 + 16 * line).cast());
                    }
                    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(ip.add((t + i) * n + c)));
                    let a0 = _mm256_unpacklo_ps(r[0], r[1]);
                    let a1 = _mm256_unpackhi_ps(r[0], r[1]);
                    let a2 = _mm256_unpacklo_ps(r[2], r[3]);
                    let a3 = _mm256_unpackhi_ps(r[2], r[3]);
                    let a4 = _mm256_unpacklo_ps(r[4], r[5]);
                    let a5 = _mm256_unpackhi_ps(r[4], r[5]);
                    let a6 = _mm256_unpacklo_ps(r[6], r[7]);
                    let a7 = _mm256_unpackhi_ps(r[6], r[7]);
                    let b0 = _mm256_shuffle_ps::<0x44>(a0, a2);
                    let b1 = _mm256_shuffle_ps::<0xEE>(a0, a2);
                    let b2 = _mm256_shuffle_ps::<0x44>(a1, a3);
                    let b3 = _mm256_shuffle_ps::<0xEE>(a1, a3);
                    let b4 = _mm256_shuffle_ps::<0x44>(a4, a6);
                    let b5 = _mm256_shuffle_ps::<0xEE>(a4, a6);
                    let b6 = _mm256_shuffle_ps::<0x44>(a5, a7);
                    let b7 = _mm256_shuffle_ps::<0xEE>(a5, a7);
                    let cols = [
                        _mm256_permute2f128_ps::<0x20>(b0, b4),
                        _mm256_permute2f128_ps::<0x20>(b1, b5),
                        _mm256_permute2f128_ps::<0x20>(b2, b6),
                        _mm256_permute2f128_ps::<0x20>(b3, b7),
                        _mm256_permute2f128_ps::<0x31>(b0, b4),
                        _mm256_permute2f128_ps::<0x31>(b1, b5),
                        _mm256_permute2f128_ps::<0x31>(b2, b6),
                        _mm256_permute2f128_ps::<0x31>(b3, b7),
                    ];
                    for (i, col) in cols.into_iter().enumerate() {
                        _mm256_storeu_ps(xp.add((c + i) * ld + t), col);
                    }
                }
            }
        }
    }
}

/// `len` floats of `buf` from a 64-byte boundary: with `ld` a multiple of 16, every tile's
/// vectors then start on a cache line (except where the kernel shifts them), and a store read
/// back by the epilogue is not split across two lines.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + LANES {
        buf.resize(len + LANES, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(LANES);
    &mut buf[skip..skip + len]
}

/// See [`Plan::run_block`].
pub(super) fn run_block(plan: &Plan, input: &[f32], rows: usize, out: &mut [f32], scratch: &mut BlockScratch, upcoming: &[f32]) {
    let out_rows = rows + 1 - plan.receptive_field;
    let n = plan.num_input;
    let max_kernel = plan.stages.iter().map(|s| s.kernel).max().unwrap_or(1);
    let ld = leading_dim(rows, max_kernel);
    let BlockScratch { x, a, b, per_step } = scratch;
    let (x, a, b) = (aligned(x, n * ld), aligned(a, plan.max_stride() * ld), aligned(b, plan.max_stride() * ld));
    to_channel_major(plan.isa, &input[..rows * n], n, x, ld);
    let mut len = rows;
    for (i, stage) in plan.stages.iter().enumerate() {
        let (src, dst): (&[f32], &mut [f32]) = match i {
            0 => (&x[..], &mut a[..]),
            _ if i % 2 == 1 => (&a[..], &mut b[..]),
            _ => (&b[..], &mut a[..]),
        };
        len = len + 1 - stage.kernel;
        let cp = stage.out_stride;
        let plan_ops = schedule(stage);
        let isa = plan.isa;
        let upcoming = if i == 0 { upcoming } else { &[] };
        conv(isa, &stage.panels, &stage.bias, stage.in_channels, stage.kernel, cp, src, ld, len, dst, ld, plan_ops.epilogue, upcoming);
        if !plan_ops.inner.is_empty() {
            apply_rows(isa, plan_ops.inner, dst, ld, stage.out_channels, len, per_step);
            if let Some(shift) = stage.skip {
                for c in 0..stage.in_channels.min(stage.out_channels) {
                    let id = &src[c * ld + shift..][..len];
                    dst[c * ld..][..len].iter_mut().zip(id).for_each(|(d, s)| *d += s);
                }
            }
        }
        apply_rows(isa, plan_ops.outer, dst, ld, stage.out_channels, len, per_step);
    }
    debug_assert_eq!(len, out_rows);
    let result = if plan.stages.len() % 2 == 1 { &a[..] } else { &b[..] };
    let o = plan.num_output;
    for (t, row) in out[..out_rows * o].chunks_exact_mut(o).enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = result[c * ld + t];
        }
    }
}
