//! The vector of one float32 per row of a block ([`BLOCK_ROWS`] lanes) the kernel computes with:
//! AVX-512 registers, AVX2 registers, or a plain array. Spelled out with intrinsics because
//! the compiler, left to vectorise loops over `[f32; 16]`, vectorises the wrong (outer) loops with
//! gathers. Every implementation rounds each lane exactly as the scalar operation named (FMA fused
//! where the type says so), so the kernel's results do not depend on which one ran.
//!
//! The x86 types may only be used inside functions compiled with their CPU features, which run after
//! those features were detected; they are private to the fused kernel, which keeps to that.
use super::kernel::{BLOCK_ROWS, Rows, TILE_VECTORS};

/// One float32 per row of a block.
pub trait Vector: Copy {
    /// Whether the CPU has registers for register blocks of 4 vectors (AVX-512: 32 registers).
    const WIDE: bool;
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
    /// Lane-wise `f32::from_bits(self.to_bits().wrapping_add(add) << 23)`.
    fn shifted_exponent(self, add: u32) -> Self;
    /// `self·2^k` (one rounding) for integer-valued `k` in `[-126, 127]`, given also `shifted` =
    /// `k + 1.5·2^23` (whose low mantissa bits hold `k`), from which `2^k` is built by its bits.
    #[inline(always)]
    fn mul_exp2(self, k: Self, shifted: Self) -> Self {
        let _ = k;
        self.mul(shifted.shifted_exponent(127u32.wrapping_sub(0x4B40_0000)))
    }

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

/// A plain array: the baseline (`mul_add` fused when `FMA`, where it is a single instruction, as on
/// AArch64).
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
    const WIDE: bool = false;
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

    /// AVX2 registers of 8 lanes (needs AVX2 and FMA).
    #[derive(Clone, Copy)]
    pub struct Avx2([__m256; BLOCK_ROWS / 8]);

    /// AVX-512 registers of 16 lanes (needs AVX-512F/DQ).
    #[derive(Clone, Copy)]
    pub struct Avx512([__m512; BLOCK_ROWS / 16]);

    /// The type's operation register by register (loops, not `array::from_fn`, whose closure would
    /// not be compiled for the features). 
    macro_rules! registers {
        ($t:ident, $($v:ident: $src:expr),* => $e:expr) => {{
            let mut out = $t([unsafe_zero!($t); BLOCK_ROWS / $t::LANES]);
            for i in 0..BLOCK_ROWS / $t::LANES {
                $(let $v = $src.0[i];)*
                // SAFETY: values of the x86 vector types exist only in code compiled for and running
                // on their features (module docs).
                out.0[i] = unsafe { $e };
            }
            out
        }};
    }

    macro_rules! unsafe_zero {
        (Avx2) => {
            // SAFETY: as in `registers`.
            unsafe { _mm256_setzero_ps() }
        };
        (Avx512) => {
            // SAFETY: as in `registers`.
            unsafe { _mm512_setzero_ps() }
        };
    }

    impl Avx2 {
        const LANES: usize = 8;
    }

    impl Avx512 {
        const LANES: usize = 16;
    }

    /// The operations every x86 type has, register by register: the AVX2 and AVX-512 versions
    /// differ only in the intrinsics named.
    macro_rules! common_operations {
        ($t:ident: $set1:ident, $loadu:ident, $storeu:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
         $fmadd:ident, $fmsub:ident, $xor:ident, $max:ident, $castps_si:ident, $castsi_ps:ident,
         $add_epi32:ident, $set1_epi32:ident, $slli_epi32:ident) => {
            #[inline(always)]
            fn splat(x: f32) -> Self {
                // SAFETY: as in `registers`.
                $t([unsafe { $set1(x) }; BLOCK_ROWS / $t::LANES])
            }
            #[inline(always)]
            fn load(x: &Rows) -> Self {
                let mut out = Self::splat(0.0);
                for (i, o) in out.0.iter_mut().enumerate() {
                    // SAFETY: `x` holds BLOCK_ROWS floats, read unaligned; features as in `registers`.
                    *o = unsafe { $loadu(x.as_ptr().add($t::LANES * i)) };
                }
                out
            }
            #[inline(always)]
            fn store(self, out: &mut Rows) {
                for (i, v) in self.0.iter().enumerate() {
                    // SAFETY: `out` holds BLOCK_ROWS floats, written unaligned; features as in `registers`.
                    unsafe { $storeu(out.as_mut_ptr().add($t::LANES * i), *v) };
                }
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                registers!($t, a: self, b: b => $add(a, b))
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                registers!($t, a: self, b: b => $sub(a, b))
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                registers!($t, a: self, b: b => $mul(a, b))
            }
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                registers!($t, a: self, b: b => $div(a, b))
            }
            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                registers!($t, a: self, b: b, c: c => $fmadd(a, b, c))
            }
            #[inline(always)]
            fn mul_sub(self, b: Self, c: Self) -> Self {
                registers!($t, a: self, b: b, c: c => $fmsub(a, b, c))
            }
            #[inline(always)]
            fn neg(self) -> Self {
                let sign = Self::splat(-0.0);
                registers!($t, a: self, sign: sign => $xor(a, sign))
            }
            #[inline(always)]
            fn max(self, b: Self) -> Self {
                registers!($t, a: self, b: b => $max(a, b))
            }
            #[inline(always)]
            fn shifted_exponent(self, add: u32) -> Self {
                registers!($t, a: self => $castsi_ps($slli_epi32::<23>($add_epi32($castps_si(a), $set1_epi32(add as i32)))))
            }
        };
    }

    impl Vector for Avx2 {
        const WIDE: bool = false;
        common_operations!(Avx2: _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_sub_ps,
            _mm256_mul_ps, _mm256_div_ps, _mm256_fmadd_ps, _mm256_fmsub_ps, _mm256_xor_ps, _mm256_max_ps,
            _mm256_castps_si256, _mm256_castsi256_ps, _mm256_add_epi32, _mm256_set1_epi32, _mm256_slli_epi32);
    }

    impl Vector for Avx512 {
        const WIDE: bool = true;
        common_operations!(Avx512: _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_sub_ps,
            _mm512_mul_ps, _mm512_div_ps, _mm512_fmadd_ps, _mm512_fmsub_ps, _mm512_xor_ps, _mm512_max_ps,
            _mm512_castps_si512, _mm512_castsi512_ps, _mm512_add_epi32, _mm512_set1_epi32, _mm512_slli_epi32);
        #[inline(always)]
        fn mul_exp2(self, k: Self, _shifted: Self) -> Self {
            // One instruction instead of building `2^k` and multiplying; the same rounding.
            registers!(Avx512, a: self, k: k => _mm512_scalef_ps(a, k))
        }
        #[inline(always)]
        fn transpose(input: &[Rows; BLOCK_ROWS], out: &mut [[Rows; TILE_VECTORS]; BLOCK_ROWS], v: usize) {
            // In registers, 16 × 16 floats at a time with four rounds of shuffles (port 5, where
            // the arithmetic does not go) instead of single-float stores.
            for t0 in (0..BLOCK_ROWS).step_by(16) {
                for b0 in (0..BLOCK_ROWS).step_by(16) {
                    let mut r = [unsafe_zero!(Avx512); 16];
                    for (t, r) in r.iter_mut().enumerate() {
                        // SAFETY: 16 floats inside a `Rows`; features as in `registers`.
                        *r = unsafe { _mm512_loadu_ps(input[t0 + t].as_ptr().add(b0)) };
                    }
                    let r = transpose16(r);
                    for (b, r) in r.iter().enumerate() {
                        // SAFETY: 16 floats inside a `Rows`; features as in `registers`.
                        unsafe { _mm512_storeu_ps(out[b0 + b][v].as_mut_ptr().add(t0), *r) };
                    }
                }
            }
        }
    }

    /// `out[b][t] = r[t][b]` for 16 × 16 floats.
    #[inline(always)]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // SAFETY: as in `registers` (called only from `Avx512::transpose`).
        unsafe {
            let mut a = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let pd = |x: __m512| _mm512_castps_pd(x);
            let mut b = [_mm512_setzero_ps(); 16];
            for i in 0..4 {
                let (x0, x1, x2, x3) = (a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]);
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
            let mut out = [_mm512_setzero_ps(); 16];
            for j in 0..8 {
                let (lo, hi) = (c[j], c[8 + j]);
                out[j] = _mm512_shuffle_f32x4::<0x88>(lo, hi);
                out[8 + j] = _mm512_shuffle_f32x4::<0xdd>(lo, hi);
            }
            out
        }
    }
}
