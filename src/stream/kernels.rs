//! The arithmetic of the streaming plan: one convolution row (a small matrix-vector product per
//! output time step, the streaming case) and the exact GELU, as plain scalar code and as AVX2+FMA /
//! AVX-512 code chosen at run time. Whole chunks run on the kernels of `block`.
//!
//! Layouts: activations are time-major, one row of channels per time step. A convolution with kernel
//! `k` over rows of `stride` floats reads, for output row `t`, the `k * stride` contiguous floats
//! starting at row `t` (its window); its weight is that window's length `kk` times `cp` output
//! channels (`cp` a multiple of 8), `w[i * cp + o]`.

/// The instruction set a plan runs on, chosen once when the plan is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 with FMA (checked at run time).
    Avx2Fma,
    /// x86-64 AVX-512F (with AVX2 and FMA). Compiled by Rust 1.89 or newer (build.rs sets
    /// `cebra_avx512`); older compilers use AVX2 on such CPUs.
    Avx512,
}

impl Isa {
    /// The best instruction set this CPU offers.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                #[cfg(cebra_avx512)]
                if std::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                return Isa::Avx2Fma;
            }
        }
        Isa::Scalar
    }

    /// Every instruction set this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512].into_iter().filter(|i| *i <= best).collect()
    }
}

/// Output channels rounded up to whole 8-lane vectors.
pub fn padded_channels(channels: usize) -> usize {
    channels.div_ceil(8) * 8
}

/// `out[t * cp + o] = bias[o] + sum_i x[t * stride + i] * w[i * cp + o]` for `t < rows`, `o < cp`,
/// `i < kk`, in plain scalar code: the reference the vector kernels are tested against (the
/// whole-chunk kernels of `block` replaced the vector versions of this one).
#[allow(clippy::too_many_arguments)]
pub fn conv_rows(w: &[f32], bias: &[f32], kk: usize, cp: usize, x: &[f32], stride: usize, rows: usize, out: &mut [f32]) {
    assert!(cp.is_multiple_of(8) && cp > 0, "cp must be a positive multiple of 8");
    assert!(w.len() >= kk * cp && bias.len() >= cp, "weights too short");
    assert!(out.len() >= rows * cp, "output too short");
    if rows == 0 {
        return;
    }
    assert!(x.len() >= (rows - 1) * stride + kk, "input too short");
    conv_rows_scalar(w, bias, kk, cp, x, stride, rows, out);
}

/// [`conv_rows`] for one output row, with the sum split over two accumulator chains so that the
/// latency of one chain does not bound a single matrix-vector product (the streaming case).
pub fn conv_row_latency(isa: Isa, w: &[f32], bias: &[f32], kk: usize, cp: usize, x: &[f32], out: &mut [f32]) {
    assert!(cp.is_multiple_of(8) && cp > 0, "cp must be a positive multiple of 8");
    assert!(w.len() >= kk * cp && bias.len() >= cp && x.len() >= kk && out.len() >= cp, "slices too short");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: lengths checked above; AVX2/FMA presence checked by `Isa::detect`.
        // AVX-512 CPUs too: for one row the 8-lane kernel measured faster than a 16-lane one (a
        // single short product does not amortise the wider unit's start-up).
        Isa::Avx2Fma | Isa::Avx512 => unsafe { avx2::conv_row_split(w, bias, kk, cp, x, out) },
        _ => conv_rows_scalar(w, bias, kk, cp, x, 0, 1, out),
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_rows_scalar(w: &[f32], bias: &[f32], kk: usize, cp: usize, x: &[f32], stride: usize, rows: usize, out: &mut [f32]) {
    for t in 0..rows {
        let window = &x[t * stride..t * stride + kk];
        let row = &mut out[t * cp..(t + 1) * cp];
        row.copy_from_slice(&bias[..cp]);
        for (i, &xi) in window.iter().enumerate() {
            let wi = &w[i * cp..(i + 1) * cp];
            // Plain multiply-add: `mul_add` without a hardware FMA is a slow library call.
            for (acc, wo) in row.iter_mut().zip(wi) {
                *acc += xi * wo;
            }
        }
    }
}

// erf(x) = x * P(x^2) / Q(x^2) on [-4, 4]: a rational minimax approximation (error below 5e-7),
// the same in the scalar and the vector code. From |x| = ERF_ONE on, float32 erf is exactly +-1; the
// rational form is not, and GELU multiplies that error by |x|, so those inputs get +-1 exactly.
const ERF_CLAMP: f32 = 4.0;
const ERF_ONE: f32 = 3.92;
const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906e-4,
    -2.954_600_1e-3,
    -1.609_603_3e-2,
];
const ERF_Q: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2];

/// float32 erf with a few ulps of error.
pub fn erf(x: f32) -> f32 {
    if x.abs() >= ERF_ONE {
        return 1f32.copysign(x);
    }
    let x = x.clamp(-ERF_CLAMP, ERF_CLAMP);
    let x2 = x * x;
    let mut p = ERF_P[0];
    for &c in &ERF_P[1..] {
        p = p * x2 + c;
    }
    let mut q = ERF_Q[0];
    for &c in &ERF_Q[1..] {
        q = q * x2 + c;
    }
    x * p / q
}

/// The exact (erf) GELU, `0.5 x (1 + erf(x / sqrt 2))`, as `nn.GELU()` computes it.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU of every element, in place.
pub fn gelu_inplace(isa: Isa, x: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2/FMA presence checked by `Isa::detect`; the function stays inside `x`.
        Isa::Avx2Fma => unsafe { avx2::gelu_inplace(x) },
        #[cfg(all(target_arch = "x86_64", cebra_avx512))]
        // SAFETY: AVX-512F presence checked by `Isa::detect`; the function stays inside `x`.
        Isa::Avx512 => unsafe { avx512::gelu_inplace(x) },
        _ => x.iter_mut().for_each(|v| *v = gelu(*v)),
    }
}

#[cfg(target_arch = "x86_64")]
// Register-array indices read more plainly than iterator chains in these kernels.
#[allow(clippy::needless_range_loop)]
pub(super) mod avx2 {
    use super::{ERF_CLAMP, ERF_ONE, ERF_P, ERF_Q};
    use std::arch::x86_64::*;

    /// `NB` 8-lane vectors of one output row from vector `v0`, the window split in two halves summed
    /// by separate accumulator chains. `NB` is a constant so that the accumulators stay in registers.
    ///
    /// # Safety
    /// AVX2 and FMA available; `v0 + NB <= cp / 8`; slice lengths as checked by
    /// `super::conv_row_latency`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn split_block<const NB: usize>(wp: *const f32, bp: *const f32, kk: usize, cp: usize, xp: *const f32, v0: usize, op: *mut f32) {
        let half = kk / 2;
        // SAFETY: i < kk, lanes below (v0 + NB) * 8 <= cp: inside the checked lengths.
        unsafe {
            let mut a: [__m256; NB] = std::array::from_fn(|v| _mm256_loadu_ps(bp.add((v0 + v) * 8)));
            let mut b = [_mm256_setzero_ps(); NB];
            for i in 0..half {
                let xa = _mm256_broadcast_ss(&*xp.add(i));
                let xb = _mm256_broadcast_ss(&*xp.add(half + i));
                let wa = wp.add(i * cp + v0 * 8);
                let wb = wp.add((half + i) * cp + v0 * 8);
                for v in 0..NB {
                    a[v] = _mm256_fmadd_ps(xa, _mm256_loadu_ps(wa.add(v * 8)), a[v]);
                    b[v] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(wb.add(v * 8)), b[v]);
                }
            }
            if kk % 2 == 1 {
                let i = kk - 1;
                let xa = _mm256_broadcast_ss(&*xp.add(i));
                for v in 0..NB {
                    a[v] = _mm256_fmadd_ps(xa, _mm256_loadu_ps(wp.add(i * cp + (v0 + v) * 8)), a[v]);
                }
            }
            for v in 0..NB {
                _mm256_storeu_ps(op.add((v0 + v) * 8), _mm256_add_ps(a[v], b[v]));
            }
        }
    }

    /// One output row (the streaming product), in blocks of up to four 8-lane vectors.
    ///
    /// # Safety
    /// AVX2 and FMA available; slice lengths as checked by `super::conv_row_latency`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv_row_split(w: &[f32], bias: &[f32], kk: usize, cp: usize, x: &[f32], out: &mut [f32]) {
        let nv = cp / 8;
        let (wp, bp, xp, op) = (w.as_ptr(), bias.as_ptr(), x.as_ptr(), out.as_mut_ptr());
        let mut v0 = 0;
        // SAFETY: v0 + NB <= nv in every call; lengths as the caller checked.
        unsafe {
            while v0 + 4 <= nv {
                split_block::<4>(wp, bp, kk, cp, xp, v0, op);
                v0 += 4;
            }
            match nv - v0 {
                3 => split_block::<3>(wp, bp, kk, cp, xp, v0, op),
                2 => split_block::<2>(wp, bp, kk, cp, xp, v0, op),
                1 => split_block::<1>(wp, bp, kk, cp, xp, v0, op),
                _ => {}
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(in crate::stream) fn gelu8(x: __m256) -> __m256 {
        let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-ERF_CLAMP)), _mm256_set1_ps(ERF_CLAMP));
        let z2 = _mm256_mul_ps(z, z);
        let mut p = _mm256_set1_ps(ERF_P[0]);
        for &c in &ERF_P[1..] {
            p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(c));
        }
        let mut q = _mm256_set1_ps(ERF_Q[0]);
        for &c in &ERF_Q[1..] {
            q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(c));
        }
        let erf = _mm256_div_ps(_mm256_mul_ps(z, p), q);
        // |z| >= ERF_ONE: exactly +-1 (the sign bit of z on 1.0).
        let sign = _mm256_and_ps(z, _mm256_set1_ps(-0.0));
        let one = _mm256_or_ps(_mm256_set1_ps(1.0), sign);
        let big = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_andnot_ps(_mm256_set1_ps(-0.0), z), _mm256_set1_ps(ERF_ONE));
        let erf = _mm256_blendv_ps(erf, one, big);
        let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
        _mm256_fmadd_ps(half_x, erf, half_x)
    }

    /// # Safety
    /// AVX2 and FMA available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_inplace(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 8 floats.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), gelu8(_mm256_loadu_ps(c.as_ptr()))) };
        }
        for v in chunks.into_remainder() {
            *v = super::gelu(*v);
        }
    }
}

#[cfg(all(target_arch = "x86_64", cebra_avx512))]
// Compiled only by Rust >= 1.89 (see build.rs), where these intrinsics are stable.
#[allow(clippy::needless_range_loop, clippy::incompatible_msrv)]
pub(super) mod avx512 {
    use super::{ERF_ONE, ERF_P, ERF_Q};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(in crate::stream) fn gelu16(x: __m512) -> __m512 {
        gelu16_with::<false>(x)
    }

    /// [`gelu16`], with `RECIPROCAL`: `p / q` as `p` times a reciprocal estimate refined by one
    /// Newton step (within 2 ulp of the quotient), which keeps the divider, slow on 16 lanes, out
    /// of the whole-chunk kernels.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(in crate::stream) fn gelu16_with<const RECIPROCAL: bool>(x: __m512) -> __m512 {
        // Unclamped: where |z| >= ERF_ONE the blend below replaces whatever the rational form
        // gives (even inf or NaN), and below that the clamp changes nothing.
        let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let z2 = _mm512_mul_ps(z, z);
        let mut p = _mm512_set1_ps(ERF_P[0]);
        for &c in &ERF_P[1..] {
            p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(c));
        }
        let mut q = _mm512_set1_ps(ERF_Q[0]);
        for &c in &ERF_Q[1..] {
            q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(c));
        }
        let erf = if RECIPROCAL {
            let r = _mm512_rcp14_ps(q);
            let r = _mm512_fmadd_ps(_mm512_fnmadd_ps(q, r, _mm512_set1_ps(1.0)), r, r);
            _mm512_mul_ps(_mm512_mul_ps(z, p), r)
        } else {
            _mm512_div_ps(_mm512_mul_ps(z, p), q)
        };
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, _mm512_setzero_ps());
        let one = _mm512_mask_blend_ps(negative, _mm512_set1_ps(1.0), _mm512_set1_ps(-1.0));
        let big = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(z), _mm512_set1_ps(ERF_ONE));
        let erf = _mm512_mask_blend_ps(big, erf, one);
        let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
        _mm512_fmadd_ps(half_x, erf, half_x)
    }

    /// # Safety
    /// AVX-512F, AVX2 and FMA available.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn gelu_inplace(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 16 floats.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), gelu16(_mm512_loadu_ps(c.as_ptr()))) };
        }
        // SAFETY: AVX2 and FMA are available (checked with AVX-512F).
        unsafe { super::avx2::gelu_inplace(chunks.into_remainder()) };
    }
}
