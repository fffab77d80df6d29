//! Large GEMMs with a right-hand side (weights) packed once in `prepare` (AVX-512, x86_64).
//!
//! `C[m x n] = A[m x k] · W[k x n] (+ bias, ReLU)`, the layout ONNX Runtime's MLAS uses for a
//! MatMul with a constant right-hand side: `W` is packed into `KB x NB` blocks, each a run of
//! 32-column strips stored `[k][32]`; `A` is read where it lies (no per-call packing); a
//! 12-row x 32-column register tile (24 zmm accumulators) walks a block's strips for each 12
//! rows, so the 12 rows of `A` (12 x KB floats) are reused from L1 across the block's strips
//! and the block (KB x NB floats) from L2 across all rows. Threads take one contiguous,
//! evenly split row range each and run to the end without synchronising: one fork per
//! product.
//!
//! Chosen by measurement (dev VM, Xeon with AVX-512, sgemm 1024^3, GFLOP/s 1 / 2 threads, a
//! standalone copy of this kernel timed beside the `gemm` crate in the same process):
//! this layout 160-163 / 315-320 with `KB, NB = 512, 256`; with MLAS's `256, 128` 147 / 301,
//! `256, 256` 154 / 306-312, `1024, 256` 163 / 318-320, `512, 512` 161 / 315, `1024, 1024`
//! 129; the same tile in Rust intrinsics (LLVM re-derives the 12 row addresses every step)
//! 138 / 282, hence the inline assembly; the `gemm` crate (which packs both operands on every
//! call and synchronises its threads per block) 158-163 / 285-318.

use crate::kernels::{Buf, Relu, bias_act_row};
use crate::mask::lane_mask;
use std::arch::asm;
use std::arch::x86_64::*;

/// Reduction rows per packed block (measured, see the module doc).
const KB: usize = 512;
/// Columns per packed block (measured, see the module doc).
const NB: usize = 256;
/// Rows of one register tile.
const MR: usize = 12;
/// Columns of one register tile (two zmm vectors) and of one packed strip.
const NR: usize = 32;

/// A right-hand side packed for [`PackedGemm::run`], with its fused epilogue.
pub struct PackedGemm {
    k: usize,
    n: usize,
    /// Blocks in (column block, reduction block) order, strips zero-padded to 32 columns;
    /// line-aligned, so a strip's vector loads never straddle two lines.
    w: Buf,
    bias: Option<Vec<f32>>,
    relu: Relu,
}

impl PackedGemm {
    /// Pack `w` (`k x n`, row-major, `k > 0`).
    pub fn new(w: &[f32], k: usize, n: usize, bias: Option<Vec<f32>>, relu: Relu) -> Self {
        PackedGemm {
            k,
            n,
            w: pack_blocks(w, k, n, [KB, NB, NR], bias.as_deref()),
            bias,
            relu,
        }
    }

    /// The reduction length (rows of the packed right-hand side).
    pub fn k(&self) -> usize {
        self.k
    }

    /// `c = a · w` for `a` of `rows x k` (row-major, contiguous) into `c` (`rows x n`), split
    /// into one contiguous row range per thread of the current rayon pool when `threads > 1`
    /// (for a step inside a plan the pool already runs). Only call where
    /// [`crate::direct::available`] holds.
    pub fn run(&self, a: &[f32], rows: usize, c: &mut [f32], threads: usize) {
        let parts = self.parts(a, rows, c, threads);
        let (ap, cp) = (a.as_ptr() as usize, c.as_mut_ptr() as usize);
        let part = |t| self.part(ap, cp, rows, t, parts);
        if parts == 1 {
            part(0);
        } else {
            use rayon::prelude::*;
            (0..parts).into_par_iter().with_max_len(1).for_each(part);
        }
    }

    /// As [`Self::run`], called from outside `pool`: the calling thread takes the first
    /// row range itself, `pool` the others, and the caller spins (up to `spin`) for them
    /// rather than sleeping. Measured at 1024^3 on 2 threads (dev VM, the standalone copy of
    /// the module doc): 330-333 GFLOP/s against 323 when the caller hands the whole product
    /// to the pool and sleeps until it is done (instrumented: both ranges finished by
    /// 6306 us, the caller returned at 6394 us); `greenbench peak --threads 2`: 320-322
    /// (full profile) before, 334.5 after. Each helper's share is one small heap job (rayon
    /// scope spawn) per product: the one allocation in a prepared matmul's `run`.
    pub fn run_from_caller(
        &self,
        pool: &rayon::ThreadPool,
        a: &[f32],
        rows: usize,
        c: &mut [f32],
        threads: usize,
        spin: std::time::Duration,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let parts = self.parts(a, rows, c, threads);
        let (ap, cp) = (a.as_ptr() as usize, c.as_mut_ptr() as usize);
        let finished = AtomicUsize::new(0);
        let (part, finished) = (&|t| self.part(ap, cp, rows, t, parts), &finished);
        pool.in_place_scope(|s| {
            for t in 1..parts {
                s.spawn(move |_| {
                    part(t);
                    finished.fetch_add(1, Ordering::Release);
                });
            }
            part(0);
            // Past `spin` the scope's own (sleeping) wait takes over.
            crate::spin::spin_until(finished, parts - 1, spin);
        });
    }

    /// Checks the operands; the number of row ranges for `threads`.
    fn parts(&self, a: &[f32], rows: usize, c: &[f32], threads: usize) -> usize {
        assert!(a.len() >= rows * self.k, "packed gemm: lhs too short");
        assert!(c.len() >= rows * self.n, "packed gemm: dst too short");
        threads.clamp(1, rows.div_ceil(MR).max(1))
    }

    /// Row range `t` of `parts` (`a`, `c`: the checked operands' addresses).
    fn part(&self, a: usize, c: usize, rows: usize, t: usize, parts: usize) {
        // Rows split evenly, each part ending in its own narrower tile if need be: at 1024
        // rows on 2 threads, 512 + 512 rows read 321-325 GFLOP/s against 314-319 for
        // 504 + 520 (whole tiles only, but one part 3 % longer; a throwaway example timing
        // `prepare_matmul` + `run` through the backend).
        let (r0, r1) = (t * rows / parts, (t + 1) * rows / parts);
        // SAFETY: `parts` checked `a` and `c`'s lengths; each part writes its own rows of `c`
        // only (disjoint ranges), and the caller checked AVX-512 (`direct::available`).
        unsafe { self.rows(a as *const f32, c as *mut f32, r0, r1) }
    }

    /// Rows `r0..r1` of the product.
    #[target_feature(enable = "avx512f")]
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
                    // `a` and `c`; strip s of this block holds kc x 32 packed values.
                    unsafe {
                        let ar = a.add(r * k + k0);
                        for s in 0..strips {
                            let b = block.add(s * kc * NR);
                            let cr = c.add(r * n + n0 + s * NR);
                            let cols = NR.min(nc - s * NR);
                            if mr == MR && cols == NR {
                                tile12x32(ar, k, b, kc, cr, n, k0 > 0);
                            } else {
                                edge(mr, ar, k, b, kc, cr, n, k0 > 0, cols);
                            }
                        }
                        if last && (self.bias.is_some() || self.relu.is_some()) {
                            self.epilogue(c.add(r * n + n0), mr, nc, n0);
                        }
                    }
                    r += mr;
                }
                // SAFETY: advances past this block's strips, within `w`.
                block = unsafe { block.add(strips * kc * NR) };
            }
        }
    }

    /// Bias and ReLU over `mr` rows x `nc` columns (from column `n0`) of `c`, while they
    /// are still in L1.
    #[target_feature(enable = "avx512f")]
    unsafe fn epilogue(&self, c: *mut f32, mr: usize, nc: usize, n0: usize) {
        let bias = self.bias.as_ref().map(|b| &b[n0..n0 + nc]);
        for i in 0..mr {
            // SAFETY: the caller passes rows and columns inside `c`.
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * self.n), nc) };
            bias_act_row(row, bias, self.relu);
        }
    }
}

/// `w` (`k x n`, row-major, `k > 0`) packed as the packed GEMMs read it, for blocks of
/// `kb` reduction rows x `nb` columns made of `nr`-column strips: blocks in (column block,
/// reduction block) order, each strip `[k][nr]`, zero-padded to `nr` columns. Checks the
/// operands (and that a bias has `n` values).
pub(crate) fn pack_blocks(
    w: &[f32],
    k: usize,
    n: usize,
    [kb, nb, nr]: [usize; 3],
    bias: Option<&[f32]>,
) -> Buf {
    assert_eq!(w.len(), k * n, "packed gemm: weights are not k x n");
    assert!(k > 0, "packed gemm: empty reduction");
    assert!(bias.is_none_or(|b| b.len() == n));
    let mut p = Buf::zeros(k * n.div_ceil(nr) * nr);
    let mut out = p.iter_mut();
    for n0 in (0..n).step_by(nb) {
        let n1 = (n0 + nb).min(n);
        for k0 in (0..k).step_by(kb) {
            for s in (n0..n1).step_by(nr) {
                for row in w[k0 * n..(k0 + kb).min(k) * n].chunks(n) {
                    for (j, o) in (s..s + nr).zip(&mut out) {
                        *o = if j < n1 { row[j] } else { 0.0 };
                    }
                }
            }
        }
    }
    p
}

/// A tile narrower than 12 x 32 (`mr` rows, `cols` columns): row chunks of 8, 4, 2 and 1
/// on the Rust-intrinsic kernel (only the ragged edges of a product come here).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
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
    let (m0, m1) = (lane_mask(cols, 0), lane_mask(cols, 1));
    let mut i = 0;
    while i < mr {
        let (a, c) = (a.wrapping_add(i * lda), c.wrapping_add(i * ldc));
        // SAFETY: rows i.. of the caller's `mr` rows, forwarded from `rows`.
        i += unsafe {
            match mr - i {
                8.. => tile::<8>(a, lda, b, kc, c, ldc, acc, m0, m1),
                4.. => tile::<4>(a, lda, b, kc, c, ldc, acc, m0, m1),
                2.. => tile::<2>(a, lda, b, kc, c, ldc, acc, m0, m1),
                _ => tile::<1>(a, lda, b, kc, c, ldc, acc, m0, m1),
            }
        };
    }
}

/// `R x 32` tile (columns masked by `m0`, `m1`): `c (+)= a[R x kc] · b[kc x 32]`; returns
/// `R`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    m0: u16,
    m1: u16,
) -> usize {
    let mut r0 = [_mm512_setzero_ps(); R];
    let mut r1 = [_mm512_setzero_ps(); R];
    // SAFETY: `a` has R rows of kc values at stride lda, `b` kc x 32 values, `c` R rows of
    // the masked columns at stride ldc (the caller's contract).
    unsafe {
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(kk * NR));
            let b1 = _mm512_loadu_ps(b.add(kk * NR + 16));
            for i in 0..R {
                let av = _mm512_set1_ps(*a.add(i * lda + kk));
                r0[i] = _mm512_fmadd_ps(av, b0, r0[i]);
                r1[i] = _mm512_fmadd_ps(av, b1, r1[i]);
            }
        }
        for i in 0..R {
            let p = c.add(i * ldc);
            if acc {
                r0[i] = _mm512_add_ps(r0[i], _mm512_maskz_loadu_ps(m0, p));
                r1[i] = _mm512_add_ps(r1[i], _mm512_maskz_loadu_ps(m1, p.add(16)));
            }
            _mm512_mask_storeu_ps(p, m0, r0[i]);
            _mm512_mask_storeu_ps(p.add(16), m1, r1[i]);
        }
    }
    R
}

/// One k step of the 12 x 32 tile: load the step's two weight vectors, then per row one
/// broadcast and two FMAs. Row addresses: four bases (rows 0, 3, 6, 9) plus 0, 1 or 2 row
/// strides, so no address arithmetic runs inside the loop.
macro_rules! kstep {
    ($u:literal) => {
        concat!(
            "vmovups zmm24, [{b} + 128*",
            $u,
            "]\n",
            "vmovups zmm25, [{b} + 128*",
            $u,
            " + 64]\n",
            row!("{a0}", $u, 0, 1, 26),
            row!("{a0} + {lda}", $u, 2, 3, 27),
            row!("{a0} + {lda}*2", $u, 4, 5, 26),
            row!("{a3}", $u, 6, 7, 27),
            row!("{a3} + {lda}", $u, 8, 9, 26),
            row!("{a3} + {lda}*2", $u, 10, 11, 27),
            row!("{a6}", $u, 12, 13, 26),
            row!("{a6} + {lda}", $u, 14, 15, 27),
            row!("{a6} + {lda}*2", $u, 16, 17, 26),
            row!("{a9}", $u, 18, 19, 27),
            row!("{a9} + {lda}", $u, 20, 21, 26),
            row!("{a9} + {lda}*2", $u, 22, 23, 27),
        )
    };
}

/// One row of a k step: broadcast `a[row][k + u]` into zmm`t`, accumulate into zmm`r0`/`r1`.
macro_rules! row {
    ($addr:literal, $u:literal, $r0:literal, $r1:literal, $t:literal) => {
        concat!(
            "vbroadcastss zmm",
            $t,
            ", dword ptr [",
            $addr,
            " + 4*",
            $u,
            "]\n",
            "vfmadd231ps zmm",
            $r0,
            ", zmm24, zmm",
            $t,
            "\n",
            "vfmadd231ps zmm",
            $r1,
            ", zmm25, zmm",
            $t,
            "\n",
        )
    };
}

/// Store (or add into) one row of the tile and step to the next row.
macro_rules! store_row {
    ($r0:literal, $r1:literal) => {
        concat!(
            "test {acc}, {acc}\n",
            "jz 8f\n",
            "vaddps zmm",
            $r0,
            ", zmm",
            $r0,
            ", [{c}]\n",
            "vaddps zmm",
            $r1,
            ", zmm",
            $r1,
            ", [{c} + 64]\n",
            "8:\n",
            "vmovups [{c}], zmm",
            $r0,
            "\n",
            "vmovups [{c} + 64], zmm",
            $r1,
            "\n",
            "add {c}, {ldc}\n",
        )
    };
}

/// The 12 x 32 tile: `c (+)= a[12 x kc] · b[kc x 32]` (`b` packed `[k][32]`), in inline
/// assembly so the 24 accumulators, 2 weight vectors and 2 broadcast registers stay in
/// zmm0-27 and each k step is 2 loads, 12 broadcasts and 24 FMAs (two k steps per loop
/// iteration).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn tile12x32(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY: the caller guarantees 12 rows of kc values at stride lda from `a`, kc x 32
    // values at `b`, and 12 rows of 32 values at stride ldc from `c`; the assembly touches
    // nothing else, uses no stack, and declares every register it changes.
    unsafe {
        asm!(
            "vpxord zmm0, zmm0, zmm0", "vpxord zmm1, zmm1, zmm1",
            "vpxord zmm2, zmm2, zmm2", "vpxord zmm3, zmm3, zmm3",
            "vpxord zmm4, zmm4, zmm4", "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6", "vpxord zmm7, zmm7, zmm7",
            "vpxord zmm8, zmm8, zmm8", "vpxord zmm9, zmm9, zmm9",
            "vpxord zmm10, zmm10, zmm10", "vpxord zmm11, zmm11, zmm11",
            "vpxord zmm12, zmm12, zmm12", "vpxord zmm13, zmm13, zmm13",
            "vpxord zmm14, zmm14, zmm14", "vpxord zmm15, zmm15, zmm15",
            "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18", "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20", "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22", "vpxord zmm23, zmm23, zmm23",
            "lea {a3}, [{a0} + {lda}*2]",
            "add {a3}, {lda}",
            "lea {a6}, [{a3} + {lda}*2]",
            "add {a6}, {lda}",
            "lea {a9}, [{a6} + {lda}*2]",
            "add {a9}, {lda}",
            "test {pairs}, {pairs}",
            "jz 3f",
            "2:",
            kstep!(0),
            kstep!(1),
            "add {a0}, 8",
            "add {a3}, 8",
            "add {a6}, 8",
            "add {a9}, 8",
            "add {b}, 256",
            "dec {pairs}",
            "jnz 2b",
            "3:",
            "test {odd}, {odd}",
            "jz 4f",
            kstep!(0),
            "4:",
            store_row!(0, 1),
            store_row!(2, 3),
            store_row!(4, 5),
            store_row!(6, 7),
            store_row!(8, 9),
            store_row!(10, 11),
            store_row!(12, 13),
            store_row!(14, 15),
            store_row!(16, 17),
            store_row!(18, 19),
            store_row!(20, 21),
            store_row!(22, 23),
            a0 = inout(reg) a => _,
            a3 = out(reg) _,
            a6 = out(reg) _,
            a9 = out(reg) _,
            lda = in(reg) lda * 4,
            ldc = in(reg) ldc * 4,
            b = inout(reg) b => _,
            c = inout(reg) c => _,
            pairs = inout(reg) kc / 2 => _,
            odd = in(reg) kc % 2,
            acc = in(reg) acc as usize,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
            out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
            out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            options(nostack),
        );
    }
}
