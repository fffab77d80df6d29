//! The uint8 x int8 -> int32 matrix product under every int8 step, with weights packed once
//! for the path chosen at run time:
//!
//! - **vnni** (AVX-512 VNNI, `vpdpbusd`): four u8 x s8 products summed into each int32 lane
//!   per instruction; weights packed `[N/16][K/4][16 x 4]`, a 4-row x 64-column register tile.
//! - **avx2** (`vpmovzxbw`/`vpmovsxbw` + `vpmaddwd`): pairs widened to int16 first, so no
//!   intermediate saturates (`vpmaddubsw` would saturate 255 x 127 x 2); weights packed
//!   `[N/8][K/2][8 x 2]` as int16.
//! - **portable**: plain int32 loops over `[K, N]` (the compiler vectorises the inner loop).
//!
//! All three give the identical int32 sums (integer arithmetic has one answer); tests force
//! each path against the plain loop. On VNNI the requantizing epilogue can run inside the
//! tile (`run_fused`), so a layer's int32 sums never reach memory.

use super::epilogue::Epi;
use crate::kernels::AVec;

/// Which kernel a [`QGemm`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QPath {
    /// AMX-INT8 (`tdpbusd`) for whole 16-row blocks of contiguous rows, VNNI for the rest
    /// (the same weight packing; `amx.rs`).
    Amx,
    Vnni,
    Avx2,
    Portable,
}

impl QPath {
    /// The fastest path this CPU runs.
    pub fn detect() -> QPath {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return if amx::enabled() {
                    QPath::Amx
                } else {
                    QPath::Vnni
                };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return QPath::Avx2;
            }
        }
        QPath::Portable
    }

    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        match self {
            QPath::Portable => true,
            QPath::Avx2 => QPath::detect() != QPath::Portable,
            QPath::Vnni => QPath::detect().vnni_packed(),
            QPath::Amx => QPath::detect() == QPath::Amx,
        }
    }

    /// Whether the weights are packed for `vpdpbusd` (and `tdpbusd`: the same layout).
    pub fn vnni_packed(self) -> bool {
        matches!(self, QPath::Vnni | QPath::Amx)
    }

    pub fn name(self) -> &'static str {
        match self {
            QPath::Amx => "AMX-INT8 (tdpbusd) with AVX-512 VNNI (vpdpbusd)",
            QPath::Vnni => "AVX-512 VNNI (vpdpbusd)",
            QPath::Avx2 => "AVX2 (vpmaddwd)",
            QPath::Portable => "portable",
        }
    }
}

/// `[K, N]` int8 weights packed for one path. `run` writes `rows x n` int32 sums
/// `sum_k a[r, k] * w[k, c]` (raw: no zero point, no bias) with row stride `ldc`.
pub struct QGemm {
    pub k: usize,
    pub n: usize,
    path: QPath,
    /// vnni: int8 `[ceil(N/16)][ceil(K/4)][16][4]`; portable: int8 `[K][N]`.
    packed: AVec<i8>,
    /// avx2: int16 `[ceil(N/8)][ceil(K/2)][8][2]`.
    packed16: AVec<i16>,
    /// Per column: `sum_k w[k, c]` (the zero-point correction's factor).
    pub col_sums: Vec<i32>,
}

impl QGemm {
    /// Pack columns `col0..col0 + n` of a `[K, ldw]` row-major int8 matrix.
    pub fn new(w: &[i8], k: usize, ldw: usize, col0: usize, n: usize, path: QPath) -> QGemm {
        assert!(
            path.available(),
            "{} is not available on this CPU",
            path.name()
        );
        let at = |kk: usize, c: usize| w[kk * ldw + col0 + c];
        let col_sums = (0..n)
            .map(|c| (0..k).map(|kk| at(kk, c) as i32).sum())
            .collect();
        let mut packed = Vec::new();
        let mut packed16 = Vec::new();
        match path {
            QPath::Vnni | QPath::Amx => {
                let (nb, k4) = (n.div_ceil(16), k.div_ceil(4));
                packed = vec![0i8; nb * k4 * 64];
                for b in 0..nb {
                    for q in 0..k4 {
                        for j in 0..16 {
                            for t in 0..4 {
                                let (c, kk) = (b * 16 + j, q * 4 + t);
                                if c < n && kk < k {
                                    packed[((b * k4 + q) * 16 + j) * 4 + t] = at(kk, c);
                                }
                            }
                        }
                    }
                }
            }
            QPath::Avx2 => {
                let (nb, k2) = (n.div_ceil(8), k.div_ceil(2));
                packed16 = vec![0i16; nb * k2 * 16];
                for b in 0..nb {
                    for q in 0..k2 {
                        for j in 0..8 {
                            for t in 0..2 {
                                let (c, kk) = (b * 8 + j, q * 2 + t);
                                if c < n && kk < k {
                                    packed16[((b * k2 + q) * 8 + j) * 2 + t] = at(kk, c) as i16;
                                }
                            }
                        }
                    }
                }
            }
            QPath::Portable => {
                packed = (0..k)
                    .flat_map(|kk| (0..n).map(move |c| (kk, c)))
                    .map(|(kk, c)| at(kk, c))
                    .collect();
            }
        }
        QGemm {
            k,
            n,
            path,
            packed: packed.into(),
            packed16: packed16.into(),
            col_sums,
        }
    }

    pub fn path(&self) -> QPath {
        self.path
    }

    /// Rows of `A` one register tile of this GEMM covers (a team splits a GEMM's rows into
    /// multiples of it, so no share ends in a short tile that a whole run would not have).
    pub fn tile_rows(&self) -> usize {
        match self.path {
            #[cfg(target_arch = "x86_64")]
            QPath::Amx if amx::chunk(self.k).is_some() => 32,
            QPath::Vnni | QPath::Amx => vnni::rows_for(self.n.div_ceil(16).min(4)),
            QPath::Avx2 => 4,
            _ => 1,
        }
    }

    /// `c[r * ldc + j] = sum_k a[r * lda + k] * w[k, j]` for `r < rows`, `j < n`.
    pub fn run(&self, a: &[u8], lda: usize, rows: usize, c: &mut [i32], ldc: usize) {
        if rows == 0 {
            return;
        }
        assert!(a.len() >= (rows - 1) * lda + self.k, "A too short");
        assert!(c.len() >= (rows - 1) * ldc + self.n, "C too short");
        match self.path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `new` checked the CPU has the path's features; the asserts above bound
            // every access the kernels make.
            QPath::Vnni | QPath::Amx => unsafe {
                vnni::run(self, a, lda, rows, c.as_mut_ptr(), ldc, None)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            QPath::Avx2 => unsafe { avx2::run(self, a, lda, rows, c, ldc) },
            _ => self.run_portable(a, lda, rows, c, ldc),
        }
    }

    /// VNNI only: row `r` of `A` read in place, its quad `q` the 4 bytes at `src[bases[r] +
    /// qoff[q]..]` (`k` a multiple of 4, `qoff.len() == k / 4`); `c[r * ldc + j]` as `run`.
    pub fn run_in_place(
        &self,
        src: &[u8],
        bases: &[usize],
        qoff: &[u32],
        c: &mut [i32],
        ldc: usize,
    ) {
        assert!(self.path.vnni_packed() && self.k.is_multiple_of(4) && qoff.len() == self.k / 4);
        assert!(
            src.len() >= self.reach(bases, qoff),
            "in-place rows read past the source"
        );
        if let Some(last) = bases.len().checked_sub(1) {
            assert!(c.len() >= last * ldc + self.n, "C too short");
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: VNNI checked in `new`; every read is bounded by `reach`, every write by the
        // assert on `c`.
        unsafe {
            vnni::run_in_place(self, src, bases, qoff, c.as_mut_ptr(), ldc, None)
        }
    }

    /// Whether [`Self::run_fused`] runs here: the VNNI path with the AVX-512 epilogue.
    pub(super) fn fuses(&self, epi: &Epi) -> bool {
        self.path.vnni_packed() && epi.wide
    }

    /// `run` with the epilogue in the tile: row `r`'s result `j` goes through `epi` (as
    /// channel `c0 + j`) straight into `y[r * ldy + j]` as uint8; no int32 sums reach memory.
    /// Where [`Self::fuses`] only.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_fused(
        &self,
        a: &[u8],
        lda: usize,
        rows: usize,
        epi: &Epi,
        c0: usize,
        y: &mut [u8],
        ldy: usize,
    ) {
        if rows == 0 {
            return;
        }
        assert!(
            self.fuses(epi),
            "a fused GEMM runs on VNNI with the wide epilogue"
        );
        assert!(a.len() >= (rows - 1) * lda + self.k, "A too short");
        assert!(y.len() >= (rows - 1) * ldy + self.n, "Y too short");
        assert!(c0 + self.n <= epi.ch, "channels past the epilogue's");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: VNNI (and VL, in `detect`) checked in `new`; reads bounded as in `run`,
        // writes by the assert on `y`; the epilogue's arrays cover `c0 + n + 16`.
        unsafe {
            let fin = Fin::new(epi, c0, y, ldy);
            vnni::run(self, a, lda, rows, std::ptr::null_mut(), 0, Some(fin))
        }
    }

    /// `run_in_place` with the epilogue in the tile, as [`Self::run_fused`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_in_place_fused(
        &self,
        src: &[u8],
        bases: &[usize],
        qoff: &[u32],
        epi: &Epi,
        c0: usize,
        y: &mut [u8],
        ldy: usize,
    ) {
        assert!(self.fuses(epi) && self.k.is_multiple_of(4) && qoff.len() == self.k / 4);
        assert!(
            src.len() >= self.reach(bases, qoff),
            "in-place rows read past the source"
        );
        if let Some(last) = bases.len().checked_sub(1) {
            assert!(y.len() >= last * ldy + self.n, "Y too short");
        }
        assert!(c0 + self.n <= epi.ch, "channels past the epilogue's");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as `run_fused`, reads bounded by the assert on `src`.
        unsafe {
            let fin = Fin::new(epi, c0, y, ldy);
            vnni::run_in_place(self, src, bases, qoff, std::ptr::null_mut(), 0, Some(fin))
        }
    }

    /// `rows` rows through the GEMM and `epi` into `y` (row `r`'s result `j` at `y[r * ldy +
    /// j]`, channel `c0 + j`): fused in the tile where [`Self::fuses`], else through int32
    /// sums in `acc`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_epi(
        &self,
        a: &[u8],
        lda: usize,
        rows: usize,
        acc: &mut [i32],
        epi: &Epi,
        c0: usize,
        y: &mut [u8],
        ldy: usize,
    ) {
        if self.fuses(epi) {
            return self.run_fused(a, lda, rows, epi, c0, y, ldy);
        }
        let acc = &mut acc[..rows * self.n];
        self.run(a, lda, rows, acc, self.n);
        finish(acc, self.n, epi, c0, y, ldy);
    }

    /// [`Self::run_in_place`] through `epi` into `y`, as [`Self::run_epi`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_in_place_epi(
        &self,
        src: &[u8],
        bases: &[usize],
        qoff: &[u32],
        acc: &mut [i32],
        epi: &Epi,
        c0: usize,
        y: &mut [u8],
        ldy: usize,
    ) {
        if self.fuses(epi) {
            return self.run_in_place_fused(src, bases, qoff, epi, c0, y, ldy);
        }
        let acc = &mut acc[..bases.len() * self.n];
        self.run_in_place(src, bases, qoff, acc, self.n);
        finish(acc, self.n, epi, c0, y, ldy);
    }

    /// Bytes past `src` an in-place run reads.
    fn reach(&self, bases: &[usize], qoff: &[u32]) -> usize {
        bases.iter().max().copied().unwrap_or(0)
            + qoff.iter().max().copied().unwrap_or(0) as usize
            + 4
    }

    fn run_portable(&self, a: &[u8], lda: usize, rows: usize, c: &mut [i32], ldc: usize) {
        let n = self.n;
        for r in 0..rows {
            let out = &mut c[r * ldc..r * ldc + n];
            out.fill(0);
            for kk in 0..self.k {
                let av = a[r * lda + kk] as i32;
                let wr = &self.packed[kk * n..(kk + 1) * n];
                out.iter_mut()
                    .zip(wr)
                    .for_each(|(o, &w)| *o += av * w as i32);
            }
        }
    }
}

/// Rows of `n` int32 sums (`acc`) through `epi` into `y` (rows `ldy` apart, channels from
/// `c0`): whole runs of pixels when the rows are contiguous whole pixels.
fn finish(acc: &[i32], n: usize, epi: &Epi, c0: usize, y: &mut [u8], ldy: usize) {
    if c0 == 0 && ldy == n && n == epi.ch {
        return epi.finish_run(acc, &mut y[..acc.len()]);
    }
    for (r, a) in acc.chunks(n).enumerate() {
        epi.finish(a, c0, &mut y[r * ldy..r * ldy + n]);
    }
}

#[cfg(target_arch = "x86_64")]
/// A fused run's destination: row `r`'s results through `epi` (channels `c0..`) into
/// `y + r * ldy` as uint8.
#[derive(Clone, Copy)]
pub(super) struct Fin<'a> {
    pub(super) epi: &'a Epi,
    pub(super) c0: usize,
    pub(super) y: *mut u8,
    pub(super) ldy: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Fin<'a> {
    pub(super) fn new(epi: &'a Epi, c0: usize, y: &mut [u8], ldy: usize) -> Self {
        Fin {
            epi,
            c0,
            y: y.as_mut_ptr(),
            ldy,
        }
    }

    /// The destination from row `r` on.
    pub(super) fn row(self, r: usize) -> Self {
        Fin {
            y: self.y.wrapping_add(r * self.ldy),
            ..self
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod amx;

pub(super) use amx::in_burst;

/// Whether a GEMM of depth `k` runs on AMX tiles on `path` (its `K` splits into tile chunks).
pub(super) fn on_tiles(path: QPath, k: usize) -> bool {
    path == QPath::Amx && amx::chunk(k).is_some()
}

#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::QGemm;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    unsafe fn tile<const MR: usize, const NV: usize>(
        g: &QGemm,
        a: *const u8,
        lda: usize,
        b0: usize,
        c: *mut i32,
        ldc: usize,
    ) {
        let k2 = g.k.div_ceil(2);
        let bp = g.packed16.as_ptr();
        let mut acc = [[_mm256_setzero_si256(); NV]; MR];
        for q in 0..k2 {
            let mut bv = [_mm256_setzero_si256(); NV];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = unsafe {
                    _mm256_loadu_si256(bp.add(((b0 + v) * k2 + q) * 16) as *const __m256i)
                };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = unsafe { a.add(r * lda + q * 2) };
                let lo = unsafe { *ar } as i32;
                let hi = if q * 2 + 1 < g.k {
                    unsafe { *ar.add(1) as i32 }
                } else {
                    0
                };
                let xa = _mm256_set1_epi32(lo | (hi << 16));
                for (v, acc) in row.iter_mut().enumerate() {
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(xa, bv[v]));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                let col = (b0 + v) * 8;
                let left = (g.n - col).min(8);
                let dst = unsafe { c.add(r * ldc + col) };
                if left == 8 {
                    unsafe { _mm256_storeu_si256(dst as *mut __m256i, *acc) };
                } else {
                    let mut t = [0i32; 8];
                    unsafe { _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, *acc) };
                    for (j, v) in t.iter().enumerate().take(left) {
                        unsafe { *dst.add(j) = *v };
                    }
                }
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2; bounds as for the VNNI kernel.
    pub(super) unsafe fn run(
        g: &QGemm,
        a: &[u8],
        lda: usize,
        rows: usize,
        c: &mut [i32],
        ldc: usize,
    ) {
        let nb = g.n.div_ceil(8);
        let (ap, cp) = (a.as_ptr(), c.as_mut_ptr());
        let mut r = 0;
        while r < rows {
            let mr = (rows - r).min(4);
            let mut b = 0;
            while b < nb {
                let nv = (nb - b).min(2);
                let args = (
                    g,
                    unsafe { ap.add(r * lda) },
                    lda,
                    b,
                    unsafe { cp.add(r * ldc) },
                    ldc,
                );
                unsafe {
                    match (mr, nv) {
                        (4, 2) => tile::<4, 2>(args.0, args.1, args.2, args.3, args.4, args.5),
                        (4, _) => tile::<4, 1>(args.0, args.1, args.2, args.3, args.4, args.5),
                        (3, 2) => tile::<3, 2>(args.0, args.1, args.2, args.3, args.4, args.5),
                        (3, _) => tile::<3, 1>(args.0, args.1, args.2, args.3, args.4, args.5),
                        (2, 2) => tile::<2, 2>(args.0, args.1, args.2, args.3, args.4, args.5),
                        (2, _) => tile::<2, 1>(args.0, args.1, args.2, args.3, args.4, args.5),
                        (_, 2) => tile::<1, 2>(args.0, args.1, args.2, args.3, args.4, args.5),
                        _ => tile::<1, 1>(args.0, args.1, args.2, args.3, args.4, args.5),
                    }
                };
                b += nv;
            }
            r += mr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(a: &[u8], w: &[i8], rows: usize, k: usize, n: usize) -> Vec<i32> {
        let mut c = vec![0i32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                c[r * n + j] = (0..k)
                    .map(|t| a[r * k + t] as i32 * w[t * n + j] as i32)
                    .sum();
            }
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_path_matches_the_plain_loop(
            rows in 1usize..40, k in 1usize..70, n in 1usize..90, seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let a: Vec<u8> = (0..rows * k).map(|_| next() as u8).collect();
            // Extremes included: 255 x -127 everywhere is the worst case for saturation.
            let w: Vec<i8> = (0..k * n)
                .map(|_| match next() % 5 { 0 => -127, 1 => 127, _ => (next() % 255) as i8 })
                .map(|v| v.max(-127))
                .collect();
            let want = plain(&a, &w, rows, k, n);
            for path in [QPath::Portable, QPath::Avx2, QPath::Vnni, QPath::Amx] {
                if !path.available() { continue; }
                let g = QGemm::new(&w, k, n, 0, n, path);
                let mut c = vec![7i32; rows * (n + 3)];
                g.run(&a, k, rows, &mut c, n + 3);
                for r in 0..rows {
                    prop_assert_eq!(&c[r * (n + 3)..r * (n + 3) + n], &want[r * n..(r + 1) * n],
                        "{:?} rows {} k {} n {}", path, rows, k, n);
                    // Nothing past the row's n columns is written.
                    prop_assert!(c[r * (n + 3) + n..(r + 1) * (n + 3)].iter().all(|&v| v == 7));
                }
                let sums: Vec<i32> = (0..n).map(|j| (0..k).map(|t| w[t * n + j] as i32).sum()).collect();
                prop_assert_eq!(&g.col_sums, &sums);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The shapes AMX takes: many 16-row blocks (and a remainder), K of several tile
        /// chunks, strided rows of A and C; the same sums as the plain loop on every path.
        #[test]
        fn long_rows_and_wide_k_match_the_plain_loop(
            rows in 1usize..100, k4 in 8usize..80, n in 1usize..70, pad_a in 0usize..9,
            seed in any::<u64>(),
        ) {
            let k = 4 * k4;
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let lda = k + pad_a;
            let a: Vec<u8> = (0..rows * lda).map(|_| next() as u8).collect();
            let w: Vec<i8> = (0..k * n).map(|_| (next() % 255) as i8).map(|v| v.max(-127)).collect();
            let dense: Vec<u8> = (0..rows).flat_map(|r| a[r * lda..r * lda + k].to_vec()).collect();
            let want = plain(&dense, &w, rows, k, n);
            for path in [QPath::Portable, QPath::Avx2, QPath::Vnni, QPath::Amx] {
                if !path.available() { continue; }
                let g = QGemm::new(&w, k, n, 0, n, path);
                let ldc = n + 5;
                let mut c = vec![-3i32; rows * ldc];
                g.run(&a, lda, rows, &mut c, ldc);
                for r in 0..rows {
                    prop_assert_eq!(&c[r * ldc..r * ldc + n], &want[r * n..(r + 1) * n],
                        "{:?} rows {} k {} n {} row {}", path, rows, k, n, r);
                    prop_assert!(c[r * ldc + n..(r + 1) * ldc].iter().all(|&v| v == -3));
                }
            }
        }
    }

    #[test]
    fn columns_of_a_wider_matrix() {
        let (k, ldw) = (5, 12);
        let w: Vec<i8> = (0..k * ldw).map(|v| (v % 23) as i8 - 11).collect();
        let a: Vec<u8> = (0..2 * k).map(|v| (v * 37 % 256) as u8).collect();
        let sub: Vec<i8> = (0..k)
            .flat_map(|t| w[t * ldw + 4..t * ldw + 9].to_vec())
            .collect();
        let want = plain(&a, &sub, 2, k, 5);
        let g = QGemm::new(&w, k, ldw, 4, 5, QPath::detect());
        let mut c = vec![0i32; 10];
        g.run(&a, k, 2, &mut c, 5);
        assert_eq!(c, want);
    }
}
