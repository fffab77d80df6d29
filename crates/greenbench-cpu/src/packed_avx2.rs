//! Large GEMMs with a right-hand side (weights) packed once in `prepare`, for CPUs with AVX2
//! and FMA but not AVX-512 (x86_64): the layout of [`crate::packed`] at half the vector width.
//!
//! `C[m x n] = A[m x k] · W[k x n] (+ bias, ReLU)`: `W` packed into `KB x NB` blocks, each a
//! run of 16-column strips stored `[k][16]`; `A` read where it lies; a 6-row x 16-column
//! register tile (12 ymm accumulators, 2 weight vectors, 1 broadcast: 15 of the 16 ymm
//! registers) walks a block's strips for each 6 rows. Threads take one contiguous, evenly
//! split row range each: one fork per product. Without it these products ran on the `gemm`
//! crate, which packs both operands on every call (the weights included).
//!
//! Measured on the 2-core dev VM (AMD EPYC, AVX2 only; a noisy host: each figure one
//! `greenbench peak` run, alternating with the `gemm` crate): sgemm 1024^3, GFLOP/s, 1 thread
//! 89-93 against the crate's 81-87, 2 threads 139-177 against 119-142; the BERT-base model
//! (2 layers, sequence 128) at batch 1 31.8 / 29.2 ms per example against 40.7 / 37.7, at batch 8
//! 27.1 against 27.7. The same tile in Rust intrinsics read 52-63 against the crate's 70-73 on
//! 1 thread: its compiled loop re-derived each row's address from the previous one (a serial
//! chain of adds per k step), hence the inline assembly.

use crate::kernels::{Buf, Relu, bias_act_row};
use std::arch::asm;
use std::arch::x86_64::*;

/// Reduction rows per packed block.
const KB: usize = 256;
/// Columns per packed block.
const NB: usize = 256;
/// Rows of one register tile.
const MR: usize = 6;
/// Columns of one register tile (two ymm vectors) and of one packed strip.
const NR: usize = 16;

/// Whether this CPU runs the kernel (AVX2 and FMA).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// A right-hand side packed for [`PackedGemm2::run`], with its fused epilogue.
pub struct PackedGemm2 {
    k: usize,
    n: usize,
    /// Blocks in (column block, reduction block) order, strips zero-padded to 16 columns.
    w: Buf,
    bias: Option<Vec<f32>>,
    relu: Relu,
}

impl PackedGemm2 {
    /// Pack `w` (`k x n`, row-major, `k > 0`).
    pub fn new(w: &[f32], k: usize, n: usize, bias: Option<Vec<f32>>, relu: Relu) -> Self {
        PackedGemm2 {
            k,
            n,
            w: crate::packed::pack_blocks(w, k, n, [KB, NB, NR], bias.as_deref()),
            bias,
            relu,
        }
    }

    /// The reduction length (rows of the packed right-hand side).
    pub fn k(&self) -> usize {
        self.k
    }

    /// `c = a · w` for `a` of `rows x k` (row-major) into `c` (`rows x n`), split into one
    /// contiguous row range per thread of the current rayon pool when `threads > 1`. Only
    /// call where [`available`] holds.
    pub fn run(&self, a: &[f32], rows: usize, c: &mut [f32], threads: usize) {
        assert!(a.len() >= rows * self.k, "packed gemm: lhs too short");
        assert!(c.len() >= rows * self.n, "packed gemm: dst too short");
        assert!(available(), "packed gemm: this CPU lacks AVX2 and FMA");
        let parts = threads.clamp(1, rows.div_ceil(MR).max(1));
        let (ap, cp) = (a.as_ptr() as usize, c.as_mut_ptr() as usize);
        let part = |t: usize| {
            let (r0, r1) = (t * rows / parts, (t + 1) * rows / parts);
            // SAFETY: the lengths are checked above; each part writes its own rows of `c`
            // (disjoint ranges); AVX2 and FMA are checked above.
            unsafe { self.rows(ap as *const f32, cp as *mut f32, r0, r1) }
        };
        if parts == 1 {
            part(0);
        } else {
            use rayon::prelude::*;
            (0..parts).into_par_iter().with_max_len(1).for_each(part);
        }
    }

    /// Rows `r0..r1` of the product.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows(&self, a: *const f32, c: *mut f32, r0: usize, r1: usize) {
        let (k, n) = (self.k, self.n);
        let mut block = self.w.as_ptr();
        for n0 in (0..n).step_by(NB) {
            let nc = NB.min(n - n0);
            let strips = nc.div_ceil(NR);
            for k0 in (0..k).step_by(KB) {
                let kc = KB.min(k - k0);
                let last = k0 + kc == k;
                let mut r = r0;
                while r < r1 {
                    let mr = MR.min(r1 - r);
                    // SAFETY (whole block): rows r..r+mr < rows and columns < n stay inside
                    // `a` and `c`; strip s of this block holds kc x 16 packed values.
                    unsafe {
                        let ar = a.add(r * k + k0);
                        for s in 0..strips {
                            let b = block.add(s * kc * NR);
                            let cr = c.add(r * n + n0 + s * NR);
                            let cols = NR.min(nc - s * NR);
                            let acc = k0 > 0;
                            match (mr, cols == NR) {
                                (MR, true) => tile6x16(ar, k, b, kc, cr, n, acc),
                                _ => edge(mr, ar, k, b, kc, cr, n, acc, cols),
                            }
                        }
                        if last && (self.bias.is_some() || self.relu.is_some()) {
                            let bias = self.bias.as_ref().map(|b| &b[n0..n0 + nc]);
                            for i in 0..mr {
                                let row =
                                    std::slice::from_raw_parts_mut(c.add((r + i) * n + n0), nc);
                                bias_act_row(row, bias, self.relu);
                            }
                        }
                    }
                    r += mr;
                }
                // SAFETY: advances past this block's strips, within `w`.
                block = unsafe { block.add(strips * kc * NR) };
            }
        }
    }
}

/// A tile narrower than 6 x 16 (`mr` rows, `cols` columns): computed 16 wide into a
/// scratch tile, then the valid columns added into (or stored to) `c`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn edge(
    mr: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    cols: usize,
) {
    let mut tmp = [0f32; MR * NR];
    let t = tmp.as_mut_ptr();
    // SAFETY: `a` has mr rows of kc values, `b` kc x 16 values (the caller's contract); the
    // scratch tile holds MR rows of 16.
    unsafe {
        match mr {
            6 => tile::<6>(a, lda, b, kc, t, NR, false),
            5 => tile::<5>(a, lda, b, kc, t, NR, false),
            4 => tile::<4>(a, lda, b, kc, t, NR, false),
            3 => tile::<3>(a, lda, b, kc, t, NR, false),
            2 => tile::<2>(a, lda, b, kc, t, NR, false),
            _ => tile::<1>(a, lda, b, kc, t, NR, false),
        }
        for i in 0..mr {
            let row = std::slice::from_raw_parts_mut(c.add(i * ldc), cols);
            for (j, v) in row.iter_mut().enumerate() {
                let x = tmp[i * NR + j];
                *v = if acc { *v + x } else { x };
            }
        }
    }
}

/// `R x 16` tile: `c (+)= a[R x kc] · b[kc x 16]` (`b` packed `[k][16]`).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    let mut r0 = [_mm256_setzero_ps(); R];
    let mut r1 = [_mm256_setzero_ps(); R];
    // SAFETY: `a` has R rows of kc values at stride lda, `b` kc x 16 values, `c` R rows of
    // 16 values at stride ldc (the caller's contract).
    unsafe {
        let rows: [*const f32; R] = std::array::from_fn(|i| a.add(i * lda));
        for kk in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(kk * NR));
            let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
            for i in 0..R {
                let av = _mm256_broadcast_ss(&*rows[i].add(kk));
                r0[i] = _mm256_fmadd_ps(av, b0, r0[i]);
                r1[i] = _mm256_fmadd_ps(av, b1, r1[i]);
            }
        }
        for i in 0..R {
            let p = c.add(i * ldc);
            if acc {
                r0[i] = _mm256_add_ps(r0[i], _mm256_loadu_ps(p));
                r1[i] = _mm256_add_ps(r1[i], _mm256_loadu_ps(p.add(8)));
            }
            _mm256_storeu_ps(p, r0[i]);
            _mm256_storeu_ps(p.add(8), r1[i]);
        }
    }
}

/// One k step of the 6 x 16 tile: the step's two weight vectors, then per row one broadcast
/// and two FMAs. Row addresses: two bases (rows 0 and 3) plus 0, 1 or 2 row strides, so no
/// address arithmetic runs inside the loop (the intrinsic tile's compiled loop re-derives each
/// row's address from the previous one: a serial chain of adds per step).
macro_rules! kstep6 {
    ($u:literal) => {
        concat!(
            "vmovups ymm12, [{b} + 64*",
            $u,
            "]\n",
            "vmovups ymm13, [{b} + 64*",
            $u,
            " + 32]\n",
            row6!("{a0}", $u, 0, 1, 14),
            row6!("{a0} + {lda}", $u, 2, 3, 15),
            row6!("{a0} + {lda}*2", $u, 4, 5, 14),
            row6!("{a3}", $u, 6, 7, 15),
            row6!("{a3} + {lda}", $u, 8, 9, 14),
            row6!("{a3} + {lda}*2", $u, 10, 11, 15),
        )
    };
}

/// One row of a k step: broadcast `a[row][k + u]` into ymm`t`, accumulate into ymm`r0`/`r1`.
macro_rules! row6 {
    ($addr:literal, $u:literal, $r0:literal, $r1:literal, $t:literal) => {
        concat!(
            "vbroadcastss ymm",
            $t,
            ", dword ptr [",
            $addr,
            " + 4*",
            $u,
            "]\n",
            "vfmadd231ps ymm",
            $r0,
            ", ymm12, ymm",
            $t,
            "\n",
            "vfmadd231ps ymm",
            $r1,
            ", ymm13, ymm",
            $t,
            "\n",
        )
    };
}

/// Store (or add into) one row of the tile and step to the next row.
macro_rules! store_row6 {
    ($r0:literal, $r1:literal) => {
        concat!(
            "test {acc}, {acc}\n",
            "jz 8f\n",
            "vaddps ymm",
            $r0,
            ", ymm",
            $r0,
            ", [{c}]\n",
            "vaddps ymm",
            $r1,
            ", ymm",
            $r1,
            ", [{c} + 32]\n",
            "8:\n",
            "vmovups [{c}], ymm",
            $r0,
            "\n",
            "vmovups [{c} + 32], ymm",
            $r1,
            "\n",
            "add {c}, {ldc}\n",
        )
    };
}

/// The 6 x 16 tile: `c (+)= a[6 x kc] · b[kc x 16]` (`b` packed `[k][16]`), in inline
/// assembly so the 12 accumulators, 2 weight vectors and 2 broadcast registers stay in
/// ymm0-15 and each k step is 2 loads, 6 broadcasts and 12 FMAs (two k steps per loop
/// iteration).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile6x16(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY: the caller guarantees 6 rows of kc values at stride lda from `a`, kc x 16
    // values at `b`, and 6 rows of 16 values at stride ldc from `c`; the assembly touches
    // nothing else, uses no stack, and declares every register it changes.
    unsafe {
        asm!(
            "vxorps ymm0, ymm0, ymm0", "vxorps ymm1, ymm1, ymm1",
            "vxorps ymm2, ymm2, ymm2", "vxorps ymm3, ymm3, ymm3",
            "vxorps ymm4, ymm4, ymm4", "vxorps ymm5, ymm5, ymm5",
            "vxorps ymm6, ymm6, ymm6", "vxorps ymm7, ymm7, ymm7",
            "vxorps ymm8, ymm8, ymm8", "vxorps ymm9, ymm9, ymm9",
            "vxorps ymm10, ymm10, ymm10", "vxorps ymm11, ymm11, ymm11",
            "lea {a3}, [{a0} + {lda}*2]",
            "add {a3}, {lda}",
            "test {pairs}, {pairs}",
            "jz 3f",
            "2:",
            kstep6!(0),
            kstep6!(1),
            "add {a0}, 8",
            "add {a3}, 8",
            "add {b}, 128",
            "dec {pairs}",
            "jnz 2b",
            "3:",
            "test {odd}, {odd}",
            "jz 4f",
            kstep6!(0),
            "4:",
            store_row6!(0, 1),
            store_row6!(2, 3),
            store_row6!(4, 5),
            store_row6!(6, 7),
            store_row6!(8, 9),
            store_row6!(10, 11),
            "vzeroupper",
            a0 = inout(reg) a => _,
            a3 = out(reg) _,
            lda = in(reg) lda * 4,
            ldc = in(reg) ldc * 4,
            b = inout(reg) b => _,
            c = inout(reg) c => _,
            pairs = inout(reg) kc / 2 => _,
            odd = in(reg) kc % 2,
            acc = in(reg) acc as usize,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Act;
    use proptest::prelude::*;

    /// Plain-loop `a · w (+ bias, ReLU)` in f64.
    fn reference(
        a: &[f32],
        w: &[f32],
        rows: usize,
        k: usize,
        n: usize,
        bias: &[f32],
        relu: bool,
    ) -> Vec<f32> {
        let mut c = vec![0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let mut s: f64 = bias.get(j).map_or(0.0, |&b| b as f64);
                for kk in 0..k {
                    s += a[r * k + kk] as f64 * w[kk * n + j] as f64;
                }
                c[r * n + j] = if relu { s.max(0.0) as f32 } else { s as f32 };
            }
        }
        c
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 997) as f32 / 498.5) - 1.0)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every shape the blocking meets: rows not a multiple of 6, columns not a multiple
        /// of 16, odd reductions, more than one reduction block (k > 256) and column block
        /// (n > 256), bias and ReLU, one or two threads.
        #[test]
        fn packed_avx2_gemm_matches_the_reference(
            rows in 1usize..20, k in 1usize..600, n in 1usize..300, bias in any::<bool>(),
            relu in any::<bool>(), threads in 1usize..3, seed in 0usize..1000,
        ) {
            prop_assume!(available());
            let (a, w) = (values(rows * k, seed), values(k * n, seed + 1));
            let b = if bias { values(n, seed + 2) } else { vec![] };
            let p = PackedGemm2::new(&w, k, n, bias.then(|| b.clone()), relu.then_some(Act::RELU));
            let mut c = vec![f32::NAN; rows * n];
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| p.run(&a, rows, &mut c, threads));
            let want = reference(&a, &w, rows, k, n, &b, relu);
            for (g, r) in c.iter().zip(&want) {
                prop_assert!((g - r).abs() <= 1e-4 * (k as f32).sqrt() * r.abs().max(1.0), "{g} vs {r}");
            }
        }
    }
}
