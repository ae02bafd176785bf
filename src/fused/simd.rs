//! The vector of one float32 per row of a block ([`BLOCK_ROWS`] lanes) the kernel computes with:
//! one AVX-512 register, two AVX2 registers, or a plain array. Spelled out with intrinsics because
//! the compiler, left to vectorise loops over `[f32; 16]`, vectorises the wrong (outer) loops with
//! gathers. Every implementation rounds each lane exactly as the scalar operation named (FMA fused
//! where the type says so), so the kernel's results do not depend on which one ran.
//!
//! The x86 types may only be used inside functions compiled with their CPU features, which run after
//! those features were detected; they are private to the fused kernel, which keeps to that.
use super::kernel::{BLOCK_ROWS, Rows, TILE_VECTORS};

/// One float32 per row of a block.
pub trait Vector: Copy {
    /// Whether [`Vector::mul_add`] is fused.
    const FMA: bool;
    fn splat(x: f32) -> Self;
    fn load(x: &Rows) -> Self;
    fn store(self, out: &mut Rows);
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    fn mul(self, b: Self) -> Self;
    fn div(self, b: Self) -> Self;
    /// `self·b + c`, fused when [`Vector::FMA`].
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self·b - c`, fused when [`Vector::FMA`].
    fn mul_sub(self, b: Self, c: Self) -> Self;
    /// `-self` (the sign flipped, as float negation).
    fn neg(self) -> Self;
    /// Lane-wise `if self > b { self } else { b }`.
    fn max(self, b: Self) -> Self;
    /// Lane-wise `if self < b { self } else { b }`.
    fn min(self, b: Self) -> Self;
    /// Lane-wise `f32::from_bits(self.to_bits().wrapping_add(add) << 23)`.
    fn shifted_exponent(self, add: u32) -> Self;

    /// `out[b][v][t] = input[t][b]`: sixteen vectors transposed into column `v` of `out`.
    #[inline(always)]
    fn transpose(input: &[Rows; BLOCK_ROWS], out: &mut [[Rows; TILE_VECTORS]; BLOCK_ROWS], v: usize) {
        for (t, row) in input.iter().enumerate() {
            for (b, out) in out.iter_mut().enumerate() {
                out[v][t] = row[b];
            }
        }
    }
}

/// A plain array: the baseline (FMA only where `mul_add` is a single instruction, as on AArch64).
#[derive(Clone, Copy)]
pub struct Plain<const FMA: bool>(Rows);

macro_rules! plain_lanes {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {
        Plain(std::array::from_fn(|l| {
            let ($x, $y) = ($a.0[l], $b.0[l]);
            $e
        }))
    };
}

impl<const F: bool> Vector for Plain<F> {
    const FMA: bool = F;
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Plain([x; BLOCK_ROWS])
    }
    #[inline(always)]
    fn load(x: &Rows) -> Self {
        Plain(*x)
    }
    #[inline(always)]
    fn store(self, out: &mut Rows) {
        *out = self.0;
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        plain_lanes!(self, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        plain_lanes!(self, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        plain_lanes!(self, b, |x, y| x * y)
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        plain_lanes!(self, b, |x, y| x / y)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Plain(std::array::from_fn(|l| if F { self.0[l].mul_add(b.0[l], c.0[l]) } else { self.0[l] * b.0[l] + c.0[l] }))
    }
    #[inline(always)]
    fn mul_sub(self, b: Self, c: Self) -> Self {
        Plain(std::array::from_fn(|l| if F { self.0[l].mul_add(b.0[l], -c.0[l]) } else { self.0[l] * b.0[l] - c.0[l] }))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        Plain(self.0.map(|x| -x))
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        plain_lanes!(self, b, |x, y| if x > y { x } else { y })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        plain_lanes!(self, b, |x, y| if x < y { x } else { y })
    }
    #[inline(always)]
    fn shifted_exponent(self, add: u32) -> Self {
        Plain(self.0.map(|x| f32::from_bits(x.to_bits().wrapping_add(add) << 23)))
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK_ROWS, Rows, TILE_VECTORS, Vector};
    use std::arch::x86_64::*;

    /// Two AVX2 registers (needs AVX2 and FMA).
    #[derive(Clone, Copy)]
    pub struct Avx2([__m256; 2]);

    /// One AVX-512 register (needs AVX-512F/DQ).
    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    macro_rules! avx2_lanes {
        ($a:expr, $b:expr, $op:ident) => {
            // SAFETY: `Avx2` values exist only in code compiled for and running on AVX2+FMA (module docs).
            Avx2(unsafe { [$op($a.0[0], $b.0[0]), $op($a.0[1], $b.0[1])] })
        };
    }

    impl Vector for Avx2 {
        const FMA: bool = true;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: as in `avx2_lanes`.
            unsafe { Avx2([_mm256_set1_ps(x); 2]) }
        }
        #[inline(always)]
        fn load(x: &Rows) -> Self {
            // SAFETY: `x` holds 16 floats, read unaligned; features as in `avx2_lanes`.
            unsafe { Avx2([_mm256_loadu_ps(x.as_ptr()), _mm256_loadu_ps(x.as_ptr().add(8))]) }
        }
        #[inline(always)]
        fn store(self, out: &mut Rows) {
            // SAFETY: `out` holds 16 floats, written unaligned; features as in `avx2_lanes`.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), self.0[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), self.0[1]);
            }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            avx2_lanes!(self, b, _mm256_add_ps)
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            avx2_lanes!(self, b, _mm256_sub_ps)
        }
        #[inline(always)]
        fn mul(self, b: Self) -> Self {
            avx2_lanes!(self, b, _mm256_mul_ps)
        }
        #[inline(always)]
        fn div(self, b: Self) -> Self {
            avx2_lanes!(self, b, _mm256_div_ps)
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            // SAFETY: as in `avx2_lanes`.
            unsafe { Avx2([_mm256_fmadd_ps(self.0[0], b.0[0], c.0[0]), _mm256_fmadd_ps(self.0[1], b.0[1], c.0[1])]) }
        }
        #[inline(always)]
        fn mul_sub(self, b: Self, c: Self) -> Self {
            // SAFETY: as in `avx2_lanes`.
            unsafe { Avx2([_mm256_fmsub_ps(self.0[0], b.0[0], c.0[0]), _mm256_fmsub_ps(self.0[1], b.0[1], c.0[1])]) }
        }
        #[inline(always)]
        fn neg(self) -> Self {
            avx2_lanes!(self, Self::splat(-0.0), _mm256_xor_ps)
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            avx2_lanes!(self, b, _mm256_max_ps)
        }
        #[inline(always)]
        fn min(self, b: Self) -> Self {
            avx2_lanes!(self, b, _mm256_min_ps)
        }
        #[inline(always)]
        fn shifted_exponent(self, add: u32) -> Self {
            // SAFETY: as in `avx2_lanes`.
            unsafe {
                let bits = |x: __m256| {
                    let shifted = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_castps_si256(x), _mm256_set1_epi32(add as i32)));
                    _mm256_castsi256_ps(shifted)
                };
                Avx2([bits(self.0[0]), bits(self.0[1])])
            }
        }
    }

    macro_rules! avx512_lanes {
        ($a:expr, $b:expr, $op:ident) => {
            // SAFETY: `Avx512` values exist only in code compiled for and running on AVX-512F/DQ
            // (module docs).
            Avx512(unsafe { $op($a.0, $b.0) })
        };
    }

    impl Vector for Avx512 {
        const FMA: bool = true;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: as in `avx512_lanes`.
            unsafe { Avx512(_mm512_set1_ps(x)) }
        }
        #[inline(always)]
        fn load(x: &Rows) -> Self {
            // SAFETY: `x` holds 16 floats, read unaligned; features as in `avx512_lanes`.
            unsafe { Avx512(_mm512_loadu_ps(x.as_ptr())) }
        }
        #[inline(always)]
        fn store(self, out: &mut Rows) {
            // SAFETY: `out` holds 16 floats, written unaligned; features as in `avx512_lanes`.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            avx512_lanes!(self, b, _mm512_add_ps)
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            avx512_lanes!(self, b, _mm512_sub_ps)
        }
        #[inline(always)]
        fn mul(self, b: Self) -> Self {
            avx512_lanes!(self, b, _mm512_mul_ps)
        }
        #[inline(always)]
        fn div(self, b: Self) -> Self {
            avx512_lanes!(self, b, _mm512_div_ps)
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            // SAFETY: as in `avx512_lanes`.
            unsafe { Avx512(_mm512_fmadd_ps(self.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn mul_sub(self, b: Self, c: Self) -> Self {
            // SAFETY: as in `avx512_lanes`.
            unsafe { Avx512(_mm512_fmsub_ps(self.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn neg(self) -> Self {
            avx512_lanes!(self, Self::splat(-0.0), _mm512_xor_ps)
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            avx512_lanes!(self, b, _mm512_max_ps)
        }
        #[inline(always)]
        fn min(self, b: Self) -> Self {
            avx512_lanes!(self, b, _mm512_min_ps)
        }
        #[inline(always)]
        fn transpose(input: &[Rows; BLOCK_ROWS], out: &mut [[Rows; TILE_VECTORS]; BLOCK_ROWS], v: usize) {
            // In registers, four rounds of shuffles (port 5, where the arithmetic does not go)
            // instead of 256 single-float stores.
            // SAFETY: as in `avx512_lanes`; loads and stores of 16 floats from and to `Rows`.
            unsafe {
                let mut r = [_mm512_setzero_ps(); 16];
                for (r, input) in r.iter_mut().zip(input) {
                    *r = _mm512_loadu_ps(input.as_ptr());
                }
                let mut a = [_mm512_setzero_ps(); 16];
                for i in 0..8 {
                    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
                }
                let mut b = [_mm512_setzero_ps(); 16];
                for i in 0..4 {
                    let (x0, x1, x2, x3) = (a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]);
                    let pd = _mm512_castps_pd;
                    b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(x0), pd(x2)));
                    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(x0), pd(x2)));
                    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(x1), pd(x3)));
                    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(x1), pd(x3)));
                }
                // b[4i + c] holds, in each 128-bit lane q, column (4q + c) of rows 4i..4i+4.
                let mut c = [_mm512_setzero_ps(); 16];
                for h in 0..2 {
                    for j in 0..4 {
                        let (lo, hi) = (b[8 * h + j], b[8 * h + 4 + j]);
                        c[8 * h + j] = _mm512_shuffle_f32x4::<0x88>(lo, hi);
                        c[8 * h + 4 + j] = _mm512_shuffle_f32x4::<0xdd>(lo, hi);
                    }
                }
                for j in 0..8 {
                    let (lo, hi) = (c[j], c[8 + j]);
                    _mm512_storeu_ps(out[j][v].as_mut_ptr(), _mm512_shuffle_f32x4::<0x88>(lo, hi));
                    _mm512_storeu_ps(out[8 + j][v].as_mut_ptr(), _mm512_shuffle_f32x4::<0xdd>(lo, hi));
                }
            }
        }
        #[inline(always)]
        fn shifted_exponent(self, add: u32) -> Self {
            // SAFETY: as in `avx512_lanes`.
            unsafe {
                let sum = _mm512_add_epi32(_mm512_castps_si512(self.0), _mm512_set1_epi32(add as i32));
                Avx512(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(sum)))
            }
        }
    }
}
