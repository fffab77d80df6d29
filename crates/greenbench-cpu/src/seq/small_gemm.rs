//! The attention's two products on AVX-512 (`Q Kᵀ` and `P V` of one head, a few dozen rows
//! and columns): a register tile of `R` rows by `NV` vectors of 16 columns over the whole
//! reduction, each `A` value broadcast, each `B` row loaded once per `R` rows, the last
//! vector of a row masked. The `gemm` crate packed both operands and allocated its buffers
//! on every call, which at these sizes cost more than the arithmetic (`perf record` of
//! tiny-transformer fp32 at batch 32: 16 % of samples in its kernels and `malloc` against
//! 15 % in the score rows' softmax, 2026-12-06).

use crate::mask::lane_mask;
use std::arch::x86_64::*;

/// `C = A · B`: `A` is `m x k` with rows `lda` apart, `B` is `k x n` with rows `ldb` apart,
/// `C` is `m x n` with rows `ldc` apart, every row's values consecutive.
///
/// # Safety
/// The CPU has AVX-512F; `a`, `b` and `c` hold the values those shapes and strides address
/// (`C`'s values are written, nothing between its rows).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let mut j = 0;
    while j < n {
        let nv = (n - j).div_ceil(16).min(4);
        let cols = (n - j).min(16 * nv);
        let tail = lane_mask(cols, nv - 1);
        let (b, c) = (unsafe { b.add(j) }, unsafe { c.add(j) });
        let o = Operands {
            m,
            k,
            a,
            lda,
            b,
            ldb,
            c,
            ldc,
            tail,
        };
        // SAFETY: columns j..j + cols of B and C lie inside their rows (the caller's shapes).
        unsafe {
            match nv {
                1 => rows::<1, 12>(&o),
                2 => rows::<2, 12>(&o),
                3 => rows::<3, 8>(&o),
                _ => rows::<4, 6>(&o),
            }
        }
        j += cols;
    }
}

/// One column block of [`gemm`]: `NV` vectors, the last masked by `tail`.
struct Operands {
    m: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    tail: u16,
}

/// All `m` rows of one column block, `R` at a time; the last `R` rows again when `m` is not
/// a multiple (a row's result does not depend on the tile it is computed in), one at a time
/// when `m < R`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn rows<const NV: usize, const R: usize>(o: &Operands) {
    if o.m < R {
        for i in 0..o.m {
            unsafe { tile::<NV, 1>(o, i) };
        }
        return;
    }
    let mut i = 0;
    while i + R <= o.m {
        unsafe { tile::<NV, R>(o, i) };
        i += R;
    }
    if i < o.m {
        unsafe { tile::<NV, R>(o, o.m - R) };
    }
}

/// Rows `i..i + R` of one column block.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const NV: usize, const R: usize>(o: &Operands, i: usize) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let a = unsafe { o.a.add(i * o.lda) };
    for p in 0..o.k {
        let row = unsafe { o.b.add(p * o.ldb) };
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            // SAFETY: the masked lanes are not read.
            *x = unsafe { _mm512_maskz_loadu_ps(mask(o.tail, v, NV), row.add(16 * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(unsafe { *a.add(r * o.lda + p) });
            for v in 0..NV {
                acc_r[v] = _mm512_fmadd_ps(x, bv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let out = unsafe { o.c.add((i + r) * o.ldc) };
        for (v, x) in acc_r.iter().enumerate() {
            unsafe { _mm512_mask_storeu_ps(out.add(16 * v), mask(o.tail, v, NV), *x) };
        }
    }
}

/// Vector `v`'s lanes of `NV`: all but the last, which has `tail`'s.
#[inline(always)]
fn mask(tail: u16, v: usize, nv: usize) -> u16 {
    if v + 1 == nv { tail } else { u16::MAX }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain triple loop, in f64.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * lda + p] as f64 * b[p * ldb + j] as f64)
                    .sum();
            }
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_the_triple_loop(
            m in 1usize..40, n in 1usize..90, k in 1usize..70,
            pad in 0usize..5, seed in any::<u64>(),
        ) {
            if !std::arch::is_x86_feature_detected!("avx512f") {
                return Ok(());
            }
            let (lda, ldb, ldc) = (k + pad, n + 2 * pad, n + pad + 1);
            let val = |i: usize| {
                let x = (i as u64).wrapping_mul(6364136223846793005).wrapping_add(seed);
                ((x >> 40) % 2001) as f32 / 1000.0 - 1.0
            };
            let a: Vec<f32> = (0..m * lda).map(val).collect();
            let b: Vec<f32> = (0..k * ldb).map(|i| val(i + 7919)).collect();
            // Sentinels between C's rows must survive.
            let mut c = vec![f32::NAN; m * ldc];
            unsafe { gemm((m, n, k), a.as_ptr(), lda, b.as_ptr(), ldb, c.as_mut_ptr(), ldc) };
            let want = reference(m, n, k, &a, lda, &b, ldb);
            for i in 0..m {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j < n {
                        let w = want[i * n + j];
                        prop_assert!((got as f64 - w).abs() <= 1e-5 * k as f64, "C[{i}][{j}] = {got}, want {w}");
                    } else {
                        prop_assert!(got.is_nan(), "C[{i}][{j}] past the row was written");
                    }
                }
            }
        }
    }
}
