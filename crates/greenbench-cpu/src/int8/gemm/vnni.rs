//! The AVX-512 VNNI form of the int8 GEMM (`vpdpbusd` register tiles, a convolution read in
//! place, the epilogue fused into the tiles), and AMX's dispatch around it.

use super::{Fin, QGemm, QPath, amx};
use crate::int8::epilogue::{ANY_MODE, EpiRegs, HIGH_MODE, ORDER4};
use std::arch::x86_64::*;

/// Four bytes of row `a` from `k0` (fewer past `k`, zero-filled) as one int32.
#[inline(always)]
unsafe fn quad(a: *const u8, k0: usize, k: usize) -> i32 {
    if k0 + 4 <= k {
        unsafe { (a.add(k0) as *const i32).read_unaligned() }
    } else {
        let mut b = [0u8; 4];
        for (t, v) in b.iter_mut().enumerate().take(k - k0) {
            *v = unsafe { *a.add(k0 + t) };
        }
        i32::from_le_bytes(b)
    }
}

/// An `MR x 16 NV` block of `C`. Row `r` of `A` is at `a + r * lda`, its quad `q` at
/// `+ 4 q`; or, `IN_PLACE`, at `a + bases[r]` and `+ qoff[q]` (a convolution reading its
/// padded image in place; `k` is then a multiple of 4).
#[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize, const NV: usize, const IN_PLACE: bool>(
    g: &QGemm,
    a: *const u8,
    lda: usize,
    bases: *const usize,
    qoff: *const u32,
    b0: usize,
    c: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
) {
    let k4 = g.k.div_ceil(4);
    let full = g.k / 4;
    let bp = g.packed.as_ptr();
    let mut rows = [a; MR];
    for (r, p) in rows.iter_mut().enumerate() {
        *p = if IN_PLACE {
            unsafe { a.add(*bases.add(r)) }
        } else {
            unsafe { a.add(r * lda) }
        };
    }
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for q in 0..k4 {
        let mut bv = [_mm512_setzero_si512(); NV];
        for (v, b) in bv.iter_mut().enumerate() {
            *b = unsafe { _mm512_loadu_si512(bp.add(((b0 + v) * k4 + q) * 64) as *const __m512i) };
        }
        let off = if IN_PLACE {
            unsafe { *qoff.add(q) as usize }
        } else {
            q * 4
        };
        // Index loops over the accumulators, not iterators over references to them:
        // with the latter LLVM kept `acc` in memory and stored every accumulator after
        // each `vpdpbusd` (seen in `perf annotate`; the fp32 tile had the same defect).
        for r in 0..MR {
            let ar = rows[r];
            let x = if IN_PLACE || q < full {
                unsafe { (ar.add(off) as *const i32).read_unaligned() }
            } else {
                unsafe { quad(ar, q * 4, g.k) }
            };
            let xa = _mm512_set1_epi32(x);
            for v in 0..NV {
                acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], xa, bv[v]);
            }
        }
    }
    if let Some(f) = fin {
        // SAFETY: AVX-512 F (this function's features).
        let k = unsafe { f.epi.regs() };
        // The epilogue's form chosen once per tile (`High`, the usual one, fixed in the
        // loops); the caller's bounds.
        unsafe {
            if k.is_high() {
                finish_tile::<MR, NV, HIGH_MODE>(g, &acc, b0, f, &k)
            } else {
                finish_tile::<MR, NV, ANY_MODE>(g, &acc, b0, f, &k)
            }
        }
        return;
    }
    for r in 0..MR {
        for v in 0..NV {
            let col = (b0 + v) * 16;
            let left = g.n - col;
            let dst = unsafe { c.add(r * ldc + col) };
            if left >= 16 {
                unsafe { _mm512_storeu_si512(dst as *mut __m512i, acc[r][v]) };
            } else {
                let m: __mmask16 = (1u32 << left) as u16 - 1;
                unsafe { _mm512_mask_storeu_epi32(dst, m, acc[r][v]) };
            }
        }
    }
}

/// A tile's sums through its epilogue into `f`'s rows (the form `M`, as
/// [`Epi::vec16_in`]): four vectors of a row packed into one store where the tile is
/// four wide, else each vector's 16 bytes.
///
/// # Safety
/// As [`tile`]'s epilogue: row r's channels of block `b0` (masked to n) lie in `f`'s
/// destination and the epilogue's arrays cover them plus 16; `M` as `k` allows.
#[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn finish_tile<const MR: usize, const NV: usize, const M: u8>(
    g: &QGemm,
    acc: &[[__m512i; NV]; MR],
    b0: usize,
    f: Fin,
    k: &EpiRegs,
) {
    if NV == 4 {
        // Four vectors of a row packed into one store (`Epi::pack4`, clamped there),
        // `vpermd` puts them in order.
        let col = b0 * 16;
        let left = g.n - col;
        let m: u64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
        // SAFETY: ORDER4 holds 16 i32.
        let order = unsafe { _mm512_loadu_si512(ORDER4.as_ptr() as *const __m512i) };
        for r in 0..MR {
            // (`% NV`: this branch runs only with NV = 4.)
            // SAFETY: the caller's bounds: row r's channels col..col + 64 (masked to
            // n) lie in `y`, and the epilogue's arrays cover c0 + col + 64.
            unsafe {
                let e0 = f.epi.vec16_in::<false, M>(k, acc[r][0], f.c0 + col);
                let e1 = f
                    .epi
                    .vec16_in::<false, M>(k, acc[r][1 % NV], f.c0 + col + 16);
                let e2 = f
                    .epi
                    .vec16_in::<false, M>(k, acc[r][2 % NV], f.c0 + col + 32);
                let e3 = f
                    .epi
                    .vec16_in::<false, M>(k, acc[r][3 % NV], f.c0 + col + 48);
                let p = _mm512_permutexvar_epi32(order, f.epi.pack4(k, [e0, e1, e2, e3]));
                _mm512_mask_storeu_epi8(f.y.add(r * f.ldy + col) as *mut i8, m, p);
            }
        }
        return;
    }
    for r in 0..MR {
        for v in 0..NV {
            let col = (b0 + v) * 16;
            let m = crate::int8::epilogue::lanes_from(col, g.n);
            // SAFETY: the caller's bounds: row r's channels col..col + 16 (masked
            // to n) lie in `y`, and the epilogue's arrays cover c0 + col + 16.
            unsafe {
                let q = _mm512_cvtepi32_epi8(f.epi.vec16_in::<true, M>(k, acc[r][v], f.c0 + col));
                _mm_mask_storeu_epi8(f.y.add(r * f.ldy + col) as *mut i8, m, q);
            }
        }
    }
}

/// Rows per tile for `nv` column vectors: as many accumulators as the 32 registers
/// allow beside the weights and the broadcast (each row reuses the `nv` weight vectors;
/// each weight vector is reused by every row).
pub(super) fn rows_for(nv: usize) -> usize {
    match nv {
        1 => 12,
        2 => 8,
        3 => 6,
        _ => 5,
    }
}

macro_rules! tiles {
    ($nv:literal, $ip:literal, $mr:expr, $($args:expr),*) => {
        match $mr {
            12 => tile::<12, $nv, $ip>($($args),*),
            11 => tile::<11, $nv, $ip>($($args),*),
            10 => tile::<10, $nv, $ip>($($args),*),
            9 => tile::<9, $nv, $ip>($($args),*),
            8 => tile::<8, $nv, $ip>($($args),*),
            7 => tile::<7, $nv, $ip>($($args),*),
            6 => tile::<6, $nv, $ip>($($args),*),
            5 => tile::<5, $nv, $ip>($($args),*),
            4 => tile::<4, $nv, $ip>($($args),*),
            3 => tile::<3, $nv, $ip>($($args),*),
            2 => tile::<2, $nv, $ip>($($args),*),
            _ => tile::<1, $nv, $ip>($($args),*),
        }
    };
}

/// # Safety
/// The CPU has AVX-512 F/BW/VNNI; every row's quads (`src + bases[r] + qoff[q]`, 4 bytes)
/// are inside `src`; `c` holds `bases.len()` rows of `n` at stride `ldc`.
pub(super) unsafe fn run_in_place(
    g: &QGemm,
    src: &[u8],
    bases: &[usize],
    qoff: &[u32],
    cp: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
) {
    let kc = match g.path {
        QPath::Amx if amx::worth(g, bases.len()) => amx::in_place_chunk(g.k, qoff),
        _ => None,
    };
    let Some(kc) = kc else {
        return unsafe { in_place_vnni(g, src, bases, qoff, cp, ldc, fin) };
    };
    // SAFETY: `Amx` is only `available` where `amx::enabled`; the caller's bounds.
    let left = unsafe { amx::run_in_place(g, src.as_ptr(), bases, qoff, kc, cp, ldc, fin) };
    for (r, n) in left {
        let (c, f) = (cp.wrapping_add(r * ldc), fin.map(|f| f.row(r)));
        // SAFETY: rows r..r + n of the caller's.
        unsafe { in_place_vnni(g, src, &bases[r..r + n], qoff, c, ldc, f) };
    }
}

/// [`run_in_place`] on the VNNI tile alone.
///
/// # Safety
/// As [`run_in_place`].
unsafe fn in_place_vnni(
    g: &QGemm,
    src: &[u8],
    bases: &[usize],
    qoff: &[u32],
    cp: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
) {
    let rows = bases.len();
    let nb = g.n.div_ceil(16);
    let ap = src.as_ptr();
    let qp = qoff.as_ptr();
    let mut b = 0;
    while b < nb {
        let nv = (nb - b).min(4);
        let per = rows_for(nv);
        let mut r = 0;
        while r < rows {
            let mr = (rows - r).min(per);
            let (br, cr) = (bases.as_ptr().wrapping_add(r), cp.wrapping_add(r * ldc));
            let f = fin.map(|f| f.row(r));
            unsafe {
                match nv {
                    4 => tiles!(4, true, mr, g, ap, 0, br, qp, b, cr, ldc, f),
                    3 => tiles!(3, true, mr, g, ap, 0, br, qp, b, cr, ldc, f),
                    2 => tiles!(2, true, mr, g, ap, 0, br, qp, b, cr, ldc, f),
                    _ => tiles!(1, true, mr, g, ap, 0, br, qp, b, cr, ldc, f),
                }
            };
            r += mr;
        }
        b += nv;
    }
}

/// # Safety
/// The CPU has AVX-512 F/BW/VNNI; `a` holds `rows` rows of `k` at stride `lda`, `c`
/// `rows` rows of `n` at stride `ldc`.
pub(super) unsafe fn run(
    g: &QGemm,
    a: &[u8],
    lda: usize,
    rows: usize,
    cp: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
) {
    let nb = g.n.div_ceil(16);
    let ap = a.as_ptr();
    // Whole 16-row blocks on AMX where it runs (this path and K); the rest here.
    let done = if g.path == QPath::Amx && amx::chunk(g.k).is_some() && amx::worth(g, rows) {
        // SAFETY: `Amx` is only `available` where `amx::enabled`; the caller's bounds.
        unsafe { amx::run(g, ap, lda, rows, cp, ldc, fin) }
    } else {
        0
    };
    // Column blocks outermost: a block's packed weights stay in L1 across the rows.
    let mut b = 0;
    while b < nb {
        let nv = (nb - b).min(4);
        let per = rows_for(nv);
        let mut r = done;
        while r < rows {
            let mr = (rows - r).min(per);
            let (ar, cr) = unsafe { (ap.add(r * lda), cp.wrapping_add(r * ldc)) };
            let (nb0, nq) = (std::ptr::null(), std::ptr::null());
            let f = fin.map(|f| f.row(r));
            unsafe {
                match nv {
                    4 => tiles!(4, false, mr, g, ar, lda, nb0, nq, b, cr, ldc, f),
                    3 => tiles!(3, false, mr, g, ar, lda, nb0, nq, b, cr, ldc, f),
                    2 => tiles!(2, false, mr, g, ar, lda, nb0, nq, b, cr, ldc, f),
                    _ => tiles!(1, false, mr, g, ar, lda, nb0, nq, b, cr, ldc, f),
                }
            };
            r += mr;
        }
        b += nv;
    }
}
